"""Progressive cutting: mesh validity, volume conservation, separation, tags, robustness."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from organsim.errors import MeshError
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh
from organsim.surgery.cutting import Cutter, cut, face_keys, surface_with_cut_tags, swept_triangles, validate_mesh

H = 0.01
BOX = box_tet_mesh((6, 6, 6), H)          # 0.05 m cube, 750 tets


def _regions(mesh: TetMesh) -> TetMesh:
    """Give the box two regions (x < 0.025 is region 2) to check that ids are carried."""
    c = mesh.points[mesh.tets].mean(axis=1)
    rid = np.where(c[:, 0] < 0.025, 2, 1)
    return TetMesh(mesh.points, mesh.tets, rid, {1: "parenchyma", 2: "tumour"})


BOX2 = _regions(BOX)


def _ball(n=7, seed=0) -> TetMesh:
    """An irregular stand-in organ: a jittered box mesh trimmed to a ball."""
    m = box_tet_mesh((n, n, n), H)
    rng = np.random.default_rng(seed)
    inner = np.all((m.points > 1e-9) & (m.points < (n - 1) * H - 1e-9), axis=1)
    pts = m.points + np.where(inner[:, None], rng.uniform(-0.25 * H, 0.25 * H, m.points.shape), 0.0)
    c = pts[m.tets].mean(axis=1)
    mid = (n - 1) * H / 2
    keep = np.linalg.norm(c - mid, axis=1) < mid
    sub, _ = TetMesh(pts, m.tets).submesh(keep)
    return _regions(sub)


BALL = _ball()


def _components(mesh: TetMesh) -> int:
    t = mesh.tets
    r = np.repeat(t[:, 0], 3)
    c = t[:, 1:].ravel()
    g = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(mesh.n_points, mesh.n_points))
    return connected_components(g, directed=False)[0]


def _check_invariants(old: TetMesh, res) -> None:
    new = res.mesh
    v = validate_mesh(new)
    assert v["ok"], v
    assert abs(new.volume - old.volume) <= 1e-9 * old.volume
    ov, nv = old.region_volumes(), new.region_volumes()
    for name, vol in ov.items():
        assert abs(nv.get(name, 0.0) - vol) <= 1e-9 * old.volume, name
    assert res.transfer.shape == (new.n_points, old.n_points)
    rows = np.asarray(res.transfer.sum(axis=1)).ravel()
    np.testing.assert_allclose(rows, 1.0, atol=1e-12)
    assert res.tet_parent.shape == (new.n_tets,)
    np.testing.assert_array_equal(new.region_ids, old.region_ids[res.tet_parent])
    # every new node sits where the transfer says (rest positions map like any nodal field)
    np.testing.assert_allclose(res.transfer @ old.points, new.points, atol=1e-12)


# ----------------------------------------------------------------- strategies
grid = st.sampled_from([k * H for k in range(-1, 7)])
coord = st.one_of(st.floats(-0.012, 0.062, allow_nan=False), grid)
point = st.tuples(coord, coord, coord).map(np.array)


@st.composite
def blade_paths(draw):
    """2-5 poses of a blade segment; coordinates sometimes exactly on grid planes (grazing)."""
    k = draw(st.integers(2, 5))
    a0 = draw(point)
    b0 = draw(point)
    poses = [np.stack([a0, b0])]
    for _ in range(k - 1):
        da = draw(point) - 0.025
        if draw(st.booleans()):
            db = da                                    # translate the blade
        else:
            db = draw(point) - 0.025
        poses.append(poses[-1] + 0.6 * np.stack([da, db]))
    return np.stack(poses)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blade_paths())
def test_random_blade_paths_keep_mesh_valid_and_volume(path):
    res = cut(BOX2, path)
    _check_invariants(BOX2, res)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blade_paths(), st.integers(2, 12))
def test_random_progressive_cuts_on_irregular_ball(path, n_inc):
    # refine the path into small increments: the progressive (pending-family) machinery
    t = np.linspace(0, 1, n_inc + 1)
    fine = np.concatenate([path[i][None] + t[1:, None, None] * (path[i + 1] - path[i])[None]
                           for i in range(len(path) - 1)])
    fine = np.concatenate([path[:1], fine])
    res = cut(BALL, fine)
    _check_invariants(BALL, res)


def test_vertex_and_face_grazing_plane_cut_separates_exactly():
    # the blade plane x = 0.02 contains a whole layer of nodes and faces
    blade = np.array([[0.02, -0.01, 0.07], [0.02, -0.01, -0.02]])
    path = np.stack([blade + [0, 0.001 * k * 7, 0] for k in range(11)])
    res = cut(BOX, path)
    _check_invariants(BOX, res)
    assert _components(res.mesh) == 2
    s = res.surface()
    p = s.points[s.faces[s.face_labels == 1]]
    area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum()
    assert area == pytest.approx(2 * 0.05 * 0.05, rel=1e-9)
    assert res.n_tets_added == 0                    # snapped onto existing faces: nothing split


def test_oblique_full_cut_separates_and_follows_the_blade():
    m = BOX
    blade = np.array([[0.0137, -0.01, 0.07], [0.0337, -0.01, -0.02]])
    path = np.stack([blade + [0, 0.001 * k, 0] for k in range(0, 71, 2)])
    c = Cutter(m)
    for pose in path:
        c.advance(pose)
    res_mesh = c.mesh
    assert validate_mesh(res_mesh)["ok"]
    assert _components(res_mesh) == 2
    # the cut surface lies within snap * edge length of the blade plane
    surf = c.surface()
    cut_nodes = np.unique(surf.faces[surf.face_labels == 1])
    n = np.cross(blade[1] - blade[0], [0, 1, 0])
    n /= np.linalg.norm(n)
    dist = np.abs((res_mesh.points[cut_nodes] - blade[0]) @ n)
    assert dist.max() <= c.snap * H * np.sqrt(3) + 1e-12
    # cut faces on both sides, total area = 2 x the section's area
    p = surf.points[surf.faces[surf.face_labels == 1]]
    area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum()
    section = 0.05 * 0.05 / abs(n[0])   # the plane spans the cube in y and in z
    assert area == pytest.approx(2 * section, rel=0.05)   # snapped points make it slightly zig-zag


def test_partial_cut_leaves_tissue_connected_beyond_the_blade_tip():
    blade = np.array([[0.0237, -0.01, 0.07], [0.0237, -0.01, 0.027]])   # 2.3 cm deep into 5 cm
    path = np.stack([blade + [0, 0.002 * k, 0] for k in range(36)])
    res = cut(BOX, path)
    _check_invariants(BOX, res)
    assert _components(res.mesh) == 1
    assert res.cut_face_mask.sum() > 0
    assert res.n_nodes_duplicated > 0


def test_progressive_increments_match_a_single_sweep_area():
    blade = np.array([[0.0237, -0.01, 0.07], [0.0237, -0.01, -0.01]])
    fine = np.stack([blade + [0, 0.001 * k, 0] for k in range(71)])
    coarse = fine[[0, -1]]
    a = cut(BOX, fine)
    b = cut(BOX, coarse)
    assert _components(a.mesh) == _components(b.mesh) == 2
    fa, fb = a.cut_face_mask.sum(), b.cut_face_mask.sum()
    assert fa > 0 and fb > 0


def test_same_path_twice_with_one_cutter_changes_nothing():
    blade = np.array([[0.0237, -0.01, 0.07], [0.0237, -0.01, 0.02]])
    path = np.stack([blade + [0, 0.003 * k, 0.0005 * k] for k in range(25)])
    c = Cutter(BOX)
    for p in path:
        c.advance(p)
    n_tets, n_pts = c.mesh.n_tets, c.mesh.n_points
    c.lift()
    changed = [c.advance(p).changed for p in path]
    assert not any(changed)
    assert (c.mesh.n_tets, c.mesh.n_points) == (n_tets, n_pts)


def test_same_path_again_on_a_cut_mesh_and_along_the_cut_stay_valid():
    blade = np.array([[0.0237, -0.01, 0.07], [0.0337, -0.01, 0.02]])
    path = np.stack([blade + [0, 0.003 * k, 0] for k in range(25)])
    r1 = cut(BOX, path)
    r2 = cut(r1.mesh, path)                    # a fresh cutter over the same path
    _check_invariants(r1.mesh, r2)
    r3 = cut(r1.mesh, path + [0.0004, 0, 0])   # along the existing cut, 0.4 mm beside it
    _check_invariants(r1.mesh, r3)


def test_blade_missing_the_organ_changes_nothing():
    blade = np.array([[0.2, 0.0, 0.07], [0.2, 0.0, 0.0]])
    path = np.stack([blade + [0, 0.01 * k, 0] for k in range(5)])
    res = cut(BOX, path)
    assert not res.changed
    assert res.mesh is BOX
    assert res.n_tets_added == 0
    assert (res.transfer != sp.identity(BOX.n_points)).nnz == 0


def test_blade_that_does_not_move_changes_nothing():
    c = Cutter(BOX)
    blade = np.array([[0.0237, 0.02, 0.07], [0.0237, 0.02, 0.02]])
    c.advance(blade)
    assert not c.advance(blade).changed


def test_bad_blade_input_raises_clear_errors():
    c = Cutter(BOX)
    with pytest.raises(MeshError, match="polyline"):
        c.advance(np.zeros(3))
    c.advance(np.zeros((2, 3)))
    with pytest.raises(MeshError, match="lift"):
        c.advance(np.zeros((3, 3)))
    with pytest.raises(MeshError, match="snap"):
        Cutter(BOX, snap=0.7)
    with pytest.raises(MeshError, match="blade_path"):
        cut(BOX, np.zeros((1, 2, 3)))


def test_deformed_configuration_cut_maps_to_rest():
    # stretch the box by 2 in x: a blade at deformed x = 0.0474 is at rest x = 0.0237
    X = BOX.points * [2.0, 1.0, 1.0]
    blade = np.array([[0.0474, -0.01, 0.07], [0.0474, -0.01, -0.01]])
    path = np.stack([blade + [0, 0.01 * k, 0] for k in range(8)])
    res = cut(BOX, path, positions=X)
    _check_invariants(BOX, res)
    assert _components(res.mesh) == 2
    cut_nodes = np.unique(res.cut_faces)
    assert np.abs(res.mesh.points[cut_nodes, 0] - 0.0237).max() <= 0.25 * H + 1e-12   # default snap


def test_surface_tags_and_helpers():
    s = surface_with_cut_tags(BOX, np.zeros(0, np.int64))
    assert s.face_labels.sum() == 0 and s.is_watertight
    tri = swept_triangles(np.array([[0, 0, 0], [0, 0, 1.0], [0, 1, 1.0]]),
                          np.array([[1, 0, 0], [1, 0, 1.0], [1, 1, 1.0]]))
    assert tri.shape == (4, 3, 3)
    assert face_keys(np.array([[3, 1, 2]]))[0] == face_keys(np.array([[1, 2, 3]]))[0]


def _sim_cut_and_continue(mesh, fixed, path, *, integrator, model, n_after=50, E_pa=None):
    from organsim.fem.body import Body
    from organsim.fem.materials import Corotational, NeoHookean
    from organsim.fem.simulation import Simulation
    from organsim.fem.tissues import tissue

    t = tissue("liver", model=model)
    mat = t.material if E_pa is None else {"corotational": Corotational, "neo_hookean": NeoHookean}[model](E_pa, 0.45)
    sim = Simulation(Body(mesh, mat, density=t.density), dt=0.01, damping=(1.0, 0.0),
                     integrator=integrator)
    sim.fix(fixed, name="held")
    for _ in range(3):
        sim.step()
    c = Cutter(sim.mesh)
    c.advance(path[0], positions=sim.positions)
    for pose in path[1:]:
        res = c.advance(pose, positions=sim.positions)
        if res.changed:
            x_old, v_old = sim.positions, sim.velocities
            ke0 = sim.kinetic_energy()
            sim.change_topology(res.mesh, res.transfer)
            c.mesh = sim.mesh
            # no jump: every node sits at its mapped material point (unit rows are exact copies)
            np.testing.assert_allclose(sim.positions, res.transfer @ x_old, atol=1e-14)
            # velocities are mapped too, except that where the lumped masses shared anew would
            # add kinetic energy (a pending tet re-split moves mass onto fast nodes: up to 2.2 %
            # seen) the nodes whose mass changed are slowed by one common factor: never faster
            mapped = res.transfer @ v_old
            v_new = sim.velocities
            scale = np.einsum("ij,ij->i", v_new, mapped) / np.maximum(np.einsum("ij,ij->i", mapped, mapped), 1e-300)
            np.testing.assert_allclose(v_new, scale[:, None] * mapped, atol=1e-14)
            assert np.all(scale <= 1 + 1e-12) and np.all(scale >= 0.0)
            # a cut never feeds kinetic energy into the body
            assert sim.kinetic_energy() <= ke0 * (1 + 1e-9) + 1e-15
        sim.step()
    v = validate_mesh(sim.mesh)
    assert v["ok"] and v["min_volume_ratio"] > 1e-6   # no near-zero-volume slivers
    assert abs(sim.mesh.volume - mesh.volume) <= 1e-9 * mesh.volume
    for _ in range(n_after):
        sim.step()
        assert np.all(np.isfinite(sim.positions)) and np.all(np.isfinite(sim.velocities))
    return sim


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blade_paths())
# found by this test: a crossing left next to a vertex kept off the cut (a 6e-8 volume-ratio sliver)
@example(path=np.array([[[0.0, 0.05859375, 0.046875], [0.06054688, 0.00976562, 0.02395024]],
                        [[-0.005625, 0.04359375, 0.031875], [0.05492188, -0.00523437, 0.00895024]],
                        [[-0.020625, 0.02859375, 0.035625], [0.03992188, -0.02023437, 0.01270024]]]))
# and a flap whose hinge tets the corotational model crushes inside out under gravity
@example(path=np.array([[[0.0, 0.046875, 0.046875], [0.05859375, 0.015625, 0.0234375]],
                        [[-0.015, 0.031875, 0.031875], [0.04359375, 0.000625, 0.0084375]],
                        [[-0.03, 0.016875, 0.035625], [0.02859375, -0.014375, 0.0121875]]]))
# and a re-split pending tet whose lumped mass moved onto fast cut nodes (kinetic energy +2.2 %)
@example(path=np.array([[[0.0, 0.0, 0.0390625], [0.0078125, 0.0234375, -0.0078125]],
                        [[0.0084375, 0.00140625, 0.03109375], [0.01625, 0.02484375, -0.01578125]],
                        [[-0.0065625, 0.0215625, 0.03015625], [0.00125, 0.045, -0.01671875]]]))
def test_random_cut_then_simulation_continues_50_steps(path):
    fixed = np.flatnonzero(BALL.points[:, 2] < 0.012)
    t = np.linspace(0, 1, 5)
    fine = np.concatenate([path[:1]] + [path[i][None] + t[1:, None, None] * (path[i + 1] - path[i])[None]
                                        for i in range(len(path) - 1)])
    _sim_cut_and_continue(BALL, fixed, fine, integrator="realtime", model="corotational")


@pytest.mark.slow
def test_cut_through_shipped_liver_then_simulation_continues():
    from organsim.fem import selection
    from organsim.mesh.shipped import load_shipped

    liver = load_shipped("liver")
    lo, hi = liver.points.min(0), liver.points.max(0)
    c0 = (lo + hi) / 2
    blade = np.array([[c0[0] - 0.03, c0[1], hi[2] + 0.005], [c0[0] - 0.03, c0[1], c0[2]]])
    path = np.stack([blade + [0.004 * k, 0.001 * k, 0] for k in range(13)])
    # the organ-dyn stiffness: with the liver preset (5.2 kPa) the organ hanging from its
    # ligament crushes tets within 0.1 s, cut or not (uncut tets at 24-29 % of their volume,
    # held by the bare area too), and whether a step then inverts one is chance
    _sim_cut_and_continue(liver, selection.region(liver, "ligament"), path, integrator="realtime",
                          model="neo_hookean", E_pa=1e5)


@st.composite
def liver_paths(draw):
    """Blade paths across the shipped liver; endpoints sometimes exactly at mesh nodes (grazing)."""
    from organsim.mesh.shipped import load_shipped

    liver = load_shipped("liver")
    lo, hi = liver.points.min(axis=0), liver.points.max(axis=0)

    def pt():
        if draw(st.booleans()):
            return liver.points[draw(st.integers(0, liver.n_points - 1))].copy()
        u = np.array([draw(st.floats(0.0, 1.0)) for _ in range(3)])
        return lo + u * (hi - lo)

    a, b = pt(), pt()
    shift = pt() - (lo + hi) / 2
    k = draw(st.integers(2, 8))
    s = np.linspace(0.0, 1.0, k)
    return np.stack([np.stack([a, b]) + si * 0.5 * shift for si in s])


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(liver_paths())
def test_random_blade_paths_through_the_shipped_liver(path):
    from organsim.mesh.shipped import load_shipped

    liver = load_shipped("liver")
    res = cut(liver, path)
    _check_invariants(liver, res)


def _edge_hits_reference(p0: np.ndarray, p1: np.ndarray, tris: np.ndarray, tol: float = 1e-9):
    """Vectorized numpy reference for the compiled crossing kernel.

    Crossings of segments ``p0 -> p1`` (e, 3) with triangles (T, 3, 3).

    Returns
    -------
    count : (e,) int, number of distinct hits per segment
    t : (e,) float, parameter of the middle hit (nan where none)
    """
    e = len(p0)
    count = np.zeros(e, dtype=np.int64)
    tpar = np.full(e, np.nan)
    if e == 0 or len(tris) == 0:
        return count, tpar
    lo = np.minimum(p0, p1)
    hi = np.maximum(p0, p1)
    tlo = tris.min(axis=1)
    thi = tris.max(axis=1)
    pad = 1e-12 + 1e-9 * float(np.abs(tris).max())
    # box pre-filter in chunks of edges (bounded memory for long blades and big sweeps)
    chunk = max(1, 400_000 // len(tris))
    ie_l, it_l = [], []
    for s0 in range(0, e, chunk):
        ov = np.all((lo[s0:s0 + chunk, None, :] <= thi[None, :, :] + pad)
                    & (hi[s0:s0 + chunk, None, :] >= tlo[None, :, :] - pad), axis=2)
        a, b = np.nonzero(ov)
        ie_l.append(a + s0)
        it_l.append(b)
    ie, it = np.concatenate(ie_l), np.concatenate(it_l)
    if len(ie) == 0:
        return count, tpar
    o = p0[ie]
    d = p1[ie] - o
    v0 = tris[it, 0]
    e1 = tris[it, 1] - v0
    e2 = tris[it, 2] - v0
    h = np.cross(d, e2)
    a = np.einsum("ij,ij->i", e1, h)
    scale = np.linalg.norm(d, axis=1) * np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
    ok = np.abs(a) > 1e-12 * np.maximum(scale, 1e-300)
    f = np.where(ok, 1.0 / np.where(ok, a, 1.0), 0.0)
    s = o - v0
    u = f * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = f * np.einsum("ij,ij->i", d, q)
    t = f * np.einsum("ij,ij->i", e2, q)
    hit = ok & (u >= -tol) & (v >= -tol) & (u + v <= 1 + tol) & (t >= -tol) & (t <= 1 + tol)
    ie = ie[hit]
    t = np.clip(t[hit], 0.0, 1.0)
    if len(ie) == 0:
        return count, tpar
    order = np.lexsort((t, ie))
    ie, t = ie[order], t[order]
    new = np.ones(len(ie), dtype=bool)
    new[1:] = (ie[1:] != ie[:-1]) | (t[1:] - t[:-1] > 1e-7)
    ie, t = ie[new], t[new]
    np.add.at(count, ie, 1)
    # the middle distinct hit of each segment
    start = np.searchsorted(ie, np.arange(e))
    mid = start + count // 2
    has = count > 0
    tpar[has] = t[mid[has]]
    return count, tpar


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 120), st.integers(1, 6), st.booleans())
def test_compiled_edge_crossings_match_the_numpy_reference(seed, n_edges, n_tris, graze):
    from organsim.surgery.cutting import _edge_hits

    rng = np.random.default_rng(seed)
    tris = rng.uniform(-1, 1, (n_tris, 3, 3))
    p0 = rng.uniform(-1, 1, (n_edges, 3))
    p1 = p0 + rng.normal(0, 0.5, (n_edges, 3))
    if graze:  # segments starting on triangle vertices and edge midpoints
        k = min(n_edges, n_tris)
        p0[:k] = tris[:k, 0]
        p1[k:2 * k] = 0.5 * (tris[:len(p1[k:2 * k]), 1] + tris[:len(p1[k:2 * k]), 2])
    c_ref, t_ref = _edge_hits_reference(p0, p1, tris)
    c, t = _edge_hits(p0, p1, tris)
    assert np.array_equal(c, c_ref)
    assert np.array_equal(np.isnan(t), np.isnan(t_ref))
    assert np.allclose(t[~np.isnan(t)], t_ref[~np.isnan(t_ref)], rtol=0, atol=1e-12)  # round-off: two operation orders


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 80), st.integers(0, 200), st.integers(0, 2**31 - 1))
def test_compiled_component_labels_match_scipy(n, n_edges, seed):
    from organsim.surgery._separation import component_labels

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, n_edges)
    cols = rng.integers(0, n, n_edges)
    g = sp.coo_matrix((np.ones(n_edges), (rows, cols)), shape=(n, n))
    _, ref = connected_components(g, directed=False)
    assert np.array_equal(component_labels(n, rows, cols), ref)


def _opened_area(mesh: TetMesh, keys: np.ndarray) -> float:
    """Area (m^2) of the cut faces that separated, counted once (one side)."""
    bf = mesh.boundary_faces
    P = mesh.points[bf[np.isin(face_keys(bf), keys)]]
    return 0.5 * np.linalg.norm(np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]), axis=1).sum() / 2


@pytest.mark.parametrize("shape", ["straight", "curved"])
def test_incision_in_the_liver_opens_as_deep_and_as_far_as_the_blade_went(shape):
    """The cut-liver incisions (5 cm long, 2 cm deep): the separated cut surface covers the
    area the blade swept inside the organ, to within the rounding of the crack front onto
    vertices (before that rounding, and with crossings snapped onto vertices of pending
    tets, only 41-52 % opened)."""
    import pyvista as pv

    from organsim.mesh.shipped import load_shipped
    from organsim.surgery.cutting import blade_poses_along, surface_points_below

    liver = load_shipped("liver")
    s = np.linspace(0.0, 1.0, 51)[:, None]
    if shape == "straight":
        xy = np.array([-0.095, 0.0]) + s * [0.05, 0.0]
    else:  # a 4 cm radius arc of the same length
        ang = s[:, 0] * 0.05 / 0.04
        xy = np.array([-0.095, 0.0]) + np.column_stack([0.04 * np.sin(ang), 0.04 * (1 - np.cos(ang)) - 0.01])
    poses = blade_poses_along(surface_points_below(liver, xy), depth=0.02)
    res = cut(liver, poses)
    _check_invariants(liver, res)
    # swept area inside the organ, by sampling the swept strip on a fine grid
    grid = pv.UnstructuredGrid({pv.CellType.TETRA: liver.tets}, liver.points)
    f = np.linspace(0.0, 1.0, 101)[None, :, None]
    pts = poses[:, 0][:, None] * (1 - f) + poses[:, 1][:, None] * f
    inside = grid.find_containing_cell(pts.reshape(-1, 3)) >= 0
    step = np.linalg.norm(np.diff(poses[:, 0], axis=0), axis=1).mean()
    swept = inside.sum() * step * np.linalg.norm(poses[0, 1] - poses[0, 0]) / 100
    opened = _opened_area(res.mesh, res.cut_face_keys)
    assert 0.85 * swept <= opened <= 1.15 * swept, (opened, swept)


def test_finish_rounds_the_crack_front_and_is_harmless_without_a_stroke():
    c = Cutter(BALL)
    assert not c.finish().changed                      # no stroke: nothing to complete
    blade = np.array([[0.0237, -0.01, 0.07], [0.0237, -0.01, 0.031]])   # tip inside the ball
    for k in range(40):
        c.advance(blade + [0, 0.0015 * k, 0])
    before = c.n_pending
    mesh_before = c.mesh
    res = c.finish()
    assert c.blade is None and c.n_pending <= before
    if res.changed:
        _check_invariants(mesh_before, res)
    with pytest.raises(MeshError, match="front_snap"):
        Cutter(BALL, front_snap=1.5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blade_paths(), st.integers(2, 8))
def test_block_pattern_updated_after_each_cut_increment_equals_a_rebuild(path, n_inc):
    """The solver's pattern after a cut is updated around the change only; it must equal
    the pattern built from scratch on the new mesh."""
    from organsim.fem.assembly import BlockPattern

    t = np.linspace(0, 1, n_inc + 1)
    fine = np.concatenate([path[i][None] + t[1:, None, None] * (path[i + 1] - path[i])[None]
                           for i in range(len(path) - 1)])
    c = Cutter(BALL)
    pat = BlockPattern(BALL.tets, BALL.n_points)
    mesh = BALL
    c.advance(path[0])
    for k in range(len(fine) + 1):
        r = c.advance(fine[k]) if k < len(fine) else c.finish()
        if not r.changed:
            continue
        T = r.transfer.tocsr()
        parent = np.asarray(T.copy().argmax(axis=1)).ravel()
        ncopies = np.bincount(T.indices, minlength=T.shape[1])
        plain = (np.diff(T.indptr) == 1) & np.isclose(T.max(axis=1).toarray().ravel(), 1.0)
        new2old = np.where(plain & (ncopies[parent] == 1), parent, -1)
        assert np.all(np.diff(new2old[new2old >= 0]) > 0)
        upd = pat.updated(mesh.tets, r.mesh.tets, r.mesh.n_points, r.tet_parent, new2old)
        ref = BlockPattern(r.mesh.tets, r.mesh.n_points)
        for name in ("indptr", "indices", "blockmap", "diag", "rows", "tet_degree"):
            assert np.array_equal(getattr(upd, name), getattr(ref, name)), name
        pat, mesh = upd, r.mesh


def test_warm_up_runs_cuts_that_change_the_mesh(monkeypatch):
    """The warm-up exercises the real cut path (changed increments and the stroke's end), once per process."""
    import organsim.surgery.cutting as cutting

    seen = []
    original = cutting.Cutter.advance

    def spy(self, *args, **kwargs):
        r = original(self, *args, **kwargs)
        seen.append(r.changed)
        return r

    monkeypatch.setattr(cutting.Cutter, "advance", spy)
    monkeypatch.setattr(cutting, "_WARM", False)
    cutting.warm_up()
    assert sum(seen) >= 4 and cutting._WARM
    n = len(seen)
    cutting.warm_up()          # done once: nothing runs again
    assert len(seen) == n
