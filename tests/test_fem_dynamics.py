"""Implicit dynamics: free fall, bounded energy without damping, dissipation with Rayleigh damping."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.fem.body import Body
from organsim.fem.materials import Corotational, NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh


def test_free_fall_is_exact():
    mesh = box_tet_mesh((3, 3, 3), 0.01)
    sim = Simulation(Body(mesh, NeoHookean(1e4, 0.4), density=1000.0), dt=0.01)
    for _ in range(10):
        sim.step()
    # rigid translation: no internal force; backward Euler: v_n = n h g, x_n = X + h^2 g n(n+1)/2
    assert np.allclose(sim.velocities[:, 2], -9.81 * 0.1, rtol=1e-10)
    assert np.allclose(sim.displacements[:, 2], -9.81 * 0.01**2 * 55, rtol=1e-10)
    assert sim.time == pytest.approx(0.1)


def _swing(damping, mat, steps=60, integrator="backward_euler", mass="lumped"):
    mesh = box_tet_mesh((8, 3, 3), 0.01)
    sim = Simulation(Body(mesh, mat, density=1000.0), gravity=(0, 0, 0), dt=0.002,
                     damping=damping, integrator=integrator, mass=mass, realtime_cg=200)
    sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="wall")
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    # pluck: a static pull on the tip, then let go
    sim.add_nodal_force(tip, (0, 0, 0.02), name="pluck")
    sim.solve_static()
    sim.remove_load("pluck")
    energies = [sim.strain_energy() + sim.kinetic_energy()]
    tips = []
    for _ in range(steps):
        assert sim.step().converged
        energies.append(sim.strain_energy() + sim.kinetic_energy())
        tips.append(sim.displacements[tip, 2].mean())
    return np.array(energies), np.array(tips)


@pytest.mark.parametrize("mat", [NeoHookean(1e5, 0.3), Corotational(1e5, 0.3)], ids=["neo_hookean", "corotational"])
def test_undamped_oscillation_keeps_energy_bounded(mat):
    E, tips = _swing((0.0, 0.0), mat)
    assert E[0] > 0
    assert np.all(E <= E[0] * (1 + 1e-6))  # backward Euler never creates energy
    assert E[-1] > 0.3 * E[0]  # and, at this step size, keeps most of it
    assert tips.min() < 0 < tips.max()  # it really oscillates through the rest position


def test_rayleigh_damping_dissipates_energy():
    E0, _ = _swing((0.0, 0.0), NeoHookean(1e5, 0.3))
    Ea, _ = _swing((20.0, 0.0), NeoHookean(1e5, 0.3))
    Eb, _ = _swing((0.0, 5e-3), NeoHookean(1e5, 0.3))
    assert Ea[-1] < 0.5 * E0[-1] and Eb[-1] < 0.5 * E0[-1]
    assert np.all(np.diff(Ea) <= 1e-12 * Ea[0]) and np.all(np.diff(Eb) <= 1e-12 * Eb[0])


def test_consistent_mass_and_realtime_modes_oscillate_like_the_reference():
    E_ref, tips_ref = _swing((0.0, 0.0), NeoHookean(1e5, 0.3), steps=30)
    E_rt, tips_rt = _swing((0.0, 0.0), NeoHookean(1e5, 0.3), steps=30, integrator="realtime")
    assert np.abs(tips_rt - tips_ref).max() < 0.05 * np.abs(tips_ref).max()
    E_c, tips_c = _swing((0.0, 0.0), NeoHookean(1e5, 0.3), steps=30, mass="consistent")
    assert np.all(E_c <= E_c[0] * (1 + 1e-6))
    assert np.abs(tips_c - tips_ref).max() < 0.2 * np.abs(tips_ref).max()
