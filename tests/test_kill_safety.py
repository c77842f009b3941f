"""Nothing half-written: `organsim run` killed with SIGKILL at random moments leaves only files that parse."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.test_scenario_runner import block

SCENARIO = """
name = "kill test"
duration_s = 1.2
dt_s = 0.04
integrator = "realtime"
[organ]
path = "{mesh}"
units = "m"
[materials.default]
tissue = "liver"
model = "corotational"
[[fixations]]
box_min_mm = [-41.0, -41.0, -31.0]
box_max_mm = [41.0, 41.0, -29.0]
[[timeline]]
t = 0.0
action = "grasp"
at_mm = [-20.0, 0.0, 0.0]
[[timeline]]
t = 0.04
action = "pull"
path_mm = [[-20.0, 0.0, 10.0]]
duration_s = 0.5
[[timeline]]
t = 0.2
action = "cut"
path_mm = [[5.0, -30.0, 0.0], [5.0, 30.0, 0.0]]
depth_mm = 15.0
duration_s = 0.6
[output]
series = true
every = 1
"""


def check_every_file_parses(out):
    from PIL import Image

    from organsim.io.series import read_series

    for p in out.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue                          # hidden temporaries: never anyone's file
        assert p.stat().st_size > 0, f"{p} is empty"
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".pvd":
            read_series(p)                    # every frame it lists exists and reads
        elif p.suffix == ".png":
            with Image.open(p) as im:
                im.verify()
        elif p.suffix == ".html":
            assert p.read_text().rstrip().endswith("</html>"), p


@pytest.mark.slow
def test_killed_runs_leave_only_complete_files_and_a_rerun_completes(tmp_path):
    mesh = tmp_path / "block.vtu"
    block().to_pyvista().save(str(mesh))
    scen = tmp_path / "s.toml"
    scen.write_text(SCENARIO.format(mesh=mesh.as_posix()))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "organsim", "run", str(scen), "-o", str(out), "--no-progress"]
    # a first complete run, so that later runs overwrite a full set of results
    assert subprocess.run(cmd, capture_output=True, timeout=600).returncode == 0
    check_every_file_parses(out)
    rng = random.Random(7)
    for _ in range(4):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.5))   # a run takes about 3-4 s here: startup, steps, writing
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        check_every_file_parses(out)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    check_every_file_parses(out)
    assert not list(out.rglob(".*.partial*")), "temporaries of killed runs are cleaned up"
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["metrics"]["cut_length_mm"] > 40


def test_a_screenshot_that_fails_half_way_leaves_the_old_image(tmp_path, monkeypatch):
    from PIL import Image

    from organsim.mesh.generators import box_tet_mesh
    from organsim.viewer import Viewer

    v = Viewer(box_tet_mesh((3, 3, 3), 0.01), off_screen=True, window_size=(120, 90))
    png = tmp_path / "final.png"
    v.screenshot(png)
    before = png.read_bytes()

    def half(self, fp, *args, **kwargs):
        with open(fp, "wb") as fh:
            fh.write(b"\\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half)
    with pytest.raises(Exception, match="No space left"):
        v.screenshot(png)
    v.close()
    assert png.read_bytes() == before
    assert not list(tmp_path.glob(".*partial*"))
