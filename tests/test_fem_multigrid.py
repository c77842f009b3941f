"""The two-grid preconditioner (organsim.fem.multigrid): its lattice interpolation, its Galerkin
coarse matrix, that it is a symmetric positive definite preconditioner, and simulations with it
(cuts, grasps, "auto" above the Cholesky limit) against Cholesky-preconditioned ones."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from organsim.fem import _multigrid_kernels as mgk
from organsim.fem.body import Body
from organsim.fem.materials import Corotational, NeoHookean
from organsim.fem.multigrid import TwoGridPreconditioner, lattice_prolongation, upper_triangle
from organsim.fem.simulation import Simulation
from organsim.fem.solvers import BlockJacobi, CholeskyFactor, pcg
from organsim.mesh.generators import box_tet_mesh


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), spacing=st.floats(0.05, 0.6))
def test_lattice_interpolation_is_a_partition_of_unity_exact_on_linear_fields(seed, spacing):
    pts = np.random.default_rng(seed).uniform(-0.5, 0.7, size=(40, 3))
    P, coarse = lattice_prolongation(pts, spacing)
    assert P.shape == (40, len(coarse))
    assert np.diff(P.indptr).max() <= 8 and P.data.min() > 0
    assert np.allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    lin = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, 4.0], [-1.0, 1.0, 1.0]])
    assert np.allclose(P @ (coarse @ lin + 0.25), pts @ lin + 0.25, rtol=0, atol=1e-10)
    assert np.asarray(P.sum(axis=0)).min() > 0          # no lattice node without a fine node


def _reference_system(mesh, fixed, material, dt=0.01, rho=1000.0):
    """Block data of M/h^2 + K_rest on the free nodes, the free pattern and the free points."""
    sim = Simulation(Body(mesh, material, density=rho), dt=dt, integrator="realtime")
    sim.fix(fixed, name="fixed")
    _, _, free = sim._constraint_state()
    sub = sim._sub
    return sub, sub.gather(sim._asm.rest_stiffness(), 1.0, sim._Mb, 1.0 / dt ** 2), mesh.points[free]


def _tilted_block():
    """A block rotated off the lattice axes: its cells are cut by the boundary anywhere."""
    mesh = box_tet_mesh((9, 5, 4), 0.01)
    c, s = np.cos(0.4), np.sin(0.4)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    pts = mesh.points @ R.T
    from organsim.mesh.tetmesh import TetMesh
    return TetMesh(pts, mesh.tets), np.flatnonzero(mesh.points[:, 0] == 0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n=st.integers(1, 60), density=st.floats(0.0, 0.4),
       threads=st.integers(1, 4))
def test_the_smoothers_upper_triangle_product_equals_the_full_symmetric_product(seed, n, density, threads):
    """The smoother stores its symmetric matrix as the upper triangle (half the bytes per product);
    serially and split among threads, its product is the full matrix's."""
    rng = np.random.default_rng(seed)
    G = sp.random(n, n, density=density, random_state=rng) + sp.identity(n)
    G = (G + G.T).tocsr()
    G.sort_indices()
    full = sp.bsr_matrix((rng.standard_normal((G.nnz, 3, 3)), G.indices, G.indptr), shape=(3 * n, 3 * n))
    A = (full + full.T).tobsr(blocksize=(3, 3))
    A.sort_indices()
    A = sp.bsr_matrix((A.data.astype(np.float32), A.indices, A.indptr), shape=A.shape)
    u_ptr, u_ind, u_dat = upper_triangle(A.indptr, A.indices, A.data)
    assert np.all(u_ind >= np.repeat(np.arange(n), np.diff(u_ptr)))   # the upper triangle only
    x = rng.standard_normal(3 * n)
    ref = A.astype(np.float64) @ x
    y = np.full(3 * n, np.nan)
    mgk.sym_bsr_matvec(u_ptr, u_ind, u_dat, x, y)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-9 * (1 + np.abs(ref).max()))
    bounds = np.unique(np.linspace(0, n, threads + 1).astype(np.int64))
    y_par = np.full(3 * n, np.nan)
    mgk.sym_bsr_matvec_par(u_ptr, u_ind, u_dat, x, y_par, bounds, np.full((len(bounds) - 1, 3 * n), np.nan))
    np.testing.assert_allclose(y_par, ref, rtol=0, atol=1e-9 * (1 + np.abs(ref).max()))


