"""Small motions are solved, not waved through: a free vibration at a sub-micrometre amplitude
iterates every step and has the period of the same vibration a thousand times larger."""

from __future__ import annotations

import numpy as np

from organsim.fem.body import Body
from organsim.fem.materials import Corotational
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh


def _free_vibration(force_n: float):
    m = box_tet_mesh((9, 3, 3), 0.01)                       # 8 x 2 x 2 cm cantilever
    root = np.flatnonzero(np.isclose(m.points[:, 0], 0.0))
    tip = np.flatnonzero(np.isclose(m.points[:, 0], m.points[:, 0].max()))
    sim = Simulation(Body(m, Corotational(5e4, 0.3), density=1000.0), gravity=(0, 0, 0), dt=1e-3,
                     integrator="backward_euler")
    sim.fix(root, name="root")
    sim.add_nodal_force(tip, np.tile([0.0, 0.0, -force_n / len(tip)], (len(tip), 1)), name="push")
    sim.solve_static()
    amplitude = -sim.displacements[tip, 2].mean()
    sim.remove_load("push")
    z, newton = [], []
    for _ in range(300):
        info = sim.step()
        z.append(sim.displacements[tip, 2].mean())
        newton.append(info.newton_iterations)
    s = np.sign(z)
    crossings = np.flatnonzero(s[1:] != s[:-1])
    return amplitude, np.array(newton), 2e-3 * np.mean(np.diff(crossings))


def test_a_sub_micrometre_vibration_iterates_every_step_and_keeps_its_period():
    a_small, it_small, t_small = _free_vibration(1e-6)
    a_large, it_large, t_large = _free_vibration(1e-3)
    assert 1e-8 < a_small < 1e-6 and a_large > 500 * a_small
    assert (it_small >= 1).all() and (it_large >= 1).all()
    assert abs(t_small - t_large) <= 0.01 * t_large
