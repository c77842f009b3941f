"""A step that turns a few tets inside out: the simulation stiffens them, says so, and goes on.

Reported (issue 11): a piece cut free to a thin tip failed every substep with a
ConvergenceError and the simulation could not go on.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from organsim.errors import ConvergenceError, MaterialError, SimulationError
from organsim.fem.assembly import Assembler
from organsim.fem.body import Body
from organsim.fem.materials import Corotational, MooneyRivlin, NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh
from organsim.surgery.cutting import Cutter

BLOCK = box_tet_mesh((12, 12, 5), 0.005)               # 5.5 x 5.5 x 2 cm, 2904 tets
CORNER = np.array([0.055, 0.055, 0.02])
_WEAK = np.linalg.norm(BLOCK.points[BLOCK.tets].mean(axis=1) - CORNER, axis=1) < 0.008
# a corner "flap" 50 times softer than the rest: a few tets that cannot carry a press
MESH = TetMesh(BLOCK.points, BLOCK.tets, region_ids=_WEAK.astype(np.int64),
               region_names={0: "parenchyma", 1: "flap"})
PATCH = np.flatnonzero(np.linalg.norm(MESH.points - CORNER, axis=1) < 0.0051)


def _pressed(**kw):
    # CG solved to its tolerance each step (realtime_cg=200): with the default cap of 20 the
    # crushed flap's trajectory is chaotic, so a change of the solves at round-off level (1e-12)
    # decides between "stiffened and went on" and "failed even stiffened"
    sim = Simulation(Body(MESH, {"parenchyma": NeoHookean(5e3, 0.45), "flap": NeoHookean(100.0, 0.45)},
                          density=1000.0), dt=0.02, integrator="realtime", gravity=(0, 0, 0), realtime_cg=200, **kw)
    sim.fix(np.flatnonzero(MESH.points[:, 2] < 1e-9), name="base")
    sim.add_nodal_force(PATCH, (0, 0, -0.1 / len(PATCH)), name="press")   # 0.1 N on the flap
    return sim


def test_without_stiffening_the_press_stops_the_simulation_and_says_where():
    sim = _pressed(stiffen_max_fraction=0.0)
    with pytest.raises(ConvergenceError, match=r"inside out, the worst in region 'flap' at \(5\d, 5\d, 1\d\) mm"):
        for _ in range(20):
            sim.step()
    assert len(sim.stiffened_tets) == 0


def test_the_simulation_stiffens_the_few_inverted_tets_warns_and_goes_on(caplog):
    sim = _pressed()
    with caplog.at_level(logging.WARNING, logger="organsim.fem.simulation"):
        for _ in range(20):
            info = sim.step()
            assert np.all(np.isfinite(sim.positions))
    assert info.converged and info.min_jacobian > 0
    stiff = sim.stiffened_tets
    assert 0 < len(stiff) and MESH.volumes[stiff].sum() <= 0.02 * MESH.volume
    # the stiffened tets are where the flap was crushed, and the warning says so
    assert np.linalg.norm(MESH.points[MESH.tets[stiff]].mean(axis=(0, 1)) - CORNER) < 0.012
    assert any("made 10 times stiffer" in r.getMessage() and "not the tissue's" in r.getMessage()
               for r in caplog.records)
    # a cut elsewhere keeps them stiffened (in their children)
    cutter = Cutter(sim.mesh)
    blade = np.array([[0.01, -0.005, 0.025], [0.01, -0.005, 0.005]])
    cutter.advance(blade, positions=sim.positions)
    res = cutter.advance(blade + [0.0, 0.03, 0.0], positions=sim.positions)
    assert res.changed
    sim.change_topology(res.mesh, res.transfer, res.tet_parent)
    assert sim.mesh.volumes[sim.stiffened_tets].sum() == pytest.approx(MESH.volumes[stiff].sum(), rel=1e-12)
    assert sim.step().converged


@pytest.mark.parametrize("material", [NeoHookean(4e3, 0.4), Corotational(4e3, 0.4)], ids=lambda m: m.kind)
def test_a_stiffness_scale_scales_forces_stiffness_and_energy_of_those_tets(material):
    mesh = box_tet_mesh((4, 3, 3), 0.01)
    rng = np.random.default_rng(3)
    x = mesh.points * [1.1, 0.95, 1.0] + 5e-4 * rng.standard_normal(mesh.points.shape)
    groups = [(np.arange(mesh.n_tets), material)]
    plain = Assembler(mesh, groups)
    scaled = Assembler(mesh, groups, stiffness_scale=np.full(mesh.n_tets, 7.0))
    f0, K0 = plain.forces_and_stiffness(x)
    f1, K1 = scaled.forces_and_stiffness(x)
    np.testing.assert_allclose(f1, 7.0 * f0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(K1, 7.0 * K0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scaled.projected_stiffness(x), 7.0 * plain.projected_stiffness(x), rtol=1e-10,
                               atol=1e-9)
    assert scaled.energy(x) == pytest.approx(7.0 * plain.energy(x), rel=1e-12)
    # only some tets: the rest is unchanged
    some = np.ones(mesh.n_tets)
    some[:5] = 3.0
    part = Assembler(mesh, groups, stiffness_scale=some)
    W0, W1 = plain.energy_density(x), part.energy_density(x)
    np.testing.assert_allclose(W1[:5], 3.0 * W0[:5], rtol=1e-12)
    np.testing.assert_array_equal(W1[5:], W0[5:])


def test_stiffening_is_refused_where_it_cannot_apply():
    mesh = box_tet_mesh((3, 3, 3), 0.01)
    with pytest.raises(MaterialError, match="cannot be stiffened"):
        Assembler(mesh, [(np.arange(mesh.n_tets), MooneyRivlin(1e3, 2e2, 1e5))],
                  stiffness_scale=np.full(mesh.n_tets, 2.0))
    with pytest.raises(MaterialError, match="one positive factor per tet"):
        Assembler(mesh, [(np.arange(mesh.n_tets), NeoHookean(1e3, 0.3))], stiffness_scale=np.zeros(3))
    with pytest.raises(SimulationError, match="stiffen_max_fraction"):
        Simulation(Body(mesh, NeoHookean(1e3, 0.3), density=1000.0), stiffen_max_fraction=2.0)


def test_a_procedure_says_on_its_panel_and_in_its_notes_that_it_stiffened_tets():
    from organsim.scenario.procedure import Procedure
    from organsim.scenario.schema import Fixation, Material, Organ, Scenario

    sim_like = Scenario(organ=Organ(shipped="block"), gravity=(0, 0, 0), dt_s=0.02, duration_s=0.4,
                        integrator="realtime", materials={"default": Material(tissue="liver", model="neo_hookean")},
                        fixations=[Fixation(box_min_mm=(-51, -51, -16), box_max_mm=(51, 51, -14))])
    p = Procedure(sim_like)
    # press one top corner node hard (as a crushed flap would be): the step stiffens the tets there
    # (1.5 N: at 3 N the crushed region may grow past what can be stiffened, decided by round-off)
    top = p.mesh.points
    node = int(np.argmax(top[:, 0] + top[:, 1] + top[:, 2]))
    p.sim.add_nodal_force([node], (0.0, 0.0, -1.5), name="press")
    for _ in range(8):
        p.advance()
    assert len(p.sim.stiffened_tets) > 0
    assert "stiffened" in " ".join(p.panel_lines())
    assert any("made stiffer to go on" in n for n in p.notes)


def test_a_step_that_fails_even_stiffened_leaves_the_simulation_as_it_was(caplog):
    # 10 N on one node of a soft bar: stiffened once, the crushed region then grows past what
    # may be stiffened (2 % of the volume), and the step fails with everything as before it
    mesh = box_tet_mesh((20, 6, 6), 0.005)
    sim = Simulation(Body(mesh, NeoHookean(5e3, 0.45), density=1000.0), dt=0.01, integrator="realtime",
                     gravity=(0, 0, 0))
    sim.fix(np.flatnonzero(mesh.points[:, 0] < 1e-9), name="wall")
    sim.add_nodal_force([int(np.argmax(mesh.points.sum(axis=1)))], (0, 0, 10.0), name="pull")
    x0 = sim.positions
    with caplog.at_level(logging.WARNING, logger="organsim.fem.simulation"):
        with pytest.raises(ConvergenceError, match="inside out"):
            sim.step()
    assert any("made 10 times stiffer" in r.getMessage() for r in caplog.records)   # it was tried
    np.testing.assert_array_equal(sim.positions, x0)
    assert len(sim.stiffened_tets) == 0
