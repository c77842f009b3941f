"""organsim's own supernodal sparse Cholesky factorization (BSD-3-Clause, compiled with numba).

:class:`SupernodalCholesky` factors a symmetric positive definite block matrix (3x3 blocks on
the free nodes, a :class:`~organsim.fem.assembly.SubPattern` and its data) as ``P A P^T = L L^T``:

- **Ordering**: METIS nested dissection of the node graph (``pymetis``), postordered.
- **Symbolic analysis** on the node graph (a third of the DOFs): elimination tree, column
  structures, supernodes with relaxed amalgamation (:func:`~._supernodal_kernels.analyse`).
- **Numeric factorization**, multifrontal: each supernode's front is a dense matrix factored
  by LAPACK/BLAS (``dpotrf``, ``dtrsm``, ``dsyrk``, scipy's), its update matrix added into its
  parent's front. The dense kernels do the flops at BLAS speed, which a simplicial
  factorization (one column at a time) cannot.
- **Solve**: forward and back substitution by supernode (``dtrsv``, ``dgemv``).

The compiled parts release the GIL, so a factorization can run beside the simulation's steps.
"""

from __future__ import annotations

import numpy as np

from . import _supernodal_kernels as _sk

__all__ = ["SupernodalCholesky", "NotPositiveDefinite", "node_order"]

#: Relaxed amalgamation: a chain column joins the supernode below it when this adds at most
#: this fraction of explicit zeros ...
_RELAX_ZEROS = 0.05
#: ... or the merged supernode has at most this many nodes.
_RELAX_SMALL = 4

_BLAS = None


class NotPositiveDefinite(ValueError):
    """The matrix given to :class:`SupernodalCholesky` is not positive definite."""


def _blas_table():
    """Addresses of scipy's BLAS/LAPACK functions the kernels call, and their character arguments."""
    global _BLAS
    if _BLAS is None:
        from numba.extending import get_cython_function_address as addr
        fns = np.zeros(7, np.int64)
        fns[_sk.DPOTRF] = addr("scipy.linalg.cython_lapack", "dpotrf")
        fns[_sk.DTRSM] = addr("scipy.linalg.cython_blas", "dtrsm")
        fns[_sk.DSYRK] = addr("scipy.linalg.cython_blas", "dsyrk")
        fns[_sk.DTRSV] = addr("scipy.linalg.cython_blas", "dtrsv")
        fns[_sk.DGEMV] = addr("scipy.linalg.cython_blas", "dgemv")
        fns[_sk.STRSV] = addr("scipy.linalg.cython_blas", "strsv")
        fns[_sk.SGEMV] = addr("scipy.linalg.cython_blas", "sgemv")
        chars = np.frombuffer(b"LNTR", dtype=np.uint8).copy()
        _BLAS = (fns, chars)
    return _BLAS


def node_order(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """METIS nested-dissection order of a symmetric node graph (new position -> old node).

    Parameters
    ----------
    indptr, indices : ndarray
        CSR pattern of the graph (with or without its diagonal).

    Returns
    -------
    ndarray (n,) int64
    """
    import pymetis
    n = len(indptr) - 1
    rows = np.repeat(np.arange(n), np.diff(indptr))
    off = indices != rows
    adj = np.ascontiguousarray(indices[off], dtype=np.int32)
    ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows[off], minlength=n), out=ptr[1:])
    if len(adj) == 0:
        return np.arange(n, dtype=np.int64)
    perm, _ = pymetis.nested_dissection(pymetis.CSRAdjacency(ptr, adj))
    return np.asarray(perm, dtype=np.int64)


