"""Velocities across a topology change: mapped, and never with more kinetic energy."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from organsim.fem.body import Body
from organsim.fem.materials import Corotational
from organsim.fem.simulation import Simulation
from organsim.fem.topology_transfer import carry_velocities
from organsim.mesh.tetmesh import TetMesh

# one unit cube, two triangulations of the same 8 corners (node i at its bits (x, y, z))
CORNERS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64) * 0.02
FIVE = np.array([[0, 1, 2, 4], [3, 2, 1, 7], [5, 4, 7, 1], [6, 7, 4, 2], [1, 2, 4, 7]])
SIX = np.array([[0, 1, 3, 7], [0, 3, 2, 7], [0, 2, 6, 7], [0, 6, 4, 7], [0, 4, 5, 7], [0, 5, 1, 7]])


def _oriented(tets):
    p = CORNERS[tets]
    vol = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    out = tets.copy()
    out[vol < 0] = out[vol < 0][:, [1, 0, 2, 3]]
    return out


def _lumped(tets, rho=1000.0):
    p = CORNERS[tets]
    vol = np.abs(np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])) / 6
    return np.bincount(tets.ravel(), weights=np.repeat(rho * vol / 4, 4), minlength=8)


def _energy(m, v):
    return 0.5 * float(np.sum(m[:, None] * v * v))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=24, max_size=24), st.booleans())
def test_retriangulation_never_adds_kinetic_energy(vals, five_to_six):
    a, b = (FIVE, SIX) if five_to_six else (SIX, FIVE)
    m_old, m_new = _lumped(a), _lumped(b)
    v_old = np.asarray(vals).reshape(8, 3)
    e0 = _energy(m_old, v_old)
    v = carry_velocities(v_old, m_old, m_new, np.arange(8), np.ones(8, np.int64), e0,   # T = identity
                         lambda w: _energy(m_new, w))
    assert _energy(m_new, v) <= e0 * (1 + 1e-9) + 1e-15
    same = np.isclose(m_old, m_new, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(v[same], v_old[same])     # nodes whose mass stayed keep T @ v
    if _energy(m_new, v_old) <= e0:                           # no gain: nothing is touched
        np.testing.assert_array_equal(v, v_old)
    else:                                                     # a gain: the others slow by one factor
        big = np.abs(v_old[~same]) > 1e-6
        s = v[~same][big] / v_old[~same][big]
        assert np.ptp(s) < 1e-12 and 0.0 <= s[0] < 1.0
        np.testing.assert_allclose(_energy(m_new, v), e0, rtol=1e-9)


def test_simulation_switching_to_a_mesh_that_moves_mass_onto_fast_nodes_keeps_its_energy():
    five, six = _oriented(FIVE), _oriented(SIX)
    m5, m6 = _lumped(five), _lumped(six)
    gains = np.flatnonzero(m6 > m5 * (1 + 1e-9))
    sim = Simulation(Body(TetMesh(CORNERS, five), Corotational(200.0, 0.45), density=1000.0), dt=0.005,
                     gravity=(0.0, 0.0, 0.0), integrator="realtime")
    # the nodes that gain mass are pulled apart, so they move fastest
    sim.add_nodal_force(gains[:1], (0.0, 0.0, -0.05), name="down")
    sim.add_nodal_force(gains[1:], (0.0, 0.0, 0.05), name="up")
    for _ in range(4):
        sim.step()
    e0 = sim.kinetic_energy()
    assert e0 > 0
    v_before = sim.velocities
    sim.change_topology(TetMesh(CORNERS, six), sp.identity(8, format="csr"))
    assert _energy(m6, v_before) > 1.01 * e0                   # the plain mapping would add energy
    assert sim.kinetic_energy() <= e0 * (1 + 1e-9)
    kept = np.isclose(m5, m6, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(sim.velocities[kept], v_before[kept])
    assert sim.step().converged and np.all(np.isfinite(sim.velocities))
