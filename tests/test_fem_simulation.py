"""Simulation: constraints and reactions, static solves, rigid-mode detection, robustness,
topology changes and the real-time mode."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from organsim.errors import ConvergenceError, SimulationError
from organsim.fem import selection
from organsim.fem.body import Body
from organsim.fem.materials import Corotational, LinearElastic, NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh

RHO = 1000.0


def _beam(shape=(6, 3, 3), h=0.01, mat=None, **kw):
    mesh = box_tet_mesh(shape, h)
    sim = Simulation(Body(mesh, mat or NeoHookean(5e4, 0.4), density=RHO), **kw)
    wall = np.flatnonzero(mesh.points[:, 0] == 0)
    return mesh, sim, wall


def test_static_reactions_balance_gravity_and_nodal_forces():
    mesh, sim, wall = _beam()
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.fix(wall, name="wall")
    sim.add_nodal_force(tip, (0.0, 0.01, 0.0), name="push")
    info = sim.solve_static()
    assert info.converged and info.residual < 1e-8
    R = sim.reaction("wall")
    applied = sim.body.mass * np.array([0, 0, -9.81]) + np.array([0, 0.01 * len(tip), 0])
    assert np.allclose(R.sum(axis=0), -applied, rtol=1e-6, atol=1e-9)
    assert sim.displacements[tip, 2].mean() < 0 and sim.displacements[tip, 1].mean() > 0
    assert np.abs(sim.displacements[wall]).max() == 0.0
    assert np.abs(sim.velocities).max() == 0.0


def test_static_matches_linear_solve_for_linear_material():
    mesh, sim, wall = _beam(mat=LinearElastic(5e4, 0.3))
    sim.fix(wall, name="wall")
    sim.solve_static()
    K = sim._asm.stiffness(mesh.points).toarray()
    free = np.setdiff1d(np.arange(mesh.n_points), wall)
    fd = (3 * free[:, None] + np.arange(3)).ravel()
    f = (sim.nodal_masses[:, None] * np.array([0, 0, -9.81])).ravel()
    u = np.linalg.solve(K[np.ix_(fd, fd)], f[fd])
    assert np.allclose(sim.displacements.ravel()[fd], u, rtol=1e-7, atol=1e-12)


def test_prescribed_motion_reaches_targets_and_reaction_opposes_it():
    mesh, sim, wall = _beam(gravity=(0, 0, 0))
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.fix(wall, name="wall")
    sim.prescribe(tip, mesh.points[tip] + [0.004, 0, 0], name="pull")
    sim.solve_static(load_steps=2)
    assert np.allclose(sim.positions[tip], mesh.points[tip] + [0.004, 0, 0])
    pull, hold = sim.reaction("pull"), sim.reaction("wall")
    assert pull[:, 0].sum() > 0  # the grasper pulls the tissue along +x
    assert np.allclose(pull.sum(axis=0), -hold.sum(axis=0), rtol=1e-6, atol=1e-10)
    sim.release("pull")
    assert sim.constraint_names == ["wall"]
    with pytest.raises(SimulationError):
        sim.reaction("pull")


def test_prescribe_updates_targets_without_rebuilding():
    mesh, sim, wall = _beam(gravity=(0, 0, 0), dt=0.01)
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.fix(wall, name="wall")
    for k in range(1, 4):
        sim.prescribe(tip, mesh.points[tip] + [0, 0, 0.001 * k], name="grasp")
        info = sim.step()
        assert info.converged
        assert np.allclose(sim.positions[tip, 2], mesh.points[tip, 2] + 0.001 * k)
    assert sim.reaction("grasp")[:, 2].sum() > 0


@pytest.mark.parametrize("held", [0, 2, 3])
def test_free_rigid_body_modes_are_detected_before_solving(held):
    mesh, sim, _ = _beam()
    if held:
        # `held` nodes along one line (collinear when 3)
        line = np.flatnonzero((mesh.points[:, 1] == 0) & (mesh.points[:, 2] == 0))[:held]
        sim.fix(line, name="pins")
    with pytest.raises(SimulationError, match="rigid-body"):
        sim.solve_static()


def test_disconnected_piece_without_constraint_is_detected():
    a = box_tet_mesh((3, 2, 2), 0.01)
    b = box_tet_mesh((3, 2, 2), 0.01, origin=(0.1, 0, 0))
    mesh = TetMesh(np.vstack([a.points, b.points]), np.vstack([a.tets, b.tets + a.n_points]))
    sim = Simulation(Body(mesh, NeoHookean(5e4, 0.4), density=RHO))
    sim.fix(np.arange(a.n_points), name="first")
    with pytest.raises(SimulationError, match="piece 1"):
        sim.solve_static()
    sim.step()  # with mass, dynamics is well posed: the free piece falls
    assert sim.velocities[a.n_points:, 2].mean() < 0


def test_failed_step_leaves_state_unchanged():
    mesh, sim, wall = _beam(dt=0.05, max_substeps=2, max_newton=4)
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.fix(wall, name="wall")
    sim.step()
    x, v, t = sim.positions.copy(), sim.velocities.copy(), sim.time
    sim.add_nodal_force(tip, (0, 0, -1e6), name="crush")  # would invert elements at once
    with pytest.raises(ConvergenceError, match="unchanged"):
        sim.step()
    assert np.array_equal(sim.positions, x) and np.array_equal(sim.velocities, v) and sim.time == t
    assert np.all(np.isfinite(sim.positions))


def test_static_failure_leaves_state_unchanged():
    mesh, sim, wall = _beam()
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.fix(wall, name="wall")
    sim.add_nodal_force(tip, (0, 0, -1e7), name="crush")
    x = sim.positions.copy()
    with pytest.raises(ConvergenceError):
        sim.solve_static(max_newton=5, max_cuts=1)
    assert np.array_equal(sim.positions, x)


def test_bad_inputs_are_rejected():
    mesh, sim, wall = _beam()
    with pytest.raises(SimulationError):
        sim.add_nodal_force(wall, (np.nan, 0, 0), name="bad")
    with pytest.raises(SimulationError):
        sim.fix([], name="empty")
    with pytest.raises(SimulationError):
        sim.fix([mesh.n_points + 5], name="outside")
    with pytest.raises(SimulationError):
        sim.prescribe(wall, np.zeros((len(wall) + 1, 3)), name="shape")
    with pytest.raises(SimulationError):
        sim.step(dt=-1.0)
    with pytest.raises(SimulationError):
        Simulation(sim.body, integrator="explicit")


def test_change_topology_with_identity_keeps_state_exactly():
    mesh, sim, wall = _beam(dt=0.01)
    sim.fix(wall, name="wall")
    sim.add_nodal_force([5], (0, 0.01, 0), name="f")
    for _ in range(3):
        sim.step()
    x, v = sim.positions.copy(), sim.velocities.copy()
    sim.change_topology(mesh, sp.identity(mesh.n_points, format="csr"))
    assert np.array_equal(sim.positions, x) and np.array_equal(sim.velocities, v)
    assert sim.constraint_names == ["wall"]
    assert np.array_equal(np.sort(sim._constraints["wall"].nodes), wall)
    assert sim.step().converged


def test_change_topology_carries_constraints_to_node_copies():
    mesh, sim, wall = _beam(shape=(4, 2, 2), dt=0.01)
    sim.fix(wall, name="wall")
    sim.step()
    # duplicate the wall node 0 into a new node n (a cut through it): the tets of the
    # first half keep node 0, the others use the copy
    n = mesh.n_points
    tets = mesh.tets.copy()
    half = np.arange(len(tets)) % 2 == 1
    tets[half & (tets == 0).any(axis=1)] = np.where(tets[half & (tets == 0).any(axis=1)] == 0, n,
                                                    tets[half & (tets == 0).any(axis=1)])
    new = TetMesh(np.vstack([mesh.points, mesh.points[:1]]), tets)
    T = sp.vstack([sp.identity(n, format="csr"), sp.csr_matrix(([1.0], ([0], [0])), shape=(1, n))]).tocsr()
    x_before = sim.positions.copy()
    sim.change_topology(new, T)
    assert n in sim._constraints["wall"].nodes and 0 in sim._constraints["wall"].nodes
    assert np.allclose(sim.positions[n], x_before[0])
    assert sim.step().converged


def test_pressure_on_closed_surface_has_zero_net_force():
    mesh, sim, wall = _beam(gravity=(0, 0, 0))
    sim.add_pressure(np.arange(len(mesh.boundary_faces)), 100.0, name="p")
    f = sim._external(mesh.points)
    assert np.abs(f.sum(axis=0)).max() < 1e-12
    sim.fix(wall, name="wall")
    sim.solve_static()
    assert sim.mesh.volume > 0 and np.all(sim._asm.energy_density(sim.positions) >= 0)
    vol_now = TetMesh(np.asarray(sim.positions), mesh.tets).volume
    assert vol_now < mesh.volume  # compressed


def test_realtime_mode_reports_convergence():
    mesh, sim, wall = _beam(integrator="realtime", mat=Corotational(5e4, 0.4), dt=0.01, realtime_cg=50,
                            realtime_rtol=1e-6)
    sim.fix(wall, name="wall")
    infos = [sim.step() for _ in range(5)]
    assert all(i.newton_iterations == 1 for i in infos)
    assert all(i.residual < 1e-5 and i.converged for i in infos)
    starved = sim.step(budget_s=0.0)
    assert starved.linear_iterations <= 1


def test_realtime_agrees_with_backward_euler():
    runs = {}
    for integ in ("backward_euler", "realtime"):
        mesh, sim, wall = _beam(integrator=integ, dt=0.01, realtime_newton=3, realtime_cg=100, realtime_rtol=1e-8)
        sim.fix(wall, name="wall")
        for _ in range(5):
            sim.step()
        runs[integ] = sim.displacements
    scale = np.abs(runs["backward_euler"]).max()
    assert np.abs(runs["realtime"] - runs["backward_euler"]).max() < 1e-3 * scale


def test_fields_contract():
    mesh, sim, wall = _beam()
    sim.fix(selection.box(mesh, (-1, -1, -1), (1e-6, 1, 1)), name="wall")
    sim.solve_static()
    fl = sim.fields()
    assert fl["green_lagrange"].shape == (mesh.n_tets, 3, 3)
    assert fl["cauchy"].shape == (mesh.n_tets, 3, 3)
    assert fl["von_mises"].shape == (mesh.n_tets,) and fl["nodal_von_mises"].shape == (mesh.n_points,)
    assert fl["strain_energy"] == pytest.approx(sim.strain_energy(), rel=1e-9)
    assert fl["strain_energy"] > 0


def _crack(mesh, h=0.01):
    """Split the nodes of the plane x = 3h with z > h among the tets on each side (a cut)."""
    xc = 3 * h
    split = np.flatnonzero(np.isclose(mesh.points[:, 0], xc) & (mesh.points[:, 2] > 1.5 * h))
    n = mesh.n_points
    copy_of = {int(s): n + k for k, s in enumerate(split)}
    tets = mesh.tets.copy()
    right = mesh.points[mesh.tets].mean(axis=1)[:, 0] > xc
    for e in np.flatnonzero(right):
        tets[e] = [copy_of.get(int(v), int(v)) for v in tets[e]]
    new = TetMesh(np.vstack([mesh.points, mesh.points[split]]), tets)
    rows = np.concatenate([np.arange(n), n + np.arange(len(split))])
    cols = np.concatenate([np.arange(n), split])
    T = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(new.n_points, n))
    return new, T


@pytest.mark.parametrize("integrator", ["realtime", "backward_euler"])
def test_cut_keeps_the_factorization_and_matches_a_fresh_solve(integrator):
    kw = dict(integrator=integrator, dt=0.01, realtime_rtol=1e-10, realtime_cg=200, newton_tol=1e-10)
    mesh, sim, wall = _beam(shape=(8, 3, 3), **kw)
    sim.fix(wall, name="wall")
    for _ in range(3):
        sim.step()
    new, T = _crack(mesh)
    sim.change_topology(new, T)
    # a fresh simulation on the cut mesh in the same state
    fresh = Simulation(Body(new, sim.body.materials, density=RHO), **kw)
    fresh.fix(np.flatnonzero(new.points[:, 0] == 0), name="wall")
    fresh._x, fresh._v = np.array(sim.positions), np.array(sim.velocities)
    info = sim.step()
    assert info.converged and not info.refactored
    fresh.step()
    assert np.allclose(sim.positions, fresh.positions, rtol=0, atol=1e-9)


def test_carried_preconditioner_is_spd_and_needs_fewer_iterations_than_the_additive_form():
    """After a cut, the multiplicative correction (local solve, mapped solve, local solve) is a
    symmetric positive definite preconditioner, and conjugate gradients need fewer iterations
    with it than with the additive one (mapped solve plus local solve)."""
    from organsim.fem.solvers import MappedPreconditioner, pcg

    mesh, sim, wall = _beam(shape=(8, 3, 3), integrator="realtime", dt=0.01, mat=Corotational(5e4, 0.4))
    sim.fix(wall, name="wall")
    for _ in range(3):
        sim.step()
    new, T = _crack(mesh)
    sim.change_topology(new, T)
    prec = sim._prec
    assert isinstance(prec, MappedPreconditioner) and prec._coupling is not None
    _, _, free = sim._constraint_state()
    n = 3 * len(free)
    P = np.column_stack([prec(e) for e in np.eye(n)])
    assert np.allclose(P, P.T, rtol=0, atol=1e-10 * np.abs(P).max())
    assert np.linalg.eigvalsh(0.5 * (P + P.T)).min() > 0
    # the same local solver and mapped solve, combined additively
    additive = MappedPreconditioner(prec.base, prec.Tnodes, prec._local, prec.affected)
    h = sim.dt
    alpha, beta = sim.damping
    A = sim._sub.operator(sim._sub.gather(sim._asm.rest_stiffness(), 1 + beta / h, sim._Mb, 1 / h ** 2 + alpha / h))
    b = np.random.default_rng(0).standard_normal(n)
    mult = pcg(A, b, precond=prec, rtol=1e-10, maxiter=500)
    add = pcg(A, b, precond=additive, rtol=1e-10, maxiter=500)
    assert mult.converged and add.converged
    assert mult.iterations < add.iterations, (mult.iterations, add.iterations)


@pytest.mark.parametrize("model", ["corotational", "neo_hookean"])
def test_unloaded_body_at_rest_stays_at_rest(model):
    """A zero residual (up to round-off) is converged: no load, no motion, no error."""
    from organsim.fem.body import Body
    from organsim.fem.materials import Corotational, NeoHookean
    from organsim.fem.simulation import Simulation
    from organsim.mesh.generators import box_tet_mesh

    mesh = box_tet_mesh((6, 4, 4), 0.01)
    mat = Corotational(5e3, 0.45) if model == "corotational" else NeoHookean(5e3, 0.45)
    sim = Simulation(Body(mesh, mat, density=1000.0), gravity=(0, 0, 0), dt=1 / 30,
                     integrator="backward_euler")
    sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="wall")
    for _ in range(3):
        info = sim.step()
        assert info.converged
    assert np.abs(sim.displacements).max() < 1e-12
    assert np.abs(sim.reaction("wall")).max() < 1e-9


def test_transfer_parent_matches_scipy_argmax_on_transfer_like_matrices():
    from organsim.fem._mesh_kernels import transfer_summary

    rng = np.random.default_rng(0)
    for _ in range(10):
        T = sp.random(200, 150, density=0.03, random_state=int(rng.integers(1 << 30)), format="csr")
        T.data = rng.random(T.nnz)
        parent = transfer_summary(T.indptr, T.indices, T.data, T.shape[1])[0]
        assert np.array_equal(parent, np.asarray(T.copy().argmax(axis=1)).ravel())  # (argmax sums duplicates in place)


def test_restrict_compose_matches_scipy():
    """The compiled restriction (and composition) of a transfer equals scipy's fancy indexing and product."""
    from organsim.fem._mesh_kernels import restrict_compose

    rng = np.random.default_rng(3)
    for seed in range(5):
        T = sp.random(60, 45, density=0.08, random_state=seed, format="csr")
        C = sp.random(20, 17, density=0.2, random_state=seed + 10, format="csr")
        rows = np.sort(rng.choice(60, 33, replace=False))
        cols = np.sort(rng.choice(45, 20, replace=False))
        col_new = np.full(45, -1)
        col_new[cols] = np.arange(20)
        i64 = [a.astype(np.int64) for a in (T.indptr, T.indices)]
        e = np.zeros(0, np.int64)
        ptr, ind, val = restrict_compose(*i64, T.data, rows, col_new, e, e, np.zeros(0), 20)
        R = sp.csr_matrix((val, ind, ptr), shape=(33, 20))
        assert np.allclose(R.toarray(), T[rows][:, cols].toarray(), rtol=0, atol=1e-15)
        ptr, ind, val = restrict_compose(*i64, T.data, rows, col_new, C.indptr.astype(np.int64),
                                         C.indices.astype(np.int64), C.data, 17)
        R = sp.csr_matrix((val, ind, ptr), shape=(33, 17))
        assert np.allclose(R.toarray(), (T[rows][:, cols] @ C).toarray(), rtol=0, atol=1e-14)
        # each column appears once per row (duplicates summed)
        for i in range(33):
            assert len(set(ind[ptr[i]:ptr[i + 1]].tolist())) == ptr[i + 1] - ptr[i]


