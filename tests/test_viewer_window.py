"""The live window as a person uses it: a real X window (Xvfb), mouse and keys sent by xdotool.

The events go through the X server and VTK's real interactor and style; nothing
here calls organsim's handlers. Needs the Debian packages ``xvfb`` and
``xdotool`` (``.ci/run`` installs them where it can); skips with the reason
where they are missing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from organsim.scenario import dumps
from organsim.viewer.xsession import VirtualDisplay, XWindow, missing_tools

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing_tools()),
                                 reason=f"needs Debian packages {', '.join(missing_tools())} "
                                        "(apt-get install xvfb xdotool)")]


def gauze_exercise(tmp_path):
    """The pattern-cutting exercise as a TOML file (what a trainee opens)."""
    from organsim.scenario.exercises import pattern_cutting

    path = tmp_path / "pattern.toml"
    path.write_text(dumps(pattern_cutting()))
    return path


@pytest.fixture(scope="module")
def display():
    with VirtualDisplay((1280, 1024)) as d:
        yield d


def moved(frames, a, b):
    return float(np.linalg.norm(np.subtract(frames[b]["camera"], frames[a]["camera"])))


def test_tissue_drags_act_background_drags_rotate_and_the_attempt_is_scored(display, tmp_path):
    scen = gauze_exercise(tmp_path)
    out = tmp_path / "attempt"
    # world points on the sheet's top (z = 0): grasp at (-30, 0); cut 40 mm from (-10, -28.5) to
    # (30, -28.5), between two rows of nodes
    pts = [(-0.03, 0.0, 0.0), (-0.03, 0.012, 0.0), (-0.01, -0.0285, 0.0), (0.03, -0.0285, 0.0)]
    w = XWindow(display, scen, out, points=pts, size=(800, 600), trainee="ada",
                history=tmp_path / "history.sqlite")
    try:
        grasp_px, pull_px, cut_a, cut_b = w.pixels
        # grasp and drag on the tissue
        n0 = len(w.frames())
        w.drag(grasp_px, pull_px, steps=20)
        f = w.frames()
        during = [r for r in f[n0:] if r["grasping"]]
        assert len(during) >= 5, "the simulation must keep stepping while the grasp is dragged"
        assert during[-1]["t"] > during[0]["t"]
        assert max(r["force_n"] for r in during) > 0.0
        assert moved(f, n0, -1) < 1e-9, "a drag on the tissue must not move the camera"
        # the cut tool (key i) and a drag along a straight line on the sheet
        w.key("i")
        n1 = len(w.frames())
        w.drag(cut_a, cut_b, steps=40, step_s=0.06)
        f = w.frames()
        assert f[-1]["n_tets"] > f[n1]["n_tets"] and f[-1]["n_points"] > f[n1]["n_points"], \
            "the cut drag must cut"
        assert moved(f, n1, -1) < 1e-9
        # a drag on the background turns the camera, and the simulation keeps stepping
        n2 = len(w.frames())
        w.drag((15, 15), (120, 60), steps=15)
        f = w.frames()
        assert moved(f, n2, -1) > 1e-6
        assert len(f) - n2 >= 5
    finally:
        rc = w.close()
    assert rc == 0, (out / "window.log").read_text()[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # the dragged line on the tissue is 40 mm long
    assert metrics["metrics"]["cut_length_mm"] == pytest.approx(40.0, rel=0.2)
    assert (out / "report.html").exists() and "learning curve" in (out / "report.html").read_text().lower()
    from organsim.scenario import TrainingHistory

    h = TrainingHistory(tmp_path / "history.sqlite")
    assert len(h.attempts("ada", "pattern cutting (gauze)")) == 1
    h.close()
    # the saved attempt replays through `organsim run` to the same metrics
    r = subprocess.run([sys.executable, "-m", "organsim", "run", str(out / "attempt.toml"), "-o",
                        str(tmp_path / "replay"), "--no-progress"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    replay = json.loads((tmp_path / "replay" / "metrics.json").read_text())["metrics"]
    live = metrics["metrics"]
    for key in ("cut_length_mm", "mean_deviation_mm", "procedure_time_s"):
        assert replay[key] == pytest.approx(live[key], rel=0.01, abs=1e-6), key
    # and to the same bits: every step's instrument forces and tips, read as a user reads them
    # (up to 1.5 % apart before live drags moved to exactly the points and times their log
    # replays, and before a display's force readings stopped touching the solver's state)
    assert replay["peak_force_n"] == live["peak_force_n"]
    import pandas as pd

    pd.testing.assert_frame_equal(pd.read_csv(out / "forces.csv"), pd.read_csv(tmp_path / "replay" / "forces.csv"),
                                  check_exact=True)


def test_organsim_view_exercise_as_a_trainee_runs_it(display, tmp_path):
    """`organsim view pattern-cutting --trainee NAME` as typed: a window, a cut with the mouse, e, results."""
    import os
    import time

    out = tmp_path / "attempt"
    cmd = [sys.executable, "-m", "organsim", "view", "pattern-cutting", "--trainee", "bo", "-o", str(out),
           "--history", str(tmp_path / "h.sqlite"), "--camera", "superior"]
    log = open(tmp_path / "view.log", "w")
    proc = subprocess.Popen(cmd, env=display.env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    env = display.env
    try:
        # the window opens once the kernels are loaded (compiled first on a cold cache: a minute
        # or two); poll for it: xdotool's own --sync search gives up when another window is
        # destroyed meanwhile
        t_end = time.monotonic() + 400
        wid = None
        while wid is None and time.monotonic() < t_end and proc.poll() is None:
            found = subprocess.run(["xdotool", "search", "--name", "organsim: pattern cutting"], env=env,
                                   capture_output=True, text=True, timeout=30).stdout.split()
            wid = found[0] if found else None
            if wid is None:
                time.sleep(0.5)
        assert wid is not None, "no window: " + (tmp_path / "view.log").read_text()[-3000:]
        time.sleep(2.0)
        geo = subprocess.run(["xdotool", "getwindowgeometry", "--shell", wid], env=env,
                             capture_output=True, text=True, timeout=30).stdout
        size = dict(line.split("=") for line in geo.split())
        w, h = int(size["WIDTH"]), int(size["HEIGHT"])

        def xdo(*args):
            subprocess.run(["xdotool", *args], env=env, check=True, timeout=30)

        xdo("windowfocus", "--sync", wid)
        xdo("key", "i")                                   # the cut tool
        time.sleep(0.5)
        # a stroke across the middle of the sheet (the superior view looks straight down on it)
        y = int(h * 0.62)
        xdo("mousemove", "--window", wid, str(int(w * 0.35)), str(y))
        xdo("mousedown", "1")
        for k in range(1, 31):
            xdo("mousemove", "--window", wid, str(int(w * (0.35 + 0.3 * k / 30))), str(y))
            time.sleep(0.05)
        time.sleep(0.5)
        xdo("mouseup", "1")
        time.sleep(0.5)
        xdo("key", "e")                                   # end the attempt
        rc = proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "view.log").read_text()
    assert rc == 0, text[-3000:]
    assert "preparing numeric kernels" in text            # first use says what it does
    assert "score" in text and "replay it: organsim run" in text
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["cut_length_mm"] > 10.0
    assert (out / "attempt.toml").exists() and (out / "report.html").exists()
    from organsim.scenario import TrainingHistory

    hist = TrainingHistory(tmp_path / "h.sqlite")
    assert len(hist.attempts("bo", "pattern cutting (gauze)")) == 1
    hist.close()
    assert os.path.getsize(out / "attempt.toml") > 0


def test_closing_the_window_ends_and_scores_the_attempt(display, tmp_path):
    """The window manager's close button (WM_DELETE_WINDOW) ends the attempt like key e."""
    import time

    from organsim.viewer.xsession import request_close

    out = tmp_path / "attempt"
    cmd = [sys.executable, "-m", "organsim", "view", "retraction", "-o", str(out),
           "--history", str(tmp_path / "h.sqlite"), "--trainee", "cy"]
    log = open(tmp_path / "view.log", "w")
    proc = subprocess.Popen(cmd, env=display.env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wid = subprocess.run(["xdotool", "search", "--sync", "--name", "organsim: retraction"],
                             env=display.env, capture_output=True, text=True, timeout=400).stdout.split()[0]
        time.sleep(3.0)
        request_close(display.display, int(wid))
        rc = proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert rc == 0, (tmp_path / "view.log").read_text()[-3000:]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["metrics"]["target_exposed"] is False           # nobody lifted the lobe
    assert (out / "attempt.toml").exists() and (out / "report.html").exists()
