"""``organsim serve`` without a browser: the missing extra, the host warning, the lab's checks,
a LiveSession driven by image-space mouse events (the code path a page's drag takes), its
colouring and camera buttons, session tokens, and the page's key-free instructions."""

from __future__ import annotations

import math
import re
import urllib.parse

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


def test_page_instructions_leave_out_desktop_keys_and_the_desktop_keeps_them():
    from organsim.scenario.exercises import EXERCISES
    from organsim.viewer.interaction import KEYS
    from organsim.web.app import PAGE_CONTROLS, page_instructions

    desktop = ("Cut along the circle. Press i for the cut tool, drag along the circle, press e when "
               "done. Hit space to pause; t toggles the stress view.")
    assert page_instructions(desktop) == "Cut along the circle. Drag along the circle."
    keyish = re.compile(r"\bpress\b|\bkeys?\b|\bhit\b|\b[a-z]\s+(switches|toggles)\b", re.I)
    for name, make in EXERCISES.items():
        d = make().description
        assert not keyish.search(d), name       # the texts name no key ...
        assert page_instructions(d) == d, name  # ... so the page shows them whole
    assert not keyish.search(PAGE_CONTROLS)
    assert {"i", "e", "t", "space"} <= set(KEYS)  # the desktop viewer's key help is unchanged


def test_session_tokens_and_frame_stamps():
    from organsim.web.app import new_token, session_path, stamp_frame, token_ok

    a, b = new_token(), new_token()
    assert a != b and len(a) == 64 and re.fullmatch(r"[0-9a-f]+", a)
    assert token_ok(a, a) and not token_ok(b, a) and not token_ok(None, a) and not token_ok([a], a)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(session_path(a)).query)
    assert q["secret"] == [a] and q["sessionURL"] == [f"ws://USE_HOST/ws?secret={a}"]
    s1, s2 = stamp_frame(b"\xff\xd8\xff\xdbJPEG", 1), stamp_frame(b"\xff\xd8\xff\xdbJPEG", 2)
    assert s1 != s2 and s1.startswith(b"\xff\xd8\xff\xfe") and s1.endswith(b"\xff\xdbJPEG")


@pytest.mark.render
def test_live_session_colours_by_stress_and_moves_the_camera(tmp_path):
    from organsim.scenario.exercises import exercise
    from organsim.web.live import CAMERA_BUTTONS, LiveSession

    s = LiveSession(exercise("pattern-cutting"), size=(320, 240), outdir=tmp_path,
                    history_path=tmp_path / "h.sqlite")
    try:
        for _ in range(10):
            s.step()
        regions = s.image().astype(float)
        assert s.hud()["color_by"] == "regions"
        s.set_color_by("stress")
        s.step()
        h = s.hud()
        assert h["color_by"] == "stress" and h["stress_kpa"][1] > h["stress_kpa"][0]
        assert float(np.abs(s.image().astype(float) - regions).mean()) > 10.0
        s.set_color_by("regions")
        for button in CAMERA_BUTTONS:
            before = np.array(s.viewer.plotter.camera.position)
            s.camera(button)
            assert s.hud()["camera"] == button
            if button != "reset":
                assert np.linalg.norm(np.array(s.viewer.plotter.camera.position) - before) > 1e-4
        with pytest.raises(OrganSimError):
            s.set_color_by("rainbow")
        with pytest.raises(OrganSimError):
            s.camera("behind")
    finally:
        s.close()