def test_change_topology_carries_element_rotations_with_tet_parent():
    mesh, sim, wall = _beam(shape=(8, 3, 3), integrator="realtime", mat=Corotational(5e4, 0.4), dt=0.01)
    sim.fix(wall, name="wall")
    for _ in range(5):
        sim.step()
    R_old = sim._asm._Rcache.copy()
    assert np.abs(R_old - np.eye(3)).max() > 1e-4  # the beam sags: rotations are not identity
    new, T = _crack(mesh)
    parent = np.arange(new.n_tets)  # the crack keeps every tet, renumbering nodes only
    sim.change_topology(new, T, parent)
    assert np.array_equal(sim._asm._Rcache, R_old)
    assert sim.step().converged
    with pytest.raises(SimulationError, match="tet_parent"):
        sim.change_topology(new, sp.identity(new.n_points, format="csr"), np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("mass", ["lumped", "consistent"])
@pytest.mark.parametrize("integrator", ["realtime", "backward_euler"])
def test_reaction_from_the_tets_around_the_held_nodes_equals_the_full_residual(mass, integrator):
    """reaction() assembles only the tets around the constraint's nodes; it must equal the
    residual of the whole assembly at those nodes (inertia, Rayleigh damping, loads)."""
    mesh, sim, wall = _beam(shape=(7, 3, 3), mat=Corotational(5e4, 0.4), integrator=integrator, dt=0.01,
                            damping=(2.0, 0.01), mass=mass)
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.fix(wall, name="wall")
    sim.prescribe(tip, mesh.points[tip] + [0.0, 0.0, 0.004], name="grasp")
    for _ in range(4):
        sim.step()
    _, x, x_n, x_pred, h = sim._last
    f, K = sim._asm.forces_and_stiffness(x, want_K=True)
    g_full = sim._dyn_residual(x, f, K, x_n, x_pred, h, sim._external(x))
    for name, nodes in (("wall", wall), ("grasp", tip)):
        r = sim.reaction(name)
        assert np.allclose(r, g_full[nodes], rtol=1e-10, atol=1e-12 * np.abs(g_full).max())
    assert np.abs(sim.reaction("grasp")).max() > 0


def test_pcg_absolute_floor_stops_early_and_reports_convergence():
    from organsim.fem.solvers import pcg

    rng = np.random.default_rng(0)
    Q = rng.standard_normal((40, 40))
    A = Q @ Q.T + 40 * np.eye(40)
    b = rng.standard_normal(40)
    ident = lambda r: r.copy()  # noqa: E731
    strict = pcg(A, b, precond=ident, rtol=1e-12, maxiter=200)
    loose = pcg(A, b, precond=ident, rtol=1e-12, atol=1e-2 * np.linalg.norm(b), maxiter=200)
    assert strict.converged and loose.converged and loose.iterations < strict.iterations
    assert np.linalg.norm(b - A @ loose.x) <= 1e-2 * np.linalg.norm(b)


def test_grasp_and_release_keep_the_factorization_and_stay_accurate():
    """A new or removed constraint maps the realtime preconditioner onto the new free nodes
    instead of refactoring (a refactorization stalls a frame on a real organ)."""
    kw = dict(integrator="realtime", mat=Corotational(5e4, 0.4), dt=0.01, realtime_cg=200, realtime_rtol=1e-10)
    mesh, sim, wall = _beam(shape=(8, 3, 3), **kw)
    sim.fix(wall, name="wall")
    assert sim.step().refactored
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    sim.prescribe(tip, sim.positions[tip] + [0.0, 0.0, 0.002], name="grasp")
    info = sim.step()
    assert not info.refactored and info.converged
    sim.release("grasp")
    info = sim.step()
    assert not info.refactored and info.converged
    # the same steps with fresh factorizations land on the same state
    _, ref, _ = _beam(shape=(8, 3, 3), **kw)
    ref.fix(wall, name="wall")
    ref.step()
    ref.prescribe(tip, ref.positions[tip] + [0.0, 0.0, 0.002], name="grasp")
    ref._prec = None
    ref.step()
    ref.release("grasp")
    ref._prec = None
    ref.step()
    assert np.allclose(sim.positions, ref.positions, rtol=0, atol=1e-9)


def test_refresh_preconditioner_fits_the_loaded_state():
    mesh, sim, wall = _beam(shape=(10, 3, 3), integrator="realtime", mat=Corotational(2e4, 0.4), dt=0.02,
                            damping=(2.0, 0.0), realtime_cg=100, realtime_rtol=1e-6)
    sim.fix(wall, name="wall")
    for _ in range(40):     # sag under gravity to rest
        sim.step()
    before = sim.step().linear_iterations
    sim.refresh_preconditioner()
    after = sim.step()
    assert after.converged and after.linear_iterations < before


def test_transfer_summary_matches_numpy():
    """The compiled transfer summary equals its NumPy definition on transfer-like matrices."""
    from organsim.fem._mesh_kernels import transfer_summary

    rng = np.random.default_rng(5)
    for seed in range(8):
        n_old = 40
        copies = rng.choice(n_old, 30, replace=False)             # plain copies, some duplicated below
        rows = [[(int(c), 1.0)] for c in (np.sort(copies) if seed % 2 else copies)]   # odd: kept in order
        rows += [[(int(c), 1.0)] for c in rng.choice(copies, 3)]  # duplicated nodes
        rows += [[(int(a), 1 - t), (int(b), t)] for a, b, t in zip(rng.integers(0, n_old, 4),
                                                                   rng.integers(0, n_old, 4), rng.random(4))]
        data = [v for r in rows for _, v in r]
        cols = [c for r in rows for c, _ in r]
        ptr = np.cumsum([0] + [len(r) for r in rows])
        T = sp.csr_matrix((data, cols, ptr), shape=(len(rows), n_old))
        parent, nparents, ncopies, plain, new2old, affected, in_order = transfer_summary(
            T.indptr, T.indices, T.data, n_old)
        assert np.array_equal(parent, np.asarray(T.copy().argmax(axis=1)).ravel())  # (argmax sums duplicates in place)
        assert np.array_equal(nparents, np.diff(T.indptr))
        assert np.array_equal(ncopies, np.bincount(T.indices, minlength=n_old))
        first = T.data[T.indptr[:-1]]
        ref_plain = (np.diff(T.indptr) == 1) & np.isclose(first, 1.0)
        assert np.array_equal(plain, ref_plain)
        ref_new2old = np.where(ref_plain & (ncopies[parent] == 1), parent, -1)
        assert np.array_equal(new2old, ref_new2old)
        assert np.array_equal(affected, ~ref_plain | (ncopies[parent] > 1))
        kept = ref_new2old[ref_new2old >= 0]
        assert in_order == bool(np.all(np.diff(kept) > 0)) == bool(seed % 2)


@pytest.mark.parametrize("integrator", ["realtime", "backward_euler"])
def test_inverted_corotational_element_pushes_back_and_recovers(integrator):
    """A corotational tet pushed through itself keeps its last rotation and recovers, without error;
    the rotation cache never holds a reflection (which would flip the sign of det F)."""
    from organsim.fem.body import Body
    from organsim.fem.simulation import Simulation

    tet = TetMesh(np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]]), np.array([[0, 1, 2, 3]]))
    sim = Simulation(Body(tet, Corotational(5e3, 0.3), density=1000.0), gravity=(0, 0, 0), dt=1e-3,
                     damping=(5.0, 0.0), integrator=integrator)
    sim.fix([0, 1, 2], name="base")
    x = np.array(sim.positions)
    x[3, 2] = -0.004                               # the apex pushed through the base: inverted
    sim._x = x
    assert sim._asm.min_jacobian(sim.positions) < 0
    for _ in range(300):
        sim.step()
        R = sim._asm._Rcache
        assert np.all(np.linalg.det(R) > 0.5)
    assert sim._asm.min_jacobian(sim.positions) > 0.5
    assert np.all(np.isfinite(sim.positions))


