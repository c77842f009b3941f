"""The organsim viewer: a live window, or the same scene off-screen.

>>> from organsim.viewer import Viewer                      # doctest: +SKIP
>>> Viewer(simulation).show()                                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import OrganSimError
from ..mesh.tetmesh import TetMesh
from .interaction import KEYS, Interaction
from .scene import Scene
from .sources import FrameSource, SimulationSource, StaticSource

__all__ = ["Viewer", "as_source", "has_display"]

log = logging.getLogger(__name__)


def has_display() -> bool:
    """True where a window can be opened (an X11/Wayland display, or Windows/macOS)."""
    if os.environ.get("PYVISTA_OFF_SCREEN", "").lower() == "true":
        return False
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def as_source(obj) -> FrameSource:
    """Wrap what the user passed (a mesh, a simulation, a source) as a frame source."""
    if isinstance(obj, TetMesh):
        return StaticSource(obj)
    if all(hasattr(obj, a) for a in ("advance", "positions", "mesh", "instruments")):
        return obj
    if all(hasattr(obj, a) for a in ("step", "positions", "mesh")):
        return SimulationSource(obj)
    raise OrganSimError(f"cannot view a {type(obj).__name__}; expected a TetMesh, a Simulation "
                        "or a scenario Procedure")


class Viewer:
    """Render a mesh, a simulation or a procedure, live or off-screen.

    Parameters
    ----------
    obj : TetMesh, Simulation or FrameSource
        What to show. A simulation is stepped once per frame.
    off_screen : bool, optional
        Render without a window (screenshots, recordings). By default off-screen
        exactly when no display is available.
    window_size : (int, int)
        Pixels.
    title : str
        Window title.
    target_fps : float
        Frame rate the interactive window's timer asks for.
    anti_aliasing : bool
        FXAA smoothing of edges (costs a few ms per frame in software rendering).
    show_panel : bool
        Draw the text panel (time, forces, messages).
    overlap : bool, optional
        Step the simulation for the next frame on a worker thread while this frame
        renders (the element kernels, the factor solve and VTK's render all release
        the GIL). A frame then costs about the longer of the step and the render
        instead of their sum (patient liver, 41k tets: 28 against 33 ms); the image
        shows the state one step before the simulation's. By default on in a live
        window and off off-screen, where each recorded frame shows the state after
        exactly that many steps and the source is settled when :meth:`frame` returns.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> v = Viewer(box_tet_mesh((5, 5, 5), 0.01), off_screen=True, window_size=(200, 150))
    >>> img = v.screenshot()
    >>> img.shape
    (150, 200, 3)
    >>> v.close()
    """

    def __init__(self, obj, *, off_screen: bool | None = None,
                 window_size: tuple[int, int] = (1024, 768), title: str = "organsim",
                 target_fps: float = 30.0, anti_aliasing: bool = False,
                 show_panel: bool = True, overlap: bool | None = None) -> None:
        import pyvista as pv

        self.off_screen = (not has_display()) if off_screen is None else bool(off_screen)
        self.source = as_source(obj)
        self.plotter = pv.Plotter(off_screen=self.off_screen, window_size=list(window_size),
                                  title=title)
        # MSAA multiplies the cost of software rendering (llvmpipe) several times
        self.plotter.render_window.SetMultiSamples(0)
        if anti_aliasing:
            self.plotter.enable_anti_aliasing("fxaa")
        self.scene = Scene(self.plotter, self.source, show_panel=show_panel)
        #: step the next frame on a worker thread while this one renders (see ``overlap``)
        self.overlap = (not self.off_screen) if overlap is None else bool(overlap)
        self._worker = None        # concurrent.futures executor, made on the first overlapped frame
        self._pending = None       # the step in flight: a Future of its duration (ms)
        self._deferred: dict = {}  # source calls waiting for the step in flight, by key, in order
        self.interaction = Interaction(self)
        self.target_fps = float(target_fps)
        self.paused = False
        #: show the measured frame rate in the panel (off for recordings)
        self.show_fps = True
        #: live view: refresh the panel text a few times a second (True), or every frame
        #: (False: recordings and screenshots, where each frame must be exact)
        self.live_panel = not self.off_screen
        self.frame_count = 0
        self.fps = float("nan")
        self.last_frame_ms = float("nan")
        self.last_step_ms = float("nan")
        self._last_t: float | None = None
        self._help_actor = None
        self._shown = False
        #: set when the user ends the attempt (key e) or closes the window
        self.ended = False
        self.scene.extra_lines = self._status_lines()
        self.scene.update()

    # ----------------------------------------------------------------- frames
    def _status_lines(self) -> list[str]:
        lines = []
        if self.show_fps and np.isfinite(self.fps):
            lines.append(f"{self.fps:4.0f} fps, frame {self.last_frame_ms:.0f} ms")
        if hasattr(self.source, "grasp_begin") and self.interaction.bound:
            lines.append(f"tool: {self.interaction.tool}" + ("   [paused]" if self.paused else ""))
        elif self.paused:
            lines.append("[paused]")
        lines += self.interaction.messages
        return lines

    def frame(self, *, render: bool = True) -> None:
        """Advance the source one frame (unless paused), update the scene and render.

        With ``overlap`` the step started by the previous frame is waited for, the scene
        shows its result, and the next step starts on the worker thread before the
        render, so it runs while this frame is drawn.
        """
        t0 = time.perf_counter()
        running = not self.paused and not self.ended
        if self.overlap:
            self.settle()
        elif running:
            self._advance_reporting()
        self.scene.extra_lines = self._status_lines()
        self.scene.update(force_panel=not self.live_panel)
        if self.overlap and running:
            if self._worker is None:
                from concurrent.futures import ThreadPoolExecutor

                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="organsim-step")
            self._pending = self._worker.submit(self._timed_advance)
        if render:
            self._render()
        now = time.perf_counter()
        self.last_frame_ms = (now - t0) * 1e3
        if self._last_t is not None:
            dt = now - self._last_t
            inst = 1.0 / dt if dt > 0 else float("nan")
            self.fps = inst if not np.isfinite(self.fps) else 0.8 * self.fps + 0.2 * inst
        self._last_t = now
        self.frame_count += 1

    def _timed_advance(self) -> float:
        t0 = time.perf_counter()
        self.source.advance()
        return (time.perf_counter() - t0) * 1e3

    def _advance_reporting(self) -> None:
        """Step the source here; a step the solver rejects pauses the viewer with its reason."""
        try:
            self.last_step_ms = self._timed_advance()
        except OrganSimError as exc:
            self._stopped(exc)

    def _stopped(self, exc: OrganSimError) -> None:
        # the solver rejected the step (state unchanged): stop and say so; x resets
        self.paused = True
        self.interaction.say(f"stopped: {str(exc).split(';')[0]} (x: reset)")
        log.error("simulation stopped: %s", exc)

    def settle(self) -> None:
        """Wait for the step in flight (``overlap``), so the source may be read or changed.

        Mouse and key handlers, :meth:`refresh`, :meth:`screenshot` and :meth:`close`
        call it first; a script that changes the source between frames should too. A
        step the solver rejected pauses the viewer, as it does without ``overlap``.
        """
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self.last_step_ms = pending.result()
            except OrganSimError as exc:
                self._stopped(exc)
        deferred, self._deferred = self._deferred, {}
        for call in deferred.values():
            call()

    def when_settled(self, call, key: object = None) -> None:
        """Run ``call()`` on the source now, or, while a step is in flight, as soon as it ends.

        A drag's mouse moves use it, so moving the grasper does not wait for the step
        (the next step starts from the newest target). Calls run in the order given; a
        call with the same ``key`` as one still waiting replaces it (only the newest
        grasper target matters), ``key=None`` always queues.
        """
        if self._pending is None:
            call()
            return
        if key is None:
            key = object()
        self._deferred.pop(key, None)   # a replaced call moves to the end of the queue
        self._deferred[key] = call

    def _render(self) -> None:
        if not self._shown:
            self._ensure_shown()
        self.plotter.render()

    def _ensure_shown(self) -> None:
        """Initialise the render window (off-screen: without blocking)."""
        if self._shown:
            return
        if self.off_screen:
            # jupyter_backend="none": inside a notebook pyvista would otherwise display a static
            # image of its own (and warn) when an off-screen viewer only initialises its window
            extra = {"jupyter_backend": "none"} if getattr(self.plotter, "notebook", False) else {}
            self.plotter.show(auto_close=False, **extra)
        self._shown = True

    def refresh(self) -> None:
        """Redraw the current state without advancing (after a key or mouse action)."""
        self.settle()
        self.scene.extra_lines = self._status_lines()
        self.scene.update()
        if self._shown:
            self.plotter.render()

    def end_attempt(self) -> None:
        """End the attempt (key ``e``): stop stepping and close the window; ``show()`` returns."""
        self.settle()
        self.ended = True
        self.interaction.say("attempt ended")
        if self._shown and not self.off_screen:
            iren = self.plotter.iren
            if iren is not None and iren.interactor is not None:
                iren.interactor.TerminateApp()

    def toggle_help(self) -> None:
        """Show or hide the key bindings overlay."""
        if self._help_actor is None:
            text = "mouse: drag tissue = act with tool, drag background = rotate\n" + "\n".join(
                f"{k:>5}  {d}" for k, d in KEYS.items())
            from .scene import text_actor

            self._help_actor = text_actor(self.plotter, "help", (0.008, 0.01), font_size=12)
            self._help_actor.SetInput(text)
            self.refresh()
            return
        self._help_actor.SetVisibility(not self._help_actor.GetVisibility())

    # ----------------------------------------------------------- interactive
    def show(self, *, max_frames: int | None = None) -> None:
        """Open the interactive window; the simulation steps on a timer.

        Mouse and keys are bound (see :mod:`organsim.viewer.interaction`; press
        ``h`` in the window for help). Returns when the window is closed (or after
        ``max_frames`` frames).
        """
        if self.off_screen:
            raise OrganSimError("this viewer renders off-screen (no display); use screenshot() "
                                "or organsim.viewer.record(...) instead of show()")
        self.interaction.bind()
        self.toggle_help()
        interval_ms = max(1, int(1000.0 / self.target_fps))
        limit = 10**9 if max_frames is None else int(max_frames)
        iren = self.plotter.iren.interactor

        def tick(_obj=None, _event=None) -> None:
            if self.ended:
                return
            self.frame(render=True)
            if self.frame_count >= limit:
                self.end_attempt()

        # the timer is observed on the interactor style: while the style turns the camera it
        # holds the interactor's focus, and observers elsewhere would not see the timer
        style = self.interaction.style
        if style is not None:
            style.AddObserver("TimerEvent", tick)
        else:
            iren.AddObserver("TimerEvent", tick)
        self._shown = True
        self.plotter.show(auto_close=False, interactive_update=True)
        iren.CreateRepeatingTimer(interval_ms)
        iren.Start()
        self.settle()
        self.ended = True

    def bind_offscreen(self) -> None:
        """Initialise the off-screen window and bind mouse and keys (tests, scripted demos)."""
        self._ensure_shown()
        self.interaction.bind()

    # ------------------------------------------------------------- off-screen
    def screenshot(self, path: str | os.PathLike | None = None) -> np.ndarray:
        """Render the current state; write a PNG if ``path`` is given.

        Returns
        -------
        ndarray, shape (h, w, 3), uint8
        """
        self._ensure_shown()
        self.refresh()
        img = self.plotter.screenshot(None, return_img=True)
        if path is not None:
            from PIL import Image

            from ..io.atomic import atomic_output

            with atomic_output(Path(path)) as tmp:   # a kill never leaves a half-written image
                Image.fromarray(np.asarray(img)).save(tmp, format=Path(path).suffix.lstrip(".").upper()
                                                      .replace("JPG", "JPEG") or "PNG")
        return np.asarray(img)[..., :3]

    def close(self) -> None:
        """Finish the step in flight and release the render window."""
        self.settle()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self.plotter.close()
