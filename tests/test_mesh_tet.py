"""Tetrahedralization: isosurface stuffing, the quality gate, fTetWild and TetGen backends."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from organsim.errors import MeshError
from organsim.mesh import LabelImage, TetMesh, TriSurface
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.pipeline import drop_small_components
from organsim.mesh.stuffing import stuff
from organsim.mesh.tetrahedralize import quality_gate, tetrahedralize


def _edge_face_counts(faces):
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, c = np.unique(e, axis=0, return_counts=True)
    return c


def _ball_image(n=40, r=12.0, spacing=1e-3, inner=None, direction=None, origin=(0.01, -0.02, 0.03)):
    g = np.indices((n, n, n)) - (n - 1) / 2
    d = np.sqrt((g ** 2).sum(0))
    lab = (d < r).astype(np.uint8)
    if inner is not None:
        lab[np.sqrt(((g - 3) ** 2).sum(0)) < inner] = 2
    return LabelImage(lab, np.broadcast_to(spacing, (3,)), origin,
                      direction if direction is not None else np.eye(3),
                      label_names={1: "parenchyma", 2: "tumour"})


def _assert_valid(mesh: TetMesh, *, min_dihedral=10.0):
    q = mesh.quality()
    assert q["n_inverted"] == 0
    assert np.all(mesh.volumes > 0)
    assert q["min_dihedral_deg"] >= min_dihedral
    assert q["max_dihedral_deg"] < 180.0 - min_dihedral
    c = _edge_face_counts(mesh.boundary_faces)
    assert np.all(c == 2), "the boundary surface must be closed and edge-manifold"
    # no orphan nodes
    assert len(np.unique(mesh.tets)) == mesh.n_points


# ------------------------------------------------------------------ stuffing
def test_stuffing_sphere_quality_volume_and_boundary_on_surface():
    f = lambda p: np.linalg.norm(p, axis=1) - 1.0  # noqa: E731
    res = stuff(f, [-1, -1, -1], [1, 1, 1], 0.15)
    mesh = TetMesh(res.points, res.tets)
    _assert_valid(mesh)
    assert abs(mesh.volume / (4 / 3 * np.pi) - 1) < 0.01
    bnd = np.unique(mesh.boundary_faces)
    assert res.on_surface[bnd].all()
    assert np.allclose(np.linalg.norm(mesh.points[bnd], axis=1), 1.0, atol=1e-3)
    # interior vertices stay strictly inside
    inner = np.setdiff1d(np.arange(mesh.n_points), bnd)
    assert np.all(np.linalg.norm(mesh.points[inner], axis=1) < 1.0)


def test_stuffing_volume_converges_with_edge_length():
    f = lambda p: np.sqrt((p[:, 0] / 1.3) ** 2 + p[:, 1] ** 2 + (p[:, 2] / 0.7) ** 2) - 1.0  # noqa: E731
    exact = 4 / 3 * np.pi * 1.3 * 0.7
    errs = []
    for h in (0.4, 0.2, 0.1):
        res = stuff(f, [-1.3] * 3, [1.3] * 3, h)
        errs.append(abs(TetMesh(res.points, res.tets).volume / exact - 1))
    assert errs[2] < errs[1] < errs[0]
    assert errs[2] < 0.005


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ax=st.tuples(*[st.floats(0.5, 1.5)] * 3), shift=st.tuples(*[st.floats(-0.3, 0.3)] * 3),
       h=st.floats(0.12, 0.35))
def test_stuffing_property_ellipsoids_always_valid(ax, shift, h):
    """Any ellipsoid at any lattice offset and spacing: valid, closed, angle-bounded mesh."""
    a = np.array(ax)
    c = np.array(shift)
    f = lambda p: np.linalg.norm((p - c) / a, axis=1) - 1.0  # noqa: E731
    res = stuff(f, c - a, c + a, h)
    mesh = TetMesh(res.points, res.tets)
    assert mesh.quality()["n_inverted"] == 0
    assert np.all(_edge_face_counts(mesh.boundary_faces) == 2)
    ang = mesh.dihedral_angles
    # the gate's bounds hold before any repair for smooth shapes
    assert ang.min() > 5.0 and ang.max() < 175.0
    exact = 4 / 3 * np.pi * np.prod(a)
    assert abs(mesh.volume / exact - 1) < 0.1


def test_stuffing_two_separate_balls_give_two_pieces():
    f = lambda p: np.minimum(np.linalg.norm(p - [-1.2, 0, 0], axis=1),  # noqa: E731
                             np.linalg.norm(p - [1.2, 0, 0], axis=1)) - 1.0
    res = stuff(f, [-2.2, -1, -1], [2.2, 1, 1], 0.2)
    mesh = TetMesh(res.points, res.tets)
    _assert_valid(mesh)
    kept, dropped = drop_small_components(mesh, min_fraction=0.01)
    assert dropped == 0 and kept.n_tets == mesh.n_tets


def test_stuffing_rejects_empty_and_huge_lattices():
    with pytest.raises(MeshError, match="nothing to mesh"):
        stuff(lambda p: np.ones(len(p)), [0, 0, 0], [1, 1, 1], 0.2)
    with pytest.raises(MeshError, match="edge length"):
        stuff(lambda p: -np.ones(len(p)), [0, 0, 0], [1, 1, 1], 1e-3)


# ------------------------------------------------------------- tetrahedralize
def test_tetrahedralize_label_image_regions_world_position_and_volume():
    img = _ball_image(inner=5.0)
    mesh = tetrahedralize(img, edge_length=3e-3)
    _assert_valid(mesh)
    assert mesh.region_names == {1: "parenchyma", 2: "tumour"}
    vols = mesh.region_volumes()
    assert abs(vols["tumour"] / img.label_volume(2) - 1) < 0.35
    assert abs(mesh.volume / img.label_volume([1, 2]) - 1) < 0.03
    # lands at the world position of the voxels (within a voxel)
    vox = img.index_to_world(np.argwhere(img.labels > 0))
    assert np.allclose(mesh.points.min(0), vox.min(0), atol=1.5e-3)
    assert np.allclose(mesh.points.max(0), vox.max(0), atol=1.5e-3)


def test_tetrahedralize_flipped_direction_and_anisotropic_spacing():
    d = np.eye(3)[:, [1, 0, 2]] * np.array([1.0, -1.0, 1.0])  # axes permuted, one flipped
    d = d @ np.diag([1.0, 1.0, -1.0])  # det -1: a mirrored frame
    g = np.indices((30, 40, 20)).astype(float)
    c = np.array([14.5, 19.5, 9.5])
    sp = np.array([1.0, 0.8, 1.6]) * 1e-3
    r = np.sqrt((((g.T - c) * sp).T ** 2).sum(0))
    img = LabelImage((r < 9e-3).astype(np.uint8), sp, (0.1, 0.2, -0.05), d)
    mesh = tetrahedralize(img, edge_length=3e-3)
    _assert_valid(mesh)
    centre_world = img.index_to_world(c[None])[0]
    assert np.allclose(mesh.points.mean(0), centre_world, atol=1e-3)
    assert abs(mesh.volume / img.label_volume(1) - 1) < 0.05


def test_tetrahedralize_selected_labels_only():
    img = _ball_image(inner=5.0)
    mesh = tetrahedralize(img, labels=[2], edge_length=2e-3)
    assert set(mesh.region_names.values()) == {"tumour"}
    assert mesh.volume < 0.2 * img.label_volume([1, 2])


def test_tetrahedralize_surface_lattice():
    pv = pytest.importorskip("pyvista")
    s = TriSurface.from_pyvista(pv.Sphere(radius=0.05, theta_resolution=40, phi_resolution=40))
    mesh = tetrahedralize(s, edge_length=0.012)
    _assert_valid(mesh)
    assert abs(mesh.volume / s.signed_volume - 1) < 0.02


def test_tetrahedralize_bad_inputs():
    img = _ball_image()
    with pytest.raises(MeshError, match="label"):
        tetrahedralize(img, labels=[7], edge_length=3e-3)
    with pytest.raises(MeshError, match="method"):
        tetrahedralize(img, method="marching", edge_length=3e-3)
    with pytest.raises(MeshError, match="edge length"):
        tetrahedralize(img, edge_length=-1.0)
    with pytest.raises(MeshError, match="no non-zero voxel"):
        tetrahedralize(LabelImage(np.zeros((4, 4, 4), np.uint8), (1e-3,) * 3, (0, 0, 0)),
                       edge_length=1e-3)
    with pytest.raises(MeshError, match="cannot tetrahedralize"):
        tetrahedralize(np.zeros((3, 3)), edge_length=1.0)


def test_default_edge_length_is_a_25th_of_the_extent():
    g = np.indices((64, 16, 16)) - np.array([31.5, 7.5, 7.5])[:, None, None, None]
    cigar = (g[0] / 30) ** 2 + (g[1] / 6) ** 2 + (g[2] / 6) ** 2 < 1  # 60 mm long
    img = LabelImage(cigar.astype(np.uint8), (1e-3,) * 3, (0, 0, 0))
    mesh = tetrahedralize(img)
    el = mesh.quality()["mean_edge_length_m"]
    assert 0.6 * 60e-3 / 25 < el < 1.1 * 60e-3 / 25


# --------------------------------------------------------------- quality gate
def test_quality_gate_passes_good_mesh_unchanged():
    mesh = box_tet_mesh((4, 4, 4), 0.01)
    out, info = quality_gate(mesh)
    assert out is mesh and info["n_peeled"] == 0


def test_quality_gate_rejects_inverted():
    mesh = box_tet_mesh((3, 3, 3), 0.01)
    tets = np.array(mesh.tets)
    tets[0] = tets[0][[1, 0, 2, 3]]
    with pytest.raises(MeshError, match="inverted"):
        quality_gate(TetMesh(mesh.points, tets))


def test_quality_gate_peels_a_flat_boundary_sliver():
    mesh = box_tet_mesh((4, 4, 4), 0.01)
    # glue a nearly flat tet onto a boundary face of the top of the box
    top = mesh.boundary_faces[np.argmax(mesh.points[mesh.boundary_faces].mean(1)[:, 2])]
    p = mesh.points[top]
    apex = p.mean(0) + np.array([0, 0, 1e-5])
    pts = np.vstack([mesh.points, apex])
    tets = np.vstack([mesh.tets, [[top[0], top[2], top[1], len(pts) - 1]]])
    bad = TetMesh(pts, tets)
    if bad.volumes[-1] < 0:
        bad = TetMesh(pts, np.vstack([mesh.tets, [[top[0], top[1], top[2], len(pts) - 1]]]))
    assert bad.quality()["min_dihedral_deg"] < 1
    out, info = quality_gate(bad)
    assert info["n_peeled"] == 1 and out.n_tets == mesh.n_tets
    assert out.quality()["min_dihedral_deg"] >= 10


def test_quality_gate_raises_on_interior_sliver():
    # a mesh of one sliver only: cannot be peeled without removing everything
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.3, 0.3, 1e-4]], float)
    with pytest.raises(MeshError, match="quality gate"):
        quality_gate(TetMesh(pts, [[0, 1, 2, 3]]))


def test_drop_small_components_removes_specks():
    big = box_tet_mesh((5, 5, 5), 0.01)
    speck = box_tet_mesh((2, 2, 2), 0.001)
    pts = np.vstack([big.points, speck.points + 1.0])
    tets = np.vstack([big.tets, speck.tets + big.n_points])
    kept, n = drop_small_components(TetMesh(pts, tets))
    assert n == 1 and kept.n_tets == big.n_tets


# -------------------------------------------------------- optional backends
@pytest.mark.slow
def test_tetwild_backend_on_sphere():
    pytest.importorskip("pytetwild")
    pv = pytest.importorskip("pyvista")
    s = TriSurface.from_pyvista(pv.Sphere(radius=0.05, theta_resolution=20, phi_resolution=20))
    mesh = tetrahedralize(s, edge_length=0.03, method="tetwild")
    _assert_valid(mesh)
    assert abs(mesh.volume / s.signed_volume - 1) < 0.01


def test_tetgen_backend_is_optional_and_gated():
    pytest.importorskip("tetgen")
    pv = pytest.importorskip("pyvista")
    s = TriSurface.from_pyvista(pv.Sphere(radius=0.05, theta_resolution=20, phi_resolution=20))
    try:
        mesh = tetrahedralize(s, edge_length=0.02, method="tetgen")
    except MeshError as exc:  # TetGen keeps the input's skinny pole triangles
        assert "quality gate" in str(exc)
    else:
        _assert_valid(mesh)


def test_unpinch_boundary_separates_cubes_touching_along_an_edge():
    from organsim.mesh.tetrahedralize import unpinch_boundary

    a = box_tet_mesh((3, 3, 3), 0.01)
    b_pts = a.points + np.array([0.02, 0.02, 0.0])
    pts = np.vstack([a.points, b_pts])
    tets = np.vstack([a.tets, a.tets + a.n_points])
    # merge the nodes of the shared edge (x = y = 0.02)
    uniq, inv = np.unique(np.round(pts, 9), axis=0, return_inverse=True)
    mesh = TetMesh(uniq, inv.ravel()[tets])
    assert not np.all(_edge_face_counts(mesh.boundary_faces) == 2)
    fixed, n = unpinch_boundary(mesh, max_volume_fraction=0.2)
    assert n > 0
    assert np.all(_edge_face_counts(fixed.boundary_faces) == 2)
    assert fixed.volume > 0.8 * mesh.volume


@pytest.mark.slow
def test_tetwild_from_label_image_keeps_regions():
    pytest.importorskip("pytetwild")
    img = _ball_image(n=30, r=10.0, inner=4.0, spacing=2e-3)
    mesh = tetrahedralize(img, edge_length=8e-3, method="tetwild")
    _assert_valid(mesh)
    assert set(mesh.region_names.values()) <= {"parenchyma", "tumour"}
    assert "parenchyma" in mesh.region_names.values()


def _interface_nodes(mesh):
    from organsim.mesh.tetmesh import TET_FACES

    f = np.sort(mesh.tets[:, TET_FACES].reshape(-1, 3), axis=1)
    own = np.repeat(np.arange(mesh.n_tets), 4)
    o = np.lexsort(f.T[::-1])
    fs, os_ = f[o], own[o]
    same = np.all(fs[1:] == fs[:-1], axis=1)
    a, b = os_[:-1][same], os_[1:][same]
    return np.unique(fs[:-1][same][mesh.region_ids[a] != mesh.region_ids[b]])


def test_fit_interfaces_moves_region_boundary_onto_the_labels():
    import importlib

    T = importlib.import_module("organsim.mesh.tetrahedralize")
    g = np.indices((44, 44, 44)) - 21.5
    lab = (np.sqrt((g ** 2).sum(0)) < 19).astype(np.uint8)
    lab[np.sqrt(((g - 3) ** 2).sum(0)) < 8] = 2
    img = LabelImage(lab, (1e-3,) * 3, (0, 0, 0))
    raw = T._lattice_image(img, [1, 2], 4e-3, 1.0, None)
    fitted, n = T.fit_interfaces(raw, img, [1, 2])
    assert n > 0
    centre = (21.5 + 3) * 1e-3

    def err(m):
        v = _interface_nodes(m)
        return np.abs(np.linalg.norm(m.points[v] - centre, axis=1) - 8e-3).mean()

    assert err(fitted) < 0.6 * err(raw)
    _assert_valid(fitted, min_dihedral=12.0)
    # the outer boundary does not move
    assert fitted.volume == pytest.approx(raw.volume, rel=1e-12)


def test_crop_to_labels_keeps_world_positions():
    import importlib

    T = importlib.import_module("organsim.mesh.tetrahedralize")
    img = _ball_image(n=40, r=6.0, direction=np.eye(3)[:, [2, 0, 1]])
    sub = T.crop_to_labels(img, [1])
    assert sub.shape[0] < img.shape[0]
    a = img.index_to_world(np.argwhere(img.labels == 1))
    b = sub.index_to_world(np.argwhere(sub.labels == 1))
    assert np.allclose(np.sort(a, axis=0), np.sort(b, axis=0))
