"""A two-grid preconditioner on a lattice laid over the mesh: Cholesky's convergence at a fraction of its memory.

One job: approximate the inverse of the reference matrix ``A = c_M M + c_K K`` (free DOFs)
for conjugate gradients when a Cholesky factor of ``A`` is too large. A regular lattice of
spacing ``H`` (``ratio`` times the mesh's median edge) is laid over the free nodes' rest
positions; each fine node is interpolated trilinearly from the 8 lattice nodes of its cell
(the prolongation ``P``, as in SOFA's sparse-grid embedding); the coarse matrix is the
Galerkin product ``A_c = P^T A P``, Cholesky-factored (with the default ``ratio = 2.5`` about a
thirtieth of the nodes: on the 1M-tet scale block 5k coarse nodes, an 18M-entry factor). One
application is a symmetric two-grid cycle:

1. ``z = S r``: Chebyshev smoothing (polynomial in ``D^-1 A``, ``D`` the 3x3 diagonal blocks),
2. ``z += P A_c^-1 P^T (r - A z)``: the coarse correction,
3. ``z += S (r - A z)``: the same smoothing again,

a fixed symmetric positive definite operator, so CG stays CG. ``A`` is kept in single
precision for the smoothing products (memory bound), and a large coarse factor too.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from . import _kernels as kern
from . import _multigrid_kernels as mgk
from . import parallel as par

log = logging.getLogger(__name__)

__all__ = ["TwoGridPreconditioner", "lattice_prolongation", "upper_triangle"]

#: Relative shift added to the coarse matrix's diagonal (see :class:`TwoGridPreconditioner`).
_COARSE_SHIFT = 1e-6


def lattice_prolongation(points: np.ndarray, spacing: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """Trilinear interpolation of ``points`` from the nodes of a lattice of ``spacing``.

    Parameters
    ----------
    points : (n, 3) float
        Fine node positions (m).
    spacing : float
        Lattice spacing (m).

    Returns
    -------
    P : scipy.sparse.csr_matrix (n, n_coarse)
        Interpolation weights, at most 8 per row, each row summing to 1; lattice nodes no
        point depends on are left out.
    coarse_points : (n_coarse, 3) float
        Positions of the kept lattice nodes (m).

    Examples
    --------
    >>> P, c = lattice_prolongation(np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]), 1.0)
    >>> P.shape, bool(np.allclose(P.sum(axis=1), 1.0)), bool(np.allclose(P @ c, [[0, 0, 0], [.5, .5, .5], [1, 1, 1]]))
    ((3, 8), True, True)
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    lo = points.min(axis=0)
    u = (points - lo) / spacing
    cell = np.minimum(np.floor(u).astype(np.int64), np.maximum(np.ceil(u.max(axis=0)).astype(np.int64) - 1, 0))
    t = u - cell
    dims = cell.max(axis=0) + 2
    corners = np.array([[a, b, c] for c in (0, 1) for b in (0, 1) for a in (0, 1)])     # (8, 3)
    w = np.ones((n, 8))
    for d in range(3):
        w *= np.where(corners[None, :, d] == 1, t[:, None, d], 1.0 - t[:, None, d])
    ijk = cell[:, None, :] + corners[None, :, :]                                          # (n, 8, 3)
    lin = ijk[..., 0] + dims[0] * (ijk[..., 1] + dims[1] * ijk[..., 2])
    keep = w > 1e-9
    rows = np.repeat(np.arange(n), 8).reshape(n, 8)[keep]
    used, cols = np.unique(lin[keep], return_inverse=True)
    vals = w[keep]
    P = sp.csr_matrix((vals, (rows, cols)), shape=(n, len(used)))
    P.data /= np.repeat(np.asarray(P.sum(axis=1)).ravel(), np.diff(P.indptr))
    c = np.stack([used % dims[0], (used // dims[0]) % dims[1], used // (dims[0] * dims[1])], axis=1)
    return P, lo + spacing * c


def upper_triangle(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> tuple:
    """The upper triangle (diagonal blocks included) of a symmetric block-CSR matrix, as the
    smoother's product takes it (:func:`~organsim.fem._multigrid_kernels.sym_bsr_matvec`).

    Parameters
    ----------
    indptr, indices : ndarray (n + 1,), (nnzb,)
        Block CSR pattern (both triangles).
    data : ndarray (nnzb, 3, 3)
        The blocks.

    Returns
    -------
    (indptr int32 (n + 1,), indices int32 (k,), data float32 (k, 3, 3))
    """
    n = len(indptr) - 1
    rows = np.repeat(np.arange(n), np.diff(indptr))
    upper = indices >= rows
    u_ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows[upper], minlength=n), out=u_ptr[1:])
    return u_ptr, np.asarray(indices)[upper].astype(np.int32), np.ascontiguousarray(data[upper], dtype=np.float32)


class TwoGridPreconditioner:
    """Symmetric two-grid cycle on a lattice over the free nodes (see the module docstring).

    Parameters
    ----------
    sub : SubPattern
        The free-node block pattern (``indptr``, ``indices``, ``rows``, ``n``).
    data : (nnzb, 3, 3) float
        The reference matrix's blocks on ``sub`` (symmetric positive definite).
    points : (n, 3) float
        Rest positions of the free nodes (m).
    ratio : float
        Lattice spacing over the median edge length of the pattern. Measured on the scale block
        (realtime step, rtol 1e-2): 2.5 and 2 step as fast at 441k and 1M tets (256 and 590 ms), 2.5
        in less memory (1.05 against 1.19 kB/tet at its peak at 1M) and half the set-up time; 3 is
        slower (365 ms at 441k).
    degree : int
        Degree of the Chebyshev smoother (products with ``A`` per smoothing: ``degree - 1``
        from a zero start).
    lower_fraction : float
        The smoother targets the eigenvalues of ``D^-1 A`` in ``[lower_fraction, 1] lambda_max``.
    single_from_nnz : int, optional
        A coarse factor of at least this many entries is kept in single precision.
    """

    kind = "multigrid"

    def __init__(self, sub, data: np.ndarray, points: np.ndarray, *, ratio: float = 2.5, degree: int = 3,
                 lower_fraction: float = 0.1, single_from_nnz: int | None = None):
        from .solvers import CholeskyFactor

        t0 = time.perf_counter()
        self.n = 3 * sub.n
        self.degree = int(degree)
        points = np.asarray(points, dtype=np.float64)
        indptr = np.ascontiguousarray(sub.indptr, dtype=np.int64)
        indices = np.ascontiguousarray(sub.indices, dtype=np.int64)
        rows = np.repeat(np.arange(sub.n), np.diff(indptr))
        off = rows != indices
        edge = float(np.median(np.linalg.norm(points[rows[off]] - points[indices[off]], axis=1))) if off.any() else 1.0
        self.spacing = ratio * edge
        P, self.coarse_points = lattice_prolongation(points, self.spacing)
        Pt = P.T.tocsr()
        self._P = (P.indptr.astype(np.int64), P.indices.astype(np.int64), P.data)
        self._Pt = (Pt.indptr.astype(np.int64), Pt.indices.astype(np.int64), Pt.data)
        n_c = P.shape[1]
        max_row = int(np.diff(Pt.indptr).max(initial=0) * np.diff(indptr).max(initial=0) * 8)
        c_ptr, c_ind = mgk.galerkin_pattern(self._Pt[0], self._Pt[1], indptr, indices, self._P[0], self._P[1],
                                            n_c, max(max_row, 1))
        c_data = mgk.galerkin_values(*self._Pt, indptr, indices, np.ascontiguousarray(data, dtype=np.float64),
                                     *self._P, c_ptr, c_ind)
        # a lattice cell that holds only a few fine nodes (at the organ's boundary) gives its corners
        # interpolation weights that are linearly dependent: P^T A P is then only semidefinite. A
        # relative 1e-6 on its diagonal makes it definite; P maps the directions this changes (P v = 0)
        # to nothing, so the cycle is the same elsewhere
        pattern = _Pattern(c_ptr, c_ind)
        diag_slots = np.flatnonzero(pattern.rows == pattern.indices)
        c_data[diag_slots] += _COARSE_SHIFT * np.einsum("kii->k", c_data[diag_slots])[:, None, None] / 3 * np.eye(3)
        self.coarse = CholeskyFactor.from_blocks(pattern, c_data, single_from_nnz)
        self.coarse_nodes = n_c
        # the smoothing operator: A's upper triangle in single precision (A is symmetric: each
        # off-diagonal block serves both its products, half the bytes a product reads; the
        # smoother's products are memory bound), and the inverse of its diagonal blocks
        self._A = upper_triangle(indptr, indices, data)
        u_ptr = self._A[0]
        # the rows in as many ranges of about equal numbers of blocks as there are threads
        bins = max(par.threads(), 1)
        self._bounds_par = np.searchsorted(u_ptr, np.linspace(0, u_ptr[-1], bins + 1)).astype(np.int64)
        self._bounds_par[0], self._bounds_par[-1] = 0, sub.n
        self._partial = None   # (bins, 3 n) sums of the parallel product, allocated when first used
        diag = np.ascontiguousarray(data[np.flatnonzero(rows == indices)], dtype=np.float64)
        self._Dinv = np.ascontiguousarray(np.linalg.inv(diag))
        self._tune = par.Autotune()
        lam = self._lambda_max()
        self._bounds = (lower_fraction * 1.1 * lam, 1.1 * lam)
        self.setup_s = time.perf_counter() - t0
        log.debug("two-grid preconditioner: %d fine, %d coarse nodes (spacing %.3g m), coarse factor %d entries, "
                  "lambda_max(D^-1 A) %.3g, %.2f s", sub.n, n_c, self.spacing, self.coarse.nnz, lam, self.setup_s)

    @property
    def single(self) -> bool:
        """Whether the coarse factor is kept in single precision."""
        return self.coarse.single

    # -- the cycle --------------------------------------------------------------------------
    def _matvec(self, x: np.ndarray) -> np.ndarray:
        y = np.empty(self.n)
        ptr, ind, dat = self._A
        if par.use_parallel(len(ptr) - 1) and len(self._bounds_par) > 2:
            with self._tune.timed() as parallel:   # both forms timed inside, to compare them
                if parallel:
                    if self._partial is None:
                        self._partial = np.empty((len(self._bounds_par) - 1, self.n))
                    with par.KERNEL_LOCK:
                        mgk.sym_bsr_matvec_par(ptr, ind, dat, x, y, self._bounds_par, self._partial)
                else:
                    mgk.sym_bsr_matvec(ptr, ind, dat, x, y)
            return y
        mgk.sym_bsr_matvec(ptr, ind, dat, x, y)
        return y

    def _dinv(self, r: np.ndarray) -> np.ndarray:
        out = np.empty(self.n)
        kern.block_diag_solve(self._Dinv, r, out)
        return out

    def _smooth(self, r: np.ndarray) -> np.ndarray:
        """Chebyshev smoothing of ``A z = r`` from ``z = 0`` (``degree`` terms)."""
        a, b = self._bounds
        theta = 0.5 * (b + a)
        delta = 0.5 * (b - a)
        sigma = theta / delta
        rho = 1.0 / sigma
        d = self._dinv(r) / theta
        z = d.copy()
        res = r
        for _ in range(self.degree - 1):
            res = res - self._matvec(d)
            rho_new = 1.0 / (2.0 * sigma - rho)
            d = (rho_new * rho) * d + (2.0 * rho_new / delta) * self._dinv(res)
            z += d
            rho = rho_new
        return z

    def _lambda_max(self, iterations: int = 15) -> float:
        """Largest eigenvalue of ``D^-1 A`` by power iteration (seeded: the same every run)."""
        v = np.random.default_rng(0).standard_normal(self.n)
        lam = 1.0
        for _ in range(iterations):
            w = self._dinv(self._matvec(v))
            lam = float(np.linalg.norm(w) / np.linalg.norm(v))
            v = w / np.linalg.norm(w)
        return lam

    def solve(self, r: np.ndarray) -> np.ndarray:
        """Apply the cycle to ``r`` (3n,)."""
        r = np.ascontiguousarray(r, dtype=np.float64)
        z = self._smooth(r)
        res = r - self._matvec(z)
        rc = np.zeros((self.coarse_nodes, 3))
        kern.csr_matvec3_add(*self._Pt, res.reshape(-1, 3), rc, False)                      # P^T r
        kern.csr_matvec3_add(*self._P, self.coarse.solve(rc.ravel()).reshape(-1, 3), z.reshape(-1, 3), False)
        z += self._smooth(r - self._matvec(z))
        return z

    __call__ = solve


class _Pattern:
    """The coarse matrix's block pattern in the form :meth:`CholeskyFactor.from_blocks` takes."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray):
        self.indptr = indptr.astype(np.int32)
        self.indices = indices.astype(np.int32)
        self.n = len(indptr) - 1
        self.rows = np.repeat(np.arange(self.n, dtype=np.int32), np.diff(indptr))

    def matrix(self, data: np.ndarray) -> sp.bsr_matrix:
        return sp.bsr_matrix((data, self.indices, self.indptr), shape=(3 * self.n, 3 * self.n))
