"""Compiled stages of a cut increment: agreement with the NumPy they replace, and the Cutter's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TET_EDGES
from organsim.surgery import _blade_sweep, _sorted_keys
from organsim.surgery.cutting import Cutter, face_keys, swept_triangles

H = 0.01
BOX = box_tet_mesh((6, 6, 6), H)


def _keys(rng, n_nodes, k):
    return face_keys(rng.integers(0, n_nodes, (k, 3)))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 60), st.integers(0, 60))
def test_key_set_helpers_match_numpy(seed, k1, k2):
    rng = np.random.default_rng(seed)
    a = np.unique(_keys(rng, 30, k1))
    b = _keys(rng, 30, k2)
    assert np.array_equal(_sorted_keys.merge_keys(a, b), np.unique(np.concatenate([a, b])))
    assert np.array_equal(_sorted_keys.isin_sorted(b, a), np.isin(b, a))
    renum = np.where(rng.random(30) < 0.2, -1, 0)
    renum[renum == 0] = np.arange(np.count_nonzero(renum == 0))
    f = renum[np.column_stack([b % (1 << 21), (b >> 21) % (1 << 21), b >> 42])]
    ref = np.unique(face_keys(f[(f >= 0).all(axis=1)]))
    assert np.array_equal(_sorted_keys.remap_keys(b, renum), ref)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 5), st.booleans())
def test_swept_quads_are_the_non_degenerate_swept_triangles(seed, s, still):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.05, 0.05, (s, 3))
    b = a.copy() if still else a + rng.uniform(-0.01, 0.01, (s, 3))
    if not still:
        b[0] = a[0]                                    # one degenerate triangle
    tris = swept_triangles(a, b)
    area = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    assert np.array_equal(_blade_sweep.swept_quads(a, b, 1e-16), tris[area > 1e-16])


def test_sweep_edges_numbers_edges_as_numpy_unique():
    cx = BOX.points[BOX.tets].mean(axis=1)[:, 0]
    wg = BOX.tets[np.argsort(np.abs(cx - 0.0251), kind="stable")[:40]].astype(np.int64)   # around the blade
    forced = np.full((40, 6), -1, np.int64)
    tris = swept_triangles(np.array([[0.0251, -0.01, 0.06], [0.0251, -0.01, -0.01]]),
                           np.array([[0.0251, 0.06, 0.06], [0.0251, 0.06, -0.01]]))
    none = np.zeros(BOX.n_points, bool)
    ue, einv, fc, tpar, new_pt, on_cut, n_newly = _blade_sweep.sweep_edges(
        wg, forced, BOX.points, tris, 1e-9, 1e-10, none, np.zeros(0, np.int64), none, 0.25)
    we = np.sort(wg[:, TET_EDGES], axis=2).reshape(-1, 2)
    ukey, inv = np.unique(we[:, 0] * (1 << 21) + we[:, 1], return_inverse=True)
    assert np.array_equal(ue[:, 0] * (1 << 21) + ue[:, 1], ukey)
    assert np.array_equal(einv, inv.ravel())
    assert np.all(fc == -1) and new_pt.any()
    assert n_newly == np.count_nonzero(on_cut)


def test_unchanged_increment_result_builds_identity_maps_on_access():
    c = Cutter(BOX)
    blade = np.array([[0.021, -0.01, 0.052], [0.021, -0.01, 0.025]])
    r = c.advance(blade)
    assert not r.changed and r.mesh is BOX and r.n_tets_added == 0 and r.n_tets_split == 0
    assert isinstance(r.transfer, sp.csr_matrix) and r.transfer.shape == (BOX.n_points, BOX.n_points)
    assert (r.transfer != sp.identity(BOX.n_points)).nnz == 0
    assert np.array_equal(r.tet_parent, np.arange(BOX.n_tets))
    assert r.transfer is r.transfer                    # built once
    assert not r.cut_face_mask.any()
    with pytest.raises(AttributeError):
        r.changed = True


@pytest.mark.parametrize("front_snap", [0.0, 0.75])
def test_cutter_bookkeeping_stays_consistent_over_a_progressive_cut(front_snap):
    """Node valences kept across increments, tags sorted and unique, family records valid."""
    c = Cutter(BOX, front_snap=front_snap)
    blade = np.array([[0.0237, -0.01, 0.07], [0.0237, -0.01, 0.031]])    # tip inside the block
    changed = checked = 0
    for k in range(40):
        r = c.advance(blade + [0.0002 * k, 0.0015 * k, 0])
        changed += r.changed
        m = c.mesh
        if c._valence is not None and c._valence[0] is m:
            assert np.array_equal(c._valence[1], np.bincount(m.tets.ravel(), minlength=m.n_points))
            checked += 1
        keys = c.cut_face_keys
        assert np.all(np.diff(keys) > 0)
        assert len(c.on_cut) == m.n_points and len(c.tet_family) == m.n_tets
        fam = c.tet_family[c.tet_family >= 0]
        assert set(np.unique(fam)) == set(range(c.n_pending))
        assert np.all(c.fam_verts < m.n_points) and np.all(c.fam_epid < m.n_points)
    assert changed > 5 and checked >= changed - 1
    c.finish()
    assert c.blade is None
