"""Surface smoothing, decimation and remeshing to a target edge length."""

from __future__ import annotations

import numpy as np
import pytest
import pyvista as pv

from organsim.errors import MeshError
from organsim.mesh.extract import extract_surface
from organsim.mesh.remesh import (decimate_surface, edge_length_stats, remesh_surface,
                                  smooth_surface, triangle_quality)
from organsim.mesh.repair import find_self_intersections
from organsim.mesh.surface import TriSurface
from organsim.phantoms import kidney_phantom


def uv_sphere(res=60, radius=0.05):
    return TriSurface.from_pyvista(pv.Sphere(radius=radius, theta_resolution=res, phi_resolution=res))


def _max_normal_jump(s: TriSurface) -> float:
    """Mean angle (deg) between normals of faces sharing an edge: a roughness measure."""
    f = s.faces
    n = s.face_normals
    e = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    fid = np.repeat(np.arange(len(f)), 3)
    o = np.lexsort(e.T[::-1])
    e, fid = e[o], fid[o]
    same = np.all(e[1:] == e[:-1], axis=1)
    a, b = fid[:-1][same], fid[1:][same]
    return float(np.degrees(np.arccos(np.clip((n[a] * n[b]).sum(1), -1, 1))).mean())


def test_smooth_keeps_volume_and_connectivity_and_smooths():
    img = kidney_phantom()
    stair = extract_surface(img, smoothing=0)
    out = smooth_surface(stair, iterations=30, pass_band=0.01)
    assert np.array_equal(out.faces, stair.faces)
    assert out.signed_volume == pytest.approx(stair.signed_volume, rel=1e-6)
    assert _max_normal_jump(out) < 0.3 * _max_normal_jump(stair)
    with pytest.raises(MeshError, match="pass_band"):
        smooth_surface(stair, pass_band=3.0)


@pytest.mark.parametrize("h", [0.004, 0.008, 0.015])
def test_remesh_sphere_to_target_edge(h):
    s = uv_sphere(80)  # poles with slivers: a poor input
    out = remesh_surface(s, edge_length=h)
    st = edge_length_stats(out)
    assert st["mean"] == pytest.approx(h, rel=0.15)
    assert out.is_watertight and out.is_edge_manifold
    assert out.signed_volume == pytest.approx(s.signed_volume, rel=1e-3)
    assert triangle_quality(out)["min_angle_deg"] > 10
    assert len(find_self_intersections(out)) == 0
    # Vertices stay on the sphere.
    r = np.linalg.norm(out.points, axis=1)
    assert np.all(np.abs(r - 0.05) < 0.1 * h + 1e-3)


def test_remesh_refines_coarse_input():
    s = uv_sphere(12)
    h0 = edge_length_stats(s)["mean"]
    out = remesh_surface(s, edge_length=h0 / 3)
    assert edge_length_stats(out)["mean"] == pytest.approx(h0 / 3, rel=0.2)
    assert out.is_watertight and out.signed_volume == pytest.approx(s.signed_volume, rel=1e-3)


def test_remesh_improves_triangle_quality_over_plain_decimation():
    s = extract_surface(kidney_phantom())
    plain = remesh_surface(s, edge_length=0.005, improve_iterations=0)
    better = remesh_surface(s, edge_length=0.005)
    assert triangle_quality(better)["p5_min_angle_deg"] > triangle_quality(plain)["p5_min_angle_deg"]
    assert triangle_quality(better)["min_angle_deg"] > 10


def test_remesh_and_decimate_errors_and_counts():
    s = uv_sphere(40)
    with pytest.raises(MeshError, match="positive"):
        remesh_surface(s, edge_length=-1.0)
    opened = TriSurface(s.points, s.faces[5:])
    with pytest.raises(MeshError, match="closed"):
        remesh_surface(opened, edge_length=0.01)
    d = decimate_surface(s, target_faces=400)
    assert 300 <= d.n_faces <= 440 and d.is_watertight
    with pytest.raises(MeshError, match="at least 4"):
        decimate_surface(s, target_faces=2)
