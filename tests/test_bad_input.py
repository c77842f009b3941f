"""Bad input gets a clear, typed error at every entry point; nothing is truncated or snapped silently."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.errors import MeshError, OrganSimError, ScenarioError, SimulationError
from organsim.fem.body import Body
from organsim.fem.materials import Corotational
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.surface import TriSurface
from organsim.mesh.tetmesh import TetMesh
from organsim.scenario import Action, loads
from organsim.scenario.procedure import Procedure
from tests.test_scenario_runner import block, scenario


@pytest.fixture(scope="module")
def sim():
    m = box_tet_mesh((3, 3, 3), 0.01)
    return Simulation(Body(m, Corotational(3e3, 0.45), density=1000.0), dt=0.01)


def test_fractional_or_nan_ids_are_refused_not_truncated(sim):
    with pytest.raises(SimulationError, match="whole numbers"):
        sim.fix([0.5, 1.7], name="a")
    with pytest.raises(SimulationError, match="whole numbers"):
        sim.add_pressure(np.array([np.nan]), 10.0, name="p")
    sim.fix(np.array([0.0, 1.0]), name="ok")        # whole numbers as floats are fine
    assert "a" not in sim.constraint_names and "ok" in sim.constraint_names
    sim.release("ok")


def test_damping_must_be_two_finite_numbers():
    m = box_tet_mesh((3, 3, 3), 0.01)
    for bad in [(1,), (0.1, float("nan")), "0.5", (-1.0, 0.0)]:
        with pytest.raises(SimulationError, match="damping"):
            Simulation(Body(m, Corotational(3e3, 0.45), density=1000.0), damping=bad)


def test_meshing_edge_length_must_be_a_positive_number():
    from organsim import phantoms
    from organsim.mesh.pipeline import mesh_image

    for bad in [float("nan"), float("inf"), 0.0, -0.006]:
        with pytest.raises(MeshError, match="edge_length"):
            mesh_image(phantoms.block_phantom(), edge_length=bad)


def test_the_cutter_refuses_nan_positions():
    from organsim.surgery.cutting import Cutter

    m = box_tet_mesh((3, 3, 3), 0.01)
    c = Cutter(m)
    c.advance(np.array([[0.005, 0.005, 0.03], [0.005, 0.005, -0.01]]))
    with pytest.raises(MeshError, match="NaN"):
        c.advance(np.array([[0.015, 0.005, 0.03], [0.015, 0.005, -0.01]]),
                  positions=np.full((m.n_points, 3), np.nan))


def test_meshes_never_freeze_the_callers_arrays():
    pts = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.0, 1, 0], [0.0, 0, 1]])
    tets = np.array([[0, 1, 2, 3]])
    mesh = TetMesh(pts, tets)
    surf = TriSurface(pts, tets[:, :3])
    pts[3, 2] = 2.0                                  # still the caller's to change
    assert pts.flags.writeable and tets.flags.writeable
    assert mesh.points[3, 2] == 1.0 and surf.points[3, 2] == 1.0   # the meshes kept their copy
    assert not mesh.points.flags.writeable


def test_an_unpickled_mesh_is_read_only_as_the_original():
    import pickle

    mesh = box_tet_mesh((3, 2, 2), 0.01)
    assert len(mesh.boundary_faces)                  # a cached array travels too
    copy = pickle.loads(pickle.dumps(mesh))          # as a Dask sweep sends it to a worker
    np.testing.assert_array_equal(copy.tets, mesh.tets)
    assert copy.volume == pytest.approx(mesh.volume)
    for a in (copy.points, copy.tets, copy.region_ids, copy.boundary_faces):
        assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        copy.points[0, 0] = 1.0


def test_an_empty_scenario_is_refused():
    with pytest.raises(ScenarioError, match="empty"):
        loads("")


@pytest.mark.parametrize("action", [
    Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 500.0)),
    Action(t=0.0, action="cut", path_mm=((0.0, 0.0, 0.0), (600.0, 0.0, 0.0)), depth_mm=5.0, duration_s=0.1),
])
def test_an_instrument_point_off_the_organ_names_the_distance(action):
    with pytest.raises(ScenarioError, match=r"timeline\[0\]\.(at_mm|path_mm\[1\]).*mm from the organ"):
        Procedure(scenario([action]), mesh=block())


def test_errors_are_organsim_errors():
    assert issubclass(ScenarioError, OrganSimError) and issubclass(MeshError, OrganSimError)


def test_a_scenario_on_an_organsim_vtu_needs_no_units(tmp_path):
    from organsim.scenario.build import load_organ

    path = tmp_path / "block.vtu"
    block().to_pyvista().save(str(path))
    s = loads(f'[organ]\npath = "{path.as_posix()}"\n')
    assert s.organ.units is None
    mesh = load_organ(s)
    assert np.allclose(mesh.points, block().points)          # metres, as organsim wrote them


def test_an_edge_length_given_in_metres_on_the_command_line_gets_a_hint(tmp_path, capsys):
    from organsim.cli import main

    assert main(["mesh", "no-such-file-needed.nii.gz", "-o", str(tmp_path / "m.vtu"),
                 "--edge-length", "0.006"]) != 0
    err = capsys.readouterr().err
    assert "did you mean --edge-length 6?" in err and err.count("\n") == 1


@pytest.mark.slow
def test_an_organ_that_cannot_settle_is_told_where_it_crushes():
    from organsim.errors import ConvergenceError
    from organsim.scenario.demos import demo_scenario
    from organsim.scenario.schema import Fixation, Material

    s = demo_scenario()
    s.fixations = [Fixation(region="ligament")]          # hanging from the thin ligament alone
    s.materials = {"default": Material(tissue="liver", model="corotational")}
    with pytest.raises(ConvergenceError, match=r"most compressed element is in region '\w+' at "
                                               r"\(-?\d+, -?\d+, -?\d+\) mm"):
        Procedure(s)
