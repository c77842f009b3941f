"""frame-browser: the lab (``organsim serve``) as headless Chromium sees it, 1 and several sessions.

The real command serves the shipped liver (the retraction exercise, settled
under gravity), then the pattern-cutting gauze, on 127.0.0.1; Debian's Chromium (driven by Playwright, one
browser context per trainee) opens N sessions at once and keeps a grasp drag
going in each (a slow circle around the centre of the view, through
Chromium's own input pipeline). Measured in the page (``window.organsimStats``)
over the drag:

- frame time as the browser sees it: intervals between frames drawn on the
  canvas (median, 90th percentile, ms) and the frames per second that gives;
- input-to-update latency: from the page sending a mouse event to the first
  drawn frame whose state includes it (median, 90th percentile, ms);
- bytes per frame: websocket bytes received by the page per frame drawn
  (JPEG plus the HUD state), and the JPEG alone.

CPU used over the drag is read from /proc: the lab and its session
processes (``server_cpu_ms_per_frame``) and Playwright with Chromium
(``browser_cpu_ms_per_frame``); ``sessions_at_20fps_by_cpu`` is how many
sessions the machine's cores hold at 20 fps by that cost (the server alone:
the browsers are the trainees' machines in a lab; ``..._with_browser`` counts
them on this machine too, as here). ``sessions_at_20fps`` is the largest N whose worst session still draws at
least 20 frames per second (``fps_effective``: frames drawn over the drag's
duration; ``fps_median`` is 1000 / the median interval, which hides stalls). Needs Debian's chromium and playwright;
records the reason and nothing else without them. The 2-core machine may be
shared while this runs: ``load_before`` is the 1-minute load average at the
start, ``load_during`` the 1-minute load average read at the end of each
measurement (one per exercise and session count). ``--n N`` measures 1..N
sessions (default 1..4).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ID = "frame-browser"


def _p(a, q):
    a = np.asarray(a, float)
    return float(np.percentile(a, q)) if a.size else None


def _cpu_by_tree(lab_pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each process under this one, from /proc: pid -> (group, s),
    group ``server`` (the lab and its sessions) or ``browser`` (Playwright's driver, Chromium)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d.name)] = int(f[1])
        cpu[int(d.name)] = (int(f[11]) + int(f[12])) / tick

    def under(pid, root):
        while pid > 1:
            if pid == root:
                return True
            pid = parent.get(pid, 1)
        return False

    me = os.getpid()
    return {p: ("server" if under(p, lab_pid) else "browser", c) for p, c in cpu.items()
            if p != me and under(p, me)}


def _cpu_delta(before: dict, after: dict) -> tuple[float, float]:
    """CPU seconds (server, browser) between two snapshots (processes that ended in between
    are not counted; ones that started are, whole)."""
    out = {"server": 0.0, "browser": 0.0}
    for pid, (group, c) in after.items():
        out[group] += c - (before[pid][1] if pid in before else 0.0)
    return out["server"], out["browser"]


def _measure(lab_url: str, chromium, n: int, seconds: float, lab_pid: int) -> dict:

    contexts, pages, ws_bytes = [], [], []
    for i in range(n):
        ctx = chromium.new_context(viewport={"width": 1300, "height": 900})
        counter = {"bytes": 0}

        def on_ws(ws, counter=counter):
            ws.on("framereceived", lambda payload, c=counter: c.__setitem__(
                "bytes", c["bytes"] + (len(payload) if payload is not None else 0)))

        page = ctx.new_page()
        page.on("websocket", on_ws)
        page.goto(lab_url)
        page.fill("#trainee", f"bench {i + 1}")
        page.select_option("#scenario", "0")
        page.click("#go")
        page.wait_for_function("() => window.organsimStats && window.organsimStats.drawn.length > 2",
                               timeout=90e3)
        contexts.append(ctx)
        pages.append(page)
        ws_bytes.append(counter)
    # start a grasp drag in every session, then circle
    boxes = [p.locator("#os-view").bounding_box() for p in pages]
    centre = [(b["x"] + b["width"] * 0.5, b["y"] + b["height"] * 0.5) for b in boxes]
    # counts before the drag (the page's arrays are not cleared: its acknowledgements count frames)
    marks = [p.evaluate("() => { const s = window.organsimStats; return [s.drawn.length, s.bytes.length,"
                        " s.latency.length]; }") for p in pages]
    for p, c in zip(pages, centre):
        p.mouse.move(*c)
        p.mouse.down()
    start_bytes = [c["bytes"] for c in ws_bytes]
    cpu0 = _cpu_by_tree(lab_pid)
    t0 = time.perf_counter()
    forces = []
    while time.perf_counter() - t0 < seconds:
        a = 2 * math.pi * (time.perf_counter() - t0) / 4.0
        for p, (cx, cy) in zip(pages, centre):
            p.mouse.move(cx + 25 * math.sin(a), cy - 25 * (1 - math.cos(a)))
        time.sleep(0.03)
    took = time.perf_counter() - t0
    cpu1 = _cpu_by_tree(lab_pid)
    for p in pages:
        forces.append(p.inner_text("#os-force"))
        p.mouse.up()
    rows = []
    for i, p in enumerate(pages):
        st = p.evaluate("() => window.organsimStats")
        d0, b0, l0 = marks[i]
        st = {"drawn": st["drawn"][d0:], "bytes": st["bytes"][b0:], "latency": st["latency"][l0:]}
        iv = np.diff(np.asarray(st["drawn"], float))
        drawn = len(st["drawn"])
        wsb = ws_bytes[i]["bytes"] - start_bytes[i]
        rows.append({"session": i + 1, "frames": drawn,
                     "frame_median_ms": _p(iv, 50), "frame_p90_ms": _p(iv, 90),
                     "fps_median": (1e3 / _p(iv, 50)) if iv.size else None,
                     "fps_effective": drawn / took,
                     "latency_median_ms": _p(st["latency"], 50), "latency_p90_ms": _p(st["latency"], 90),
                     "jpeg_bytes_median": _p(st["bytes"], 50),
                     "ws_bytes_per_frame": (wsb / drawn) if drawn else None,
                     "hud_force": forces[i]})
    for ctx in contexts:
        ctx.close()
    frames = sum(r["frames"] for r in rows)
    server_s, browser_s = _cpu_delta(cpu0, cpu1)
    cpu = {"server_cores": server_s / took, "browser_cores": browser_s / took,
           "server_cpu_ms_per_frame": 1e3 * server_s / max(frames, 1),
           "browser_cpu_ms_per_frame": 1e3 * browser_s / max(frames, 1)}
    for r in rows:
        r.update(cpu)
    return {"sessions": n, "rows": rows}


def run(quick: bool = False, n: int | None = None) -> dict:
    """Measure 1..n simultaneous sessions (``--n``; default 4, 2 with ``quick``) on each exercise."""
    from organsim.web import browser

    why = browser.missing()
    if why:
        return {"skipped": why}
    from playwright.sync_api import sync_playwright

    counts = list(range(1, int(n) + 1)) if n else ([1, 2] if quick else [1, 2, 3, 4])
    seconds = 4.0 if quick else 10.0
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 2
    out_rows, summary = [], {}
    with sync_playwright() as pw:
        chromium = browser.launch(pw)
        for exercise in ("retraction", "pattern-cutting"):
            rows = []
            with tempfile.TemporaryDirectory() as tmp, \
                    browser.LabProcess([exercise], Path(tmp), extra=["--max-sessions", "16"]) as lab:
                for k in counts:
                    res = _measure(lab.url, chromium, k, seconds, lab.proc.pid)
                    load_k = os.getloadavg()[0]
                    rows += [{"exercise": exercise, "sessions": k, "load_during": load_k, **r}
                             for r in res["rows"]]
                    time.sleep(2.0)
            ok = [k for k in counts if all(r["fps_effective"] >= 20.0 for r in rows if r["sessions"] == k)]
            # what one delivered frame costs, server side (step, render, JPEG) and in the browser
            server_ms = float(np.median([r["server_cpu_ms_per_frame"] for r in rows]))
            browser_ms = float(np.median([r["browser_cpu_ms_per_frame"] for r in rows]))
            one = [r for r in rows if r["sessions"] == 1]
            summary[exercise] = {
                "sessions_at_20fps": max(ok) if ok else 0,
                "one_session_fps_effective": one[0]["fps_effective"] if one else None,
                "one_session_latency_median_ms": one[0]["latency_median_ms"] if one else None,
                "server_cpu_ms_per_frame": server_ms, "browser_cpu_ms_per_frame": browser_ms,
                "sessions_at_20fps_by_cpu": round(cores * 1e3 / (20.0 * server_ms), 2) if server_ms else None,
                "sessions_at_20fps_by_cpu_with_browser": round(cores * 1e3 / (20.0 * (server_ms + browser_ms)), 2)
                if server_ms else None}
            out_rows += rows
        chromium.close()
    return {"rows": out_rows, "summary": summary, "view_px": "800x600", "drag_s": seconds,
            "load_before": load, "load_after": os.getloadavg()[0],
            "note": "one headless Chromium for all sessions, on the same 2-core machine as the server "
                    "(which other work may share: see load_before/after)"}
