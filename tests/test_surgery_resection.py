"""Resection along a margin level set: volumes, margins, validity, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organsim.errors import MeshError
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh
from organsim.surgery.cutting import validate_mesh
from organsim.surgery.resection import point_triangle_distance, resect

H = 0.01


def _organ(center=(0.04, 0.04, 0.04), radius=0.012) -> TetMesh:
    m = box_tet_mesh((9, 9, 9), H)
    c = m.points[m.tets].mean(axis=1)
    rid = np.where(np.linalg.norm(c - np.asarray(center), axis=1) < radius, 2, 1)
    return TetMesh(m.points, m.tets, rid, {1: "parenchyma", 2: "tumour"})


ORGAN = _organ()


def test_point_triangle_distance_regions():
    tri = np.repeat(np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]]), 5, axis=0)
    pts = np.array([[0.2, 0.2, 1.0], [-1, -1, 0.0], [2, 0, 0.0], [0.5, -1, 0.0], [1, 1, 0.0]])
    d = point_triangle_distance(pts, tri)
    np.testing.assert_allclose(d, [1.0, np.sqrt(2), 1.0, 1.0, np.sqrt(0.5)], atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(st.floats(0.002, 0.02), st.tuples(*[st.floats(0.03, 0.05)] * 3))
def test_resection_conserves_volume_and_keeps_the_margin(margin, center):
    organ = _organ(center)
    if not np.any(organ.region_ids == 2):
        return
    r = resect(organ, "tumour", margin_m=margin)
    assert validate_mesh(r.mesh)["ok"]
    assert r.volume_error < 1e-9
    assert r.mesh.region_volumes().get("tumour", 0.0) == 0.0
    assert r.remaining_volume_m3 + r.removed_volume_m3 == pytest.approx(organ.volume, rel=1e-9)
    assert r.remaining_fraction == pytest.approx(r.remaining_volume_m3 / organ.volume)
    # the achieved margin is measured on the resection surface and meets the request
    assert r.margin_achieved_m >= margin * (1 - 1e-6)
    assert r.removed_volume_m3 >= organ.region_volumes()["tumour"] * (1 - 1e-9)
    # region ids are carried from the parents
    np.testing.assert_array_equal(r.mesh.region_ids, organ.region_ids[r.tet_parent])
    np.testing.assert_allclose(r.transfer @ organ.points, r.mesh.points, atol=1e-12)


def test_without_ensure_margin_the_cut_follows_the_level_set_within_snapping():
    r = resect(ORGAN, "tumour", margin_m=0.01, ensure_margin=False)
    assert validate_mesh(r.mesh)["ok"]
    assert 0.01 - 0.5 * H < r.margin_achieved_m <= r.margin_mean_m
    assert abs(r.margin_mean_m - 0.01) < 0.3 * H


def test_larger_margin_removes_more():
    vols = [resect(ORGAN, "tumour", margin_m=m).removed_volume_m3 for m in (0.0, 0.005, 0.01)]
    assert vols[0] == pytest.approx(ORGAN.region_volumes()["tumour"])
    assert vols[0] < vols[1] < vols[2]


def test_resection_surface_is_tagged():
    r = resect(ORGAN, "tumour", margin_m=0.008)
    from organsim.surgery.cutting import surface_with_cut_tags

    s = surface_with_cut_tags(r.mesh, r.cut_face_keys)
    assert s.face_labels.sum() > 0
    assert s.is_watertight                               # a closed cavity plus the outer skin


def test_resection_errors():
    with pytest.raises(MeshError, match="no region named"):
        resect(ORGAN, "spleen", margin_m=0.01)
    with pytest.raises(MeshError, match="margin_m"):
        resect(ORGAN, "tumour", margin_m=-1.0)
    with pytest.raises(MeshError, match="whole organ"):
        resect(ORGAN, "tumour", margin_m=0.5)


@pytest.mark.slow
def test_shipped_liver_tumour_resection():
    from organsim.mesh.shipped import load_shipped

    liver = load_shipped("liver")
    r = resect(liver, "tumour", margin_m=0.01)
    assert validate_mesh(r.mesh)["ok"]
    assert r.volume_error < 1e-9
    assert 0.8 < r.remaining_fraction < 1.0
    assert r.margin_achieved_m >= 0.01 * (1 - 1e-6)
    assert "tumour" not in {k for k, v in r.mesh.region_volumes().items() if v > 0}
