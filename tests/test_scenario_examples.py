"""The example scenarios validate against their organs; the example scripts run with --quick."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from organsim.scenario import check_regions, load_scenario

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCENARIOS = sorted((EXAMPLES / "scenarios").glob("*.toml"))


def test_there_are_scenarios_for_the_users_tasks():
    names = {p.stem for p in SCENARIOS}
    assert {"retraction", "incision", "tumour_resection", "pattern_cutting", "demo_liver"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_example_scenario_is_valid_for_its_organ(path):
    from organsim.scenario.build import load_organ

    s = load_scenario(path)
    mesh = load_organ(s)
    check_regions(s, set(mesh.region_names.values()))
    assert s.timeline, "an example procedure does something"
    assert s.n_steps >= 10


def _run_example(name: str, args: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as ei:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert ei.value.code == 0


@pytest.mark.slow
def test_example_01_prepare_patient_organ(tmp_path, monkeypatch, capsys):
    _run_example("01_prepare_patient_organ.py", ["--quick", "-o", str(tmp_path)], monkeypatch)
    from organsim.io import read_mesh

    mesh = read_mesh(tmp_path / "organ.vtu", units="m")
    assert set(mesh.region_names.values()) == {"parenchyma", "tumour", "vessel", "ligament"}
    assert mesh.quality()["n_inverted"] == 0
    assert (tmp_path / "organ.png").stat().st_size > 5000


@pytest.mark.slow
def test_example_05_pattern_cutting(tmp_path, monkeypatch, capsys):
    _run_example("05_pattern_cutting.py", ["--quick", "-o", str(tmp_path)], monkeypatch)
    out = capsys.readouterr().out
    assert "attempt 2: score" in out and "learning curve of student" in out
    from organsim.scenario.history import TrainingHistory

    n, scores = TrainingHistory(tmp_path / "history.sqlite").learning_curve("student", "pattern cutting")
    assert n == [1, 2] and scores[1] > scores[0]  # the steadier attempt scores higher
    assert "Learning curve" in (tmp_path / "attempt_2" / "report.html").read_text()
