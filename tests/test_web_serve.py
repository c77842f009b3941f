"""``organsim serve`` without a browser: the missing extra, the host warning, the lab's checks,
and a LiveSession driven by image-space mouse events (the code path a page's drag takes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from organsim.cli import main
from organsim.cli import serve as serve_cli
from organsim.errors import OrganSimError


def test_serve_without_the_web_extra_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setattr(serve_cli, "web_missing", lambda: ["trame"])
    assert main(["serve"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['organsim serve needs the web extra: pip install "organsim[web]"']


def test_only_loopback_is_quiet():
    for host in ("127.0.0.1", "localhost", "::1"):
        assert serve_cli.host_warning(host) is None
    assert "warning" in serve_cli.host_warning("0.0.0.0")


def test_lab_offers_titles_by_index_and_rejects_unknown_scenarios(tmp_path):
    pytest.importorskip("aiohttp")
    from organsim.web.lab import Lab

    lab = Lab(["pattern-cutting", "retraction"], history_path=tmp_path / "h.sqlite", outdir=tmp_path)
    page = lab.start_page(trainee='"><script>')
    assert 'value="0"' in page and 'value="1"' in page and "<script>" not in page
    with pytest.raises(OrganSimError):
        Lab(["no-such-exercise"])


@pytest.mark.render
def test_live_session_grasps_and_cuts_from_image_pixels(tmp_path):
    from organsim.scenario.exercises import exercise
    from organsim.web.live import LiveSession

    s = LiveSession(exercise("pattern-cutting"), trainee="unit", history_path=tmp_path / "h.sqlite",
                    outdir=tmp_path, size=(400, 300))
    try:
        for _ in range(5):
            s.step()
        jpeg = s.jpeg()
        assert jpeg[:2] == b"\xff\xd8"
        x, y = s.world_to_image((0.01, 0.01, 0.0))
        assert s.mouse_down(x, y) == "grasp"
        for k in range(1, 8):
            s.mouse_move(x, y - 2 * k)
            s.step()
        assert s.hud()["grasp_force_n"] > 0
        s.mouse_up(x, y - 14)
        assert s.mouse_down(2, 2) == "rotate"  # the background turns the camera
        before = np.array(s.viewer.plotter.camera.position)
        s.mouse_move(40, 2)
        s.mouse_up(40, 2)
        assert np.linalg.norm(np.array(s.viewer.plotter.camera.position) - before) > 1e-4
        s.viewer.scene.camera_preset(s.scenario.output.camera)
        s.set_tool("cut")
        pts = [s.world_to_image((0.025 * math.cos(a), 0.025 * math.sin(a), 0.0))
               for a in np.linspace(0, math.pi / 3, 10)]
        assert s.mouse_down(*pts[0]) == "cut"
        for p in pts[1:]:
            s.mouse_move(*p)
            s.step()
        s.mouse_up(*pts[-1])
        s.step()
        assert s.hud()["cut_mm"] > 5
        with pytest.raises(OrganSimError):
            s.set_tool("laser")
        res = s.finish()
        assert 0 <= res["score"] <= 100 and "Learning curve" in res["report_html"]
        s.reset()
        assert s.hud()["time_s"] == 0.0 and not s.finished
    finally:
        s.close()
