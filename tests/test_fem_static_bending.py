"""Static Newton on a slender body takes full steps: a few iterations, one load step, the same answer."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.fem.body import Body
from organsim.fem.materials import Corotational, NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh


@pytest.mark.parametrize("material", [NeoHookean(3e6, 0.3), Corotational(3e6, 0.3)], ids=["neo", "corot"])
def test_a_cantilever_sagging_under_gravity_converges_in_a_few_newton_iterations(material):
    beam = box_tet_mesh((41, 5, 5), 0.005)          # 200 x 20 x 20 mm, 3,840 tets
    wall = np.flatnonzero(beam.points[:, 0] == 0.0)

    def solve(load_steps):
        sim = Simulation(Body(beam, material, density=1000.0), gravity=(0.0, 0.0, -9.81))
        sim.fix(wall, name="wall")
        info = sim.solve_static(load_steps=load_steps)
        return sim.positions, info

    x1, info = solve(1)
    sag = -(x1[:, 2] - beam.points[:, 2]).min()
    assert 0.012 < sag < 0.02                        # a 1.5 cm sag: bending, not small strain
    # the residual line search alone rejected the full steps: 8 load steps, 254 iterations
    assert info.load_steps == 1 and info.newton_iterations <= 12, info
    x8, _ = solve(8)                                 # the same equilibrium in small load steps
    np.testing.assert_allclose(x1, x8, atol=1e-6 * sag)