def test_galerkin_kernels_give_p_transpose_a_p():
    mesh, fixed = _tilted_block()
    sub, data, pts = _reference_system(mesh, fixed, Corotational(3e4, 0.45))
    P, _ = lattice_prolongation(pts, 0.018)
    Pt = P.T.tocsr()
    ptr, ind = (np.asarray(a, dtype=np.int64) for a in (sub.indptr, sub.indices))
    P64 = (P.indptr.astype(np.int64), P.indices.astype(np.int64), P.data)
    Pt64 = (Pt.indptr.astype(np.int64), Pt.indices.astype(np.int64), Pt.data)
    c_ptr, c_ind = mgk.galerkin_pattern(Pt64[0], Pt64[1], ptr, ind, P64[0], P64[1], P.shape[1], 100000)
    C = mgk.galerkin_values(*Pt64, ptr, ind, data, *P64, c_ptr, c_ind)
    got = sp.bsr_matrix((C, c_ind, c_ptr), shape=(3 * P.shape[1],) * 2).toarray()
    P3 = sp.kron(P, sp.identity(3)).tocsr()
    want = (P3.T @ sub.matrix(data).tocsr() @ P3).toarray()
    assert np.allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize(("material", "ratio"), [(Corotational(3e4, 0.45), 2.0), (NeoHookean(1e5, 0.49), 2.0),
                                                 (Corotational(3e4, 0.45), 1.5), (Corotational(3e4, 0.45), 3.0)])
def test_two_grid_cycle_is_symmetric_positive_definite(material, ratio):
    """Also where boundary cells hold so few fine nodes that P^T A P alone is only semidefinite
    (the tilted block at ratios 1.5 and 3): the coarse matrix is still Cholesky-factored."""
    mesh, fixed = _tilted_block()
    sub, data, pts = _reference_system(mesh, fixed, material)
    prec = TwoGridPreconditioner(sub, data, pts, ratio=ratio)
    assert prec.kind == "multigrid" and 0 < prec.coarse_nodes < sub.n
    assert prec.coarse.kind == "cholesky"
    n = 3 * sub.n
    B = np.column_stack([prec(e) for e in np.eye(n)])
    assert np.allclose(B, B.T, rtol=0, atol=1e-9 * np.abs(B).max())
    assert np.linalg.eigvalsh(0.5 * (B + B.T)).min() > 0


@pytest.mark.skipif(__import__("organsim.fem.parallel", fromlist=["threads"]).threads() < 2,
                    reason="needs two numba threads")
def test_the_smoothers_autotuner_times_both_forms_of_its_product(monkeypatch):
    """The smoother's product runs on one thread or two, whichever has been faster: the tuner
    must time each form's own work (the one-thread form had once run after the timed block,
    recorded as 0 s, and so always won)."""
    from organsim.fem import parallel as par

    mesh = box_tet_mesh((20, 16, 14), 0.01)           # 4480 nodes: over the parallel minimum
    fixed = np.flatnonzero(mesh.points[:, 0] == 0)
    sub, data, pts = _reference_system(mesh, fixed, Corotational(5e4, 0.45), dt=0.04)
    assert sub.n >= par.MIN_PARALLEL_ELEMENTS
    seen = {False: [], True: []}
    original = par.Autotune.record

    def spy(self, parallel, seconds):
        seen[bool(parallel)].append(seconds)
        original(self, parallel, seconds)

    monkeypatch.setattr(par.Autotune, "record", spy)
    prec = TwoGridPreconditioner(sub, data, pts)       # its power iteration tries both forms
    b = np.random.default_rng(3).standard_normal(3 * sub.n)
    for _ in range(4):
        prec(b)
    assert len(seen[False]) >= 3 and len(seen[True]) >= 3
    # a product over 4480 block rows takes tens of microseconds at least, on either form
    assert min(seen[False]) > 1e-5 and min(seen[True]) > 1e-5


def test_two_grid_pcg_solves_exactly_and_far_faster_than_block_jacobi():
    mesh = box_tet_mesh((25, 7, 7), 0.01)
    fixed = np.flatnonzero(mesh.points[:, 0] == 0)
    sub, data, pts = _reference_system(mesh, fixed, Corotational(5e4, 0.45), dt=0.04)
    A = sub.operator(data)
    b = np.random.default_rng(2).standard_normal(3 * sub.n)
    mg = pcg(A, b, precond=TwoGridPreconditioner(sub, data, pts), rtol=1e-8, maxiter=500)
    jac = pcg(A, b, precond=BlockJacobi(data[np.flatnonzero(sub.rows == sub.indices)]), rtol=1e-8, maxiter=2000)
    assert mg.converged and jac.converged
    assert mg.iterations * 4 < jac.iterations, (mg.iterations, jac.iterations)
    x = CholeskyFactor.from_blocks(sub, data)(b)
    assert np.allclose(mg.x, x, rtol=0, atol=1e-6 * np.abs(x).max())


