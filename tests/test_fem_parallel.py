"""The parallel element kernels: race-free schedules, and the same result as the serial kernels."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.fem import _kernels as kern
from organsim.fem import parallel as par
from organsim.fem.assembly import Assembler
from organsim.fem.materials import Corotational, NeoHookean
from organsim.mesh.generators import box_tet_mesh


@pytest.fixture(scope="module")
def mesh():
    m = box_tet_mesh((17, 8, 8), 0.01)
    assert m.n_tets >= par.MIN_PARALLEL_ELEMENTS
    return m


def _state(mesh, scale=2e-4):
    rng = np.random.default_rng(3)
    x = mesh.points + scale * rng.standard_normal(mesh.points.shape)
    # a rotation too, so that the corotational frames matter
    c, s = np.cos(0.4), np.sin(0.4)
    return np.ascontiguousarray(x @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T)


def test_schedule_is_race_free(mesh):
    elems = np.arange(mesh.n_tets, dtype=np.int64)[::-1].copy()   # any group order
    order, chunk_ptr, color_ptr = par.element_schedule(mesh.points, mesh.tets, elems)
    assert np.array_equal(np.sort(order), np.arange(len(elems)))
    assert chunk_ptr[0] == 0 and chunk_ptr[-1] == len(elems) and color_ptr[-1] == len(chunk_ptr) - 1
    for k in range(len(color_ptr) - 1):
        seen = np.zeros(mesh.n_points, dtype=int)
        for c in range(color_ptr[k], color_ptr[k + 1]):
            nodes = np.unique(mesh.tets[elems[order[chunk_ptr[c]:chunk_ptr[c + 1]]]])
            seen[nodes] += 1
        assert seen.max() <= 1, f"two chunks of color {k} share a node"


def _parallel_share(order, chunk_ptr, color_ptr) -> float:
    """Fraction of the elements in colors of at least two chunks (work that can run in parallel)."""
    sizes = np.diff(chunk_ptr)
    share = sum(sizes[color_ptr[k]:color_ptr[k + 1]].sum() for k in range(len(color_ptr) - 1)
                if color_ptr[k + 1] - color_ptr[k] >= 2)
    return share / len(order)


def test_schedule_puts_nearly_all_the_work_in_parallel_halves(mesh):
    from organsim.mesh.shipped import load_shipped

    for m in (mesh, load_shipped("liver")):
        elems = np.arange(m.n_tets, dtype=np.int64)
        order, chunk_ptr, color_ptr = par.element_schedule(m.points, m.tets, elems)
        first = np.diff(chunk_ptr)[:color_ptr[1]]
        assert len(first) == 2 ** par.SCHEDULE_DEPTH
        # the two halves are balanced and hold most of the elements; the separators are
        # split in turn, so little is left to one thread
        assert first.min() >= 0.8 * first.max()
        assert first.sum() >= 0.7 * m.n_tets
        assert _parallel_share(order, chunk_ptr, color_ptr) >= 0.9


@pytest.mark.parametrize("material", [Corotational(1e5, 0.45), NeoHookean(1e5, 0.45)], ids=["corot", "nh"])
@pytest.mark.parametrize("exact", [False, True])
def test_parallel_equals_serial_bitwise(mesh, material, exact):
    if exact and material.kind != "corotational":
        pytest.skip("exact applies to corotational only")
    x = _state(mesh)
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), material)])
    sched, s_elems, s_lam, s_mu, _ = asm._schedule(0)
    elems, _, lam, mu = asm.groups[0]
    out = []
    for parallel in (False, True):
        f = np.zeros((mesh.n_points, 3))
        K = np.zeros((asm.pattern.nnzb, 3, 3))
        R = asm._Rcache.copy()
        if material.kind == "corotational":
            if parallel:
                j = kern.corot_kernel_par(x, asm.tets, asm.grads, asm.vols, lam, mu, elems, asm.pattern.blockmap,
                                          f, K, True, True, R, exact, *sched)
            else:
                j = kern.corot_kernel(x, asm.tets, asm.grads, asm.vols, s_lam, s_mu, s_elems, asm.pattern.blockmap,
                                      f, K, True, True, R, exact)
        else:
            if parallel:
                j = kern.neohooke_kernel_par(x, asm.tets, asm.grads, asm.vols, lam, mu, elems,
                                             asm.pattern.blockmap, f, K, True, *sched)
            else:
                j = kern.neohooke_kernel(x, asm.tets, asm.grads, asm.vols, s_lam, s_mu, s_elems,
                                         asm.pattern.blockmap, f, K, True)
        out.append((f, K, R, j))
    (f0, K0, R0, j0), (f1, K1, R1, j1) = out
    assert np.array_equal(f0, f1) and np.array_equal(K0, K1) and np.array_equal(R0, R1) and j0 == j1
    # and the assembler's result (whichever form its autotuner picks) agrees with the plain
    # element-order kernel to round-off
    f_ref = np.zeros((mesh.n_points, 3))
    K_ref = np.zeros((asm.pattern.nnzb, 3, 3))
    fn = kern.corot_kernel if material.kind == "corotational" else kern.neohooke_kernel
    args = (True, True, asm._Rcache.copy(), exact) if material.kind == "corotational" else (True,)
    fn(x, asm.tets, asm.grads, asm.vols, lam, mu, elems, asm.pattern.blockmap, f_ref, K_ref, *args)
    R_init = asm._Rcache.copy()
    for _ in range(8):   # both forms get tried (each from the same warm start of the rotations)
        asm._Rcache[:] = R_init
        f, K = asm.forces_and_stiffness(x, exact=exact)
        assert np.array_equal(f, f0) and np.array_equal(K, K0)
    assert np.abs(f - f_ref).max() <= 1e-12 * np.abs(f_ref).max()
    assert np.abs(K - K_ref).max() <= 1e-12 * np.abs(K_ref).max()


def test_neohooke_parallel_reports_inversion(mesh):
    x = _state(mesh).copy()
    t = mesh.tets[1234]
    x[t[0]] = x[t[1:]].mean(axis=0) * 2 - x[t[0]]          # push one node through its face
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), NeoHookean(1e5, 0.45))])
    sched = asm._schedule(0)[0]
    elems, _, lam, mu = asm.groups[0]
    f = np.zeros((mesh.n_points, 3))
    K = np.zeros((asm.pattern.nnzb, 3, 3))
    j = kern.neohooke_kernel_par(x, asm.tets, asm.grads, asm.vols, lam, mu, elems, asm.pattern.blockmap, f, K, True,
                                 *sched)
    assert not j > 0
    x[0, 0] = np.nan
    assert np.isnan(kern.min_jacobian_par(x, asm.tets, asm.grads))


def test_nodal_rotations_and_min_jacobian_match(mesh):
    x = _state(mesh, 1e-3)
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), Corotational(1e5, 0.45))])
    sched, s_elems, *_ = asm._schedule(0)
    elems = asm.groups[0][0]
    R0 = np.repeat(np.eye(3)[None], mesh.n_points, axis=0)
    R1 = R0.copy()
    kern.nodal_rotations(x, asm.tets, asm.grads, asm.vols, s_elems, R0, np.empty_like(R0))
    kern.nodal_rotations_par(x, asm.tets, asm.grads, asm.vols, elems, *sched, R1, np.empty_like(R1))
    assert np.array_equal(R0, R1)
    # in tet order: the same rotations up to round-off
    R2 = np.repeat(np.eye(3)[None], mesh.n_points, axis=0)
    kern.nodal_rotations(x, asm.tets, asm.grads, asm.vols, np.arange(mesh.n_tets), R2, np.empty_like(R2))
    assert np.allclose(R0, R2, atol=1e-12) and not np.allclose(R0, np.eye(3), atol=1e-6)
    assert kern.min_jacobian_par(x, asm.tets, asm.grads) == kern.min_jacobian(x, asm.tets, asm.grads)


def test_autotune_picks_the_faster_and_explores(monkeypatch):
    monkeypatch.setattr(par, "threads", lambda: 2)
    tune = par.Autotune(window=5, explore_every=10, trials=2)
    picks = []
    for _ in range(40):
        p = tune.choose()
        picks.append(p)
        tune.record(p, 0.001 if p else 0.010)     # parallel ten times faster
    assert picks[:4] == [True, True, False, False]
    assert sum(picks[4:]) >= 30 and not all(picks[4:])   # mostly parallel, the other now and then
    assert tune.prefers_parallel is True
    monkeypatch.setattr(par, "threads", lambda: 1)
    assert tune.choose() is False


@pytest.mark.parametrize("material", [Corotational(1e5, 0.45), NeoHookean(1e5, 0.45)], ids=["corot", "nh"])
@pytest.mark.parametrize("shape", [(5, 4, 4), (17, 8, 8)], ids=["serial", "scheduled"])
def test_matrix_free_products_equal_the_assembled_matrix(material, shape):
    from organsim.mesh.generators import box_tet_mesh as box

    mesh = box(shape, 0.01)
    x = _state(mesh)
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), material)])
    _, K = asm.forces_and_stiffness(x)
    free = np.flatnonzero(mesh.points[:, 0] > 0)
    sub = asm.pattern.sub(free)
    m = np.linspace(1.0, 2.0, mesh.n_points)
    A = sub.operator(sub.gather(K, 0.7, m, 5.0))
    op = asm.stiffness_operator(x, free, 0.7, m, 5.0)
    p = np.random.default_rng(5).standard_normal(3 * len(free))
    for _ in range(7):   # both forms of the scheduled kernels
        y = op @ p
        ref = A @ p
        assert np.abs(y - ref).max() <= 1e-12 * np.abs(ref).max()


@pytest.mark.parametrize("material", [Corotational(1e5, 0.45), NeoHookean(1e5, 0.45)], ids=["corot", "nh"])
@pytest.mark.parametrize("mass", ["lumped", "consistent"])
def test_realtime_matrix_free_matches_assembled(mesh, material, mass):
    from organsim.fem.body import Body
    from organsim.fem.simulation import Simulation

    out = []
    for mf in (False, True, "auto"):
        sim = Simulation(Body(mesh, material, density=1000.0), dt=1 / 60, integrator="realtime", mass=mass,
                         realtime_cg=20, realtime_rtol=1e-6, realtime_newton=2, matrix_free=mf)
        sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="end")
        infos, forms = [], []
        for _ in range(12):
            infos.append(sim.step())
            forms.append(sim.stiffness_form)
        out.append((sim.displacements, [i.linear_iterations for i in infos], forms))
    (u0, it0, f0), (u1, it1, f1), (u2, it2, f2) = out
    assert set(f0) == {"assembled"} and set(f1) == {"matrix-free"}
    assert set(f2) == {"assembled", "matrix-free"}   # "auto" measures both
    assert it0 == it1 == it2
    assert np.linalg.norm(u1 - u0) <= 1e-9 * np.linalg.norm(u0)
    assert np.linalg.norm(u2 - u0) <= 1e-9 * np.linalg.norm(u0)


def test_an_unknown_matrix_free_setting_is_refused_with_the_choices(mesh):
    from organsim.errors import SimulationError
    from organsim.fem.body import Body
    from organsim.fem.simulation import Simulation

    with pytest.raises(SimulationError, match="matrix_free must be 'auto'.*True.*or False.*got 'yes'"):
        Simulation(Body(mesh, Corotational(1e5, 0.45), density=1000.0), matrix_free="yes")


def _feed(chooser, matrix_free, setup_ms, product_ms, products):
    chooser.record(matrix_free, setup_ms * 1e-3, product_ms * 1e-3 * products, products)


@pytest.mark.parametrize("products, cheaper", [(6, False), (1, True)], ids=["many-products", "few-products"])
def test_stiffness_form_chooser_takes_the_cheaper_form_for_the_recent_number_of_products(products, cheaper):
    from organsim.fem.stiffness_form import StiffnessFormChooser

    # the 10k organ's measured costs: matrix-free 0.7 ms + 0.56 ms a product, assembled 2.3 + 0.11
    chooser = StiffnessFormChooser(explore_every=1000)
    tried = []
    while True:
        form = chooser.choose()
        if len(tried) >= 8:
            break
        tried.append(form)
        _feed(chooser, form, 0.7 if form else 2.3, 0.56 if form else 0.11, products)
    assert tried == [True] * 4 + [False] * 4       # a warm-up step then three trials each
    assert form is cheaper
    assert [chooser.choose() for _ in range(5)] == [cheaper] * 5
    # the motion changes: the other form becomes cheaper once the recent steps take that many products
    for _ in range(9):
        _feed(chooser, cheaper, 0.7 if cheaper else 2.3, 0.56 if cheaper else 0.11, 7 - products)
    assert chooser.choose() is (not cheaper)


def test_stiffness_form_chooser_explores_only_a_form_that_might_win():
    from organsim.fem.stiffness_form import StiffnessFormChooser

    def run(assembled_setup_ms):
        chooser = StiffnessFormChooser(explore_every=4, explore_within=1.25)
        forms = []
        for _ in range(40):
            form = chooser.choose()
            forms.append(form)
            _feed(chooser, form, 1.0 if form else assembled_setup_ms, 0.5 if form else 0.25, 2)
        return forms[8:]

    close = run(1.8)        # assembled 2.3 ms a step against 2.0 matrix-free: explored now and then
    assert close.count(False) >= 5 and close.count(True) > close.count(False)
    far = run(20.0)         # assembled 10 times dearer: never run again after its trials
    assert far.count(False) == 0


def test_nodal_rotations_of_a_mesh_with_two_material_groups(mesh):
    """Two groups: the rotations sum over one schedule of the whole mesh, the same as tet order up to round-off."""
    x = _state(mesh, 1e-3)
    half = mesh.n_tets // 2
    asm = Assembler(mesh, [(np.arange(half), Corotational(1e5, 0.45)),
                           (np.arange(half, mesh.n_tets), NeoHookean(2e5, 0.45))])
    R = np.repeat(np.eye(3)[None], mesh.n_points, axis=0)
    for _ in range(3):   # whichever form the autotuner picks, the same rotations
        asm.nodal_rotations(x, R, np.empty_like(R))
    R_tet_order = np.repeat(np.eye(3)[None], mesh.n_points, axis=0)
    kern.nodal_rotations(x, asm.tets, asm.grads, asm.vols, np.arange(mesh.n_tets), R_tet_order,
                         np.empty_like(R_tet_order))
    assert np.allclose(R, R_tet_order, atol=1e-12)
    assert not np.allclose(R, np.eye(3), atol=1e-6)
