"""organsim in Jupyter: a static snapshot anywhere, the live procedure as a trame widget.

- :func:`snapshot` renders a mesh, a simulation or a procedure off-screen and
  returns an image the notebook shows (PNG); no window opens, no VTK warning
  reaches the cell, nothing else is printed.
- :func:`live` serves a :class:`~organsim.scenario.procedure.Procedure` (or a
  scenario / exercise name) from the notebook's own kernel with trame (the page
  of ``organsim serve``: drag to grasp and cut, HUD, finish and score) and
  shows it in the cell as an iframe. Needs ``organsim[web]`` and a browser
  that reaches the kernel's machine.

Examples
--------
>>> from organsim.viewer.notebook import snapshot
>>> from organsim.mesh.generators import box_tet_mesh
>>> img = snapshot(box_tet_mesh((4, 4, 4), 0.01), size=(160, 120))
>>> img.size
(160, 120)
>>> img._repr_png_()[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import io
import socket

import numpy as np

__all__ = ["Snapshot", "snapshot", "live"]


def _quiet_vtk() -> None:
    from vtkmodules.vtkCommonCore import vtkLogger, vtkObject

    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    vtkObject.GlobalWarningDisplayOff()


class Snapshot:
    """A rendered image that a notebook displays (``_repr_png_``).

    Attributes
    ----------
    array : ndarray, shape (h, w, 3), uint8
    """

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array, dtype=np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.array.shape[1]), int(self.array.shape[0])

    def _repr_png_(self) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.array).save(buf, format="PNG")
        return buf.getvalue()

    def save(self, path) -> None:
        """Write the image (PNG, JPEG: by the extension)."""
        from PIL import Image

        Image.fromarray(self.array).save(path)


def snapshot(obj, *, size: tuple[int, int] = (640, 480), camera: str | None = None,
             stress: bool = False) -> Snapshot:
    """Render ``obj`` (TetMesh, Simulation or Procedure) off-screen, as it is now.

    Parameters
    ----------
    obj : TetMesh, Simulation or Procedure
    size : (int, int)
        Pixels (width, height).
    camera : str, optional
        Camera preset (see :data:`organsim.viewer.scene.CAMERA_PRESETS`); default: the
        scenario's for a procedure, otherwise ``surgeon``.
    stress : bool
        Colour by von Mises stress instead of the regions.
    """
    from .viewer import Viewer

    _quiet_vtk()
    v = Viewer(obj, off_screen=True, window_size=size, show_panel=False)
    try:
        scenario = getattr(obj, "scenario", None)
        v.scene.camera_preset(camera or (scenario.output.camera if scenario is not None else "surgeon"))
        if stress:
            v.scene.set_stress_view(True)
        return Snapshot(v.screenshot())
    finally:
        v.close()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def live(obj="pattern-cutting", *, trainee: str | None = None, history_path=None, outdir=None,
         size: tuple[int, int] = (800, 600), host: str = "127.0.0.1", port: int | None = None,
         height: int = 760):
    """Serve the live procedure from this kernel (trame) and show it in the cell.

    Parameters
    ----------
    obj : Scenario, str
        A scenario, a scenario .toml path or an exercise name.
    trainee, history_path, outdir
        As for ``organsim serve``: the finished attempt is scored into the history.
    size : (int, int)
        Pixels of the rendered view.
    host, port
        Where the session listens (default: loopback, a free port).

    Returns
    -------
    IPython.display.IFrame
        The page (its address carries the session's token: without it the session
        answers 403); its ``app`` attribute is the :class:`~organsim.web.app.SessionApp`.
    """
    import asyncio

    from IPython.display import IFrame

    from ..scenario.exercises import resolve_scenario
    from ..scenario.schema import Scenario
    from ..web.app import SessionApp
    from ..web.live import LiveSession

    _quiet_vtk()
    scenario = obj if isinstance(obj, Scenario) else resolve_scenario(obj)
    port = _free_port(host) if port is None else int(port)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not in a kernel's event loop (a plain script): nothing to serve from
        from ..errors import OrganSimError

        raise OrganSimError("organsim.viewer.notebook.live() runs inside Jupyter (an event loop); "
                            "in a script use 'organsim serve'") from None
    # the page needs the session's token (a new one, in the iframe's address): another user of
    # this machine who finds the port cannot open the session
    app = SessionApp(lambda: LiveSession(scenario, trainee=trainee, history_path=history_path,
                                         outdir=outdir, size=size))
    app.announce = False
    app.start(host=host, port=port, idle_timeout_s=0, exec_mode="task")
    shown = f"[{host}]" if ":" in host else host
    frame = IFrame(f"http://{shown}:{port}{app.path()}", width=size[0] + 320, height=height)
    frame.app = app
    return frame
