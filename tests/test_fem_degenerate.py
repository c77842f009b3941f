"""A step through a flattened element never divides by zero: it converges or is refused, typed."""

from __future__ import annotations

import numpy as np

from organsim.errors import ConvergenceError
from organsim.fem.body import Body
from organsim.fem.materials import NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh


def test_dragging_a_corner_across_the_block_converges_or_is_refused_never_crashes():
    mesh = box_tet_mesh((4, 3, 3), 0.01)
    sim = Simulation(Body(mesh, NeoHookean(3e3, 0.45), density=1000.0), dt=0.01,
                     integrator="backward_euler")
    sim.fix(np.flatnonzero(mesh.points[:, 0] == 0.0), name="wall")
    tip = int(np.argmax(mesh.points[:, 0]))
    # the far corner dragged across the block in one step: Newton passes through flat elements
    # (det F = 0 exactly), where the kernels raised ZeroDivisionError before
    sim.prescribe([tip], mesh.points[[-1]] + [0.0, 0.0, 0.002], name="hand")
    before = sim.positions.copy()
    try:
        info = sim.step()
    except ConvergenceError:
        np.testing.assert_array_equal(sim.positions, before)   # refused: the state is unchanged
    else:
        assert info.min_jacobian > 0 and np.all(np.isfinite(sim.positions))


def test_a_step_with_every_node_prescribed_moves_them_there():
    mesh = box_tet_mesh((3, 3, 3), 0.01)
    sim = Simulation(Body(mesh, NeoHookean(3e3, 0.45), density=1000.0), dt=0.01)
    target = mesh.points + [0.0, 0.0, 0.001]
    sim.prescribe(np.arange(mesh.n_points), target, name="all")   # nothing left to solve for
    sim.step()
    np.testing.assert_allclose(sim.positions, target, atol=1e-12)
