"""Static Newton under a follower pressure uses the pressure's own tangent and converges fast."""

from __future__ import annotations

import numpy as np

from organsim.fem.body import Body
from organsim.fem.materials import NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh


def _pressed(load_steps: int):
    m = box_tet_mesh((6, 6, 6), 0.01)
    sim = Simulation(Body(m, NeoHookean(1e4, 0.4), density=1000.0), gravity=(0, 0, 0))
    sim.fix(np.flatnonzero(np.isclose(m.points[:, 2], 0.0)), name="base")
    c = m.points[m.boundary_faces].mean(axis=1)
    centre = (np.abs(c[:, 0] - 0.025) < 0.01) & (np.abs(c[:, 1] - 0.025) < 0.01)
    patch = np.flatnonzero(np.isclose(c[:, 2], 0.05) & centre)
    sim.add_pressure(patch, 3e3, name="press")             # 30 % of E: the patch sinks ~4 mm
    return sim, sim.solve_static(load_steps=load_steps, tol=1e-10)


def test_follower_pressure_static_newton_converges_quadratically_to_the_same_state():
    sim, info = _pressed(2)
    # without the pressure tangent Newton converged linearly: 16 iterations for these 2 steps
    assert info.converged and info.newton_iterations <= 10, info
    ref, ref_info = _pressed(8)
    assert ref_info.converged
    u, u_ref = sim.displacements, ref.displacements
    assert np.abs(u).max() > 3e-3
    assert np.linalg.norm(u - u_ref) <= 1e-7 * np.linalg.norm(u_ref)
