"""The shipped liver under gravity in the real-time corotational mode, held as in the demo.

The demo and the liver scenarios hold the liver by its ligament and its posterior bare area,
give the vessel tree its own (stiff) material, and let the organ settle under gravity before
the timeline starts. These tests check that this set-up takes real-time steps without a
rejected step and sags by a plausible amount, and that the settling leaves it at rest.
"""

from __future__ import annotations

import numpy as np
import pytest

from organsim.scenario.demos import demo_scenario



def liver_at_rest_scenario(*, settle_s: float, duration_s: float = 0.2):
    """The demo's organ, materials, fixations, gravity and solver, with no instrument."""
    s = demo_scenario()
    s.timeline = []
    s.settle_s = settle_s
    s.duration_s = duration_s
    return s


def test_demo_gravity_points_down_the_scene():
    s = demo_scenario()
    assert s.gravity == (0.0, 0.0, -9.81)  # z is up in the shipped meshes (the ligament is on top)
    assert s.integrator == "realtime" and s.settle_s > 0
    assert all(m.model == "corotational" for m in s.materials.values())


def test_liver_dropped_under_gravity_takes_realtime_steps_without_rejection():
    """The hard case: gravity switched on at rest (no settling), 45 steps of 1/30 s."""
    from organsim.mesh.shipped import load_shipped
    from organsim.scenario.build import build_simulation

    s = liver_at_rest_scenario(settle_s=0.0)
    s.dt_s = 1 / 30
    sim = build_simulation(s, load_shipped("liver"))
    infos = [sim.step() for _ in range(45)]
    assert [i.substeps for i in infos] == [1] * len(infos)  # no step was rejected
    assert all(i.converged for i in infos)
    assert min(i.min_jacobian for i in infos) > 0.2  # no element near inversion
    u = sim.displacements
    assert np.all(np.isfinite(u))
    sag = -u[:, 2].min()
    assert 0.005 < sag < 0.04  # the inferior edge sags about 2 cm
    assert np.abs(sim.velocities).max() < 0.01  # and has come to rest (m/s)
    # the ligament stays where it is fixed, and carries (with the bare area) the organ's weight
    from organsim.fem.selection import region

    assert np.all(u[region(sim.mesh, "ligament")] == 0.0)
    held = sum(sim.reaction(name).sum(axis=0) for name in sim.constraint_names)
    weight = sim.nodal_masses.sum() * 9.81
    assert held[2] == pytest.approx(weight, rel=0.05)


def test_liver_settles_before_the_timeline_and_stays_there():
    from organsim.scenario.procedure import SETTLED_SPEED, Procedure

    s = liver_at_rest_scenario(settle_s=1.0)
    p = Procedure(s, fields_every=2)
    assert p.time == 0.0
    assert 3 <= p.settle_steps < round(s.settle_s / s.dt_s)  # stopped early, at rest
    assert 0.01 < p.settle_sag_m < 0.035
    assert np.abs(p.sim.velocities).max() < SETTLED_SPEED
    x0 = p.positions.copy()
    while not p.finished:
        p.advance()
    assert p.step_count == s.n_steps
    assert np.abs(p.positions - x0).max() < 1e-3  # it rests where it settled
    assert p.recorder.times[0] == 0.0 and p.recorder.times[-1] == pytest.approx(s.duration_s)
    # the stiff vessels carry the weight above the damage stress: not counted as damage done
    m, _ = p.summary()
    assert m["loaded_at_rest_ml"] > 0.1
    assert m["damaged_volume_ml"] == 0.0 and m["peak_stress_pa"] < s.scoring.damage_stress_pa


LIVER_SCENARIOS = ["demo_liver", "incision", "retraction", "tumour_resection"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LIVER_SCENARIOS)
def test_liver_example_scenario_runs_to_the_end_under_gravity(name):
    from pathlib import Path

    from organsim.scenario import load_scenario
    from organsim.scenario.procedure import Procedure

    path = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / f"{name}.toml"
    s = load_scenario(path)
    assert s.gravity == (0.0, 0.0, -9.81) and s.settle_s > 0
    p = Procedure(s, fields_every=10**9)
    assert 0.01 < p.settle_sag_m < 0.035
    steps = []
    real = p.sim.step

    def step(*a, **k):
        info = real(*a, **k)
        steps.append(info)
        return info

    p.sim.step = step
    while not p.finished:
        p.advance()
    assert p.step_count == s.n_steps
    assert [i.substeps for i in steps] == [1] * len(steps)  # no step was rejected
    assert min(i.min_jacobian for i in steps) > 0.1
    assert np.all(np.isfinite(p.positions))
