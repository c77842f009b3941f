"""Resection margins measured exactly (over the whole resection surface) and guaranteed."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.mesh.shipped import load_shipped
from organsim.surgery.resection import point_triangle_distance, resect, surface_gap


def brute_gap(xa, fa, xb, fb, n=12):
    """Smallest distance from dense samples of set A's faces to every face of B (an upper bound)."""
    u, v = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    keep = (u + v) <= 1
    u, v = u[keep], v[keep]
    tri = xa[fa]
    pts = (tri[:, 0, None] + u[None, :, None] * (tri[:, 1] - tri[:, 0])[:, None]
           + v[None, :, None] * (tri[:, 2] - tri[:, 0])[:, None]).reshape(-1, 3)
    tb = xb[fb]
    best = np.inf
    for chunk in np.array_split(pts, max(1, len(pts) // 2000)):
        d = point_triangle_distance(np.repeat(chunk, len(tb), axis=0), np.tile(tb, (len(chunk), 1, 1)))
        best = min(best, float(d.min()))
    return best


def test_the_gap_between_triangle_sets_is_exact_including_edge_to_edge():
    rng = np.random.default_rng(0)
    for _ in range(20):
        # separated by the plane x = 1.2: the sets cannot intersect
        xa = rng.uniform(0.0, 1.0, size=(6, 3))
        xb = rng.uniform(0.0, 1.0, size=(6, 3)) + [1.4, 0.0, 0.0]
        fa, fb = np.array([[0, 1, 2], [3, 4, 5]]), np.array([[0, 1, 2], [3, 4, 5]])
        g = surface_gap(xa, fa, xb, fb)
        assert g <= brute_gap(xa, fa, xb, fb, n=40) + 1e-12
        assert g >= brute_gap(xa, fa, xb, fb, n=40) - 0.05        # dense sampling comes close
    # two crossed edges far from every vertex-face pair: only edge-edge sees 1.0
    xa = np.array([[-5.0, 0, 0], [5.0, 0, 0], [0.0, 0, -9.0]])
    xb = np.array([[0.0, -5, 1.0], [0.0, 5, 1.0], [0.0, 0, 10.0]])
    f = np.array([[0, 1, 2]])
    assert surface_gap(xa, f, xb, f) == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("margin_mm", [5.0, 10.0])
def test_no_point_of_the_resection_surface_is_closer_to_the_tumour_than_the_margin(margin_mm):
    liver = load_shipped("liver")
    r = resect(liver, "tumour", margin_m=margin_mm * 1e-3)
    assert r.margin_achieved_m >= margin_mm * 1e-3
    # the tumour boundary and the resection surface, sampled densely: nothing closer than reported
    rid = [k for k, v in liver.region_names.items() if v == "tumour"][0]
    from organsim.mesh.tetmesh import TET_FACES

    rf = liver.tets[liver.region_ids == rid][:, TET_FACES].reshape(-1, 3)
    key = np.sort(rf, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    tumour_faces = rf[cnt[inv.ravel()] == 1]
    res_faces = r.mesh.boundary_faces[r.cut_face_mask]
    dense = brute_gap(r.mesh.points, res_faces, liver.points, tumour_faces, n=6)
    assert dense >= r.margin_achieved_m - 1e-9
    assert r.margin_achieved_m >= margin_mm * 1e-3


def test_the_specimen_reports_how_much_more_it_holds_than_the_margin_needs():
    liver = load_shipped("liver")
    r = resect(liver, "tumour", margin_m=0.005)
    s = r.summary()
    assert 0 < s["needed_cm3"] < s["removed_cm3"]            # the margin is kept: at least what it needs
    assert s["excess_fraction"] == pytest.approx(s["removed_cm3"] / s["needed_cm3"] - 1.0)
    assert s["margin_measured_to"] == "the meshed region"
    tumour = liver.volumes[liver.region_ids == [k for k, v in liver.region_names.items() if v == "tumour"][0]]
    assert s["needed_cm3"] > tumour.sum() * 1e6              # the tumour plus a 5 mm shell