def test_fields_of_a_momentarily_inverted_element_are_finite():
    from organsim.fem.fields import cauchy_stress, compute_fields

    tet = TetMesh(np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]]), np.array([[0, 1, 2, 3]]))
    x = np.array(tet.points)
    x[3, 2] = -0.004
    out = compute_fields(tet, x, Corotational(5e3, 0.3))
    assert np.all(np.isfinite(out["cauchy"])) and np.isfinite(out["von_mises"]).all()
    with pytest.raises(Exception, match="inverted"):
        cauchy_stress(out["F"], P=np.zeros((1, 3, 3)))


@pytest.mark.parametrize("material", [Corotational(2e4, 0.45), NeoHookean(2e4, 0.45)], ids=lambda m: m.kind)
def test_reading_reactions_and_fields_does_not_change_the_simulation(material):
    """A display reads the grasper's force any number of times per frame: the run must be the
    same, to the last bit, as one nobody watched (else a live attempt and its replay part at
    round-off; the corotational kernels warm-start from a rotation cache that a query wrote)."""
    mesh = box_tet_mesh((8, 8, 3), 0.01)
    held = np.flatnonzero(np.linalg.norm(mesh.points - [0.07, 0.035, 0.02], axis=1) < 0.012)

    def run(watch):
        sim = Simulation(Body(mesh, material, density=1000.0), dt=0.04, damping=(2.0, 0.01),
                         integrator="realtime")
        sim.fix(np.flatnonzero(mesh.points[:, 0] < 1e-9), name="wall")
        out = []
        for k in range(30):
            sim.prescribe(held, mesh.points[held] + [0, 0, 0.001 * k], name="grasp")
            sim.step()
            for _ in range(watch * (k % 4)):
                sim.reaction("grasp")
                sim.fields()
                sim.kinetic_energy()
            out.append(sim.reaction("grasp").sum(axis=0))
        return np.array(out), sim.positions

    f0, x0 = run(0)
    f1, x1 = run(1)
    np.testing.assert_array_equal(f0, f1)
    np.testing.assert_array_equal(x0, x1)


