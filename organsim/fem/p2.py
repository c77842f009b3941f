"""Quadratic tetrahedra (P2) through scikit-fem, for accuracy-first static runs.

The same :class:`~organsim.mesh.TetMesh` the real-time P1 solver uses is
upgraded to 10-node tets (a mid-side node on every edge, straight edges) and
solved for static equilibrium:

* :func:`solve_linear_p2`: small-strain linear elasticity, assembled with
  scikit-fem's ``linear_elasticity`` form;
* :func:`solve_static_p2`: any hyperelastic material of :mod:`organsim.fem.materials`
  (or any object with batched ``pk1(F)`` and ``tangent(F)``), Newton's method with a
  backtracking line search and load stepping; the residual ``∫ P(F) : ∇v`` and the
  tangent ``∫ ∇δu : A(F) : ∇v`` are scikit-fem ``LinearForm``/``BilinearForm``
  assemblies on the scalar P2 basis, one per component (block), with ``F``, ``P`` and
  ``A = dP/dF`` evaluated at the quadrature points by the material.

Loads: gravity (body force ``rho g``), uniform pressure on boundary faces (a dead
load on the rest configuration: the nominal pressure times the rest normal and
area, which equals the follower load to first order), fixed nodes and prescribed
displacements (arrays at P1 nodes, interpolated linearly to the mid-side nodes of
edges whose both ends are prescribed; or a function of position evaluated at every
boundary P2 node).

Layout: scikit-fem stores points as (3, n) and elements as (nodes, elements);
that transposed layout stays inside this module. Inputs and outputs are
point-major: displacements (n, 3) in metres at the P1 nodes, plus the full P2
field (N, 3) at ``P2Result.p2_points`` (P1 nodes first, then one per edge).

Examples
--------
>>> from organsim.mesh.generators import box_tet_mesh
>>> mesh = box_tet_mesh((5, 2, 2), 0.05)
>>> clamp = np.flatnonzero(mesh.points[:, 0] == 0)
>>> res = solve_linear_p2(mesh, E=1e5, nu=0.3, density=1000.0, fixed=clamp)
>>> res.displacement.shape, bool(res.displacement[:, 2].min() < 0)
((20, 3), True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import ConvergenceError, SimulationError
from ..mesh.tetmesh import TetMesh
from .solvers import CholeskyFactor

__all__ = ["P2Result", "P2Space", "solve_linear_p2", "solve_static_p2", "linear_stiffness_p2"]

log = logging.getLogger("organsim.fem")


@dataclass(frozen=True)
class P2Result:
    """Result of a P2 static solve.

    Attributes
    ----------
    displacement : ndarray, shape (n, 3)
        Displacement (m) at the P1 nodes (the mesh's own nodes).
    p2_points : ndarray, shape (N, 3)
        Rest positions (m) of all P2 nodes: the mesh's nodes, then edge mid-points.
    p2_displacement : ndarray, shape (N, 3)
        Displacement (m) at every P2 node.
    iterations : int
        Newton iterations over all load steps (1 for a linear solve).
    residual_norm : float
        Final norm of the free-dof residual (N).
    load_steps : int
    n_dofs : int
        Number of unknowns (3 N).
    seconds : float
        Wall time of the solve.
    """

    displacement: np.ndarray
    p2_points: np.ndarray
    p2_displacement: np.ndarray
    iterations: int
    residual_norm: float
    load_steps: int
    n_dofs: int
    seconds: float


class P2Space:
    """The quadratic (10-node) tetrahedral space of a :class:`TetMesh`.

    Parameters
    ----------
    mesh : TetMesh
    intorder : int
        Quadrature order (default 2: exact for the linear P2 stiffness on straight tets).

    Attributes
    ----------
    basis : skfem.CellBasis
        Scalar P2 basis; vector dof ``3 s + c`` is component ``c`` of scalar dof ``s``.
    points : ndarray, shape (N, 3)
        Rest positions of the scalar dofs (P1 nodes first, then edge mid-points).
    parents : ndarray, shape (N, 2)
        The two P1 nodes each dof lies between (both equal for a P1 node).
    """

    def __init__(self, mesh: TetMesh, *, intorder: int = 2) -> None:
        from skfem import Basis, ElementTetP2, MeshTet

        if mesh.n_tets == 0:
            raise SimulationError("the mesh has no tets; a P2 solve needs a volume mesh")
        if np.any(mesh.volumes <= 0):
            raise SimulationError(f"{int(np.sum(mesh.volumes <= 0))} tets have zero or negative volume;"
                                  " repair the mesh before a P2 solve")
        self.mesh = mesh
        self.skmesh = MeshTet(np.ascontiguousarray(mesh.points.T), np.ascontiguousarray(mesh.tets.T))
        self.basis = Basis(self.skmesh, ElementTetP2(), intorder=intorder)
        n = mesh.n_points
        N = self.basis.N
        edges = self.skmesh.edges.T  # (ne, 2)
        if N != n + len(edges) or not np.array_equal(self.basis.nodal_dofs[0], np.arange(n)):
            raise SimulationError("unexpected scikit-fem P2 dof layout; this scikit-fem version is "
                                  "not supported by organsim.fem.p2")
        parents = np.empty((N, 2), dtype=np.int64)
        parents[:n] = np.arange(n)[:, None]
        parents[self.basis.edge_dofs[0]] = edges
        self.parents = parents
        self.points = 0.5 * (mesh.points[parents[:, 0]] + mesh.points[parents[:, 1]])
        self.n_scalar = N
        self.n_dofs = 3 * N
        nel, nqp = self.basis.dx.shape
        self.nel, self.nqp = nel, nqp

    # ------------------------------------------------------------------ helpers
    def boundary_dofs(self) -> np.ndarray:
        """Scalar dofs on the boundary surface (P1 nodes and mid-edge nodes), sorted."""
        return np.unique(self.basis.get_dofs().flatten())

    def gradients(self, U: np.ndarray) -> np.ndarray:
        """Displacement gradient at the quadrature points, shape (3, 3, nel, nqp)."""
        G = np.empty((3, 3, self.nel, self.nqp))
        for c in range(3):
            G[c] = self.basis.interpolate(U[:, c]).grad
        return G

    def body_force(self, density, gravity) -> np.ndarray:
        """Consistent nodal forces of the body force ``rho g`` (N), shape (N, 3)."""
        from skfem import LinearForm

        rho = np.broadcast_to(_per_tet(self.mesh, density, "density")[:, None], (self.nel, self.nqp))
        g = np.asarray(gravity, dtype=np.float64)

        @LinearForm
        def mass_load(v, w):
            return w["rho"] * v

        f = mass_load.assemble(self.basis, rho=np.ascontiguousarray(rho))
        return f[:, None] * g[None, :]

    def pressure_force(self, face_ids, pressure_pa) -> np.ndarray:
        """Consistent nodal forces (N) of a uniform dead pressure on boundary faces, shape (N, 3).

        Positive pressure pushes into the body (against the outward normal).
        """
        from skfem import FacetBasis, ElementTetP2, LinearForm

        faces = self.mesh.boundary_faces[np.asarray(face_ids, dtype=np.int64)]
        key = {tuple(sorted(f)) for f in faces.tolist()}
        fac = self.skmesh.facets.T  # (nf, 3) sorted node ids
        sel = np.flatnonzero([tuple(sorted(f)) in key for f in fac.tolist()])
        if len(sel) != len(faces):
            raise SimulationError("some pressure faces are not boundary faces of the mesh")
        fb = FacetBasis(self.skmesh, ElementTetP2(), facets=sel, intorder=4)
        p = float(pressure_pa)

        out = np.empty((self.n_scalar, 3))
        for c in range(3):
            @LinearForm
            def load(v, w, c=c):
                return -p * w.n[c] * v

            out[:, c] = load.assemble(fb)
        return out

    def internal(self, U: np.ndarray, materials, *, want_tangent: bool = True):
        """Internal force (N) and tangent stiffness at displacement ``U`` (N, 3).

        Returns
        -------
        f_int : ndarray, shape (N, 3)
        K : scipy.sparse.csr_matrix, shape (3N, 3N) or None
        min_J : float
            Smallest det F at the quadrature points.
        energy : float
            Stored strain energy (J), or NaN where a material has no ``energy``.
        """
        from skfem import BilinearForm, LinearForm

        G = self.gradients(U)
        F = np.eye(3)[:, :, None, None] + G
        Fq = np.ascontiguousarray(np.moveaxis(F, (0, 1), (2, 3))).reshape(-1, 3, 3)  # (nel*nqp, 3, 3)
        J = np.linalg.det(Fq)
        min_J = float(J.min())
        if not np.all(np.isfinite(J)) or min_J <= 0:
            return None, None, min_J, np.nan
        P = np.empty_like(Fq)
        W = np.full(len(Fq), np.nan)
        A = np.empty((len(Fq), 3, 3, 3, 3)) if want_tangent else None
        for mat, tets in _groups(self.mesh, materials):
            q = (tets[:, None] * self.nqp + np.arange(self.nqp)[None, :]).ravel()
            P[q] = mat.pk1(Fq[q])
            if hasattr(mat, "energy"):
                W[q] = mat.energy(Fq[q])
            if want_tangent:
                A[q] = mat.tangent(Fq[q])
        energy = float(np.dot(W, self.basis.dx.ravel()))
        P = np.moveaxis(P.reshape(self.nel, self.nqp, 3, 3), (2, 3), (0, 1))  # (3,3,nel,nqp)

        @LinearForm
        def resid(v, w):
            Pi, dv = np.asarray(w["Pi"]), np.asarray(v.grad)
            return Pi[0] * dv[0] + Pi[1] * dv[1] + Pi[2] * dv[2]

        f = np.empty((self.n_scalar, 3))
        for i in range(3):
            f[:, i] = resid.assemble(self.basis, Pi=np.ascontiguousarray(P[i]))
        if not want_tangent:
            return f, None, min_J, energy
        A = np.moveaxis(A.reshape(self.nel, self.nqp, 3, 3, 3, 3), (2, 3, 4, 5), (0, 1, 2, 3))

        @BilinearForm
        def block(u, v, w):
            # plain arrays: arithmetic on scikit-fem's DiscreteField subclass is ~3x slower
            a = np.asarray(w["Aik"])  # (3, 3, nel, nqp): a[j, l] = A[i, j, k, l]
            du, dv = np.asarray(u.grad), np.asarray(v.grad)
            return (dv[0] * (a[0, 0] * du[0] + a[0, 1] * du[1] + a[0, 2] * du[2])
                    + dv[1] * (a[1, 0] * du[0] + a[1, 1] * du[1] + a[1, 2] * du[2])
                    + dv[2] * (a[2, 0] * du[0] + a[2, 1] * du[1] + a[2, 2] * du[2]))

        rows, cols, vals = [], [], []
        for i in range(3):
            for k in range(i, 3):
                Kik = block.assemble(self.basis, Aik=np.ascontiguousarray(A[i, :, k, :])).tocoo()
                rows.append(3 * Kik.row + i)
                cols.append(3 * Kik.col + k)
                vals.append(Kik.data)
                if k != i:  # hyperelastic: A_ijkl = A_klij, so K_ki = K_ik^T
                    rows.append(3 * Kik.col + k)
                    cols.append(3 * Kik.row + i)
                    vals.append(Kik.data)
        K = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n_dofs, self.n_dofs))
        return f, K, min_J, energy


def _per_tet(mesh: TetMesh, value, what: str) -> np.ndarray:
    if isinstance(value, Mapping):
        names = {v: k for k, v in mesh.region_names.items()}
        out = np.full(mesh.n_tets, np.nan)
        for key, val in value.items():
            rid = key if isinstance(key, (int, np.integer)) else names.get(key)
            if rid is None:
                raise SimulationError(f"{what} given for unknown region {key!r}")
            out[mesh.region_ids == rid] = float(val)
        if np.any(np.isnan(out)):
            raise SimulationError(f"{what} missing for some regions; give one per region")
        return out
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return np.full(mesh.n_tets, float(a))
    if a.shape != (mesh.n_tets,):
        raise SimulationError(f"{what} must be a number, a dict per region, or shape ({mesh.n_tets},)")
    return a


def _groups(mesh: TetMesh, materials):
    from .fields import material_per_tet

    return material_per_tet(mesh, materials)


def linear_stiffness_p2(space: P2Space, E: float, nu: float) -> sp.csr_matrix:
    """Linear-elastic P2 stiffness from scikit-fem's ``linear_elasticity`` form.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (3N, 3N)
        In organsim's interleaved dof order ``3 s + c`` (the same as scikit-fem's
        ``ElementVector`` ordering, checked on construction).
    """
    from skfem import Basis, ElementTetP2, ElementVector
    from skfem.models.elasticity import lame_parameters, linear_elasticity

    vb = Basis(space.skmesh, ElementVector(ElementTetP2()), intorder=space.basis.intorder
               if hasattr(space.basis, "intorder") else 2)
    if not (np.array_equal(vb.nodal_dofs[0], 3 * space.basis.nodal_dofs[0])
            and np.array_equal(vb.edge_dofs[1], 3 * space.basis.edge_dofs[0] + 1)):
        raise SimulationError("unexpected scikit-fem vector dof layout; unsupported scikit-fem version")
    lam, mu = lame_parameters(E, nu)
    return linear_elasticity(lam, mu).assemble(vb).tocsr()


def _dirichlet(space: P2Space, fixed, prescribed) -> tuple[np.ndarray, np.ndarray]:
    """Constrained vector dofs and their displacement values."""
    N = space.n_scalar
    n = space.mesh.n_points
    value = np.zeros((N, 3))
    mask = np.zeros(N, dtype=bool)
    par = space.parents
    if fixed is not None:
        f = np.zeros(n, dtype=bool)
        f[np.asarray(fixed, dtype=np.int64)] = True
        m = f[par[:, 0]] & f[par[:, 1]]
        mask |= m
        value[m] = 0.0
    if prescribed is not None:
        if callable(prescribed):
            b = space.boundary_dofs()
            value[b] = np.asarray(prescribed(space.points[b]), dtype=np.float64).reshape(len(b), 3)
            mask[b] = True
        else:
            ids, disp = prescribed
            ids = np.asarray(ids, dtype=np.int64)
            d = np.zeros((n, 3))
            d[ids] = np.asarray(disp, dtype=np.float64).reshape(len(ids), 3)
            p = np.zeros(n, dtype=bool)
            p[ids] = True
            m = p[par[:, 0]] & p[par[:, 1]]
            value[m] = 0.5 * (d[par[m, 0]] + d[par[m, 1]])
            mask |= m
    if not mask.any():
        raise SimulationError("no node is fixed or prescribed: the body can move rigidly and the "
                              "static problem has no unique solution; fix a region (e.g. "
                              "selection.region(mesh, 'ligament'))")
    cons = (3 * np.flatnonzero(mask)[:, None] + np.arange(3)).ravel()
    return cons, value[mask].ravel()


def _loads(space: P2Space, density, gravity, pressure) -> np.ndarray:
    f = np.zeros((space.n_scalar, 3))
    if gravity is not None and density is not None and np.any(np.asarray(gravity) != 0):
        f += space.body_force(density, gravity)
    if pressure is not None:
        items = pressure if isinstance(pressure, list) else [pressure]
        for face_ids, p in items:
            f += space.pressure_force(face_ids, p)
    return f.ravel()


#: Systems up to this many unknowns are solved directly (sparse Cholesky / LU); larger ones
#: with conjugate gradients preconditioned by a two-level (P2 -> P1) multigrid cycle.
DIRECT_LIMIT = 15000


def _direct(A: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
    L = sp.tril(A).tocoo()
    try:  # the solver core's sparse Cholesky (LU where the matrix is not positive definite)
        x = CholeskyFactor(A.shape[0], L.row, L.col, L.data).solve(b)
        if np.all(np.isfinite(x)) and np.linalg.norm(A @ x - b) <= 1e-6 * np.linalg.norm(b):
            return x
    except ConvergenceError:
        pass
    try:
        return spla.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A").solve(b)
    except RuntimeError as exc:
        raise ConvergenceError("the P2 linear system is singular (free rigid-body modes or an unstable "
                               "tangent); fix more nodes or reduce the load step") from exc


class _TwoLevel:
    """Symmetric two-level cycle: block-Jacobi smoothing on P2, exact Galerkin P1 correction."""

    def __init__(self, A: sp.csr_matrix, Pr: sp.csr_matrix, *, sweeps: int = 2):
        self.A, self.P, self.sweeps = A, Pr, sweeps
        n = A.shape[0]
        self.Dinv = 1.0 / A.diagonal()
        # damped Jacobi must contract: omega = 1.3 / lambda_max(D^-1 A), lambda_max by power iteration
        v = np.random.default_rng(0).normal(size=n)
        lam = 1.0
        for _ in range(15):
            v = self.Dinv * (A @ v)
            lam = float(np.linalg.norm(v))
            v /= lam
        self.omega = 1.3 / (1.05 * lam)
        Ac = (Pr.T @ A @ Pr).tocsr()
        self.coarse = _CoarseSolver(Ac)
        self.n = n

    def __call__(self, r: np.ndarray) -> np.ndarray:
        A, w, Dinv = self.A, self.omega, self.Dinv
        x = w * Dinv * r
        for _ in range(self.sweeps - 1):
            x += w * Dinv * (r - A @ x)
        x += self.P @ self.coarse(self.P.T @ (r - A @ x))
        for _ in range(self.sweeps):
            x += w * Dinv * (r - A @ x)
        return x


class _CoarseSolver:
    """Exact solve of the coarse (P1) Galerkin matrix, factored once."""

    def __init__(self, Ac: sp.csr_matrix):
        L = sp.tril(Ac).tocoo()
        self.factor = CholeskyFactor(Ac.shape[0], L.row, L.col, L.data)

    def __call__(self, b: np.ndarray) -> np.ndarray:
        return self.factor.solve(b)


def _prolongation(space: P2Space, free: np.ndarray) -> sp.csr_matrix:
    """Linear interpolation from free P1 vertex dofs to the free P2 dofs, shape (len(free), 3 n_c)."""
    N, n = space.n_scalar, space.mesh.n_points
    par = space.parents
    rows = np.concatenate([3 * np.repeat(np.arange(N), 2)[:, None] + np.arange(3)]).ravel()
    cols = (3 * par.ravel()[:, None] + np.arange(3)).ravel()
    vals = np.full(len(rows), 0.5)
    P = sp.csr_matrix((vals, (rows, cols)), shape=(3 * N, 3 * n))  # vertices: 0.5 + 0.5 = 1
    P = P[free]
    keep = np.flatnonzero(np.isin(np.arange(3 * n), free))  # coarse dofs that are free themselves
    return P[:, keep].tocsr()


def _solve(K: sp.csr_matrix, b: np.ndarray, *, space: P2Space | None = None,
           free: np.ndarray | None = None, rtol: float = 1e-10) -> np.ndarray:
    """Solve the free-dof system; direct when small, two-level PCG when large."""
    K = K.tocsr()
    if K.shape[0] <= DIRECT_LIMIT or space is None:
        x = _direct(K, b)
    else:
        M = _TwoLevel(K, _prolongation(space, free))
        op = spla.LinearOperator(K.shape, matvec=M, dtype=np.float64)
        x, info = spla.cg(K, b, rtol=rtol, atol=0.0, maxiter=2000, M=op)
        if info != 0:
            log.warning("P2 PCG stopped after %d iterations without reaching rtol %.1e; "
                        "using a direct solve", info, rtol)
            x = _direct(K, b)
    if not np.all(np.isfinite(x)):
        raise ConvergenceError("the P2 linear system is singular (free rigid-body modes or an "
                               "unstable tangent); fix more nodes or reduce the load step")
    return x


def _result(space, U, iters, res, steps, t0) -> P2Result:
    n = space.mesh.n_points
    return P2Result(displacement=U[:n].copy(), p2_points=space.points.copy(), p2_displacement=U,
                    iterations=iters, residual_norm=float(res), load_steps=steps,
                    n_dofs=space.n_dofs, seconds=time.perf_counter() - t0)


def solve_linear_p2(mesh: TetMesh, *, E: float, nu: float, density=0.0, gravity=(0.0, 0.0, -9.81),
                    fixed=None, prescribed=None, pressure=None, intorder: int = 2,
                    space: P2Space | None = None) -> P2Result:
    """Small-strain linear-elastic static solve with quadratic tets.

    Parameters
    ----------
    mesh : TetMesh
    E, nu : float
        Young's modulus (Pa) and Poisson ratio.
    density : float, dict or ndarray (m,)
        Mass density (kg/m^3) for gravity; 0 for none.
    gravity : array_like (3,)
        m/s^2.
    fixed : array_like of int, optional
        P1 node ids held at zero displacement.
    prescribed : (ids, displacements (k, 3)) or callable, optional
        Displacements (m) at P1 nodes, or a function ``g(X (k, 3)) -> (k, 3)`` applied to
        every boundary P2 node.
    pressure : (face_ids, pressure_pa) or list of them, optional
        Uniform pressure (Pa) on boundary faces (indices into ``mesh.boundary_faces``).
    space : P2Space, optional
        Reuse a space built before.

    Returns
    -------
    P2Result
    """
    t0 = time.perf_counter()
    space = space or P2Space(mesh, intorder=intorder)
    K = linear_stiffness_p2(space, E, nu)
    f = _loads(space, density, gravity, pressure)
    cons, vals = _dirichlet(space, fixed, prescribed)
    u = np.zeros(space.n_dofs)
    u[cons] = vals
    free = np.setdiff1d(np.arange(space.n_dofs), cons)
    rhs = f[free] - K[free][:, cons] @ vals
    u[free] = _solve(K[free][:, free], rhs, space=space, free=free)
    res = np.linalg.norm((K @ u - f)[free])
    return _result(space, u.reshape(-1, 3), 1, res, 1, t0)


def solve_static_p2(mesh: TetMesh, materials, *, density=0.0, gravity=(0.0, 0.0, -9.81), fixed=None,
                    prescribed=None, pressure=None, load_steps: int = 1, tol: float = 1e-8,
                    max_iter: int = 30, intorder: int = 2, space: P2Space | None = None,
                    initial: np.ndarray | None = None,
                    progress: Callable[[int, int, float], None] | None = None) -> P2Result:
    """Nonlinear (hyperelastic) static equilibrium with quadratic tets.

    Newton's method on ``f_int(u) = f_ext`` with a backtracking line search on the
    residual norm, applying loads and prescribed displacements in ``load_steps``
    equal increments. A step that inverts an element (det F <= 0 at a quadrature
    point) or produces NaN is cut back.

    Parameters
    ----------
    mesh : TetMesh
    materials : Material or dict
        One material or ``{region name or id: Material}``; needs batched ``pk1`` and ``tangent``.
    density, gravity, fixed, prescribed, pressure
        As in :func:`solve_linear_p2`.
    load_steps : int
        Number of load increments.
    tol : float
        Converged when the free residual is below ``tol`` times the reference force
        (the norm of the external load, or of the first residual of the step).
    max_iter : int
        Newton iterations per load step.
    initial : ndarray, shape (N, 3), optional
        Initial guess of the P2 displacement (m) (e.g. a coarser solution); its values at
        constrained dofs are replaced by the prescribed ones.

    Returns
    -------
    P2Result

    Raises
    ------
    ConvergenceError
        When a load step does not converge in ``max_iter`` iterations or cannot avoid
        inverting elements.
    """
    t0 = time.perf_counter()
    space = space or P2Space(mesh, intorder=intorder)
    f_total = _loads(space, density, gravity, pressure)
    cons, vals = _dirichlet(space, fixed, prescribed)
    free = np.setdiff1d(np.arange(space.n_dofs), cons)
    u = np.zeros(space.n_dofs)
    if initial is not None:
        u0 = np.asarray(initial, dtype=np.float64)
        if u0.shape != (space.n_scalar, 3):
            raise SimulationError(f"initial must have shape ({space.n_scalar}, 3), got {u0.shape}")
        u[:] = u0.ravel()
    iters = 0
    res_norm = np.inf

    def evaluate(uu, lam):
        """Residual, tangent, min det F and total potential energy at ``uu``."""
        f_int, K, min_J, energy = space.internal(uu.reshape(-1, 3), materials)
        if f_int is None or not np.all(np.isfinite(f_int)):
            return None, None, min_J, np.nan
        return f_int.ravel() - lam * f_total, K, min_J, energy - lam * float(f_total @ uu)

    for step in range(1, load_steps + 1):
        lam = step / load_steps
        u[cons] = lam * vals
        r, K, min_J, pi = evaluate(u, lam)
        if r is None:
            raise ConvergenceError(f"load step {step}/{load_steps} inverts elements (min det F "
                                   f"{min_J:.3g}); use more load_steps or a smaller load")
        ref = max(np.linalg.norm(lam * f_total[free]), np.linalg.norm(r[free]), 1e-30)
        for it in range(max_iter + 1):
            res_norm = float(np.linalg.norm(r[free]))
            if progress is not None:
                progress(step, it, res_norm)
            log.debug("P2 load step %d/%d iter %d residual %.3e (ref %.3e)", step, load_steps, it,
                      res_norm, ref)
            if res_norm <= tol * ref:
                break
            if it == max_iter:
                raise ConvergenceError(f"P2 Newton did not converge in {max_iter} iterations at load "
                                       f"step {step}/{load_steps} (residual {res_norm:.3g} N, target "
                                       f"{tol * ref:.3g} N); use more load_steps")
            du = np.zeros_like(u)
            du[free] = _solve(K[free][:, free], -r[free], space=space, free=free, rtol=1e-8)
            slope = float(r[free] @ du[free])  # directional derivative of the potential energy
            alpha = 1.0
            for _ in range(20):
                trial = u + alpha * du
                r_t, K_t, min_J, pi_t = evaluate(trial, lam)
                if r_t is not None:
                    res_t = float(np.linalg.norm(r_t[free]))
                    # Armijo on the potential energy (when the materials give one), or a
                    # decrease of the residual (round-off makes energy changes unreadable
                    # near the solution)
                    armijo = np.isfinite(pi_t) and pi_t <= pi + 1e-4 * alpha * slope
                    if armijo or res_t < res_norm:
                        break
                alpha *= 0.5
            else:
                raise ConvergenceError(f"P2 line search failed at load step {step}/{load_steps} "
                                       f"(min det F {min_J:.3g}); use more load_steps")
            u, r, K, pi = trial, r_t, K_t, pi_t
            iters += 1
    return _result(space, u.reshape(-1, 3), iters, res_norm, load_steps, t0)
