"""Quadratic tetrahedra through scikit-fem: loads, constraints, Newton, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.errors import ConvergenceError, SimulationError
from organsim.fem import p2
from organsim.mesh.generators import box_tet_mesh

from _fem_reference import LinearRef, NeoHookeRef


@pytest.fixture(scope="module")
def beam():
    L, H = 0.1, 0.01
    return box_tet_mesh((21, 3, 3), (L / 20, H / 2, H / 2)), L, H


def test_space_layout(beam):
    mesh, _, _ = beam
    s = p2.P2Space(mesh)
    assert s.n_scalar == mesh.n_points + len(mesh.edges)
    assert np.allclose(s.points[:mesh.n_points], mesh.points)
    mid = s.points[mesh.n_points:]
    par = s.parents[mesh.n_points:]
    assert np.allclose(mid, 0.5 * (mesh.points[par[:, 0]] + mesh.points[par[:, 1]]))


def test_body_force_and_pressure_resultants(beam):
    mesh, L, H = beam
    s = p2.P2Space(mesh)
    f = s.body_force(1000.0, (0, 0, -9.81))
    assert f.sum(axis=0) == pytest.approx([0, 0, -9.81 * 1000.0 * L * H * H])
    allf = np.arange(len(mesh.boundary_faces))
    fp = s.pressure_force(allf, 50.0)
    assert np.allclose(fp.sum(axis=0), 0, atol=1e-12)  # closed surface
    top = np.flatnonzero(mesh.points[mesh.boundary_faces].mean(axis=1)[:, 2] > H - 1e-9)
    fp = s.pressure_force(top, 50.0)
    assert fp.sum(axis=0) == pytest.approx([0, 0, -50.0 * L * H])


def test_tangent_matches_finite_differences():
    from organsim.fem.materials import MooneyRivlin, NeoHookean

    mesh = box_tet_mesh((2, 2, 2), 0.1)
    s = p2.P2Space(mesh)
    rng = np.random.default_rng(1)
    U = 0.01 * rng.normal(size=(s.n_scalar, 3))
    for mat in (NeoHookean(1e4, 0.3), MooneyRivlin(2e3, 5e2, 5e4)):
        f, K, _, _ = s.internal(U, mat)
        K = K.toarray()
        h = 1e-7
        cols = rng.choice(K.shape[1], 12, replace=False)
        for j in cols:
            d = np.zeros(K.shape[1])
            d[j] = h
            fp = s.internal(U + d.reshape(-1, 3), mat, want_tangent=False)[0]
            fm = s.internal(U - d.reshape(-1, 3), mat, want_tangent=False)[0]
            assert np.allclose(K[:, j], (fp - fm).ravel() / (2 * h), atol=1e-6 * np.abs(K).max())


def test_generic_newton_path_equals_skfem_linear_elasticity(beam):
    mesh, _, _ = beam
    fix = np.flatnonzero(mesh.points[:, 0] == 0)
    a = p2.solve_linear_p2(mesh, E=1e6, nu=0.3, density=1000.0, fixed=fix)
    b = p2.solve_static_p2(mesh, LinearRef(1e6, 0.3), density=1000.0, fixed=fix)
    assert b.iterations == 1
    assert np.abs(a.p2_displacement - b.p2_displacement).max() <= 1e-8 * np.abs(a.p2_displacement).max()


def test_cantilever_p2_euler_bernoulli(beam):
    """Self-weight cantilever, nu = 0: tip deflection q L^4 / (8 E I) within 2 % (P2)."""
    mesh, L, H = beam
    E, rho, g = 1e6, 1000.0, 9.81
    fix = np.flatnonzero(mesh.points[:, 0] == 0)
    r = p2.solve_linear_p2(mesh, E=E, nu=0.0, density=rho, fixed=fix)
    q, I = rho * g * H * H, H ** 4 / 12
    w_eb = q * L ** 4 / (8 * E * I)
    w_timo = w_eb + q * L ** 2 / (2 * (5 / 6) * (E / 2) * H * H)
    tip = -r.displacement[mesh.points[:, 0] == L, 2].mean()
    assert tip == pytest.approx(w_eb, rel=0.02)
    assert tip == pytest.approx(w_timo, rel=0.01)


def test_neo_hookean_small_load_matches_linear(beam):
    from organsim.fem.materials import NeoHookean

    mesh, _, _ = beam
    fix = np.flatnonzero(mesh.points[:, 0] == 0)
    lin = p2.solve_linear_p2(mesh, E=1e8, nu=0.3, density=1000.0, fixed=fix)
    nh = p2.solve_static_p2(mesh, NeoHookean(1e8, 0.3), density=1000.0, fixed=fix)
    assert np.abs(nh.displacement - lin.displacement).max() <= 1e-3 * np.abs(lin.displacement).max()
    assert nh.iterations <= 4


@pytest.mark.slow
def test_large_deflection_converges_with_load_steps():
    from organsim.fem.materials import NeoHookean

    L, H = 0.1, 0.01
    mesh = box_tet_mesh((11, 2, 2), (L / 10, H, H))
    fix = np.flatnonzero(mesh.points[:, 0] == 0)
    hist = []
    r = p2.solve_static_p2(mesh, NeoHookean(1e5, 0.3), density=1000.0, fixed=fix, load_steps=3,
                           progress=lambda step, it, res: hist.append((step, it, res)))
    tip = r.displacement[mesh.points[:, 0] == L].mean(axis=0)
    assert -tip[2] > 0.1 * L          # large deflection
    assert tip[0] < 0                 # the tip moves back as the beam bends (geometric nonlinearity)
    # quadratic convergence at the end of the last step
    last = [res for s, it, res in hist if s == 3]
    assert last[-1] < 1e-6 * last[0]
    assert np.all(np.isfinite(r.p2_displacement))


def test_patch_test_p2_affine_neo_hookean():
    """An affine finite deformation prescribed on the boundary is reproduced exactly inside."""
    from organsim.fem.materials import NeoHookean

    mesh = box_tet_mesh((4, 4, 4), 0.01)
    rng = np.random.default_rng(3)
    pts = mesh.points.copy()
    inner = np.all((pts > 1e-9) & (pts < 0.03 - 1e-9), axis=1)
    pts[inner] += rng.uniform(-2e-3, 2e-3, size=(inner.sum(), 3))
    from organsim.mesh.tetmesh import TetMesh

    m = TetMesh(pts, mesh.tets)
    A = np.array([[1.1, 0.05, 0.0], [0.02, 0.95, 0.03], [0.0, -0.04, 1.05]]) - np.eye(3)
    r = p2.solve_static_p2(m, NeoHookean(1e4, 0.45), density=0.0, prescribed=lambda X: X @ A.T,
                           tol=1e-12)
    assert np.abs(r.p2_displacement - r.p2_points @ A.T).max() < 1e-10 * 0.03


def test_prescribed_array_and_errors(beam):
    mesh, L, _ = beam
    fix = np.flatnonzero(mesh.points[:, 0] == 0)
    end = np.flatnonzero(mesh.points[:, 0] == L)
    disp = np.tile([0.0, 0.0, -1e-3], (len(end), 1))
    r = p2.solve_linear_p2(mesh, E=1e6, nu=0.3, density=0.0, fixed=fix, prescribed=(end, disp))
    assert np.allclose(r.displacement[end], disp) and np.allclose(r.displacement[fix], 0)
    with pytest.raises(SimulationError, match="rigid"):
        p2.solve_linear_p2(mesh, E=1e6, nu=0.3, density=1000.0)


def test_inversion_is_reported(beam):
    from organsim.fem.materials import NeoHookean

    mesh, L, _ = beam
    fix = np.flatnonzero(mesh.points[:, 0] == 0)
    end = np.flatnonzero(mesh.points[:, 0] == L)
    disp = np.tile([-1.5 * L, 0.0, 0.0], (len(end), 1))  # push the end through the clamp
    with pytest.raises(ConvergenceError):
        p2.solve_static_p2(mesh, NeoHookean(1e5, 0.3), fixed=fix, prescribed=(end, disp),
                           density=0.0, max_iter=8)


def test_pcg_path_matches_direct(monkeypatch):
    mesh = box_tet_mesh((9, 3, 3), 0.01)
    fix = np.flatnonzero(mesh.points[:, 0] == 0)
    a = p2.solve_linear_p2(mesh, E=1e5, nu=0.45, density=1000.0, fixed=fix)
    monkeypatch.setattr(p2, "DIRECT_LIMIT", 10)
    b = p2.solve_linear_p2(mesh, E=1e5, nu=0.45, density=1000.0, fixed=fix)
    assert np.abs(a.displacement - b.displacement).max() <= 1e-7 * np.abs(a.displacement).max()


def test_reference_material_agrees_with_core_neo_hookean():
    from organsim.fem.materials import NeoHookean

    rng = np.random.default_rng(0)
    F = np.eye(3) + 0.2 * rng.normal(size=(20, 3, 3))
    F = F[np.linalg.det(F) > 0.3]
    a, b = NeoHookean(1e4, 0.4), NeoHookeRef(1e4, 0.4)
    assert np.allclose(a.pk1(F), b.pk1(F), rtol=1e-12, atol=1e-9)
    assert np.allclose(a.tangent(F), b.tangent(F), rtol=1e-12, atol=1e-9)
