"""Every real organ file in ../shared/data/organs through `organsim mesh` (skips where absent).

What each file needs (also in the tet engineer's report):

=========================================  =====  ==========================================
file                                       units  what it needs
=========================================  =====  ==========================================
kits19_case_00002_segmentation.nii.gz      (img)  two kidneys (label 1) + tumour (label 2);
                                                  two separate pieces, both kept
sofa_liver-smooth.obj                      cm     "scene units"; cm gives a 64 mm liver;
                                                  repair removes a few self-intersections
msml_LiverSurface.stl                      mm     clean already
sofa_coeur1.trian                          mm     "scene units" (39 across); normals point
                                                  inward: repair flips them
nilearn_fsaverage5_pial_left.gii.gz        mm     clean; deep sulci need the quality gate's
                                                  interior node moves
sofa_skull.vtp                             m      the defect mesh: duplicate faces, 3 holes,
                                                  self-intersections: repair closes it
msml_Liver5Low_tet.vtk (volume)            mm     re-meshed from its boundary (genus 3)
sofa_liver.msh (volume, Gmsh v1)           cm     re-meshed from its boundary
msml_MitralValve_P0067_fineMesh.vtp        mm     open leaflets by nature: cannot honestly be
                                                  closed (a clear error pointing to --thickness);
                                                  meshed as a 2 mm leaflet shell with --thickness 2
=========================================  =====  ==========================================
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from organsim.cli import main
from tests.conftest import organ_file

pytestmark = pytest.mark.realdata

#: file, --units, --edge-length (mm), expected region count
CASES = [
    pytest.param("kits19_case_00002_segmentation.nii.gz", "mm", 10, 2, marks=pytest.mark.slow),
    pytest.param("sofa_liver-smooth.obj", "cm", 4, 1, marks=pytest.mark.slow),
    pytest.param("msml_LiverSurface.stl", "mm", 14, 1, marks=pytest.mark.slow),
    pytest.param("sofa_coeur1.trian", "mm", 3, 1, marks=pytest.mark.slow),
    pytest.param("nilearn_fsaverage5_pial_left.gii.gz", "mm", 9, 1, marks=pytest.mark.slow),
    pytest.param("sofa_skull.vtp", "m", 12, 1, marks=pytest.mark.slow),
    pytest.param("msml_Liver5Low_tet.vtk", "mm", 14, 1, marks=pytest.mark.slow),
    pytest.param("sofa_liver.msh", "cm", 5, 1, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name, units, edge_mm, n_regions", CASES)
def test_real_file_meshes_to_valid_tets(name, units, edge_mm, n_regions, tmp_path, capsys):
    from organsim.io import read_mesh

    src = organ_file(name)
    out = tmp_path / "out.vtu"
    rep = tmp_path / "report.json"
    rc = main(["mesh", str(src), "-o", str(out), "--units", units, "--edge-length", str(edge_mm),
               "--report-json", str(rep)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    mesh = read_mesh(out, units="m")
    q = mesh.quality()
    assert q["n_inverted"] == 0
    assert q["min_dihedral_deg"] >= 10.0 and q["max_dihedral_deg"] <= 170.0
    bf = mesh.boundary_faces
    e = np.sort(bf[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, c = np.unique(e, axis=0, return_counts=True)
    assert np.all(c == 2), "boundary must be closed and edge-manifold"
    d = json.loads(rep.read_text())
    assert abs(d["volume_error"]) <= 0.02, d["volume_error"]
    assert len(mesh.region_names) == n_regions
    assert "meshing report" in captured.out


def test_kits19_keeps_both_kidneys_and_tumour(tmp_path):
    from organsim.io import read_image
    from organsim.mesh.pipeline import drop_small_components, mesh_image

    img = read_image(organ_file("kits19_case_00002_segmentation.nii.gz"))
    mesh, rep = mesh_image(img, labels=[2], edge_length=6e-3)  # the tumour alone: fast
    assert abs(rep.volume_error) < 0.02
    # the tumour volume matches its voxels
    assert mesh.volume == pytest.approx(img.label_volume(2), rel=0.02)
    _, n_dropped = drop_small_components(mesh)
    assert n_dropped == 0


def test_mitral_valve_is_open_and_a_clear_error(tmp_path, capsys):
    src = organ_file("msml_MitralValve_P0067_fineMesh.vtp")
    out = tmp_path / "valve.vtu"
    rc = main(["mesh", str(src), "-o", str(out), "--units", "mm"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1
    assert "open" in err
    assert not out.exists()


def test_mitral_valve_meshes_as_a_leaflet_shell(tmp_path, capsys):
    src = organ_file("msml_MitralValve_P0067_fineMesh.vtp")
    out = tmp_path / "valve.vtu"
    report = tmp_path / "valve.json"
    rc = main(["mesh", str(src), "-o", str(out), "--units", "mm", "--thickness", "2",
               "--report-json", str(report)])
    capsys.readouterr()
    assert rc == 0
    rep = json.loads(report.read_text())
    from organsim.io import read_mesh

    mesh = read_mesh(out, units="m")
    q = mesh.quality()
    assert q["n_inverted"] == 0 and q["min_dihedral_deg"] >= 10.0
    # the shell of a ~2 mm leaflet: about thickness x leaflet area (both sides: half each)
    from organsim.io import read_surface

    area = read_surface(src, units="mm").area
    assert mesh.volume == pytest.approx(2e-3 * area, rel=0.15)
    assert any("shell" in n for n in rep.get("notes", []))