def _beam_sim(**kw):
    mesh = box_tet_mesh((12, 4, 4), 0.01)
    sim = Simulation(Body(mesh, Corotational(5e4, 0.45), density=1000.0), dt=0.01, integrator="realtime", **kw)
    sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="wall")
    return mesh, sim


def test_auto_uses_the_two_grid_cycle_above_the_cholesky_limit_and_lands_where_cholesky_does():
    kw = dict(realtime_rtol=1e-10, realtime_cg=300)
    _, chol = _beam_sim(**kw)
    _, auto = _beam_sim(cholesky_max_dofs=0, **kw)
    for _ in range(5):
        chol.step()
        info = auto.step()
        assert info.converged
    assert chol.preconditioner_kind == "cholesky" and auto.preconditioner_kind == "multigrid"
    assert np.allclose(auto.positions, chol.positions, rtol=0, atol=1e-9)


def test_two_grid_cycle_is_carried_through_a_grasp_a_release_and_a_cut():
    from organsim.surgery.cutting import Cutter

    kw = dict(realtime_rtol=1e-9, realtime_cg=300, preconditioner="multigrid")
    mesh, sim = _beam_sim(**kw)
    assert sim.step().refactored
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.prescribe(tip, sim.positions[tip] + [0.0, 0.0, 0.002], name="grasp")
    info = sim.step()
    assert info.converged and not info.refactored
    sim.release("grasp")
    assert sim.step().converged
    cutter = Cutter(sim.mesh)       # a blade from above, half the beam deep, across it
    for y in np.linspace(-0.01, 0.04, 6):
        res = cutter.advance(np.array([[0.055, y, 0.045], [0.055, y, 0.012]]), positions=sim.positions)
        if res.changed:
            sim.change_topology(res.mesh, res.transfer)
            cutter.mesh = sim.mesh
        info = sim.step()
        assert info.converged and np.isfinite(sim.positions).all()
    assert sim.mesh.n_points > mesh.n_points
    assert sim.preconditioner_kind in ("multigrid", "mapped multigrid")


def test_an_unknown_preconditioner_lists_multigrid_among_the_choices():
    from organsim.errors import SimulationError

    mesh = box_tet_mesh((3, 3, 3), 0.01)
    with pytest.raises(SimulationError, match="'multigrid'"):
        Simulation(Body(mesh, Corotational(5e4, 0.45), density=1000.0), dt=0.01, preconditioner="gmg")


@pytest.mark.realdata
@pytest.mark.slow
def test_real_liver_at_default_settings_steps_with_the_two_grid_cycle_as_with_cholesky():
    """The msml liver meshed as `organsim mesh` does, top held, gravity, realtime corotational steps:
    the two-grid preconditioner converges every step and lands within 0.1 % of the Cholesky run
    (both CG solves to rtol 1e-5), with no element inverted."""
    from organsim import io
    from organsim.mesh.pipeline import mesh_surface
    from organsim.units import effective_units
    from tests.conftest import organ_file

    path = organ_file("msml_LiverSurface.stl")
    mesh, _ = mesh_surface(io.read_any(path, units=effective_units(path, None)), source=path.name)
    z = mesh.points[:, 2]
    top = np.flatnonzero(z > z.max() - 0.1 * (z.max() - z.min()))
    runs = {}
    for kind in ("cholesky", "multigrid"):
        sim = Simulation(Body(mesh, Corotational(1e5, 0.45), density=1060.0), dt=1 / 60, integrator="realtime",
                         realtime_rtol=1e-5, realtime_cg=200, preconditioner=kind)
        sim.fix(top, name="top")
        for _ in range(15):
            info = sim.step()
            assert info.converged and info.min_jacobian > 0
        assert sim.preconditioner_kind == kind
        runs[kind] = sim.displacements
    u, ref = runs["multigrid"], runs["cholesky"]
    assert np.linalg.norm(ref) > 0
    assert np.linalg.norm(u - ref) <= 1e-3 * np.linalg.norm(ref)
