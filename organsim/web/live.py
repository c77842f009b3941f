"""One trainee's live procedure, rendered off-screen and driven by image-space mouse events.

:class:`LiveSession` is what a browser session (``organsim serve``) or a
notebook holds: a :class:`~organsim.scenario.procedure.Procedure` (the one
engine), an off-screen :class:`~organsim.viewer.viewer.Viewer` drawing it
(the desktop viewer's :class:`~organsim.viewer.scene.Scene`), and that
viewer's :class:`~organsim.viewer.interaction.Interaction` for the mouse: a
press on the tissue picks it with the same ``vtkCellPicker`` code and calls
the engine's ``grasp_begin``/``cut_begin``; a press on the background turns
the camera. It knows nothing of HTTP or trame, so it is tested without a
browser.

Mouse coordinates are image pixels with the origin at the top left (as a
browser reports them); they are flipped to VTK's bottom-left display
coordinates here.

Examples
--------
>>> from organsim.web.live import LiveSession
>>> from organsim.scenario.exercises import exercise
>>> s = LiveSession(exercise("pattern-cutting"), size=(160, 120))  # doctest: +SKIP
>>> jpeg = s.frame()                                                 # doctest: +SKIP
>>> s.close()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import OrganSimError
from ..scenario.schema import Scenario

__all__ = ["LiveSession", "TOOLS", "COLOR_BY", "CAMERA_BUTTONS", "ROTATE_DEG_PER_PX"]

log = logging.getLogger(__name__)

#: Tools the page offers (the desktop viewer's, in the same order).
TOOLS = ("grasp", "cut", "camera")
#: What the tissue can be coloured by: its regions (and cut faces), or von Mises stress.
COLOR_BY = ("regions", "stress")
#: The page's camera buttons -> the scene's camera presets (``None``: the scenario's own view).
CAMERA_BUTTONS = {"front": "anterior", "top": "superior", "side": "right", "reset": None}
#: Camera turn per pixel of a background drag (degrees), as VTK's trackball style at 800 px.
ROTATE_DEG_PER_PX = 0.25


class LiveSession:
    """A live procedure, rendered off-screen, for one trainee.

    Parameters
    ----------
    scenario : Scenario
    trainee : str, optional
        Name the attempt is recorded under in the training history.
    history_path : str or Path, optional
        Training history database (shared by every session of a server).
    outdir : str or Path, optional
        Folder for each finished attempt's results (``attempt-N/``).
    size : (int, int)
        Image pixels (width, height).
    jpeg_quality : int
        JPEG quality of the frames (1-95).
    """

    def __init__(self, scenario: Scenario, *, trainee: str | None = None,
                 history_path: str | Path | None = None, outdir: str | Path | None = None,
                 size: tuple[int, int] = (800, 600), jpeg_quality: int = 80) -> None:
        from ..scenario.procedure import Procedure
        from ..viewer.viewer import Viewer

        self.scenario = scenario
        self.trainee = trainee
        self.history_path = history_path
        self.outdir = Path(outdir) if outdir is not None else None
        self.size = (int(size[0]), int(size[1]))
        self.jpeg_quality = int(jpeg_quality)
        self.proc = Procedure(scenario, open_ended=True)
        self.viewer = Viewer(self.proc, off_screen=True, window_size=self.size, show_panel=False)
        self.viewer.show_fps = False
        self.viewer.live_panel = False
        self.viewer.scene.camera_preset(scenario.output.camera)
        self.viewer._ensure_shown()
        self.interaction = self.viewer.interaction
        self._rotating: tuple[int, int] | None = None
        self.results = None
        self.attempts = 0
        self.started = time.perf_counter()
        #: input events taken so far (the page stamps each; a frame says which it shows)
        self.input_seq = 0
        self.finished = False
        #: the camera button last used ("reset": the scenario's view; "free" after a turn)
        self.camera_name = "reset"

    # ----------------------------------------------------------------- state
    @property
    def tool(self) -> str:
        return self.interaction.tool

    def set_tool(self, tool: str) -> None:
        """Choose the mouse tool (one of :data:`TOOLS`)."""
        if tool not in TOOLS:
            raise OrganSimError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
        self.interaction.tool = tool

    @property
    def paused(self) -> bool:
        return self.viewer.paused

    def set_paused(self, paused: bool) -> None:
        self.viewer.paused = bool(paused)

    @property
    def color_by(self) -> str:
        """``"regions"`` or ``"stress"`` (see :data:`COLOR_BY`)."""
        return "stress" if self.viewer.scene.show_stress else "regions"

    def set_color_by(self, mode: str) -> None:
        """Colour the tissue by its regions or by von Mises stress (with the scene's colour bar)."""
        if mode not in COLOR_BY:
            raise OrganSimError(f"unknown colouring {mode!r}; expected one of {', '.join(COLOR_BY)}")
        self.viewer.scene.set_stress_view(mode == "stress")

    def camera(self, button: str) -> None:
        """Look from one of the page's camera buttons (:data:`CAMERA_BUTTONS`)."""
        if button not in CAMERA_BUTTONS:
            raise OrganSimError(f"unknown camera {button!r}; expected one of {', '.join(CAMERA_BUTTONS)}")
        self.viewer.scene.camera_preset(CAMERA_BUTTONS[button] or self.scenario.output.camera)
        self.camera_name = button

    def reset(self) -> None:
        """Start the attempt again (the same scenario, from its first step)."""
        self.interaction.dragging = None
        self._rotating = None
        self.proc.reset()
        self.viewer.ended = False
        self.viewer.paused = False
        self.finished = False
        self.results = None
        self.started = time.perf_counter()
        self.viewer.scene.camera_preset(self.scenario.output.camera)
        self.camera_name = "reset"

    # ---------------------------------------------------------------- frames
    def step(self) -> None:
        """Advance the procedure one step (unless paused or finished) and update the scene."""
        if self.finished:
            return
        self.viewer.frame(render=False)

    def image(self) -> np.ndarray:
        """Render and read the current image, shape (h, w, 3) uint8, top row first."""
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkCommonCore import vtkUnsignedCharArray

        pl = self.viewer.plotter
        pl.render()
        rw = pl.render_window
        w, h = rw.GetSize()
        arr = vtkUnsignedCharArray()
        rw.GetPixelData(0, 0, w - 1, h - 1, 0, arr, 0)
        img = vtk_to_numpy(arr).reshape(h, w, -1)[::-1, :, :3]
        return np.ascontiguousarray(img)

    def jpeg(self) -> bytes:
        """The current image as JPEG bytes."""
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.image()).save(buf, format="JPEG", quality=self.jpeg_quality)
        return buf.getvalue()

    def frame(self) -> bytes:
        """One step, then the rendered JPEG."""
        self.step()
        return self.jpeg()

    def hud(self) -> dict:
        """What the page shows beside the image: time, forces, deviation, cut length, tool."""
        from ..scenario.procedure import HAND_GRASPER
        from ..scenario.metrics import path_length

        proc = self.proc
        forces = []
        grasp_n = 0.0
        for v in proc.instruments():
            if v.kind == "scalpel":
                forces.append(f"{v.name}: {'cutting' if v.active else 'idle'}")
                continue
            f = float(np.linalg.norm(v.force))
            if v.name == HAND_GRASPER:
                grasp_n = f
            forces.append(f"{v.name}: {f:.2f} N")
        dev = proc.live_deviation_mm()
        cut = sum(path_length(np.asarray(tr)) for tr in proc._cut_trace_rest if len(tr) >= 2)
        return {"time_s": round(float(proc.time), 2), "grasp_force_n": round(grasp_n, 3),
                "forces": forces, "deviation_mm": None if dev is None else round(float(dev), 2),
                "cut_mm": round(float(cut) * 1e3, 1), "tets": int(proc.mesh.n_tets),
                "step_ms": round(float(proc.step_ms[-1]), 1) if proc.step_ms else None,
                "tool": self.tool, "paused": self.paused, "finished": self.finished,
                "message": " ".join(self.interaction.messages), "input_seq": self.input_seq,
                "color_by": self.color_by, "stress_kpa": self._stress_range_kpa(),
                "camera": self.camera_name}

    def _stress_range_kpa(self) -> list[float]:
        """The stress colour bar's range (kPa), as the image's scale bar shows it."""
        lo, hi = self.viewer.scene.stress_actor.mapper.scalar_range
        return [round(float(lo), 2), round(float(hi), 2)]

    # ----------------------------------------------------------------- mouse
    def _display(self, x: float, y: float) -> tuple[int, int]:
        w, h = self.size
        xi = int(np.clip(round(float(x)), 0, w - 1))
        yi = int(np.clip(round(float(y)), 0, h - 1))
        return xi, h - 1 - yi

    def mouse_down(self, x: float, y: float) -> str:
        """Left button pressed at image pixel (x, y): ``"grasp"``, ``"cut"`` or ``"rotate"``."""
        self.input_seq += 1
        if self.finished:
            return "none"
        dx, dy = self._display(x, y)
        if self.interaction.press(dx, dy):
            return self.interaction.dragging or "none"
        self._rotating = (dx, dy)
        return "rotate"

    def mouse_move(self, x: float, y: float) -> None:
        """Mouse moved to image pixel (x, y) with the button held."""
        self.input_seq += 1
        dx, dy = self._display(x, y)
        if self.interaction.move(dx, dy):
            return
        if self._rotating is not None:
            px, py = self._rotating
            cam = self.viewer.plotter.camera
            cam.Azimuth(-(dx - px) * ROTATE_DEG_PER_PX)
            cam.Elevation(-(dy - py) * ROTATE_DEG_PER_PX)
            cam.OrthogonalizeViewUp()
            self.viewer.plotter.renderer.ResetCameraClippingRange()
            self._rotating = (dx, dy)
            self.camera_name = "free"

    def mouse_up(self, x: float, y: float) -> None:
        """Left button released."""
        self.input_seq += 1
        dx, dy = self._display(x, y)
        self.interaction.release(dx, dy)
        self._rotating = None

    def world_to_image(self, p) -> tuple[float, float]:
        """Image pixel (x from the left, y from the top) where world point ``p`` (m) is drawn."""
        ren = self.viewer.plotter.renderer
        ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
        ren.WorldToDisplay()
        x, y, _ = ren.GetDisplayPoint()
        return float(x), float(self.size[1] - 1 - y)

    # ---------------------------------------------------------------- finish
    def finish(self) -> dict:
        """End the attempt: score it, add it to the history, write its results.

        Returns
        -------
        dict
            ``score`` (0-100), ``proficient``, ``parts``, ``report_html`` (the
            report, self-contained: learning curve included), ``outdir``.
        """
        from ..scenario.runner import write_results

        if self.finished and self.results is not None:
            return self.results
        self.interaction.dragging = None
        self.finished = True
        self.viewer.ended = True
        self.attempts += 1
        if self.outdir is not None:
            out = self.outdir / f"attempt-{self.attempts}"
        else:
            import tempfile

            out = Path(tempfile.mkdtemp(prefix="organsim-attempt-"))
        who = f" by {self.trainee}" if self.trainee else ""
        proc = self.proc
        attempt = proc.attempt_scenario(description=f"Replay of a browser attempt{who} at "
                                        f"{self.scenario.name!r} ({proc.time:.1f} s). "
                                        f"{self.scenario.description}")
        res = write_results(proc, out, wall_s=time.perf_counter() - self.started, trainee=self.trainee,
                            history_path=self.history_path, attempt=attempt)
        report = res.report.read_text(encoding="utf-8") if res.report is not None else ""
        s = res.score
        self.results = {"score": round(float(s["score"]), 1), "proficient": bool(s["proficient_attempt"]),
                        "parts": {k: round(float(v) * 100) for k, v in s.get("parts", {}).items()},
                        "report_html": report, "outdir": str(out), "notes": list(res.notes)}
        return self.results

    def close(self) -> None:
        """Release the render window."""
        self.viewer.close()
