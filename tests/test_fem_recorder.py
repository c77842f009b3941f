"""Recorder: simulation states to a VTU/PVD series."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.fem.materials import NeoHookean
from organsim.fem.recorder import Recorder, state_arrays
from organsim.io.series import read_series
from organsim.mesh.generators import box_tet_mesh


def test_state_arrays_and_series_round_trip(tmp_path):
    mesh = box_tet_mesh((4, 3, 3), 0.01)
    mat = NeoHookean(3e3, 0.45)
    out = tmp_path / "run.pvd"
    A = np.diag([1.05, 0.98, 0.98])
    with Recorder(out) as rec:
        rec.write_state(0.0, mesh, mesh.points, mat)
        rec.write_state(0.1, mesh, mesh.points @ A.T, mat, velocities=np.ones_like(mesh.points))
    frames = read_series(out)
    assert [t for t, _ in frames] == [0.0, 0.1]
    g = frames[1][1]
    for name in ("displacement", "velocity", "von_mises", "green_lagrange", "cauchy"):
        assert name in g.point_data, name
    for name in ("region", "green_lagrange", "cauchy", "von_mises", "energy_density"):
        assert name in g.cell_data, name
    assert np.allclose(g.points, mesh.points @ A.T)
    assert np.allclose(g.point_data["velocity"], 1.0)
    E = 0.5 * (A.T @ A - np.eye(3))
    assert np.allclose(np.asarray(g.cell_data["green_lagrange"]).reshape(-1, 3, 3), E)
    assert rec.energies[0][1] == pytest.approx(0.0, abs=1e-15)
    assert rec.energies[1][1] == pytest.approx(float(mat.energy(A[None])[0]) * mesh.volume)
    pd, cd, e = state_arrays(mesh, mesh.points @ A.T, mat)
    assert np.allclose(cd["von_mises"], cd["von_mises"][0])  # homogeneous state


def test_record_simulation_every(tmp_path):
    from organsim.fem.body import Body
    from organsim.fem.simulation import Simulation

    mesh = box_tet_mesh((5, 3, 3), 0.01)
    sim = Simulation(Body(mesh, NeoHookean(5e3, 0.45), density=1000.0), dt=0.01)
    sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="wall")
    out = tmp_path / "sim.pvd"
    with Recorder(out, every=2) as rec:
        for _ in range(4):
            sim.step()
            rec.record(sim)
    frames = read_series(out)
    assert len(frames) == 2
    assert frames[-1][0] == pytest.approx(sim.time - 0.01)
    assert np.abs(frames[-1][1].point_data["displacement"][:, 2]).max() > 0
