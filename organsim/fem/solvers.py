"""Linear solvers for the finite-element core.

- :class:`CholeskyFactor`: sparse Cholesky (organsim's supernodal factorization,
  :mod:`organsim.fem.supernodal`), with a SuperLU fallback for matrices that are not
  positive definite.
- :class:`AMGPreconditioner`: smoothed-aggregation algebraic multigrid (``pyamg``,
  optional) with the rigid-body modes as near-null space, for large meshes.
- :class:`BlockJacobi`: inverse of the 3x3 diagonal blocks.
- :class:`BandedCholesky`: dense-band Cholesky (LAPACK) of a small block matrix
  after a reverse Cuthill-McKee ordering: the local solve around a cut, where
  a general sparse factorization's set-up costs more than the factorization.
- :func:`pcg`: preconditioned conjugate gradients with warm start, an iteration
  cap and an optional wall-clock deadline (real-time mode).

The simulation reuses one preconditioner built from a reference matrix
(``M/h^2 + K_rest``) across frames and refactors only when the constraints or
the time step change, or (in the accurate integrators) when the iteration count
shows it has gone stale.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg.lapack import dpbtrf, dpbtrs
from scipy.sparse.csgraph import reverse_cuthill_mckee

from ..errors import ConvergenceError
from . import _kernels as kern
from . import _mesh_kernels as _mk
from .supernodal import NotPositiveDefinite, SupernodalCholesky

log = logging.getLogger(__name__)

__all__ = ["MappedPreconditioner", "WarpedPreconditioner", "BlockOperator", "CholeskyFactor", "BandedCholesky",
           "AMGPreconditioner", "BlockJacobi", "pcg", "PCGResult",
           "make_preconditioner", "local_factor"]

#: Largest ``3 n kd^2`` (flops of a band factorization) for which :func:`local_factor`
#: uses :class:`BandedCholesky` (about a millisecond); a sparse factorization above.
_BANDED_MAX_FLOPS = 6e6


class BlockOperator:
    """A square block-CSR matrix (3x3 blocks) whose ``@`` runs a compiled matvec.

    Parameters
    ----------
    indptr, indices : ndarray (int32)
        Block CSR structure.
    data : ndarray (nnzb, 3, 3)
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray):
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.shape = (3 * (len(indptr) - 1),) * 2

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        y = np.empty(self.shape[0])
        kern.bsr_matvec(self.indptr, self.indices, self.data, np.ascontiguousarray(x, dtype=np.float64), y)
        return y

    def tocsr(self) -> sp.csr_matrix:
        return sp.bsr_matrix((self.data, self.indices, self.indptr), shape=self.shape).tocsr()


