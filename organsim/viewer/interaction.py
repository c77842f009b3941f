"""Mouse and keyboard: grasp and pull the tissue, draw a cut, switch tools.

The interaction sits between the render window and a frame source. A
left-button drag that starts on the tissue acts with the current tool and
never moves the camera; a drag that starts on the background turns the
camera. The simulation keeps stepping during every drag: the viewer's timer
is served by the same interactor style that rotates the camera (pyvista's own
style would both start a rotation on a press organsim has taken and starve
the timer while it rotates), and mouse moves only set targets that the next
frame's step reaches; they never render on their own.

Tools
-----
``grasp``
    Press on the tissue: the surface nodes within ``grasp_radius`` of the
    picked point are held by a grasper; moving the mouse pulls them in the
    view plane; releasing the button lets go. The source receives
    ``grasp_begin(point)``, ``grasp_move(target)`` and ``grasp_end()``.
``cut``
    Press on the surface: the blade goes in (``cut_depth`` below it); as the
    mouse moves over the surface the blade follows and cuts step by step;
    releasing the button withdraws it. The source receives
    ``cut_begin(point, depth=...)``, ``cut_move(point)`` and ``cut_end()``.
``camera``
    The mouse only moves the camera.

Keys (see :data:`KEYS`): ``i`` next tool, ``t`` stress view, ``space`` pause,
``x`` reset, ``e`` end the attempt (it is scored), ``1``-``8`` camera presets,
``h`` help.
"""

from __future__ import annotations

import logging

import numpy as np

from .scene import CAMERA_PRESETS

__all__ = ["TOOLS", "KEYS", "Interaction"]

log = logging.getLogger(__name__)

TOOLS = ("grasp", "cut", "camera")

#: Key -> (action, description) shown by the help overlay.
KEYS: dict[str, str] = {
    "i": "next tool (grasp / cut / camera)",
    "t": "toggle the stress colour map",
    "space": "pause / resume the simulation",
    "x": "reset the simulation",
    "e": "end the attempt: score it and close the window",
    "h": "show / hide this help",
    **{str(k + 1): f"camera: {name}" for k, name in enumerate(CAMERA_PRESETS)},
}