def test_a_step_that_turns_neo_hookean_tissue_inside_out_says_where_and_keeps_the_state():
    mesh = box_tet_mesh((10, 3, 3), 0.005)
    sim = Simulation(Body(mesh, NeoHookean(5e3, 0.45), density=1000.0), dt=0.01, integrator="realtime",
                     gravity=(0, 0, 0))
    sim.fix(np.flatnonzero(mesh.points[:, 0] < 1e-9), name="wall")
    tip = int(np.argmax(mesh.points.sum(axis=1)))
    # 2 N on one node of a soft bar: well past inversion (at 1 N the bar is at its edge, where round-off decides)
    sim.add_nodal_force([tip], (0, 0, 2.0), name="pull")
    x0 = sim.positions
    with pytest.raises(ConvergenceError, match=r"inside out, the worst in region 'tissue' at \(4\d, \d+, \d+\) mm"):
        sim.step()
    np.testing.assert_array_equal(sim.positions, x0)


def test_a_single_precision_factor_moves_the_beam_as_the_double_one(monkeypatch):
    from organsim.fem import preconditioning

    runs = {}
    for precision in ("double", "single"):
        mesh, sim, wall = _beam((16, 4, 4), integrator="realtime", mat=Corotational(5e5, 0.45), dt=0.04,
                                realtime_cg=20, realtime_rtol=1e-2, factor_precision=precision)
        tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
        sim.fix(wall, name="wall")
        infos = [sim.step() for _ in range(15)]
        assert all(i.converged for i in infos)
        assert sim.preconditioner_precision == precision
        runs[precision] = (sim.displacements[tip, 2].mean(), sum(i.linear_iterations for i in infos))
    (z_d, cg_d), (z_s, cg_s) = runs["double"], runs["single"]
    assert z_d < -0.005                                 # the beam swings down under gravity
    assert abs(z_s - z_d) <= 1e-3 * abs(z_d)
    assert cg_s <= cg_d + 3
    # "auto": single for realtime factors of at least SINGLE_FACTOR_MIN_NNZ entries, double for
    # backward Euler
    monkeypatch.setattr(preconditioning, "SINGLE_FACTOR_MIN_NNZ", 0)
    for integ, want in (("realtime", "single"), ("backward_euler", "double")):
        _, sim, wall = _beam(integrator=integ, dt=0.01)
        sim.fix(wall, name="wall")
        sim.step()
        assert sim.preconditioner_precision == want


