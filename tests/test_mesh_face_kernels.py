"""Boundary-face kernel against a plain NumPy reference (faces that occur once)."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.mesh._face_kernels import boundary_faces
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.shipped import load_shipped
from organsim.mesh.tetmesh import TET_FACES


def _reference(tets):
    """Faces in tet order, then local face order, kept when no other face has their ids."""
    tets = np.asarray(tets, dtype=np.int64).reshape(-1, 4)
    f = tets[:, TET_FACES].reshape(-1, 3)
    if len(f) == 0:
        return np.empty((0, 3), np.int64), np.empty(0, np.int64)
    _, inv, cnt = np.unique(np.sort(f, axis=1), axis=0, return_inverse=True, return_counts=True)
    once = cnt[inv.ravel()] == 1
    return f[once], (np.arange(len(f)) // 4)[once]


def _check(tets, n_points):
    tets = np.ascontiguousarray(tets, dtype=np.int64).reshape(-1, 4)
    faces, owner = boundary_faces(tets, n_points)
    ref_faces, ref_owner = _reference(tets)
    assert faces.dtype == np.int64 and owner.dtype == np.int64
    assert faces.shape == ref_faces.shape and owner.shape == ref_owner.shape
    assert np.array_equal(faces, ref_faces)
    assert np.array_equal(owner, ref_owner)
    return faces


@pytest.fixture(scope="module")
def liver():
    return load_shipped("liver")


def test_shipped_liver_and_sub_meshes(liver):
    t = np.asarray(liver.tets)
    assert len(_check(t, liver.n_points)) > 0
    rng = np.random.default_rng(1)
    # sub-meshes leave faces shared, once, and tets meeting along edges only
    _check(t[::2], liver.n_points)
    _check(t[1::3], liver.n_points)
    _check(t[rng.random(len(t)) < 0.4], liver.n_points)
    # every face twice or three times: no boundary
    assert len(_check(np.concatenate([t, t]), liver.n_points)) == 0
    _check(np.concatenate([t, t[::2], t[::5]]), liver.n_points)
    # vertex order within tets (either orientation) changes which faces are emitted as what
    perm = np.array([rng.permutation(4) for _ in range(len(t))])
    _check(np.take_along_axis(t, perm, axis=1), liver.n_points)


@pytest.mark.parametrize("shape", [(2, 2, 2), (5, 4, 3), (7, 5, 6)])
def test_box_meshes(shape):
    m = box_tet_mesh(shape, 0.01)
    faces = _check(m.tets, m.n_points)
    nx, ny, nz = (s - 1 for s in shape)
    assert len(faces) == 4 * (nx * ny + ny * nz + nx * nz)
    assert np.array_equal(faces, m.boundary_faces)


def test_unused_nodes_single_tet_and_empty(liver):
    t = np.asarray(liver.tets)
    _check(t[::4], liver.n_points + 100)
    _check(t + 50, liver.n_points + 100)
    assert np.array_equal(_check([[7, 3, 9, 1]], 20), [[3, 9, 1], [7, 1, 9], [7, 3, 1], [7, 9, 3]])
    faces, owner = boundary_faces(np.empty((0, 4), np.int64), 1)
    assert faces.shape == (0, 3) and owner.shape == (0,)
    assert faces.dtype == np.int64 and owner.dtype == np.int64
    _check(np.empty((0, 4), np.int64), 0)


def test_random_tets_with_repeated_ids():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(1, 10))
        _check(rng.integers(0, n, size=(int(rng.integers(0, 40)), 4)), n)
