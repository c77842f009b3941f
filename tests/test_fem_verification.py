"""Verification of the finite-element solver against closed-form answers and scikit-fem.

- patch tests (linear and finite affine deformations reproduced exactly on a distorted mesh);
- rigid rotations produce no internal force (every nonlinear and corotational model, P1 and P2);
- the P1 linear-elastic stiffness equals scikit-fem's assembly on the same mesh (1e-10 relative);
- uniaxial stretch of neo-Hookean and Mooney-Rivlin cubes against the closed-form stress (0.1 %);
- cantilever against Euler-Bernoulli (P1: fine mesh + Richardson; P2 in test_fem_p2.py);
- mesh-convergence slopes of P1 (L2 ~ h^2, H1 ~ h) and P2 (L2 ~ h^3, H1 ~ h^2) on an exact
  solution of linear elasticity.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.optimize import minimize_scalar
from scipy.spatial.transform import Rotation

from organsim.fem import p2
from organsim.fem.assembly import Assembler
from organsim.fem.body import Body
from organsim.fem.materials import (Corotational, LinearElastic, MooneyRivlin, NeoHookean,
                                    StVenantKirchhoff)
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh

NONLINEAR = {
    "corotational": lambda: Corotational(1e4, 0.45),
    "stvk": lambda: StVenantKirchhoff(1e4, 0.45),
    "neo_hookean": lambda: NeoHookean(1e4, 0.45),
    "mooney_rivlin": lambda: MooneyRivlin(1.2e3, 0.5e3, 5e4),
}


def distorted_box(shape=(5, 5, 5), h=0.01, amount=0.3, seed=0) -> TetMesh:
    """A box mesh whose interior nodes are moved randomly by up to ``amount * h``."""
    m = box_tet_mesh(shape, h)
    rng = np.random.default_rng(seed)
    pts = m.points.copy()
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    inner = np.all((pts > lo + 1e-12) & (pts < hi - 1e-12), axis=1)
    pts[inner] += rng.uniform(-amount * h, amount * h, size=(inner.sum(), 3))
    out = TetMesh(pts, m.tets)
    assert np.all(out.volumes > 0)
    return out


def static_p1(mesh, material, ids, positions, *, tol=1e-12, load_steps=1):
    sim = Simulation(Body(mesh, material, density=1000.0), gravity=(0.0, 0.0, 0.0))
    sim.prescribe(ids, positions, name="bc")
    info = sim.solve_static(load_steps=load_steps, tol=tol)
    assert info.converged
    return sim


# ----------------------------------------------------------------------------- patch tests
def test_patch_test_linear_exact_to_round_off():
    mesh = distorted_box()
    A = np.array([[2e-3, 1e-3, -5e-4], [3e-4, -1e-3, 2e-3], [1e-3, 5e-4, 1.5e-3]])
    b = np.array([1e-4, -2e-4, 3e-4])
    exact = mesh.points + mesh.points @ A.T + b
    bnd = mesh.boundary_nodes
    sim = static_p1(mesh, LinearElastic(1e4, 0.45), bnd, exact[bnd])
    inner = np.setdiff1d(np.arange(mesh.n_points), bnd)
    err = np.abs(sim.positions[inner] - exact[inner]).max()
    assert err <= 1e-12 * 0.04 + 1e-10 * np.abs(A).max() * 0.04
    F = Assembler(mesh, [(np.arange(mesh.n_tets), LinearElastic(1e4, 0.45))]).deformation_gradients(
        sim.positions)
    assert np.abs(F - (np.eye(3) + A)).max() < 1e-10  # constant strain in every tet


@pytest.mark.parametrize("name", list(NONLINEAR))
def test_patch_test_finite_affine_deformation(name):
    """A homogeneous finite deformation is an exact equilibrium; P1 must reproduce it."""
    mesh = distorted_box(seed=1)
    Fh = np.array([[1.15, 0.08, 0.0], [-0.05, 0.92, 0.06], [0.02, 0.0, 1.07]])
    exact = mesh.points @ Fh.T
    bnd = mesh.boundary_nodes
    sim = static_p1(mesh, NONLINEAR[name](), bnd, exact[bnd], load_steps=2)
    assert np.abs(sim.positions - exact).max() < 1e-9 * 0.04


# ------------------------------------------------------------------ rigid motion invariance
@pytest.mark.parametrize("name", list(NONLINEAR))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1))
def test_rigid_rotation_no_internal_force_p1(name, seed):
    mesh = distorted_box((4, 3, 3), seed=2)
    mat = NONLINEAR[name]()
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), mat)])
    R = Rotation.random(random_state=seed).as_matrix()
    x = mesh.points @ R.T + np.array([0.3, -0.1, 0.2])
    f = asm.forces(x)
    # force scale: a 1 % stretch
    scale = np.abs(asm.forces(mesh.points @ np.diag([1.01, 1.0, 1.0]))).max()
    assert np.abs(f).max() <= 1e-9 * scale
    assert abs(asm.energy(x)) <= 1e-9 * abs(asm.energy(mesh.points @ np.diag([1.01, 1, 1])))


def test_linear_elastic_is_not_rotation_invariant():
    """The check above can fail: small-strain linear elasticity does produce forces under rotation."""
    mesh = distorted_box((4, 3, 3), seed=2)
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), LinearElastic(1e4, 0.45))])
    R = Rotation.from_rotvec([0.0, 0.0, 0.5]).as_matrix()
    scale = np.abs(asm.forces(mesh.points @ np.diag([1.01, 1.0, 1.0]))).max()
    assert np.abs(asm.forces(mesh.points @ R.T)).max() > 1.0 * scale


@pytest.mark.parametrize("name", ["stvk", "neo_hookean", "mooney_rivlin", "corotational"])
def test_rigid_rotation_no_internal_force_p2(name):
    mesh = box_tet_mesh((3, 2, 2), 0.01)
    space = p2.P2Space(mesh)
    R = Rotation.from_rotvec([0.4, -0.7, 1.1]).as_matrix()
    U = space.points @ R.T - space.points + 0.01
    mat = NONLINEAR[name]()
    f, _, _, _ = space.internal(U, mat, want_tangent=False)
    Us = space.points @ np.diag([0.01, 0, 0])
    scale = np.abs(space.internal(Us, mat, want_tangent=False)[0]).max()
    assert np.abs(f).max() <= 1e-9 * scale


# ------------------------------------------------------------------ scikit-fem equivalence
@pytest.mark.parametrize("material", [LinearElastic, Corotational])
def test_p1_linear_stiffness_equals_scikit_fem(material):
    from skfem import Basis, ElementTetP1, ElementVector, MeshTet
    from skfem.models.elasticity import lame_parameters, linear_elasticity

    mesh = distorted_box((6, 4, 5), seed=4)
    E, nu = 4.2e3, 0.45
    K = Assembler(mesh, [(np.arange(mesh.n_tets), material(E, nu))]).stiffness(mesh.points).tocsr()
    sk = MeshTet(np.ascontiguousarray(mesh.points.T), np.ascontiguousarray(mesh.tets.T))
    basis = Basis(sk, ElementVector(ElementTetP1()))
    assert np.array_equal(basis.nodal_dofs, 3 * np.arange(mesh.n_points) + np.arange(3)[:, None])
    Ks = linear_elasticity(*lame_parameters(E, nu)).assemble(basis).tocsr()
    diff = sp_norm(K - Ks) / sp_norm(Ks)
    assert diff <= 1e-10


def sp_norm(A) -> float:
    return float(np.sqrt((A.multiply(A)).sum()))


# ------------------------------------------------------------------ uniaxial stretch
def _W_neo(l1, l2, l3, mu, lam):
    J = l1 * l2 * l3
    return 0.5 * mu * (l1 ** 2 + l2 ** 2 + l3 ** 2 - 3) - mu * np.log(J) + 0.5 * lam * np.log(J) ** 2


def _W_mr(l1, l2, l3, c10, c01, kappa):
    J = l1 * l2 * l3
    I1 = l1 ** 2 + l2 ** 2 + l3 ** 2
    I2 = (l1 * l2) ** 2 + (l2 * l3) ** 2 + (l1 * l3) ** 2
    return c10 * (J ** (-2 / 3) * I1 - 3) + c01 * (J ** (-4 / 3) * I2 - 3) + 0.5 * kappa * (J - 1) ** 2


def uniaxial_closed_form(W, stretch):
    """Lateral stretch (free lateral faces: P22 = P33 = 0) and Cauchy stress sigma11 (Pa).

    Minimizes W(stretch, t, t) over t (the lateral stress vanishes there), then
    P11 = dW/dl1 by central differences and sigma11 = l1 P11 / J = P11 / t^2.
    """
    res = minimize_scalar(lambda t: W(stretch, t, t), bounds=(0.3, 1.7), method="bounded",
                          options={"xatol": 1e-13})
    t = res.x
    h = 1e-6
    P11 = (W(stretch + h, t, t) - W(stretch - h, t, t)) / (2 * h)
    dP22 = (W(stretch, t + h, t) - W(stretch, t - h, t)) / (2 * h)
    return t, P11 / t ** 2, dP22


CASES = [
    ("neo_hookean", 1.5), ("neo_hookean", 0.8),
    ("mooney_rivlin", 1.4), ("mooney_rivlin", 0.85),
]


@pytest.mark.parametrize("name,stretch", CASES)
def test_uniaxial_stretch_against_closed_form(name, stretch):
    """Cube pulled between its x faces, lateral faces free: FE Cauchy stress vs closed form.

    The x faces are moved with the closed-form homogeneous motion (axial stretch and the
    closed-form lateral contraction); the lateral faces are free. If the closed-form lateral
    stretch or stress disagreed with the FE material, the solution would not be homogeneous
    and the lateral faces would carry stress.
    """
    if name == "neo_hookean":
        E, nu = 1e4, 0.45
        mat = NeoHookean(E, nu)
        mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
        W = lambda a, b, c: _W_neo(a, b, c, mu, lam)  # noqa: E731
    else:
        c10, c01, kappa = 1.2e3, 0.4e3, 4e4
        mat = MooneyRivlin(c10, c01, kappa)
        W = lambda a, b, c: _W_mr(a, b, c, c10, c01, kappa)  # noqa: E731
    t, sigma, lateral = uniaxial_closed_form(W, stretch)
    assert abs(lateral) < 1e-6 * abs(sigma)
    mesh = distorted_box((4, 4, 4), seed=5, amount=0.2)
    Fh = np.diag([stretch, t, t])
    x = mesh.points[:, 0]
    ends = np.flatnonzero((x < 1e-12) | (x > 0.03 - 1e-12))
    sim = static_p1(mesh, mat, ends, mesh.points[ends] @ Fh.T, load_steps=4)
    fl = sim.fields()
    cauchy = fl["cauchy"]
    assert np.abs(cauchy[:, 0, 0] - sigma).max() <= 1e-3 * abs(sigma)
    assert np.abs(cauchy[:, 1, 1]).max() <= 1e-3 * abs(sigma)
    assert np.abs(cauchy[:, 2, 2]).max() <= 1e-3 * abs(sigma)
    # the reaction on the +x face, over its current area, is the same stress
    far = ends[mesh.points[ends, 0] > 0.015]
    r = sim.reaction("bc")
    force = r[np.isin(ends, far), 0].sum()  # the constraint pulls the tissue along +x
    area = (0.03 * t) ** 2
    assert force / area == pytest.approx(sigma, rel=1e-3)


# ------------------------------------------------------------------ cantilever (P1)
@pytest.mark.slow
def test_cantilever_p1_euler_bernoulli():
    """Self-weight cantilever, nu = 0, small load, P1: converges to Euler-Bernoulli.

    P1 tets are stiff in bending (the error is O(h^2)): the 81 x 9 x 9 mesh is within 5 %,
    and Richardson extrapolation of the 41 x 5 x 5 and 81 x 9 x 9 answers within 2 %.
    """
    L, H, E, rho, g = 0.1, 0.01, 1e6, 1000.0, 9.81
    tips = []
    for nx, nh in ((41, 5), (81, 9)):
        mesh = box_tet_mesh((nx, nh, nh), (L / (nx - 1), H / (nh - 1), H / (nh - 1)))
        sim = Simulation(Body(mesh, LinearElastic(E, 0.0), density=rho), gravity=(0, 0, -g))
        sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="clamp")
        sim.solve_static(tol=1e-8)
        tips.append(-sim.displacements[mesh.points[:, 0] == L, 2].mean())
    w_eb = rho * g * H * H * L ** 4 / (8 * E * H ** 4 / 12)
    assert tips[1] == pytest.approx(w_eb, rel=0.05)
    extrapolated = (4 * tips[1] - tips[0]) / 3
    assert extrapolated == pytest.approx(w_eb, rel=0.02)


# ------------------------------------------------------------------ convergence slopes
SIDE = 0.1
K_WAVE = np.pi / SIDE
AMP = 1e-3


def exact_u(X):
    """u = grad(phi), phi = AMP e^{kx} cos(ky) / k: harmonic, so div u = 0 and Delta u = 0,
    an exact solution of linear elasticity with no body force for any E, nu."""
    x, y = X[..., 0], X[..., 1]
    e = np.exp(K_WAVE * x)
    return AMP * np.stack([e * np.cos(K_WAVE * y), -e * np.sin(K_WAVE * y), np.zeros_like(x)], axis=-1)


def exact_grad(X):
    x, y = X[..., 0], X[..., 1]
    e = AMP * K_WAVE * np.exp(K_WAVE * x)
    c, s = np.cos(K_WAVE * y), np.sin(K_WAVE * y)
    G = np.zeros(X.shape[:-1] + (3, 3))
    G[..., 0, 0], G[..., 0, 1] = e * c, -e * s
    G[..., 1, 0], G[..., 1, 1] = -e * s, -e * c
    return G


def errors(mesh, U, degree):
    """L2 and H1-seminorm errors of a P1 (nodal) or P2 field against the exact solution."""
    from skfem import Basis, ElementTetP1, ElementTetP2, MeshTet

    sk = MeshTet(np.ascontiguousarray(mesh.points.T), np.ascontiguousarray(mesh.tets.T))
    basis = Basis(sk, ElementTetP1() if degree == 1 else ElementTetP2(), intorder=6)
    X = np.moveaxis(np.asarray(basis.global_coordinates()), 0, -1)  # (nel, nqp, 3)
    ue, ge = exact_u(X), exact_grad(X)
    l2 = h1 = 0.0
    for c in range(3):
        f = basis.interpolate(U[:, c])
        l2 += float(((np.asarray(f) - ue[..., c]) ** 2 * basis.dx).sum())
        gc = np.moveaxis(f.grad, 0, -1)
        h1 += float(((gc - ge[..., c, :]) ** 2).sum(axis=-1).__mul__(basis.dx).sum())
    return np.sqrt(l2), np.sqrt(h1)


def slopes(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


@pytest.mark.slow
def test_convergence_p1():
    hs, l2s, h1s = [], [], []
    for n in (4, 8, 16):
        mesh = box_tet_mesh((n + 1,) * 3, SIDE / n)
        bnd = mesh.boundary_nodes
        sim = static_p1(mesh, LinearElastic(1e4, 0.3), bnd, mesh.points[bnd] + exact_u(mesh.points[bnd]),
                        tol=1e-11)
        l2, h1 = errors(mesh, sim.displacements, 1)
        hs.append(SIDE / n)
        l2s.append(l2)
        h1s.append(h1)
    assert slopes(hs, l2s) == pytest.approx(2.0, abs=0.2)
    assert slopes(hs, h1s) == pytest.approx(1.0, abs=0.15)


@pytest.mark.slow
def test_convergence_p2():
    hs, l2s, h1s = [], [], []
    for n in (2, 4, 8):
        mesh = box_tet_mesh((n + 1,) * 3, SIDE / n)
        r = p2.solve_linear_p2(mesh, E=1e4, nu=0.3, density=0.0, prescribed=exact_u)
        l2, h1 = errors(mesh, r.p2_displacement, 2)
        hs.append(SIDE / n)
        l2s.append(l2)
        h1s.append(h1)
    assert slopes(hs, l2s) == pytest.approx(3.0, abs=0.3)
    assert slopes(hs, h1s) == pytest.approx(2.0, abs=0.2)
    # P2 is far more accurate than P1 at equal h
    assert l2s[-1] < 0.1 * AMP * SIDE ** 1.5
