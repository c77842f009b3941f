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

__all__ = ["SupernodalCholesky", "NotPositiveDefinite", "node_order", "factor_memory"]

#: Relaxed amalgamation: a chain column joins the supernode below it when this adds at most
#: this fraction of explicit zeros ...
_RELAX_ZEROS = 0.05
#: ... or the merged supernode has at most this many nodes.
_RELAX_SMALL = 4

#: Factors with at least this many entries solve on several threads (below it a thread's
#: start-up costs more than the halved sweep saves).
PARALLEL_SOLVE_MIN_NNZ = 1_000_000

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


def factor_memory(indptr: np.ndarray, indices: np.ndarray, order: np.ndarray | None = None,
                  single_from_nnz: int | None = None) -> tuple[int, int, np.ndarray]:
    """The memory a :class:`SupernodalCholesky` of this pattern needs, from its symbolic analysis alone.

    Parameters
    ----------
    indptr, indices : ndarray (int)
        Block CSR pattern (as :class:`SupernodalCholesky`).
    order : ndarray (n,), optional
        Node elimination order; default METIS nested dissection (returned, to be passed on).
    single_from_nnz : int, optional
        As :class:`SupernodalCholesky`: the factor is counted in single precision from that size.

    Returns
    -------
    peak_bytes : int
        The factor (in the precision it would be kept in) and the factorization's two dense
        workspaces (the largest front and the stack of update matrices, in double) together:
        the most the factorization adds to the process's memory, to within its small index arrays.
    entries : int
        Entries of the factor.
    order : ndarray (n,) int64
        The elimination order used.

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices = np.array([0, 2, 4]), np.array([0, 1, 0, 1])
    >>> factor_memory(indptr, indices)[:2]
    (584, 36)
    """
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    if order is None:
        order = node_order(indptr, indices)
    order = np.ascontiguousarray(order, dtype=np.int64)
    out = _sk.analyse(indptr, indices, order, _RELAX_ZEROS, _RELAX_SMALL)
    entries, front_max, stack_max = int(out[11][-1]), int(out[-2]), int(out[-1])
    single = single_from_nnz is not None and entries >= single_from_nnz
    return entries * (4 if single else 8) + 8 * (max(front_max, 1) + max(stack_max, 1)), entries, order


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
        number and are symmetric only to that level: a preconditioner for CG solves to a
        coarse tolerance, as the realtime integrator's, not a direct solver; see
        ``Simulation(factor_precision=...)``).
    single_from_nnz : int, optional
        Keep the factor in single precision when it has at least this many entries (known
        after the symbolic analysis, before the numeric factorization). Either way a single
        factor is written in single precision supernode by supernode as the factorization
        goes (each supernode is factored in double, then stored): the same factor, bit for
        bit, as factoring in double and converting, without the double copy's memory.
    threads : int, optional
        Threads a solve uses: independent subtrees of the elimination tree are substituted
        in parallel (:func:`subtree_tasks`). By default a factor of at least
        :data:`PARALLEL_SOLVE_MIN_NNZ` entries plans for numba's thread count and each solve
        runs serially or in parallel, whichever has been faster lately (a busy machine may
        leave one core); ``1`` always solves serially, ``k > 1`` always in parallel.

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
                 single: bool = False, threads: int | None = None, single_from_nnz: int | None = None):
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
        single = bool(single) or (single_from_nnz is not None and int(self._l_off[-1]) >= single_from_nnz)
        self._L = np.empty(self._l_off[-1], np.float32 if single else np.float64)
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
        self._threads = threads
        self._set_precision(single)

    def _set_precision(self, single: bool) -> None:
        """Keep the factor in single (or double) precision, with the BLAS, workspaces and
        parallel plan of that type."""
        from . import parallel as par

        nr_max = int(np.max(np.diff(self._rptr))) if len(self._rptr) > 1 else 0
        self.single = single
        dtype = np.float32 if single else np.float64
        self._L = self._L.astype(dtype, copy=False)
        if single:
            self._trsv, self._gemv = self._fns[_sk.STRSV], self._fns[_sk.SGEMV]
        else:
            self._trsv, self._gemv = self._fns[_sk.DTRSV], self._fns[_sk.DGEMV]
        self._y = np.empty(self.n, dtype)
        self._w = np.empty(3 * nr_max + 1, dtype)
        self._scal = np.zeros(4, dtype)
        self._plan = None
        self._tune = None
        threads = self._threads
        bins = par.threads() if threads is None else int(threads)
        if bins > 1 and (threads is not None or self.nnz >= PARALLEL_SOLVE_MIN_NNZ):
            task_lo, task_hi, bin_ptr, top = subtree_tasks(self._first, self._rptr, self._rows, self._l_off,
                                                           bins)
            if len(bin_ptr) > 2:
                bins = len(bin_ptr) - 1
                self._plan = (task_lo, task_hi, bin_ptr, top, np.zeros((bins, self.n), dtype),
                              np.empty((bins, len(self._w)), dtype), np.zeros((bins, 8), np.int32),
                              np.zeros((bins, 4), dtype))
                self._tune = None if threads is not None else par.Autotune()

    def keep_single(self) -> None:
        """Keep the factor in single precision from now on (see ``single``); no effect if it is."""
        if not self.single:
            self._set_precision(True)

    @property
    def nnz(self) -> int:
        """Stored entries of the factor (the dense panels, diagonal blocks included)."""
        return int(self._l_off[-1])

    @property
    def solve_threads(self) -> int:
        """Threads the solve is planned for (1: it always runs serially)."""
        return 1 if self._plan is None else len(self._plan[2]) - 1

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
        if self._plan is None:
            self._solve_serial(b, x)
        elif self._tune is None:
            self._solve_parallel(b, x)
        else:
            with self._tune.timed() as parallel:
                (self._solve_parallel if parallel else self._solve_serial)(b, x)
        return x

    def _solve_parallel(self, b: np.ndarray, x: np.ndarray) -> None:
        from .parallel import KERNEL_LOCK

        task_lo, task_hi, bin_ptr, top, Z, W, INTS, SCAL = self._plan
        with KERNEL_LOCK:
            _sk.solve_par(self._L, self._perm, self._first, self._rptr, self._rows, self._l_off, b, x, self._y, Z,
                          W, INTS, SCAL, self._chars, self._trsv, self._gemv, task_lo, task_hi, bin_ptr, top)

    def _solve_serial(self, b: np.ndarray, x: np.ndarray) -> None:
        ints = np.zeros(8, np.int32)
        _sk.solve(self._L, self._perm, self._first, self._rptr, self._rows, self._l_off, b, x, self._y, self._w,
                  ints, self._scal, self._chars, self._trsv, self._gemv)

    __call__ = solve