class SupernodalCholesky:
    """Supernodal Cholesky factor of a symmetric positive definite 3x3-block matrix.

    Parameters
    ----------
    indptr, indices : ndarray (int)
        Block CSR pattern of the matrix on ``n`` nodes: both triangles and every diagonal block.
    data : ndarray (nnzb, 3, 3) float64
        Its blocks.
    order : ndarray (n,) int, optional
        Node elimination order (new position -> old node); default METIS nested dissection.
    single : bool
        Keep the factor in single precision after factoring in double (half the memory and
        the memory traffic of a solve, which is memory bound: 1.6x faster solves on the
        patient liver; solves then have a relative error of about 1e-7 times the condition
        number and are symmetric only to that level, too coarse for CG on ill-conditioned
        tangents, so the simulation does not use it).

    Raises
    ------
    NotPositiveDefinite
        The matrix is not positive definite (its Cholesky factorization breaks down).

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices = np.array([0, 2, 4]), np.array([0, 1, 0, 1])
    >>> I = np.eye(3)
    >>> data = np.array([4 * I, -I, -I, 4 * I])        # [[4, -1], [-1, 4]] per component
    >>> chol = SupernodalCholesky(indptr, indices, data)
    >>> np.round(chol.solve(np.array([3.0, 3, 3, 3, 3, 3])), 12)
    array([1., 1., 1., 1., 1., 1.])
    """

    kind = "cholesky"

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, order: np.ndarray | None = None,
                 single: bool = False):
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        data = np.ascontiguousarray(data, dtype=np.float64)
        n = len(indptr) - 1
        self.n = 3 * n
        if order is None:
            order = node_order(indptr, indices)
        (self._perm, _, a_ptr, a_row, a_blk, diag_blk, self._first, self._rptr, self._rows, _, nchild,
         self._l_off, front_max, stack_max) = _sk.analyse(indptr, indices, np.ascontiguousarray(order, dtype=np.int64),
                                                          _RELAX_ZEROS, _RELAX_SMALL)
        if np.any(diag_blk < 0):
            raise ValueError("the block pattern lacks diagonal blocks; every node needs one")
        self._fns, self._chars = _blas_table()
        self._L = np.empty(self._l_off[-1])
        front = np.empty(max(front_max, 1))
        stack = np.zeros(max(stack_max, 1))
        ints = np.zeros(8, np.int32)
        dbls = np.zeros(4)
        status = _sk.factor(data, a_ptr, a_row, a_blk, diag_blk, self._first, self._rptr, self._rows, nchild,
                            self._l_off, front, stack, self._L, np.empty(n, np.int64), ints, dbls, self._chars,
                            self._fns)
        if status != 0:
            raise NotPositiveDefinite("the matrix is not positive definite (the Cholesky factorization broke down"
                                      f" at supernode {status - 1} of {len(self._first) - 1})")
        nr_max = int(np.max(np.diff(self._rptr))) if len(self._rptr) > 1 else 0
        self.single = bool(single)
        dtype = np.float32 if single else np.float64
        if single:
            self._L = self._L.astype(np.float32)
            self._trsv, self._gemv = self._fns[_sk.STRSV], self._fns[_sk.SGEMV]
        else:
            self._trsv, self._gemv = self._fns[_sk.DTRSV], self._fns[_sk.DGEMV]
        self._y = np.empty(self.n, dtype)
        self._w = np.empty(3 * nr_max + 1, dtype)
        self._scal = np.zeros(4, dtype)

    @property
    def nnz(self) -> int:
        """Stored entries of the factor (the dense panels, diagonal blocks included)."""
        return int(self._l_off[-1])

    @property
    def supernodes(self) -> int:
        """Number of supernodes."""
        return len(self._first) - 1

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A^-1 b`` for ``b`` of shape (3 n,) (m or N, whatever ``A`` maps); a new array."""
        b = np.ascontiguousarray(b, dtype=np.float64)
        if b.ndim == 2:
            return np.column_stack([self.solve(col) for col in b.T])
        x = np.empty(self.n)
        ints = np.zeros(8, np.int32)
        _sk.solve(self._L, self._perm, self._first, self._rptr, self._rows, self._l_off, b, x, self._y, self._w,
                  ints, self._scal, self._chars, self._trsv, self._gemv)
        return x

    __call__ = solve
