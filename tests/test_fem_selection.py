"""Node and face selectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from organsim.errors import SimulationError
from organsim.fem import selection as S
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh


@pytest.fixture(scope="module")
def mesh():
    m = box_tet_mesh((5, 4, 3), 0.01)
    rid = np.where(m.points[m.tets].mean(axis=1)[:, 0] < 0.015, 1, 2)
    return TetMesh(m.points, m.tets, rid, {1: "parenchyma", 2: "ligament"})


def test_box(mesh):
    sel = S.box(mesh, (-1, -1, -1), (1e-9, 1, 1))
    assert sel.dtype == np.int64 and np.all(np.diff(sel) > 0)
    assert np.all(mesh.points[sel, 0] == 0) and len(sel) == 12


def test_box_empty_message(mesh):
    with pytest.raises(SimulationError, match="selects no node; the mesh spans"):
        S.box(mesh, (1, 1, 1), (2, 2, 2))
    with pytest.raises(SimulationError, match="exceeds"):
        S.box(mesh, (1, 1, 1), (0, 0, 0))


def test_sphere(mesh):
    sel = S.sphere(mesh, (0.02, 0.01, 0.01), 0.0101)
    d = np.linalg.norm(mesh.points - [0.02, 0.01, 0.01], axis=1)
    assert set(sel.tolist()) == set(np.flatnonzero(d <= 0.0101).tolist())
    with pytest.raises(SimulationError, match="selects no node"):
        S.sphere(mesh, (1, 1, 1), 0.01)
    with pytest.raises(SimulationError):
        S.sphere(mesh, (0, 0, 0), -1)


def test_region(mesh):
    lig = S.region(mesh, "ligament")
    assert np.array_equal(lig, np.unique(mesh.tets[mesh.region_ids == 2]))
    assert np.array_equal(S.region(mesh, 2), lig)
    with pytest.raises(SimulationError, match="no region named"):
        S.region(mesh, "spleen")
    with pytest.raises(SimulationError, match="region id 7"):
        S.region(mesh, 7)


def test_ids(mesh):
    assert S.ids(mesh, [5, 1, 5]).tolist() == [1, 5]
    assert S.ids(mesh, np.array([2.0])).tolist() == [2]
    with pytest.raises(SimulationError, match="outside"):
        S.ids(mesh, [mesh.n_points])
    with pytest.raises(SimulationError, match="integers"):
        S.ids(mesh, [1.5])
    with pytest.raises(SimulationError, match="empty"):
        S.ids(mesh, [])


def test_surface_nodes(mesh):
    sn = S.surface_nodes(mesh)
    p = mesh.points
    on = np.any((p <= 1e-12) | (p >= p.max(axis=0) - 1e-12), axis=1)
    assert np.array_equal(sn, np.flatnonzero(on))


def test_surface_patch(mesh):
    top = S.surface_patch(mesh, normal=(0, 0, 1), angle_deg=5)
    cen = mesh.points[mesh.boundary_faces[top]].mean(axis=1)
    assert np.allclose(cen[:, 2], 0.02) and len(top) == 2 * 4 * 3
    # combined: top faces near one corner
    patch = S.surface_patch(mesh, normal=(0, 0, 1), center=(0, 0, 0.02), radius=0.012)
    assert 0 < len(patch) < len(top) and set(patch) <= set(top)
    boxed = S.surface_patch(mesh, lo=(-1, -1, -1), hi=(1e-9, 1, 1))
    assert len(boxed) == 2 * 3 * 2
    with pytest.raises(SimulationError, match="needs a criterion"):
        S.surface_patch(mesh)
    with pytest.raises(SimulationError, match="selects no boundary face"):
        S.surface_patch(mesh, center=(5, 5, 5), radius=0.1)


@settings(max_examples=30, deadline=None)
@given(st.floats(-0.01, 0.05), st.floats(-0.01, 0.05), st.floats(0.0, 0.03))
def test_sphere_matches_brute_force(cx, cy, r):
    m = box_tet_mesh((5, 4, 3), 0.01)
    c = np.array([cx, cy, 0.01])
    d = np.linalg.norm(m.points - c, axis=1)
    expected = np.flatnonzero(d <= r)
    if expected.size == 0:
        with pytest.raises(SimulationError):
            S.sphere(m, c, r)
    else:
        assert set(S.sphere(m, c, r).tolist()) >= set(expected.tolist())