class Interaction:
    """Binds mouse and keys of a :class:`~organsim.viewer.viewer.Viewer`.

    Parameters
    ----------
    viewer : Viewer
    grasp_radius : float
        Radius (m) of the patch of surface nodes a grasp holds.
    cut_depth : float
        Depth (m) below the drawn surface path the blade reaches.
    """

    def __init__(self, viewer, *, grasp_radius: float = 0.006, cut_depth: float = 0.015) -> None:
        self.viewer = viewer
        self.tool = "grasp"
        self.grasp_radius = float(grasp_radius)
        self.cut_depth = float(cut_depth)
        self.dragging: str | None = None
        self._depth = 0.0
        self._anchor = np.zeros(3)
        self.cut_points: list[np.ndarray] = []
        self.messages: list[str] = []
        self._picker = None
        #: True once the handlers are installed (an interactive or scripted window)
        self.bound = False

    # --------------------------------------------------------------- binding
    def bind(self) -> None:
        """Install the key and mouse handlers on the viewer's plotter."""
        pl = self.viewer.plotter
        if self.bound:
            return
        self.bound = True
        for key in KEYS:
            pl.add_key_event(key, lambda k=key: self.on_key(k))
        if pl.iren is None:
            return
        import vtk

        # A plain VTK trackball style, not pyvista's: pyvista's style keeps observers of
        # its own that start a rotation on every press. On a VTK style an observer
        # replaces the style's handler for that event, so organsim decides: a press on
        # the tissue goes to the tool, a press on the background to the camera.
        style = vtk.vtkInteractorStyleTrackballCamera()
        pl.iren.style = style
        style.AddObserver("LeftButtonPressEvent", self._on_press)
        style.AddObserver("LeftButtonReleaseEvent", self._on_release)
        style.AddObserver("MouseMoveEvent", self._on_move)
        # keys we use must not also reach the style's character handler ('3' = stereo...)
        style.AddObserver("CharEvent", self._on_char)
        self.style = style

    # ------------------------------------------------------------------ keys
    def on_key(self, key: str) -> None:
        """Handle one key (the same path real key presses take)."""
        v = self.viewer
        v.settle()   # a key may reset or pause the source: not while a step is in flight
        if key == "i":
            self.tool = TOOLS[(TOOLS.index(self.tool) + 1) % len(TOOLS)]
            self.say(f"tool: {self.tool}")
        elif key == "t":
            v.scene.set_stress_view(not v.scene.show_stress)
            self.say("stress view on" if v.scene.show_stress else "stress view off")
        elif key == "space":
            v.paused = not v.paused
            self.say("paused" if v.paused else "running")
        elif key == "x":
            self.dragging = None
            v.source.reset()
            self.say("reset")
        elif key == "h":
            v.toggle_help()
        elif key == "e":
            self.dragging = None
            v.end_attempt()
            return
        elif key.isdigit() and 1 <= int(key) <= len(CAMERA_PRESETS):
            name = list(CAMERA_PRESETS)[int(key) - 1]
            v.scene.camera_preset(name)
            self.say(f"camera: {name}")
        v.refresh()

    def say(self, text: str) -> None:
        """Show a short status message in the panel."""
        self.messages = [text]
        log.info(text)

    # ----------------------------------------------------------------- mouse
    def pick(self, x: int, y: int) -> np.ndarray | None:
        """World point (m) of the tissue surface under display pixel (x, y), or None."""
        import vtk

        if self._picker is None:
            self._picker = vtk.vtkCellPicker()
            self._picker.SetTolerance(0.0005)
            self._picker.PickFromListOn()
            self._picker.AddPickList(self.viewer.scene.tissue_actor)
            self._picker.AddPickList(self.viewer.scene.stress_actor)
        ok = self._picker.Pick(x, y, 0, self.viewer.plotter.renderer)
        if not ok or self._picker.GetCellId() < 0:
            return None
        return np.array(self._picker.GetPickPosition())

    def display_to_world(self, x: float, y: float, depth: float) -> np.ndarray:
        """World point (m) at display pixel (x, y) and normalized depth."""
        ren = self.viewer.plotter.renderer
        ren.SetDisplayPoint(float(x), float(y), float(depth))
        ren.DisplayToWorld()
        w = np.array(ren.GetWorldPoint())
        return w[:3] / (w[3] if w[3] != 0 else 1.0)

    def world_depth(self, p: np.ndarray) -> float:
        """Normalized display depth of a world point."""
        ren = self.viewer.plotter.renderer
        ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
        ren.WorldToDisplay()
        return float(ren.GetDisplayPoint()[2])

    def press(self, x: int, y: int) -> bool:
        """Left button down at (x, y); returns True if the tool took the event."""
        if self.tool == "camera":
            return False
        p = self.pick(x, y)
        if p is None:
            return False
        self.viewer.settle()   # the tool changes the source: not while a step is in flight
        src = self.viewer.source
        if self.tool == "grasp":
            begin = getattr(src, "grasp_begin", None)
            if begin is None:
                self.say("this view cannot grasp (no simulation)")
                return False
            if not begin(p, radius=self.grasp_radius):
                self.say("nothing to grasp there")
                return False
            self._depth = self.world_depth(p)
            self._anchor = p
            self.dragging = "grasp"
            self.say("grasping")
        elif self.tool == "cut":
            begin = getattr(src, "cut_begin", None)
            if begin is None:
                self.say("this view cannot cut (no simulation)")
                return False
            begin(p, depth=self.cut_depth)
            self.cut_points = [p]
            self.dragging = "cut"
            self.say("cutting")
        return True

    def move(self, x: int, y: int) -> bool:
        """Mouse moved to (x, y); returns True if a drag is in progress.

        Only sets the instrument's target: the next frame steps the simulation
        towards it and renders (no render here, so a stream of mouse events
        cannot starve the simulation's timer).
        """
        src = self.viewer.source
        if self.dragging == "grasp":
            target = self.display_to_world(x, y, self._depth)
            # a step may be in flight (the viewer's overlap): the newest target waits for it
            self.viewer.when_settled(lambda: src.grasp_move(target), key="grasp_move")
        elif self.dragging == "cut":
            p = self.pick(x, y)
            if p is not None and np.linalg.norm(p - self.cut_points[-1]) > 2e-4:
                self.cut_points.append(p)
                self.viewer.when_settled(lambda: src.cut_move(p))
        else:
            return False
        return True

    def release(self, x: int, y: int) -> bool:
        """Left button up; finishes a grasp or performs the drawn cut."""
        if self.dragging is not None:
            self.viewer.settle()
        if self.dragging == "grasp":
            self.viewer.source.grasp_end()
            self.say("released")
        elif self.dragging == "cut":
            self.viewer.source.cut_end()
            pts = np.array(self.cut_points)
            length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) if len(pts) > 1 else 0.0
            self.say(f"cut stroke {length * 1e3:.0f} mm" if length > 0
                     else "cut too short: drag across the surface")
        else:
            return False
        self.dragging = None
        return True

    # vtk observers: an observer on the style replaces its default handler
    def _on_char(self, style, _event) -> None:
        sym = style.GetInteractor().GetKeySym()
        if sym not in KEYS:
            style.OnChar()

    def _on_press(self, style, _event) -> None:
        x, y = style.GetInteractor().GetEventPosition()
        if not self.press(x, y):
            style.OnLeftButtonDown()

    def _on_move(self, style, _event) -> None:
        x, y = style.GetInteractor().GetEventPosition()
        if not self.move(x, y):
            style.OnMouseMove()

    def _on_release(self, style, _event) -> None:
        x, y = style.GetInteractor().GetEventPosition()
        if not self.release(x, y):
            style.OnLeftButtonUp()