def test_a_soft_beam_refactors_in_single_precision_while_a_fresh_single_factor_is_fast(monkeypatch):
    from organsim.fem import integrators, preconditioning

    monkeypatch.setattr(preconditioning, "SINGLE_FACTOR_MIN_NNZ", 0)
    # a soft bar swinging down: the rest factorization grows slow, the one of the current
    # tangent solves the next step in a few iterations, so it stays in single precision
    mesh, sim, wall = _beam((12, 3, 3), mat=NeoHookean(3e3, 0.45), integrator="realtime", dt=1 / 60)
    sim.fix(wall, name="wall")
    infos = [sim.step() for _ in range(20)]
    later = [k for k, i in enumerate(infos) if k > 0 and i.refactored]
    assert later, "the soft bar's CG never grew slow enough to refactor"
    assert infos[later[0]].linear_iterations <= 3
    assert sim.preconditioner_precision == "single"
    # where even the fresh factor's first solve is slow, the precision may be the cause:
    # the refactorization after that is in double
    monkeypatch.setattr(integrators, "_SLOW_CG_ITERATIONS", -1)     # every step counts as slow
    _, sim, wall = _beam(integrator="realtime", dt=0.01)
    sim.fix(wall, name="wall")
    seen = []
    for _ in range(14):
        info = sim.step()
        seen.append((sim.preconditioner_precision, info.refactored))
    assert seen[0] == ("single", True)
    refactors = [k for k, (_, r) in enumerate(seen) if k > 0 and r]
    assert len(refactors) >= 2
    assert seen[refactors[0]][0] == "single"
    assert all(p == "double" for p, _ in seen[refactors[1]:])