class CholeskyFactor:
    """A sparse factorization of a symmetric matrix: Cholesky, or LU where that breaks down.

    Parameters
    ----------
    n : int
        Size.
    rows, cols, vals : ndarray
        Lower triangle (``rows >= cols``) in COO form.

    Notes
    -----
    The Cholesky factorization is organsim's supernodal one
    (:class:`~organsim.fem.supernodal.SupernodalCholesky`, METIS nested dissection) on
    the matrix's 3x3 blocks (a size that is not a multiple of 3 is padded with an
    identity). If the matrix is not positive definite (an unstable tangent), it falls
    back to SuperLU on the full symmetric matrix (``kind == "lu"``).
    :meth:`from_blocks` factors block data on a pattern directly.
    """

    def __init__(self, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray):
        n = int(n)
        L = sp.coo_matrix((np.asarray(vals, dtype=np.float64), (rows, cols)), shape=(n, n)).tocsr()
        A = (L + L.T - sp.diags(L.diagonal())).tocsr()
        pad = -n % 3
        if pad:
            A = sp.block_diag((A, sp.identity(pad)), format="csr")
        B = A.tobsr(blocksize=(3, 3))
        B.sort_indices()
        self._setup(n, B.indptr, B.indices, B.data, lambda: A[:n, :n])

    @classmethod
    def from_blocks(cls, sub, data: np.ndarray, single_from_nnz: int | None = None,
                    order: np.ndarray | None = None) -> CholeskyFactor:
        """Factor the block data ``data`` (nnzb, 3, 3) on the block pattern ``sub``
        (:class:`~organsim.fem.assembly.SubPattern`: both triangles, every diagonal block);
        kept in single precision when the factor has at least ``single_from_nnz`` entries, in the
        elimination ``order`` given (nested dissection by default;
        :class:`~organsim.fem.supernodal.SupernodalCholesky`)."""
        self = cls.__new__(cls)
        self._setup(3 * sub.n, sub.indptr, sub.indices, data, lambda: sub.matrix(data).tocsr(), single_from_nnz,
                    order)
        return self

    @property
    def nnz(self) -> int:
        """Entries of the Cholesky factor (0 for an LU fallback or an empty system)."""
        return 0 if self._chol is None else self._chol.nnz

    @property
    def single(self) -> bool:
        """Whether the factor is kept in single precision (:meth:`keep_single`)."""
        return self._chol is not None and self._chol.single

    def keep_single(self) -> None:
        """Keep the Cholesky factor in single precision from now on: half its memory and
        faster solves (memory bound), accurate to about 1e-7 times the condition number:
        for a preconditioner of CG solves to a coarse tolerance
        (:class:`~organsim.fem.supernodal.SupernodalCholesky`, ``single``)."""
        if self._chol is not None:
            self._chol.keep_single()

    def _setup(self, n, indptr, indices, data, full_matrix, single_from_nnz=None, order=None) -> None:
        self.n = n
        self.kind = "cholesky"
        self._chol = None
        self._lu = None
        if n == 0:
            self.kind = "empty"   # every node is constrained: nothing to solve
            return
        try:
            self._chol = SupernodalCholesky(indptr, indices, data, order=order, single_from_nnz=single_from_nnz)
        except (NotPositiveDefinite, ValueError) as exc:
            log.debug("Cholesky factorization refused (%s): LU", exc)
            self.kind = "lu"
            try:
                self._lu = spla.splu(full_matrix().tocsc(), permc_spec="MMD_AT_PLUS_A")
            except RuntimeError as exc:  # exactly singular
                raise ConvergenceError(f"the system matrix is singular ({exc}); the body may have free"
                                       " rigid-body modes or a degenerate element; add constraints") from exc

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Solve ``A x = b`` for b (n,) or (n, k)."""
        b = np.ascontiguousarray(b, dtype=np.float64)
        if self.n == 0:
            return np.zeros_like(b)
        if self._chol is None:
            return self._lu.solve(b)
        if b.ndim == 2:
            return np.column_stack([self.solve(col) for col in b.T])
        pad = self._chol.n - self.n
        if pad:
            b = np.concatenate([b, np.zeros(pad)])
        # the solve's BLAS-2 calls gain nothing from OpenBLAS's threads (10.5 ms on 2 threads,
        # 10.6 ms on one, patient liver), but those threads, spinning after each call, took the
        # cores from the step's compiled kernels: a realtime step measured 63 ms so, 27 ms without
        with single_threaded_blas():
            x = self._chol.solve(b)
        return x[:self.n] if pad else x

    __call__ = solve


class BlockJacobi:
    """Inverse of the 3x3 diagonal blocks of a block-sparse matrix."""

    kind = "jacobi"

    def __init__(self, diag_blocks: np.ndarray):
        self.inv = np.ascontiguousarray(np.linalg.inv(diag_blocks))

    def solve(self, b: np.ndarray) -> np.ndarray:
        out = np.empty(len(b))
        kern.block_diag_solve(self.inv, np.ascontiguousarray(b, dtype=np.float64), out)
        return out

    __call__ = solve


class AMGPreconditioner:
    """One smoothed-aggregation AMG V-cycle (pyamg) with rigid-body modes as near-null space.

    Parameters
    ----------
    A : scipy.sparse matrix (3k, 3k)
        Reference matrix (free DOFs).
    points : ndarray (k, 3)
        Rest positions of the free nodes (m), for the rigid-body modes.
    """

    kind = "amg"

    def __init__(self, A, points: np.ndarray):
        import pyamg
        n = A.shape[0]
        c = points - points.mean(axis=0)
        B = np.zeros((n, 6))
        for d in range(3):
            B[d::3, d] = 1.0
        B[0::3, 3], B[1::3, 3] = -c[:, 1], c[:, 0]
        B[1::3, 4], B[2::3, 4] = -c[:, 2], c[:, 1]
        B[0::3, 5], B[2::3, 5] = c[:, 2], -c[:, 0]
        smoother = ("block_gauss_seidel", {"sweep": "symmetric", "blocksize": 3})
        self.ml = pyamg.smoothed_aggregation_solver(sp.csr_matrix(A), B=B, max_coarse=600,
                                                    presmoother=smoother, postsmoother=smoother)
        self._M = self.ml.aspreconditioner(cycle="V")

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self._M @ b

    __call__ = solve


class WarpedPreconditioner:
    """A reference preconditioner rotated into each node's current frame.

    Applies ``R_N P0^-1 R_N^T`` where ``R_N`` is block diagonal with one rotation
    per free node (the polar rotation of the deformation around the node). For
    corotational or moderately strained hyperelastic tissue the current matrix
    is close to ``R_N A_ref R_N^T``, so conjugate gradients converge in a few
    iterations even after large rotations, without refactoring.
    """

    def __init__(self, base, rotations: np.ndarray):
        self.base = base
        self.kind = f"warped-{base.kind}"
        self.R = rotations

    def solve(self, b: np.ndarray) -> np.ndarray:
        t = np.empty(len(b))
        kern.rotate_blocks(self.R, np.ascontiguousarray(b, dtype=np.float64), t, True)
        z = self.base(t)
        out = np.empty(len(b))
        kern.rotate_blocks(self.R, z, out, False)
        return out

    __call__ = solve


_BLAS_POOLS = None
_BLAS_HELD = 0   # blocks (any thread) now holding the one-thread limit
_BLAS_LOCK = threading.Lock()


@contextlib.contextmanager
def single_threaded_blas():
    """A context manager that runs BLAS and LAPACK on one thread (``threadpoolctl``).

    OpenBLAS splits a level-3 call over its threads, which then wait for each
    other; on a loaded machine (the simulation, a viewer and a haptic loop
    sharing a few cores) a 0.3 ms band factorization was measured taking
    30-50 ms that way. Costs about 0.05 ms; nothing inside a block that already holds
    the limit (a solve inside a step: the 10k organ's 4.7 solves a step had paid 0.25 ms).
    """
    global _BLAS_POOLS, _BLAS_HELD
    if _BLAS_HELD:        # the limit is process-wide: already in force
        yield
        return
    if _BLAS_POOLS is None:
        from threadpoolctl import ThreadpoolController
        _BLAS_POOLS = ThreadpoolController().select(user_api="blas")
    with _BLAS_POOLS.limit(limits=1):
        with _BLAS_LOCK:
            _BLAS_HELD += 1
        try:
            yield
        finally:
            with _BLAS_LOCK:
                _BLAS_HELD -= 1


class BandedCholesky:
    """Cholesky factor of a small symmetric positive definite block matrix, in band form.

    The nodes are renumbered by reverse Cuthill-McKee (``scipy.sparse.csgraph``)
    so that the matrix has a narrow band, which LAPACK factors (``dpbtrf``)
    without the symbolic analysis a general sparse factorization needs: for the
    few hundred unknowns around a cut that analysis costs more than the
    factorization itself.

    Parameters
    ----------
    sub : SubPattern
        Block pattern of the matrix (``n`` block rows, sorted columns).
    data : ndarray, shape (nnz, 3, 3)
        Its blocks (a symmetric matrix).

    Raises
    ------
    ConvergenceError
        If the matrix is not positive definite.
    """

    kind = "banded-cholesky"

    def __init__(self, sub, data: np.ndarray, order: tuple | None = None):
        perm, pos, self.kd = BandedCholesky.band_order(sub) if order is None else order
        ab = _mk.banded_lower(sub.indptr, sub.indices, np.ascontiguousarray(data, dtype=np.float64), pos, self.kd)
        with single_threaded_blas():
            self._c, info = dpbtrf(ab, lower=1, overwrite_ab=1)
        if info != 0:
            raise ConvergenceError(f"the local matrix is not positive definite (LAPACK dpbtrf info {info})")
        self._dof = (3 * perm[:, None] + np.arange(3)).ravel()

    @staticmethod
    def band_order(sub) -> tuple[np.ndarray, np.ndarray, int]:
        """Reverse Cuthill-McKee order of ``sub``'s nodes.

        Returns perm (n,), the position of each node (n,) and the scalar half-band kd.
        """
        n = sub.n
        graph = sp.csr_matrix((np.ones(len(sub.indices), dtype=np.int8), sub.indices, sub.indptr), shape=(n, n))
        perm = reverse_cuthill_mckee(graph, symmetric_mode=True).astype(np.int64)
        pos = np.empty(n, dtype=np.int64)
        pos[perm] = np.arange(n)
        kd = 3 * int(np.abs(pos[sub.rows] - pos[sub.indices]).max(initial=0)) + 2
        return perm, pos, kd

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Solve ``A x = b`` for b (3n,)."""
        y, info = dpbtrs(self._c, np.ascontiguousarray(b, dtype=np.float64)[self._dof], lower=1)
        out = np.empty(len(self._dof))
        out[self._dof] = y
        return out

    __call__ = solve


def local_factor(sub, data: np.ndarray):
    """A direct solver of a small block matrix (the reference matrix around a cut).

    A band Cholesky (:class:`BandedCholesky`) when the reverse Cuthill-McKee band
    is narrow enough to factor in about a millisecond, a sparse Cholesky
    (:class:`CholeskyFactor`) otherwise or when the band factorization fails.
    """
    order = BandedCholesky.band_order(sub)
    if 3.0 * sub.n * order[2] ** 2 <= _BANDED_MAX_FLOPS:
        try:
            return BandedCholesky(sub, data, order)
        except ConvergenceError as exc:  # the sparse factorization below falls back to LU
            log.debug("band Cholesky failed (%s); using a sparse factorization", exc)
    r, c, v = sub.lower_coo(data)
    return CholeskyFactor(3 * sub.n, r, c, v)


class MappedPreconditioner:
    """A factorization carried across a topology change (a cut), plus a local correction.

    ``F`` is the factorization built for an earlier mesh and ``T`` (3 n_free_new,
    3 n_free_old) the nodal transfer between the free DOFs of the two meshes, so
    that ``M = T F^-1 T^T`` approximates the new inverse away from the change. On
    the nodes the cut (or a grasp, a release) affected (``affected``), ``M`` still
    sees the old, connected tissue; a correction acts on the new, separated modes
    there:

    - with an exact local solver ``L^-1`` (the new reference matrix restricted to
      the affected nodes) and the reference matrix's rows at those nodes
      (``coupling``), the symmetric multiplicative combination
      ``P = P_L + (I - P_L A) M (I - A P_L)``, ``P_L = D L^-1 D^T``: local solve,
      mapped solve of what is left, local solve again. On the liver incision it
      took 40 % fewer conjugate-gradient iterations than the additive form;
    - otherwise the additive ``M + D C D^T``, with ``C`` the local solver or the
      inverse of the affected nodes' 3x3 diagonal blocks (block Jacobi).

    It avoids refactoring after every cut increment; the simulation refactors once
    conjugate gradients keep needing many iterations with it.
    """

    kind = "mapped"

    def __init__(self, base, Tnodes, local, affected: np.ndarray, coupling: tuple | None = None):
        """
        Parameters
        ----------
        base : callable
            The earlier preconditioner (applies ``F^-1`` on the old free DOFs).
        Tnodes : sparse matrix or tuple (indptr, indices, data, (n_free_new, n_free_old))
            Nodal transfer (the same for each of the three displacement components),
            as a scipy matrix or as CSR arrays (no scipy construction on the cut path).
        local : callable or ndarray, shape (k, 3, 3)
            The correction on the ``k`` affected nodes: a solver of the reference
            matrix restricted to them (applied to a (3k,) vector ordered as the
            affected nodes), or its diagonal blocks (block Jacobi).
        affected : ndarray of bool, shape (n_free_new,)
            The nodes the change touched (``k`` of them are True).
        coupling : tuple (indptr, indices, data), optional
            The reference matrix's rows at the affected nodes (block CSR, ``k`` block
            rows, columns numbered over all ``n_free_new`` free nodes, data (nnz, 3, 3)),
            for the multiplicative combination (with a callable ``local`` only).
        """
        self.base = base
        if isinstance(Tnodes, tuple):
            ptr, ind, val, shape = Tnodes
        else:
            T = sp.csr_matrix(Tnodes)
            ptr, ind, val, shape = T.indptr, T.indices, T.data, T.shape
        self.Tnodes = (np.ascontiguousarray(ptr, dtype=np.int64), np.ascontiguousarray(ind, dtype=np.int64),
                       np.ascontiguousarray(val, dtype=np.float64), (int(shape[0]), int(shape[1])))
        self.affected = np.asarray(affected, dtype=bool)
        k = int(self.affected.sum())
        self._local = None
        self.inv = None
        self._coupling = None
        if callable(local):
            self._local = local
            if coupling is not None:
                c_ptr, c_ind, c_dat = coupling
                if len(c_ptr) != k + 1:
                    raise ValueError(f"the coupling rows must be one per affected node ({k}), got {len(c_ptr) - 1}")
                self._coupling = (c_ptr, c_ind, np.ascontiguousarray(c_dat, dtype=np.float64))
        else:
            diag_blocks = np.asarray(local, dtype=np.float64)
            if diag_blocks.shape != (k, 3, 3):
                raise ValueError(f"the diagonal blocks must have shape ({k}, 3, 3) (one per affected node),"
                                 f" got {diag_blocks.shape}")
            inv = np.zeros((len(self.affected), 3, 3))
            inv[self.affected] = np.linalg.inv(diag_blocks)  # Jacobi only where the mesh changed
            self.inv = inv

    def _mapped_add(self, b: np.ndarray, out: np.ndarray) -> None:
        """``out += T F^-1 T^T b`` (b, out flat over the new free DOFs)."""
        ptr, ind, val, (_, n_old) = self.Tnodes
        coarse = np.zeros((n_old, 3))
        kern.csr_matvec3_add(ptr, ind, val, b.reshape(-1, 3), coarse, True)
        kern.csr_matvec3_add(ptr, ind, val, np.ascontiguousarray(self.base(coarse.ravel()), dtype=np.float64)
                             .reshape(-1, 3), out.reshape(-1, 3), False)

    def solve(self, b: np.ndarray) -> np.ndarray:
        b = np.ascontiguousarray(b, dtype=np.float64)
        if self._coupling is not None:
            c_ptr, c_ind, c_dat = self._coupling
            y1 = np.ascontiguousarray(self._local(np.ascontiguousarray(b.reshape(-1, 3)[self.affected]).ravel()),
                                      dtype=np.float64)
            t = b.copy()
            kern.bsr_tmatvec_add(c_ptr, c_ind, c_dat, y1, t, -1.0)        # t = b - A P_L b
            out = np.zeros(len(b))
            self._mapped_add(t, out)                                     # y2 = M t
            w = np.empty(len(y1))
            kern.bsr_matvec(c_ptr, c_ind, c_dat, out, w)                 # (A y2) at the affected nodes
            corr = y1 - np.asarray(self._local(w))
            out.reshape(-1, 3)[self.affected] += corr.reshape(-1, 3)
            return out
        if self._local is not None:
            out = np.zeros(len(b))
            ra = np.ascontiguousarray(b.reshape(-1, 3)[self.affected]).ravel()
            out.reshape(-1, 3)[self.affected] = np.asarray(self._local(ra)).reshape(-1, 3)
        else:
            out = np.empty(len(b))
            kern.block_diag_solve(self.inv, b, out)
        self._mapped_add(b, out)
        return out

    __call__ = solve


def make_preconditioner(kind: str, sub, data: np.ndarray, free_points: np.ndarray,
                        single_from_nnz: int | None = None):
    """Build a preconditioner of kind "cholesky", "multigrid", "amg" or "jacobi" from block data on ``sub``
    (a Cholesky factor, or the two-grid cycle's coarse factor, of at least ``single_from_nnz`` entries
    kept in single precision)."""
    if kind == "cholesky" or (kind == "multigrid" and sub.n == 0):   # (nothing free: nothing to solve)
        return CholeskyFactor.from_blocks(sub, data, single_from_nnz)
    if kind == "multigrid":
        from .multigrid import TwoGridPreconditioner
        return TwoGridPreconditioner(sub, data, free_points, single_from_nnz=single_from_nnz)
    if kind == "amg":
        return AMGPreconditioner(sub.matrix(data).tocsr(), free_points)
    if kind == "jacobi":
        diag = data[np.flatnonzero(sub.rows == sub.indices)]
        return BlockJacobi(diag)
    raise ValueError(f"unknown preconditioner {kind!r}; use 'cholesky', 'multigrid', 'amg' or 'jacobi'")


@dataclass
class PCGResult:
    """Outcome of :func:`pcg`: solution, iterations, relative residual, converged flag, and
    whether it stopped on a direction of non-positive curvature (``A`` is not positive definite)."""

    x: np.ndarray
    iterations: int
    residual: float
    converged: bool
    indefinite: bool = False


def pcg(A, b: np.ndarray, *, precond, x0: np.ndarray | None = None, rtol: float = 1e-8,
        maxiter: int = 200, deadline: float | None = None, atol: float = 0.0) -> PCGResult:
    """Preconditioned conjugate gradients for a symmetric positive definite ``A``.

    Parameters
    ----------
    A : sparse matrix or LinearOperator (n, n)
    b : ndarray (n,)
    precond : callable
        Applies the preconditioner inverse to a vector.
    x0 : ndarray (n,), optional
        Warm start.
    rtol : float
        Stop when ``||b - A x|| <= rtol ||b||`` (or ``<= atol``).
    atol : float
        Absolute residual floor (same units as ``b``); 0 for none.
    maxiter : int
        Iteration cap.
    deadline : float, optional
        ``time.perf_counter()`` value after which no new iteration starts.

    Returns
    -------
    PCGResult
    """
    b = np.ascontiguousarray(b, dtype=np.float64)
    bnorm = float(np.sqrt(kern.vdot(b, b)))
    tol = max(rtol * bnorm, float(atol))
    if bnorm == 0.0:
        return PCGResult(np.zeros_like(b), 0, 0.0, True)
    if x0 is None:
        x = np.zeros_like(b)
        r = b.copy()
    else:
        x = np.array(x0, dtype=np.float64)
        r = b - A @ x
    rnorm = float(np.sqrt(kern.vdot(r, r)))
    if rnorm <= tol:
        return PCGResult(x, 0, rnorm / bnorm, True)
    z = precond(r)
    p = z.copy()
    rz = kern.vdot(r, z)
    it = 0
    indefinite = False
    while it < maxiter:
        Ap = A @ p
        pAp = kern.vdot(p, Ap)
        if not (pAp > 0):
            indefinite = True
            break  # not positive definite along p: return the best iterate
        alpha = rz / pAp
        rnorm = float(np.sqrt(kern.cg_update_xr(x, r, p, Ap, alpha)))
        it += 1
        if rnorm <= tol or (deadline is not None and time.perf_counter() > deadline):
            break
        z = precond(r)
        rz_new = kern.vdot(r, z)
        kern.cg_update_p(p, z, rz_new / rz)
        rz = rz_new
    rel = rnorm / bnorm
    return PCGResult(x, it, rel, bool(rnorm <= tol) and not indefinite, indefinite)