def subtree_tasks(first: np.ndarray, rptr: np.ndarray, rows: np.ndarray, l_off: np.ndarray, bins: int):
    """Split the supernodal elimination tree into independent subtrees for ``bins`` threads.

    Starting from the roots, the subtree with the most factor entries is replaced by its
    children (its root joins the *top*, solved on one thread) until every subtree holds at
    most an eighth of a thread's share or the top holds a quarter of the factor; the subtrees
    then go to the bins largest first, each to the lightest bin.

    Parameters
    ----------
    first : (ns + 1,) int
        First node of each supernode (postorder).
    rptr, rows : int arrays
        Each supernode's below-diagonal node rows.
    l_off : (ns + 1,) int
        Offsets of the supernodes' panels in the factor (entries).
    bins : int
        Number of threads.

    Returns
    -------
    task_lo, task_hi : (t,) int64
        Supernode range of each subtree (contiguous in postorder), grouped by bin.
    bin_ptr : (bins + 1,) int64
        Subtrees ``bin_ptr[k]..bin_ptr[k+1]-1`` run on thread ``k``.
    top : (m,) int64
        The supernodes in no subtree, ascending.
    """
    import heapq

    ns = len(first) - 1
    node_super = np.repeat(np.arange(ns), np.diff(first))
    has_parent = np.diff(rptr) > 0
    parent = np.full(ns, -1, dtype=np.int64)
    parent[has_parent] = node_super[rows[rptr[:-1][has_parent]]]
    own = np.diff(l_off).astype(np.float64)
    weight = own.copy()
    count = np.ones(ns, dtype=np.int64)
    children: list[list[int]] = [[] for _ in range(ns)]
    for s in range(ns):          # postorder: a child comes before its parent (once per factor)
        p = parent[s]
        if p >= 0:
            weight[p] += weight[s]
            count[p] += count[s]
            children[p].append(s)
    total = float(own.sum())
    heap = [(-weight[s], s) for s in range(ns) if parent[s] < 0]
    heapq.heapify(heap)
    top: list[int] = []
    top_weight = 0.0
    while heap:
        w, s = heap[0]
        if -w <= total / bins / 8 or not children[s] or top_weight + own[s] > 0.25 * total:
            break
        heapq.heappop(heap)
        top.append(s)
        top_weight += own[s]
        for c in children[s]:
            heapq.heappush(heap, (-weight[c], c))
    tasks = sorted((s for _, s in heap), key=lambda s: -weight[s])
    load = [0.0] * bins
    members: list[list[int]] = [[] for _ in range(bins)]
    for s in tasks:
        k = int(np.argmin(load))
        load[k] += weight[s]
        members[k].append(s)
    members = [m for m in members if m]
    roots = np.array([s for m in members for s in m], dtype=np.int64)
    bin_ptr = np.zeros(len(members) + 1, dtype=np.int64)
    np.cumsum([len(m) for m in members], out=bin_ptr[1:])
    return roots - count[roots] + 1, roots + 1, bin_ptr, np.array(sorted(top), dtype=np.int64)