def test_a_factor_of_a_deformed_state_is_rotated_with_the_nodes_since():
    # a soft bar refactored after 3 steps swings on: rotated by each node's rotation since
    # the factored state, the factorization keeps fitting and CG needs fewer iterations
    runs = {}
    for warp in (True, False):
        mesh, sim, wall = _beam((12, 3, 3), mat=NeoHookean(3e3, 0.45), integrator="realtime", dt=1 / 60,
                                warp=warp)
        sim.fix(wall, name="wall")
        for _ in range(3):
            sim.step()
        sim.refresh_preconditioner()
        infos = [sim.step() for _ in range(20)]
        assert all(i.converged for i in infos) or not warp   # unrotated, some solves reach the CG cap
        runs[warp] = (sum(i.linear_iterations for i in infos), sum(i.refactored for i in infos), sim.positions)
    (cg_w, ref_w, x_w), (cg_n, ref_n, x_n) = runs[True], runs[False]
    assert cg_w < 0.8 * cg_n
    assert ref_w <= ref_n
    # the same motion either way (each solve to the same tolerance)
    assert np.abs(x_w - x_n).max() < 0.02 * np.abs(x_n - mesh.points).max()


def test_an_unknown_factor_precision_is_refused_with_the_choices():
    mesh = box_tet_mesh((3, 3, 3), 0.01)
    with pytest.raises(SimulationError, match="factor_precision 'half'.*'auto', 'single' or 'double'"):
        Simulation(Body(mesh, NeoHookean(5e4, 0.4), density=RHO), factor_precision="half")
