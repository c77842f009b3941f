"""The meshing gate refuses a folded mesh (positive volumes, overlapping tets) and meshes again."""

from __future__ import annotations

import pytest

from organsim import phantoms
from organsim.errors import MeshError
from organsim.mesh.pipeline import mesh_image
from organsim.mesh.tetmesh import TetMesh
from organsim.mesh.tetrahedralize import quality_gate
from organsim.mesh.validity import solid_report
from tests.conftest import organ_file


def assert_solid(mesh):
    r = solid_report(mesh)
    assert r["n_folded_faces"] == 0, r
    assert r["n_nonmanifold_boundary_edges"] == 0 and r["n_pinched_vertices"] == 0, r
    assert abs(r["volume_excess_fraction"]) < 1e-9, r


def test_the_gate_refuses_a_fold_whose_volumes_are_all_positive():
    import numpy as np

    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, 1.0], [0.3, 0.3, 0.5]], float) * 0.01
    folded = TetMesh(pts, np.array([[0, 1, 2, 3], [0, 1, 2, 4]]))
    with pytest.raises(MeshError, match="folds over itself"):
        quality_gate(folded, min_dihedral_deg=0.0, max_dihedral_deg=180.0)


# edge lengths at which the lattice folded on these phantoms (found by scanning 4-15 mm)
@pytest.mark.parametrize("phantom, edge", [("liver_phantom", 0.008), ("kidney_phantom", 0.012)])
def test_a_lattice_that_folds_is_meshed_again_a_few_percent_off(phantom, edge):
    img = getattr(phantoms, phantom)(seed=0)
    mesh, report = mesh_image(img, edge_length=edge)
    assert_solid(mesh)
    assert any("folded" in n for n in report.notes)
    assert report.edge_length_m != edge


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("edge", [0.006, 0.008, 0.012])
def test_real_segmentations_mesh_into_valid_solids(edge):
    from organsim.io import read_image

    img = read_image(organ_file("kits19_case_00002_segmentation.nii.gz"))
    mesh, _ = mesh_image(img, edge_length=edge)
    assert_solid(mesh)


@pytest.mark.parametrize("phantom", ["liver_phantom", "kidney_phantom", "block_phantom"])
@pytest.mark.parametrize("edge", [0.006, 0.01, 0.015])
def test_phantoms_mesh_into_valid_solids(phantom, edge):
    img = getattr(phantoms, phantom)(**({} if phantom == "block_phantom" else {"seed": 0}))
    mesh, _ = mesh_image(img, edge_length=edge)
    assert_solid(mesh)
