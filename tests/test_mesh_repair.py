"""Surface repair: each step on a small crafted defect, the whole repair, and real organ files."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings, strategies as st

from organsim.errors import MeshError
from organsim.mesh.extract import extract_surface
from organsim.mesh.repair import (RepairReport, boundary_loops, fill_holes,
                                  find_self_intersections, fix_nonmanifold_edges,
                                  fix_nonmanifold_vertices,
                                  merge_duplicate_vertices, nonmanifold_vertices,
                                  orient_consistently, orient_outward, remove_degenerate_faces,
                                  remove_duplicate_faces, remove_small_components,
                                  remove_self_intersections, repair_surface)
from organsim.mesh.surface import TriSurface
from organsim.phantoms import kidney_phantom, liver_phantom
from tests.conftest import organ_file


def sphere(subdivisions=3, radius=0.05, centre=(0.0, 0.0, 0.0)) -> TriSurface:
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return TriSurface(m.vertices + np.asarray(centre), m.faces)


def triangle_areas_positive(s: TriSurface) -> bool:
    p = s.points[s.faces]
    return bool(np.all(np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1) > 0))


def closed_ok(s: TriSurface) -> bool:
    return s.is_watertight and s.is_edge_manifold and s.signed_volume > 0


# --------------------------------------------------------------------------- single steps

def test_merge_duplicate_vertices_unwelded_sphere():
    s = sphere(2)
    # Unweld: every face gets its own three vertices (like an STL or VTK's OBJ reader).
    soup = TriSurface(s.points[s.faces].reshape(-1, 3), np.arange(3 * s.n_faces).reshape(-1, 3))
    assert not soup.is_watertight
    out, n = merge_duplicate_vertices(soup)
    assert n == soup.n_points - s.n_points
    assert out.n_points == s.n_points and closed_ok(out)


def test_merge_tolerance_is_relative_to_bbox():
    s = sphere(1)
    jitter = s.points.copy()
    jitter[0] += 1e-9  # a nanometre: below 1e-6 of the 0.1 m box
    dup = TriSurface(np.vstack([s.points, jitter[:1]]), np.vstack([s.faces, [[s.n_points, 1, 2]]]))
    assert merge_duplicate_vertices(dup)[1] == 1
    assert merge_duplicate_vertices(dup, tolerance=1e-12)[1] == 0


def test_remove_degenerate_faces_repeated_ids():
    s = sphere(1)
    bad = TriSurface(s.points, np.vstack([s.faces, [[0, 0, 1], [2, 3, 3]]]))
    out, n = remove_degenerate_faces(bad)
    assert n == 2 and out.n_faces == s.n_faces and closed_ok(out)


def test_remove_degenerate_cap_keeps_surface_closed():
    s = sphere(2)
    # Insert vertex m at the middle of an edge (a, b) of face f, and split only
    # one of the two faces using that edge: the other side gets a zero-area cap.
    f0 = s.faces[0]
    a, b, c = (int(v) for v in f0)
    m = s.n_points
    pts = np.vstack([s.points, 0.5 * (s.points[a] + s.points[b])])
    faces = [f for i, f in enumerate(s.faces.tolist()) if i != 0]
    # [a, b, m] is a zero-area cap lying along the neighbour's edge (b, a).
    faces += [[a, m, c], [m, b, c], [a, b, m]]
    bad = TriSurface(pts, np.asarray(faces))
    assert bad.is_watertight  # closed, but with a zero-area triangle
    out, n = remove_degenerate_faces(bad)
    assert n == 1
    assert closed_ok(out)
    assert out.signed_volume == pytest.approx(s.signed_volume, rel=1e-9)
    assert triangle_areas_positive(out)


def test_remove_duplicate_faces_same_and_opposite_winding():
    s = sphere(1)
    same = TriSurface(s.points, np.vstack([s.faces, s.faces[:3]]))
    out, n = remove_duplicate_faces(same)
    assert n == 3 and closed_ok(out)
    # A face with its reversed copy next to it cancels out (a double wall).
    f = s.faces[5]
    extra = TriSurface(s.points, np.vstack([s.faces, [f[::-1]]]))
    out, n = remove_duplicate_faces(extra)
    assert n == 2 and out.n_faces == s.n_faces - 1
    # Net winding decides: f, reversed, reversed -> one reversed copy stays.
    out, n = remove_duplicate_faces(TriSurface(s.points, np.vstack([s.faces, [f[::-1]] * 2])))
    assert n == 2 and out.n_faces == s.n_faces


def test_remove_small_components_keeps_large_pieces():
    left = sphere(2, 0.05, (-0.1, 0, 0))
    right = sphere(2, 0.045, (0.1, 0, 0))       # two kidneys: both kept
    specks = [sphere(0, 0.002, (0, 0.2 + 0.01 * i, 0)) for i in range(4)]
    parts = [left, right] + specks
    pts, faces, off = [], [], 0
    for p in parts:
        pts.append(p.points)
        faces.append(p.faces + off)
        off += p.n_points
    s = TriSurface(np.vstack(pts), np.vstack(faces))
    out, n = remove_small_components(s)
    assert n == 4
    assert out.n_faces == left.n_faces + right.n_faces
    assert closed_ok(out)


def test_fix_nonmanifold_edge_then_fill():
    s = sphere(2)
    # A fin: one extra triangle on an existing edge makes that edge non-manifold.
    a, b = (int(v) for v in s.faces[0][:2])
    fin = TriSurface(np.vstack([s.points, [[0.0, 0.0, 0.2]]]),
                     np.vstack([s.faces, [[a, b, s.n_points]]]))
    assert not fin.is_edge_manifold
    out, n = fix_nonmanifold_edges(fin)
    assert out.is_edge_manifold and n == 3
    out, _ = orient_consistently(out)
    out, holes = fill_holes(out)
    assert holes == 1 and closed_ok(out)


def test_orient_consistently_and_outward():
    s = sphere(2)
    rng = np.random.default_rng(0)
    faces = s.faces.copy()
    flip = rng.random(len(faces)) < 0.3
    faces[flip] = faces[flip][:, ::-1]
    mixed = TriSurface(s.points, faces)
    out, n = orient_consistently(mixed)
    e, c = out.edge_face_counts
    # Consistent: every directed edge appears once.
    he = out.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    assert len(np.unique(he, axis=0)) == len(he)
    out2, _ = orient_outward(mixed)
    assert closed_ok(out2) and np.allclose(out2.signed_volume, s.signed_volume)
    inverted = TriSurface(s.points, s.faces[:, ::-1])
    out3, n3 = orient_outward(inverted)
    assert n3 == s.n_faces and out3.signed_volume > 0


def test_orient_outward_nested_cavity_points_inward():
    outer = sphere(2, 0.05)
    inner = sphere(1, 0.02)
    s = TriSurface(np.vstack([outer.points, inner.points]),
                   np.vstack([outer.faces[:, ::-1], inner.faces + outer.n_points]))
    out, _ = orient_outward(s)
    # Outer shell outward, cavity shell pointing into the cavity: net volume = shell volume.
    assert out.signed_volume == pytest.approx(outer.signed_volume - inner.signed_volume, rel=1e-9)


def test_non_orientable_raises():
    # A Moebius strip.
    n = 12
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = []
    for ti in t:
        for w in (-1, 1):
            r = 1 + 0.3 * w * np.cos(ti / 2)
            pts.append([r * np.cos(ti), r * np.sin(ti), 0.3 * w * np.sin(ti / 2)])
    pts = np.asarray(pts)
    faces = []
    for i in range(n):
        a, b = 2 * i, 2 * i + 1
        if i < n - 1:
            c, d = 2 * i + 2, 2 * i + 3
        else:
            c, d = 1, 0  # the half twist
        faces += [[a, b, d], [a, d, c]]
    with pytest.raises(MeshError, match="not orientable"):
        orient_consistently(TriSurface(pts, np.asarray(faces)))


@pytest.mark.parametrize("cut", [0.95, 0.6, 0.0, -0.6])
def test_fill_holes_of_any_size(cut):
    s = sphere(3)
    c = s.points[s.faces].mean(axis=1)
    keep = c[:, 2] < cut * 0.05
    opened = TriSurface(s.points, s.faces[keep])
    loops = boundary_loops(opened)
    assert len(loops) == 1
    out, n = fill_holes(opened, max_hole_fraction=None)
    assert n == 1 and closed_ok(out)
    assert not len(find_self_intersections(out))


def test_fill_several_holes_and_single_triangle_hole():
    s = sphere(3)
    c = s.points[s.faces].mean(axis=1)
    keep = (np.abs(c[:, 0]) < 0.04) & (np.abs(c[:, 1]) < 0.045)
    keep[np.flatnonzero(keep)[10]] = False  # plus a one-triangle hole
    opened = TriSurface(s.points, s.faces[keep])
    out, n = fill_holes(opened)
    assert n == len(boundary_loops(opened)) >= 3
    assert closed_ok(out)
    # The patches are membranes across the cuts: less volume than the sphere, but most of it.
    assert 0.5 * s.signed_volume < out.signed_volume < s.signed_volume


def test_fill_refuses_open_by_nature():
    s = sphere(3)
    c = s.points[s.faces].mean(axis=1)
    bowl = TriSurface(s.points, s.faces[c[:, 2] < -0.03])  # a shallow cap: hole >> surface
    with pytest.raises(MeshError, match="open by nature"):
        fill_holes(bowl)
    out, n = fill_holes(bowl, max_hole_fraction=None)
    assert closed_ok(out)


def test_self_intersections_found_and_removed():
    a = sphere(3, 0.05)
    b = sphere(3, 0.05, (0.061, 0.007, 0.003))  # generic position (no mirror symmetry)
    both = TriSurface(np.vstack([a.points, b.points]), np.vstack([a.faces, b.faces + a.n_points]))
    pairs = find_self_intersections(both)
    assert len(pairs) > 10
    assert len(find_self_intersections(a)) == 0
    # A dented sphere: push a patch of vertices through the opposite side.
    s = sphere(3)
    pts = s.points.copy()
    sel = pts[:, 2] > 0.045
    pts[sel] += [0.0031, 0.0017, -0.11]  # generic position
    dented = TriSurface(pts, s.faces)
    assert len(find_self_intersections(dented)) > 0
    out, found, left = remove_self_intersections(dented)
    assert found > 0 and left == 0
    assert out.is_watertight and out.is_edge_manifold
    assert len(find_self_intersections(out)) == 0


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 0.4))
def test_random_damage_is_repaired(seed, frac):
    """Property: a sphere with random faces removed, flipped and duplicated repairs closed."""
    s = sphere(2)
    rng = np.random.default_rng(seed)
    faces = s.faces.copy()
    flip = rng.random(len(faces)) < frac
    faces[flip] = faces[flip][:, ::-1]
    drop = rng.random(len(faces)) < frac / 4
    dup = faces[rng.random(len(faces)) < 0.05]
    damaged = TriSurface(s.points, np.vstack([faces[~drop], dup]))
    out, rep = repair_surface(damaged, max_hole_fraction=None)
    assert closed_ok(out)
    assert rep.watertight and rep.edge_manifold
    assert 0.5 * s.signed_volume < out.signed_volume < 1.05 * s.signed_volume


# --------------------------------------------------------------------------- whole repair

def test_repair_clean_surface_changes_nothing():
    s = sphere(3)
    out, rep = repair_surface(s)
    assert not rep.changed
    assert np.array_equal(out.faces, s.faces)
    assert "nothing to repair" in rep.summary()


def test_repair_report_counts_and_dict():
    s = sphere(3)
    c = s.points[s.faces].mean(axis=1)
    damaged = TriSurface(s.points, np.vstack([s.faces[c[:, 2] < 0.04][:, ::-1], [[0, 0, 1]]]))
    out, rep = repair_surface(damaged)
    assert isinstance(rep, RepairReport)
    assert rep.holes_filled == 1 and rep.degenerate_faces_removed == 1
    assert rep.faces_flipped_outward > 0
    d = rep.as_dict()
    assert d["watertight"] and d["changed"] and d["faces_out"] == out.n_faces
    assert "holes filled" in rep.summary()


def test_repair_empty_and_nan_raise():
    with pytest.raises(MeshError, match="no triangles"):
        repair_surface(TriSurface(np.zeros((0, 3)), np.zeros((0, 3), int)))
    s = sphere(1)
    pts = s.points.copy()
    pts[0, 0] = np.nan
    with pytest.raises(MeshError, match="NaN"):
        repair_surface(TriSurface(pts, s.faces))


def test_repair_noisy_phantom_removes_specks():
    img = liver_phantom(shape=64, spacing_mm=3.2, specks=10, seed=2)
    surf = extract_surface(img)
    out, rep = repair_surface(surf, fix_self_intersections=False)
    assert rep.components_removed >= 5 and rep.components_out == 1
    assert closed_ok(out)
    clean = extract_surface(liver_phantom(shape=64, spacing_mm=3.2, seed=2))
    assert out.signed_volume == pytest.approx(clean.signed_volume, rel=0.005)


def test_repair_phantom_outputs_clean():
    for img in (kidney_phantom(), liver_phantom(shape=64, spacing_mm=3.2)):
        surf = extract_surface(img)
        out, rep = repair_surface(surf)
        assert not rep.changed and closed_ok(out)
        assert rep.nonmanifold_vertices == 0


def test_nonmanifold_vertex_detected():
    a = sphere(1, 0.05)
    b = sphere(1, 0.05)
    # Second sphere touching the first at one shared vertex: a bow-tie vertex.
    top = int(np.argmax(a.points[:, 2]))
    bottom = int(np.argmin(b.points[:, 2]))
    shift = a.points[top] - b.points[bottom]
    pts = np.vstack([a.points, b.points + shift])
    faces_b = b.faces + a.n_points
    faces_b[faces_b == bottom + a.n_points] = top
    s = TriSurface(pts, np.vstack([a.faces, faces_b]))
    assert s.is_watertight and s.is_edge_manifold
    assert nonmanifold_vertices(s).tolist() == [top]
    out, n = fix_nonmanifold_vertices(s)
    assert n == 1 and len(boundary_loops(out)) == 2
    fixed, rep = repair_surface(s)
    assert closed_ok(fixed) and rep.nonmanifold_vertices_removed == 1
    assert len(nonmanifold_vertices(fixed)) == 0 and rep.components_out == 2


# --------------------------------------------------------------------------- real data

#: Units of each real file (SOURCES.md: the SOFA liver/heart are in unstated
#: "scene units", read here as cm/mm so they are organ-sized; the skull is in m).
REAL_UNITS = {"sofa_skull.vtp": "m", "sofa_liver-smooth.obj": "cm"}


def _read(path):
    from organsim.io import read_surface
    return read_surface(path, units=REAL_UNITS.get(path.name, "mm"))


REAL_CLOSABLE = {
    # file: what it needs
    "msml_LiverSurface.stl": "nothing",
    "sofa_liver-smooth.obj": "self-intersections",
    "sofa_liver_surface.vtk": "specks, inward normals",
    "converted/sofa_coeur1.obj": "inward normals",
    "sofa_coeur1.trian": "inward normals",
    "converted/nilearn_fsaverage5_pial_left.ply": "nothing",
    "nilearn_fsaverage5_pial_left.gii.gz": "nothing",
    "sofa_skull.vtp": "duplicate faces, holes, self-intersections",
}


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REAL_CLOSABLE))
def test_real_surface_repairs_closed(name):
    surf = _read(organ_file(name))
    out, rep = repair_surface(surf)
    assert closed_ok(out), rep.summary()
    assert rep.self_intersections_remaining == 0
    assert len(find_self_intersections(out)) == 0
    expected = REAL_CLOSABLE[name]
    if "inward" in expected:
        assert rep.faces_flipped_outward > 0
    if "specks" in expected:
        assert rep.components_removed > 0
    if "holes" in expected:
        assert rep.holes_filled > 0
    assert rep.nonmanifold_vertices == 0
    if expected == "nothing":
        assert not rep.changed


@pytest.mark.realdata
def test_real_mitral_valve_is_refused_clearly():
    surf = _read(organ_file("msml_MitralValve_P0067_fineMesh.vtp"))
    with pytest.raises(MeshError, match="open by nature"):
        repair_surface(surf)
