"""Linear solvers for the finite-element core.

- :class:`CholeskyFactor`: sparse Cholesky (CHOLMOD through ``cholespy``), with a
  SuperLU fallback for matrices that are not positive definite.
- :class:`AMGPreconditioner`: smoothed-aggregation algebraic multigrid (``pyamg``,
  optional) with the rigid-body modes as near-null space, for large meshes.
- :class:`BlockJacobi`: inverse of the 3x3 diagonal blocks.
- :func:`pcg`: preconditioned conjugate gradients with warm start, an iteration
  cap and an optional wall-clock deadline (real-time mode).

The simulation reuses one preconditioner built from a reference matrix
(``M/h^2 + K_rest``) across frames and refactors only when the constraints or
the time step change, or (in the accurate integrators) when the iteration count
shows it has gone stale.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import ConvergenceError
from . import _kernels as kern

log = logging.getLogger(__name__)

__all__ = ["MappedPreconditioner", "WarpedPreconditioner", "BlockOperator", "CholeskyFactor", "AMGPreconditioner", "BlockJacobi", "pcg", "PCGResult",
           "make_preconditioner"]


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
    """A sparse factorization of a symmetric matrix given by its lower-triangle triplets.

    Parameters
    ----------
    n : int
        Size.
    rows, cols, vals : ndarray
        Lower triangle (``rows >= cols``) in COO form.

    Notes
    -----
    Uses CHOLMOD (``cholespy``); if the matrix is not positive definite (an
    unstable tangent), falls back to SuperLU on the full symmetric matrix.
    """

    def __init__(self, n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray):
        self.n = int(n)
        self.kind = "cholesky"
        self._chol = None
        self._lu = None
        try:
            import cholespy
            self._chol = cholespy.CholeskySolverD(self.n, np.ascontiguousarray(rows, dtype=np.int32),
                                                  np.ascontiguousarray(cols, dtype=np.int32),
                                                  np.ascontiguousarray(vals, dtype=np.float64),
                                                  cholespy.MatrixType.COO)
        except (ImportError, ValueError):
            self.kind = "lu"
            L = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
            A = (L + L.T - sp.diags(L.diagonal())).tocsc()
            try:
                self._lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A")
            except RuntimeError as exc:  # exactly singular
                raise ConvergenceError(f"the system matrix is singular ({exc}); the body may have free"
                                       " rigid-body modes or a degenerate element; add constraints") from exc

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Solve ``A x = b`` for b (n,) or (n, k)."""
        b = np.ascontiguousarray(b, dtype=np.float64)
        if self._chol is not None:
            x = np.empty_like(b)
            self._chol.solve(b, x)
            return x
        return self._lu.solve(b)

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


class MappedPreconditioner:
    """A factorization carried across a topology change (a cut), plus a local correction.

    Applies ``T F^-1 T^T r + C r`` where ``F`` is the factorization built for an
    earlier mesh, ``T`` (3 n_free_new, 3 n_free_old) the nodal transfer between the
    free DOFs of the two meshes, and ``C`` a correction on the nodes the cut (or a
    grasp, a release) affected (``affected``), which acts on the new, separated
    modes there: the inverse of the new reference matrix restricted to those nodes
    (a small sparse factorization, ``local``), or the inverse of its 3x3 diagonal
    blocks. It avoids refactoring after every cut increment; the simulation
    refactors once conjugate gradients keep needing many iterations with it.
    """

    kind = "mapped"

    def __init__(self, base, Tnodes: sp.csr_matrix, local, affected: np.ndarray):
        """
        Parameters
        ----------
        base : callable
            The earlier preconditioner (applies ``F^-1`` on the old free DOFs).
        Tnodes : sparse (n_free_new, n_free_old)
            Nodal transfer (the same for each of the three displacement components).
        local : callable or ndarray, shape (k, 3, 3)
            The correction on the ``k`` affected nodes: a solver of the reference
            matrix restricted to them (applied to a (3k,) vector ordered as the
            affected nodes), or its diagonal blocks (block Jacobi).
        affected : ndarray of bool, shape (n_free_new,)
            The nodes the change touched (``k`` of them are True).
        """
        self.base = base
        self.Tnodes = sp.csr_matrix(Tnodes)
        self._Tt = self.Tnodes.T.tocsr()
        self.affected = np.asarray(affected, dtype=bool)
        k = int(self.affected.sum())
        self._local = None
        self.inv = None
        if callable(local):
            self._local = local
        else:
            diag_blocks = np.asarray(local, dtype=np.float64)
            if diag_blocks.shape != (k, 3, 3):
                raise ValueError(f"the diagonal blocks must have shape ({k}, 3, 3) (one per affected node),"
                                 f" got {diag_blocks.shape}")
            inv = np.zeros((len(self.affected), 3, 3))
            inv[self.affected] = np.linalg.inv(diag_blocks)  # Jacobi only where the mesh changed
            self.inv = inv

    def solve(self, b: np.ndarray) -> np.ndarray:
        b = np.ascontiguousarray(b, dtype=np.float64)
        if self._local is not None:
            out = np.zeros(len(b))
            ra = np.ascontiguousarray(b.reshape(-1, 3)[self.affected]).ravel()
            out.reshape(-1, 3)[self.affected] = np.asarray(self._local(ra)).reshape(-1, 3)
        else:
            out = np.empty(len(b))
            kern.block_diag_solve(self.inv, b, out)
        coarse = np.ascontiguousarray(self._Tt @ b.reshape(-1, 3)).ravel()
        out += (self.Tnodes @ np.asarray(self.base(coarse)).reshape(-1, 3)).ravel()
        return out

    __call__ = solve


def make_preconditioner(kind: str, sub, data: np.ndarray, free_points: np.ndarray):
    """Build a preconditioner of kind "cholesky", "amg" or "jacobi" from block data on ``sub``."""
    if kind == "cholesky":
        r, c, v = sub.lower_coo(data)
        return CholeskyFactor(3 * sub.n, r, c, v)
    if kind == "amg":
        return AMGPreconditioner(sub.matrix(data).tocsr(), free_points)
    if kind == "jacobi":
        diag = data[np.flatnonzero(sub.rows == sub.indices)]
        return BlockJacobi(diag)
    raise ValueError(f"unknown preconditioner {kind!r}; use 'cholesky', 'amg' or 'jacobi'")


@dataclass
class PCGResult:
    """Outcome of :func:`pcg`: solution, iterations, relative residual, converged flag."""

    x: np.ndarray
    iterations: int
    residual: float
    converged: bool


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
    while it < maxiter:
        Ap = A @ p
        pAp = kern.vdot(p, Ap)
        if not (pAp > 0):
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
    return PCGResult(x, it, rel, bool(rnorm <= tol))
