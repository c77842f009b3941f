"""Nodal loads and lumped masses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from organsim.errors import SimulationError
from organsim.fem import loads as L
from organsim.mesh.generators import box_tet_mesh


def test_pressure_on_closed_surface_sums_to_zero():
    m = box_tet_mesh((4, 3, 3), 0.02)
    f = L.pressure_nodal_forces(m.points, m.boundary_faces, 100.0)
    assert np.allclose(f.sum(axis=0), 0, atol=1e-12)
    # moments also balance
    assert np.allclose(np.cross(m.points, f).sum(axis=0), 0, atol=1e-12)
    # the +x end is pushed along -x (inward)
    end = m.points[:, 0] == m.points[:, 0].max()
    assert np.all(f[end, 0] < 0)


def test_pressure_resultant_on_face():
    m = box_tet_mesh((4, 3, 3), 0.02)
    top = np.flatnonzero(m.points[m.boundary_faces].mean(axis=1)[:, 2] == m.points[:, 2].max())
    f = L.pressure_nodal_forces(m.points, m.boundary_faces[top], 250.0)
    area = 0.06 * 0.04
    assert f.sum(axis=0) == pytest.approx([0, 0, -250.0 * area])


def test_pressure_per_face_and_shape_errors():
    pts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    f = L.pressure_nodal_forces(pts, faces, np.array([3.0, 6.0]))
    assert f[:, 2].sum() == pytest.approx(-(3.0 + 6.0) * 0.5)
    with pytest.raises(SimulationError):
        L.pressure_nodal_forces(pts, faces, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(SimulationError):
        L.pressure_nodal_forces(pts, np.array([[0, 1, 9]]), 1.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_pressure_load_stiffness_matches_finite_difference(seed):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(5, 3))
    faces = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4]])
    p = rng.uniform(-5, 5, size=3)
    K = L.pressure_load_stiffness(pts, faces, p).toarray()
    h = 1e-6
    Kfd = np.zeros_like(K)
    for j in range(15):
        d = np.zeros(15)
        d[j] = h
        fp = L.pressure_nodal_forces(pts + d.reshape(5, 3), faces, p).ravel()
        fm = L.pressure_nodal_forces(pts - d.reshape(5, 3), faces, p).ravel()
        Kfd[:, j] = (fp - fm) / (2 * h)
    assert np.allclose(K, Kfd, atol=1e-6 * max(1, np.abs(K).max()))


def test_traction():
    m = box_tet_mesh((3, 3, 3), 0.1)
    f = L.traction_nodal_forces(m.points, m.boundary_faces, (0, 0, 10.0))
    area = 6 * 0.2 * 0.2
    assert f.sum(axis=0) == pytest.approx([0, 0, 10.0 * area])


def test_lumped_mass_and_gravity():
    m = box_tet_mesh((5, 4, 3), 0.01)
    M = L.lumped_mass(m.points, m.tets, 1000.0)
    assert M.sum() == pytest.approx(1000.0 * 0.04 * 0.03 * 0.02)
    assert np.all(M > 0)
    rho = np.where(np.arange(m.n_tets) % 2 == 0, 1000.0, 2000.0)
    assert L.lumped_mass(m.points, m.tets, rho).sum() == pytest.approx(np.dot(rho, m.volumes))
    g = L.gravity_forces(m.points, m.tets, 1000.0, gravity=(0, 0, -9.81))
    assert g.sum(axis=0) == pytest.approx([0, 0, -9.81 * M.sum()])
    with pytest.raises(SimulationError):
        L.lumped_mass(m.points, m.tets, -1.0)
    with pytest.raises(SimulationError):
        L.lumped_mass(m.points, m.tets[:, [1, 0, 2, 3]], 1000.0)
