"""organsim run / view / demo from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from organsim.cli import main
from organsim.scenario.loader import save_scenario
from organsim.scenario.schema import Action, Organ, Output



@pytest.fixture
def block_scenario(tmp_path):
    from organsim.io import write_mesh
    from tests.test_scenario_runner import block, scenario

    organ = tmp_path / "block.vtu"
    write_mesh(block(), organ)
    s = scenario([Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 0.0)),
                  Action(t=0.04, action="pull", path_mm=((0.0, -10.0, 10.0),), duration_s=0.12),
                  Action(t=0.2, action="cut", path_mm=((-25.0, 13.0, 0.0), (25.0, 13.0, 0.0)),
                         depth_mm=10.0, duration_s=0.16)],
                 duration=0.4, output=Output(series=True, every=2, report=True))
    s.organ = Organ(shipped=None, path="block.vtu", units="m")  # relative to the scenario file
    return save_scenario(s, tmp_path / "block.toml")


@pytest.mark.slow
def test_run_then_view_the_outdir(block_scenario, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "out"
    assert main(["run", str(block_scenario), "-o", str(out), "--no-progress",
                 "--record", "run.gif"]) == 0
    text = capsys.readouterr().out
    assert "score" in text and "series (ParaView)" in text and "run.gif" in text
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["metrics"]["cut_length_mm"] > 40
    gif = Image.open(out / "run.gif")
    assert gif.n_frames == 10  # one per step of the 0.4 s run at 0.04 s
    assert (out / "run.gif").stat().st_size > 10_000
    assert (out / "report.html").exists() and (out / "series.pvd").exists()
    # replay the run off-screen at a chosen time
    png = tmp_path / "replay.png"
    assert main(["view", str(out), "--screenshot", str(png), "--time", "0.4"]) == 0
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] > 100 and img[..., :3].std() > 10  # something was drawn


def test_view_a_mesh_file_and_a_scenario_offscreen(block_scenario, tmp_path):
    from PIL import Image

    png = tmp_path / "mesh.png"
    assert main(["view", str(tmp_path / "block.vtu"), "--screenshot", str(png),
                 "--camera", "anterior"]) == 0
    assert np.asarray(Image.open(png).convert("RGB")).std() > 10
    png2 = tmp_path / "scenario.png"
    assert main(["view", str(block_scenario), "--screenshot", str(png2)]) == 0
    assert png2.exists()


def test_bad_inputs_give_one_line_errors(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text('duration_s = "long"\n')
    assert main(["run", str(bad), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "duration_s" in err and "expected a number" in err
    assert main(["view", str(tmp_path / "missing.vtu"), "--screenshot", "x.png"]) == 1
    assert "no such file" in capsys.readouterr().err
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    (tmp_path / "m.vtu").write_text("x")
    assert main(["view", str(tmp_path / "m.vtu")]) == 1
    assert "--screenshot" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text('name = "x"\n')
    assert main(["run", str(good), "-o", str(tmp_path / "o2"), "--record", "v.avi"]) == 1
    assert ".mp4 or .gif" in capsys.readouterr().err


def test_demo_scenario_file_matches_the_builtin_demo():
    from pathlib import Path

    from organsim.scenario.demos import demo_scenario
    from organsim.scenario.loader import load_scenario

    path = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "demo_liver.toml"
    assert load_scenario(path) == demo_scenario()
