"""The live viewer on a virtual X display, driven by real input events.

Tests and benchmarks use this to try the window as a person would: an
``Xvfb`` server, the viewer in its own process with a real interactor, and
mouse and key events sent by ``xdotool`` through the X server (Debian
packages ``xvfb`` and ``xdotool``). Nothing here calls organsim's handlers
directly.

``python -m organsim.viewer.xsession SCENARIO OUTDIR`` opens the window on
``$DISPLAY`` and writes, in ``OUTDIR``:

- ``ready.json`` once the first frame is drawn: the X window id, the window
  size, and the pixel of each world point asked for with ``--points``;
- ``frames.jsonl``: one line per frame (wall time, procedure time, camera
  position, the hand grasper's target and force, number of tets, frame ms);
- the attempt's results when it ends (key ``e``): ``metrics.json``,
  ``report.html``, ``attempt.toml`` (see :func:`organsim.scenario.runner.write_results`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["VirtualDisplay", "missing_tools", "XWindow", "request_close"]


def missing_tools() -> list[str]:
    """Debian packages missing for a virtual-display session (``xvfb``, ``xdotool``)."""
    need = {"Xvfb": "xvfb", "xdotool": "xdotool"}
    return [pkg for exe, pkg in need.items() if shutil.which(exe) is None]


def request_close(display: str, window_id: int) -> None:
    """Ask a window to close as a window manager's close button does (``WM_DELETE_WINDOW``).

    Xvfb runs no window manager, and xdotool's ``windowclose`` destroys the window
    instead, which no application survives; this sends the ``WM_PROTOCOLS`` client
    message the application handles, through libX11 (ctypes).
    """
    import ctypes
    import ctypes.util

    lib = ctypes.util.find_library("X11")
    if lib is None:
        raise RuntimeError("libX11 not found (Debian: libx11-6)")
    x11 = ctypes.cdll.LoadLibrary(lib)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

    class _ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                    ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                    ("message_type", ctypes.c_ulong), ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

    class _XEvent(ctypes.Union):
        _fields_ = [("xclient", _ClientMessage), ("pad", ctypes.c_long * 24)]

    d = x11.XOpenDisplay(display.encode())
    if not d:
        raise RuntimeError(f"cannot open X display {display}")
    try:
        ev = _XEvent()
        ev.xclient.type = 33                      # ClientMessage
        ev.xclient.window = int(window_id)
        ev.xclient.message_type = x11.XInternAtom(d, b"WM_PROTOCOLS", 0)
        ev.xclient.format = 32
        ev.xclient.data[0] = x11.XInternAtom(d, b"WM_DELETE_WINDOW", 0)
        x11.XSendEvent(d, int(window_id), 0, 0, ctypes.byref(ev))
        x11.XFlush(d)
    finally:
        x11.XCloseDisplay(d)


class VirtualDisplay:
    """An ``Xvfb`` server for the duration of a ``with`` block.

    Parameters
    ----------
    size : (int, int)
        Screen pixels.
    """

    def __init__(self, size: tuple[int, int] = (1280, 1024)) -> None:
        self.size = size
        self.proc: subprocess.Popen | None = None
        self.display = ""

    def __enter__(self) -> VirtualDisplay:
        for n in range(90, 140):
            if Path(f"/tmp/.X{n}-lock").exists():
                continue
            proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                                     "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(50):
                if Path(f"/tmp/.X11-unix/X{n}").exists():
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
            if proc.poll() is None:
                self.proc, self.display = proc, f":{n}"
                return self
        raise RuntimeError("could not start Xvfb on any display :90-:139")

    @property
    def env(self) -> dict:
        """The environment for a process on this display (on-screen pyvista)."""
        env = {k: v for k, v in os.environ.items() if k != "PYVISTA_OFF_SCREEN"}
        env["DISPLAY"] = self.display
        return env

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class XWindow:
    """An organsim window in its own process on a :class:`VirtualDisplay`, and xdotool input.

    Parameters
    ----------
    display : VirtualDisplay
    scenario : str or Path
        Scenario TOML (or exercise name) to open live.
    outdir : Path
        Where the window process writes ``ready.json``, ``frames.jsonl`` and results.
    points : list of (3,) floats, optional
        World points (m) whose pixels ``ready.json`` reports.
    size : (int, int)
        Window pixels.
    extra : list of str
        More command-line arguments for the window process.
    """

    def __init__(self, display: VirtualDisplay, scenario, outdir: Path, *, points=(), size=(1024, 768),
                 camera: str = "superior", trainee: str | None = None, history: Path | None = None,
                 timeout: float = 400.0) -> None:
        self.display = display
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "organsim.viewer.xsession", str(scenario), str(self.outdir),
               "--size", f"{size[0]}x{size[1]}", "--camera", camera,
               "--points", json.dumps([list(map(float, p)) for p in points])]
        if trainee:
            cmd += ["--trainee", trainee]
        if history:
            cmd += ["--history", str(history)]
        self.log = open(self.outdir / "window.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, env=display.env, stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.time()
        ready = self.outdir / "ready.json"
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the window process exited ({self.proc.returncode}): "
                                   + (self.outdir / "window.log").read_text()[-3000:])
            if time.time() - t0 > timeout:
                raise RuntimeError("the window did not draw its first frame in time")
            time.sleep(0.2)
        time.sleep(0.2)
        self.ready = json.loads(ready.read_text())
        self.wid = str(self.ready["window_id"])
        self.pixels = [tuple(p) for p in self.ready["pixels"]]

    def xdo(self, *args: str) -> None:
        """Run one xdotool command on this display."""
        subprocess.run(["xdotool", *args], env=self.display.env, check=True, timeout=30)

    def drag(self, start, end, *, steps: int = 30, step_s: float = 0.05, hold_s: float = 0.3) -> None:
        """Press the left button at pixel ``start``, move to ``end`` in ``steps``, release."""
        self.xdo("mousemove", "--window", self.wid, str(int(start[0])), str(int(start[1])))
        time.sleep(0.2)
        self.xdo("mousedown", "1")
        time.sleep(hold_s)
        for i in range(1, steps + 1):
            f = i / steps
            x = start[0] + f * (end[0] - start[0])
            y = start[1] + f * (end[1] - start[1])
            self.xdo("mousemove", "--window", self.wid, str(int(round(x))), str(int(round(y))))
            time.sleep(step_s)
        time.sleep(hold_s)
        self.xdo("mouseup", "1")
        time.sleep(0.3)

    def key(self, key: str) -> None:
        """Press and release a key in the window."""
        self.xdo("windowfocus", "--sync", self.wid)
        self.xdo("key", key)

    def frames(self) -> list[dict]:
        """The frames logged so far."""
        path = self.outdir / "frames.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def close(self, timeout: float = 300.0) -> int:
        """End the attempt (key ``e``) and wait for the window process to write its results."""
        if self.proc.poll() is None:
            import contextlib

            # a window that cannot take the key is killed below if it does not exit by itself
            with contextlib.suppress(subprocess.SubprocessError):
                self.key("e")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return int(self.proc.returncode)


def _window_id(render_window) -> int:
    """The X window id of a VTK render window (VTK hands it over as a pointer string '_<hex>_p_void')."""
    wid = render_window.GetGenericWindowId()
    if isinstance(wid, str):
        return int(wid.strip("_").split("_")[0], 16)
    return int(wid)


def _main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m organsim.viewer.xsession",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("outdir")
    ap.add_argument("--size", default="1024x768")
    ap.add_argument("--camera", default="superior")
    ap.add_argument("--points", default="[]")
    ap.add_argument("--trainee")
    ap.add_argument("--history")
    a = ap.parse_args(argv)
    from ..scenario.exercises import resolve_scenario
    from ..scenario.procedure import HAND_GRASPER, Procedure
    from ..scenario.runner import write_results
    from .viewer import Viewer

    from ..warmup import warm_up

    out = Path(a.outdir)
    w, h = (int(v) for v in a.size.split("x"))
    t_start = time.perf_counter()
    warm_up()  # as `organsim view` does: before the window opens
    proc = Procedure(resolve_scenario(a.scenario), open_ended=True)
    v = Viewer(proc, window_size=(w, h), title="organsim window session")
    v.scene.camera_preset(a.camera)
    points = [np.asarray(p, float) for p in json.loads(a.points)]
    log = open(out / "frames.jsonl", "w")  # noqa: SIM115 - closed below
    original_frame = v.frame

    def frame(*, render: bool = True) -> None:
        original_frame(render=render)
        tool = proc.tools.get(HAND_GRASPER)
        held = tool is not None and tool.held is not None
        rec = {"wall": time.perf_counter() - t_start, "t": proc.time, "frame": v.frame_count,
               "frame_ms": v.last_frame_ms, "step_ms": v.last_step_ms,
               "camera": list(v.plotter.camera.position), "n_tets": proc.mesh.n_tets,
               "n_points": proc.mesh.n_points,
               "grasping": held, "tool": v.interaction.tool, "messages": list(v.interaction.messages),
               "target": None if not held or tool.motion is None else list(map(float, tool.motion.points[-1])),
               "tip": None if not held else list(map(float, tool.tip)),
               "force_n": float(sum(np.linalg.norm(i.force) for i in proc.instruments()
                                    if i.name == HAND_GRASPER))}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if v.frame_count == 2:
            ren = v.plotter.renderer
            px = []
            for p in points:
                ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
                ren.WorldToDisplay()
                dx, dy, _ = ren.GetDisplayPoint()
                px.append([float(dx), float(h - 1 - dy)])
            ready = {"window_id": _window_id(v.plotter.render_window),
                     "size": [w, h], "pixels": px, "first_frame_s": time.perf_counter() - t_start}
            tmp = out / ".ready.json"
            tmp.write_text(json.dumps(ready))
            tmp.replace(out / "ready.json")

    v.frame = frame
    v.show()
    log.close()
    res = write_results(proc, out, wall_s=time.perf_counter() - t_start, viewer=None,
                        trainee=a.trainee, history_path=a.history, image=False,
                        attempt=proc.attempt_scenario())
    v.close()
    print(json.dumps({"score": res.score["score"], "cut_length_mm": res.metrics.get("cut_length_mm", 0.0)}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
