"""Running scenarios on a small tissue block: actions act, cuts cut, results are written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh
from organsim.scenario.schema import Action, Fixation, Material, Organ, Output, Scenario, Scoring



def block(nodes=(9, 9, 4), h=0.01) -> TetMesh:
    """An 8 x 8 x 3 cm slab centred on the origin, its top at z = 0; a 'core' region inside."""
    m = box_tet_mesh(nodes, h, origin=(-0.04, -0.04, -0.03))
    c = m.points[m.tets].mean(axis=1)
    rid = np.where(np.linalg.norm(c[:, :2], axis=1) < 0.012, 2, 1)
    return TetMesh(m.points, m.tets, rid, {1: "tissue", 2: "core"})


def scenario(timeline, duration=0.4, **kw) -> Scenario:
    return Scenario(name="block test", organ=Organ(shipped="block"),
                    materials={"default": Material(tissue="liver", model="corotational")},
                    fixations=[Fixation(box_min_mm=(-41, -41, -31), box_max_mm=(41, 41, -29))],
                    gravity=(0.0, 0.0, -9.81), duration_s=duration, dt_s=0.04,
                    timeline=timeline, **kw)


def proc_for(s, mesh=None):
    from organsim.scenario.procedure import Procedure

    return Procedure(s, mesh=mesh or block(), fields_every=2)


def run_all(p):
    while not p.finished:
        p.advance()


def test_grasp_pull_release_moves_tissue_and_reports_force():
    s = scenario([Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 0.0), radius_mm=6.0),
                  Action(t=0.04, action="pull", path_mm=((0.0, 0.0, 15.0),), duration_s=0.2),
                  Action(t=0.32, action="release")])
    p = proc_for(s)
    held_forces = []
    while p.time < 0.3:
        p.advance()
        held_forces.append(np.linalg.norm(p.instruments()[0].force))
    grasper = p.tools["grasper"]
    top = p.positions[grasper.held]
    assert np.allclose(top[:, 2] - p.mesh.points[grasper.held, 2], 0.015, atol=1e-9)
    assert max(held_forces) > 0.05  # pulling 15 mm on soft tissue takes a measurable force
    run_all(p)
    assert "grasper" not in p.sim.constraint_names
    m, score = p.summary()
    assert m["path_length_m"] == pytest.approx(0.015, rel=1e-6)
    assert m["peak_force_n"] == pytest.approx(max(held_forces), rel=0.3)
    assert 0 <= score["score"] <= 100 and "time" in score["parts"]


def test_cut_splits_the_mesh_conserves_volume_and_tags_cut_faces():
    # 3 mm off the grid plane y = 0, so the blade crosses tets rather than grazing faces
    s = scenario([Action(t=0.0, action="cut", path_mm=((-25.0, 3.0, 0.0), (25.0, 3.0, 0.0)),
                         depth_mm=12.0, duration_s=0.3)],
                 scoring=Scoring(planned_cut_mm=((-25.0, 3.0, 0.0), (25.0, 3.0, 0.0))))
    mesh = block()
    p = proc_for(s, mesh)
    run_all(p)
    assert p.mesh.n_tets > mesh.n_tets
    assert p.mesh.volume == pytest.approx(mesh.volume, rel=1e-9)
    assert p.cut_face_mask is not None and p.cut_face_mask.sum() > 10
    assert p.topology_version > 1
    m, score = p.summary()
    assert m["cut_length_mm"] == pytest.approx(50.0, rel=0.05)
    assert m["mean_deviation_mm"] < 0.5  # the scripted blade followed the plan
    assert "accuracy" in score["parts"]
    assert np.all(np.isfinite(p.positions))


def test_retract_holds_the_patch_displaced():
    s = scenario([Action(t=0.0, action="retract", at_mm=(20.0, 0.0, 0.0), direction=(1.0, 0.0, 0.0),
                         distance_mm=8.0, duration_s=0.2, width_mm=12.0)])
    p = proc_for(s)
    run_all(p)
    tool = p.tools["retractor"]
    d = p.positions[tool.held] - p.mesh.points[tool.held]
    np.testing.assert_allclose(d[:, 0], 0.008, atol=1e-9)
    assert p.instruments()[0].kind == "retractor"


def test_resect_region_with_margin_removes_volume():
    mesh = block()
    s = scenario([Action(t=0.0, action="resect", region="core", margin_mm=5.0)], duration=0.08)
    p = proc_for(s, mesh)
    run_all(p)
    m, _ = p.summary()
    core = mesh.region_volumes()["core"]
    assert m["resected_volume_ml"] > core * 1e6
    assert m["remaining_volume_ml"] + m["resected_volume_ml"] == pytest.approx(mesh.volume * 1e6, rel=1e-9)
    assert m["remaining_fraction"] < 1.0


def test_unknown_region_is_reported_before_running():
    from organsim.errors import ScenarioError

    s = scenario([Action(t=0.0, action="resect", region="tumour", margin_mm=5.0)])
    with pytest.raises(ScenarioError, match=r"timeline\[0\].region: unknown region 'tumour'.*core"):
        proc_for(s)


def test_settling_starts_the_clock_at_rest_under_gravity():
    s = scenario([Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 0.0))], duration=0.12, settle_s=2.0)
    p = proc_for(s)
    assert p.time == 0.0 and 0 < p.settle_steps < 50 and p.settle_sag_m > 0
    from organsim.scenario.procedure import SETTLED_SPEED

    assert np.abs(p.sim.velocities).max() < SETTLED_SPEED
    assert p.recorder.times == [0.0]
    run_all(p)
    assert p.step_count == 3 and p.time == pytest.approx(0.12)
    # no settling without gravity, nor with settle_s = 0
    for kw in ({"settle_s": 2.0, "gravity": (0.0, 0.0, 0.0)}, {"settle_s": 0.0}):
        s0 = scenario([], duration=0.12)
        for k, v in kw.items():
            setattr(s0, k, v)
        p0 = proc_for(s0)
        assert p0.settle_steps == 0 and p0.settle_sag_m == 0.0 and np.all(p0.sim.displacements == 0.0)


def test_an_organ_its_fixations_cannot_hold_fails_to_settle_with_a_clear_message():
    from organsim.errors import ConvergenceError

    s = scenario([], settle_s=1.0)
    s.materials = {"default": Material(tissue="liver", model="corotational", E_pa=1.0)}  # 1 Pa
    with pytest.raises(ConvergenceError, match="could not settle under gravity.*settle_s = 0"):
        proc_for(s)


@pytest.mark.slow
def test_run_writes_series_metrics_report_and_history(tmp_path):
    from organsim.io import read_series, write_mesh
    from organsim.scenario.history import TrainingHistory
    from organsim.scenario.runner import run

    organ = tmp_path / "block.vtu"
    write_mesh(block(), organ)
    s = scenario([Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 0.0)),
                  Action(t=0.04, action="pull", path_mm=((0.0, 0.0, 10.0),), duration_s=0.12),
                  Action(t=0.2, action="cut", path_mm=((-25.0, 13.0, 0.0), (25.0, 13.0, 0.0)),
                         depth_mm=10.0, duration_s=0.16)],
                 output=Output(series=True, every=2, report=True))
    s.organ = Organ(shipped=None, path=str(organ), units="m")
    db = tmp_path / "h.sqlite"
    for _ in range(2):
        res = run(s, tmp_path / "out", progress=False, trainee="ana", history_path=db)
    doc = json.loads(res.metrics_path.read_text())
    assert doc["metrics"]["procedure_time_s"] == pytest.approx(0.4)
    assert doc["score"]["score"] == res.score["score"]
    frames = read_series(res.series)
    assert len(frames) == 6  # t = 0, 0.08, ..., 0.4
    assert frames[-1][1].n_cells > frames[0][1].n_cells  # the cut added tets
    assert "von_mises" in frames[-1][1].point_data and "cut_faces" in frames[-1][1].cell_data
    assert res.report.exists() and "Learning curve" in res.report.read_text()
    assert res.image is not None and res.image.stat().st_size > 1000
    assert TrainingHistory(db).learning_curve("ana", "block test")[0] == [1, 2]


def test_a_step_the_solver_cannot_take_ends_the_run_and_keeps_the_results(tmp_path, monkeypatch):
    from organsim.errors import ConvergenceError
    from organsim.io import write_mesh
    from organsim.scenario.procedure import Procedure
    from organsim.scenario.runner import run

    organ = tmp_path / "block.vtu"
    write_mesh(block(), organ)
    s = scenario([Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 0.0))], duration=0.4,
                 output=Output(series=True, every=1, report=True))
    s.organ = Organ(shipped=None, path=str(organ), units="m")
    real = Procedure.advance

    def failing(self):
        if self.time >= 0.1:
            raise ConvergenceError("an element is inverted (test)")
        real(self)

    monkeypatch.setattr(Procedure, "advance", failing)
    from organsim.scenario.history import TrainingHistory

    db = tmp_path / "h.sqlite"
    for record in (None, "v.gif"):
        res = run(s, tmp_path / f"out_{record}", progress=False, record=record, image=False,
                  trainee="ana", history_path=db)
        assert not res.completed and res.metrics["completed"] is False
        assert "stopped early at t = 0.120 s" in res.notes[0] and "inverted" in res.notes[0]
        assert json.loads(res.metrics_path.read_text())["metrics"]["procedure_time_s"] == pytest.approx(0.12)
        assert res.report.exists()
        if record:
            assert res.video.exists()
    # a run the simulator could not finish says nothing about the trainee: not in the history
    assert TrainingHistory(db).attempts("ana", s.name) == []
    assert any("not recorded in the training history" in n for n in res.notes)
