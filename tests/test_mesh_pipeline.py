"""Meshing pipeline (image / surface / volume mesh to TetMesh + report) and the shipped organs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from organsim.errors import MeshError, UnitsError
from organsim.mesh import LabelImage, TetMesh, TriSurface
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.pipeline import MeshingReport, mesh_image, mesh_surface, mesh_volume
from organsim.mesh.shipped import load_shipped, shipped_names, shipped_path

REPO = Path(__file__).resolve().parents[1]


def _sphere_surface(radius=0.04, res=30):
    pv = pytest.importorskip("pyvista")
    return TriSurface.from_pyvista(pv.Sphere(radius=radius, theta_resolution=res,
                                             phi_resolution=res))


def test_mesh_image_liver_phantom_regions_volume_and_report():
    from organsim.phantoms import liver_phantom

    img = liver_phantom(shape=(64, 64, 64), spacing_mm=3.2)
    mesh, rep = mesh_image(img, edge_length=14e-3)
    assert isinstance(rep, MeshingReport)
    assert set(mesh.region_names.values()) == {"parenchyma", "tumour", "vessel", "ligament"}
    q = mesh.quality()
    assert q["n_inverted"] == 0 and q["min_dihedral_deg"] >= 10 and q["max_dihedral_deg"] <= 170
    assert abs(rep.volume_error) < 0.02
    assert rep.reference == "voxel volume"
    assert rep.n_tets == mesh.n_tets and rep.n_points == mesh.n_points
    assert set(rep.regions) == set(mesh.region_names.values())
    text = str(rep)
    for word in ("lattice", "tets", "dihedral", "voxel volume", "parenchyma", "timings"):
        assert word in text
    d = rep.to_dict()
    json.dumps(d)
    assert d["n_tets"] == mesh.n_tets and "volume_error" in d


def test_mesh_image_is_deterministic():
    from organsim.phantoms import kidney_phantom

    img = kidney_phantom(shape=(32, 32, 48), spacing_mm=3.0)
    a, _ = mesh_image(img, edge_length=10e-3)
    b, _ = mesh_image(img, edge_length=10e-3)
    assert np.array_equal(a.tets, b.tets) and np.array_equal(a.points, b.points)


def test_mesh_image_default_edge_length_and_label_selection():
    from organsim.phantoms import block_phantom

    img = block_phantom(size_mm=(60.0, 20.0, 10.0), spacing_mm=2.0)
    mesh, rep = mesh_image(img)
    assert rep.edge_length_m == pytest.approx(max(np.ptp(np.argwhere(img.labels > 0), 0) + 1)
                                              * 2e-3 / 25)
    assert abs(rep.volume_error) < 0.02


def test_mesh_image_bad_inputs():
    img = LabelImage(np.zeros((8, 8, 8), np.uint8), (1e-3,) * 3, (0, 0, 0))
    with pytest.raises(MeshError, match="no labelled voxel"):
        mesh_image(img)
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:6, 2:6, 2:6] = 1
    img = LabelImage(lab, (1e-3,) * 3, (0, 0, 0))
    with pytest.raises(MeshError, match=r"label\(s\) \[3\]"):
        mesh_image(img, labels=[3])
    with pytest.raises(MeshError, match="method"):
        mesh_image(img, method="delaunay")
    big = LabelImage(lab, (1.0,) * 3, (0, 0, 0))  # a 4 m cube: units mistake
    with pytest.raises(UnitsError, match="implausible"):
        mesh_image(big)


def test_mesh_surface_without_repair_sphere():
    s = _sphere_surface()
    mesh, rep = mesh_surface(s, edge_length=0.01, repair=False)
    assert rep.reference == "surface volume"
    assert abs(rep.volume_error) < 0.02
    assert mesh.quality()["min_dihedral_deg"] >= 10


def test_mesh_surface_with_repair_fixes_inward_normals():
    s = _sphere_surface(res=20)
    inward = TriSurface(s.points, s.faces[:, ::-1])
    mesh, rep = mesh_surface(inward, edge_length=0.012)
    assert rep.repair is not None
    assert "repair" in str(rep)
    assert abs(rep.volume_error) < 0.02


def test_mesh_surface_rejects_open_and_implausible():
    s = _sphere_surface(res=12)
    with pytest.raises(MeshError, match="not closed"):
        mesh_surface(TriSurface(s.points, s.faces[:-6]), repair=False)
    with pytest.raises(UnitsError):
        mesh_surface(TriSurface(s.points * 1000, s.faces), repair=False)
    with pytest.raises(MeshError, match="no triangles"):
        mesh_surface(TriSurface(np.zeros((0, 3)), np.zeros((0, 3), int)), repair=False)


def test_mesh_volume_remeshes_and_keeps_regions():
    box = box_tet_mesh((6, 6, 3), 0.01)
    cen = box.points[box.tets].mean(1)
    rid = np.where(cen[:, 0] < 0.025, 1, 2)
    src = TetMesh(box.points, box.tets, rid, {1: "left", 2: "right"})
    mesh, rep = mesh_volume(src, edge_length=0.008)
    assert set(mesh.region_names.values()) == {"left", "right"}
    assert rep.reference == "input mesh volume"
    assert abs(rep.volume_error) < 0.03
    assert mesh.quality()["min_dihedral_deg"] >= 10


# ------------------------------------------------------------------ shipped
@pytest.mark.parametrize("name", ["liver", "kidney", "block"])
def test_shipped_mesh_is_valid_small_and_in_metres(name):
    mesh = load_shipped(name)
    q = mesh.quality()
    assert q["n_inverted"] == 0 and q["min_dihedral_deg"] >= 10 and q["max_dihedral_deg"] <= 170
    extent = np.ptp(mesh.points, axis=0).max()
    assert 0.05 < extent < 0.3  # metres, organ-sized
    assert shipped_path(name).stat().st_size < 2_000_000
    bf = mesh.boundary_faces
    e = np.sort(bf[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, c = np.unique(e, axis=0, return_counts=True)
    assert np.all(c == 2)


def test_shipped_liver_regions_and_size():
    mesh = load_shipped("liver")
    assert sorted(mesh.region_names.values()) == ["ligament", "parenchyma", "tumour", "vessel"]
    assert 8_000 <= mesh.n_tets <= 12_000
    for rid in mesh.region_names:
        assert np.count_nonzero(mesh.region_ids == rid) > 20


def test_shipped_names_and_unknown():
    assert shipped_names() == ["block", "gauze", "kidney", "liver"]
    from organsim.errors import InputFileError

    with pytest.raises(InputFileError, match="no shipped mesh"):
        load_shipped("spleen")


@pytest.mark.slow
def test_shipped_meshes_are_reproduced_by_build_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("meshes_build", REPO / "meshes" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.main(["--check"]) == 0
