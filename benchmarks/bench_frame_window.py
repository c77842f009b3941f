"""frame-window: the shipped liver in a real 1024x768 window under Xvfb, dragged with xdotool.

The retraction exercise (the shipped liver settled under gravity) opens in a real
window (``organsim.viewer.xsession``: Xvfb, the window in its own process, mouse
events sent by xdotool through the X server). Measured from the window's own
frame log:

- frame time while grasp-dragging the right lobe and while cut-dragging across
  it (median and 90th percentile, ms; target >= 30 fps median);
- the lag between the mouse and the tissue: frames from the frame at which a
  new grasp target first appears to the frame whose step has moved the held
  tissue there (target <= 2 frames);
- time from starting the window process to its first frame, warm (kernels
  cached) and cold (an empty ``NUMBA_CACHE_DIR``: everything compiled).

Needs Debian's ``xvfb`` and ``xdotool``; records the reason and nothing else
without them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ID = "frame-window"

# on the anterior surface of the right lobe (mm): where the grasp takes hold and the cut runs
_GRASP_MM = (-92.0, -53.0, 33.0)
_CUT_MM = ((-125.0, -45.0, 45.0), (-75.0, -50.0, 45.0))


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms, float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"median_ms": None, "p90_ms": None, "fps_median": None, "frames": 0}
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
            "fps_median": float(1e3 / np.median(a)), "frames": int(a.size)}


def _work(frames: list[dict]) -> dict:
    """Median work per frame (ms): the whole frame, and its simulation step."""
    fm = [f["frame_ms"] for f in frames if f.get("frame_ms") is not None]
    sm = [f["step_ms"] for f in frames if f.get("step_ms") is not None]
    return {"work_median_ms": float(np.median(fm)) if fm else None,
            "step_median_ms": float(np.median(sm)) if sm else None}


def _intervals(frames: list[dict]) -> list[float]:
    """Frame-to-frame wall intervals (ms): what a person sees as the frame time."""
    w = [f["wall"] for f in frames]
    return [1e3 * (b - a) for a, b in zip(w, w[1:])]


def _lag_frames(frames: list[dict]) -> list[int]:
    """For each new grasp target, frames until the held tissue's tip is there."""
    lags = []
    for i, f in enumerate(frames):
        if not f["grasping"] or f["target"] is None:
            continue
        prev = frames[i - 1] if i else None
        if prev is not None and prev.get("target") == f["target"]:
            continue  # not a new target
        for j in range(i, min(i + 10, len(frames))):
            tip = frames[j]["tip"]
            if tip is not None and np.linalg.norm(np.subtract(tip, f["target"])) < 1e-9:
                lags.append(j - i + 1)   # the frame that shows it, counting the one that got it
                break
    return lags


def _session(outdir: Path, env_extra: dict | None, quick: bool) -> dict:
    from organsim.scenario.exercises import retraction
    from organsim.scenario.loader import save_scenario
    from organsim.viewer.xsession import VirtualDisplay, XWindow

    outdir.mkdir(parents=True, exist_ok=True)
    scen = outdir / "retraction.toml"
    save_scenario(retraction(), scen)
    g = np.asarray(_GRASP_MM) * 1e-3
    pts = [g, g + [0.0, -0.01, 0.025], np.asarray(_CUT_MM[0]) * 1e-3, np.asarray(_CUT_MM[1]) * 1e-3]
    old = {k: os.environ.get(k) for k in (env_extra or {})}
    os.environ.update(env_extra or {})
    try:
        with VirtualDisplay((1280, 1024)) as d:
            t0 = time.perf_counter()
            w = XWindow(d, scen, outdir / "session", points=pts, size=(1024, 768), camera="surgeon",
                        timeout=900)
            first = time.perf_counter() - t0
            res = {"first_frame_s": first}
            if env_extra is None:
                n0 = len(w.frames())
                w.drag(w.pixels[0], w.pixels[1], steps=15 if quick else 40, step_s=0.04)
                f = w.frames()
                grasp = [r for r in f[n0:] if r["grasping"]]
                res["grasp"] = {**_stats(_intervals(grasp)), **_work(grasp)}
                lags = _lag_frames(f[n0:])
                res["lag_frames_median"] = float(np.median(lags)) if lags else None
                res["lag_frames_max"] = int(max(lags)) if lags else None
                res["peak_grasp_force_n"] = max((r["force_n"] for r in grasp), default=0.0)
                w.key("i")
                n1 = len(w.frames())
                w.drag(w.pixels[2], w.pixels[3], steps=15 if quick else 40, step_s=0.05)
                f = w.frames()
                res["cut"] = {**_stats(_intervals(f[n1:])), **_work(f[n1:])}
                res["cut_tets_added"] = f[-1]["n_tets"] - f[n1]["n_tets"]
            w.close()
            return res
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(quick: bool = False) -> dict:
    from organsim.viewer.xsession import missing_tools

    missing = missing_tools()
    if missing:
        return {"skipped": f"needs Debian packages {', '.join(missing)}"}
    tmp = Path(tempfile.mkdtemp(prefix="frame-window-"))
    try:
        warm = _session(tmp / "warm", None, quick)
        out = {"window": "1024x768 under Xvfb (software OpenGL)", "scene": "retraction exercise, shipped liver",
               "warm": warm}
        if not quick:
            cold_cache = tmp / "numba-cold"
            cold = _session(tmp / "cold", {"NUMBA_CACHE_DIR": str(cold_cache)}, quick)
            out["cold_first_frame_s"] = cold["first_frame_s"]
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
