"""Play back a recorded run (a VTU/PVD series) with a time slider.

>>> from organsim.viewer.replay import replay     # doctest: +SKIP
>>> replay("out/series.pvd")                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..mesh.tetmesh import TET_FACES, TetMesh
from .sources import InstrumentView

__all__ = ["SeriesSource", "replay", "find_series"]

log = logging.getLogger(__name__)


def find_series(path: str | os.PathLike) -> Path:
    """The ``.pvd`` file of a run: the file itself, or the one inside a run's output folder."""
    p = Path(path)
    if p.is_dir():
        cands = sorted(p.glob("*.pvd"))
        if not cands:
            raise InputFileError(f"{p}: no .pvd series in this folder; pass a .pvd file or the "
                                 "output folder of 'organsim run'")
        return p / "series.pvd" if (p / "series.pvd").exists() else cands[0]
    return p


def _cut_mask_from_bits(mesh: TetMesh, bits: np.ndarray) -> np.ndarray:
    """Boundary-face mask of cut faces from per-tet 4-bit masks (see runner.cut_face_bits)."""
    owner = mesh.boundary_face_tets
    local = mesh.tets[owner][:, TET_FACES]
    key = np.sort(mesh.boundary_faces, axis=1)[:, None, :]
    lf = np.argmax(np.all(np.sort(local, axis=2) == key, axis=2), axis=1)
    return (np.asarray(bits)[owner].astype(np.int64) >> lf) & 1 == 1


class SeriesSource:
    """A recorded series as a frame source: ``advance`` plays, :meth:`seek` jumps.

    Parameters
    ----------
    frames : list of (float, pyvista.UnstructuredGrid)
        As returned by :func:`organsim.io.read_series`.
    """

    def __init__(self, frames: list) -> None:
        if not frames:
            raise InputFileError("the series has no frames; the run wrote nothing yet")
        self.frames = frames
        self.times = np.array([t for t, _ in frames], dtype=float)
        self.index = -1
        self.topology_version = 0
        self._meshes: dict[int, tuple] = {}
        self.seek_index(0)

    def _load(self, i: int):
        if i not in self._meshes:
            grid = self.frames[i][1]
            pts = np.asarray(grid.points, dtype=np.float64)
            disp = np.asarray(grid.point_data["displacement"]) if "displacement" in grid.point_data \
                else np.zeros_like(pts)
            rest = grid.copy()
            rest.points = pts - disp
            mesh = TetMesh.from_pyvista(rest)
            mask = None
            if "cut_faces" in grid.cell_data:
                mask = _cut_mask_from_bits(mesh, np.asarray(grid.cell_data["cut_faces"]))
            fields = {k: np.asarray(grid.point_data[k]) for k in grid.point_data.keys()
                      if np.ndim(grid.point_data[k]) == 1}
            self._meshes = {k: v for k, v in self._meshes.items() if abs(k - i) < 3}
            self._meshes[i] = (mesh, pts, mask, fields)
        return self._meshes[i]

    def seek_index(self, i: int) -> None:
        """Show frame ``i``."""
        i = int(np.clip(i, 0, len(self.frames) - 1))
        if i == self.index:
            return
        prev = self._meshes.get(self.index)
        self.index = i
        mesh, pts, mask, fields = self._load(i)
        if prev is None or prev[0].n_tets != mesh.n_tets or prev[0].n_points != mesh.n_points:
            self.topology_version += 1
        self.mesh, self.positions, self.cut_face_mask, self._fields = mesh, pts, mask, fields

    def seek(self, t: float) -> None:
        """Show the last frame at or before time ``t`` (s)."""
        self.seek_index(int(np.searchsorted(self.times, t + 1e-12, side="right") - 1))

    @property
    def time(self) -> float:
        return float(self.times[self.index])

    def advance(self) -> None:
        """Next frame (wraps to the start)."""
        self.seek_index((self.index + 1) % len(self.frames))

    def reset(self) -> None:
        self.seek_index(0)

    def instruments(self) -> list[InstrumentView]:
        return []

    def nodal_field(self, name: str) -> np.ndarray | None:
        return self._fields.get(name)

    def panel_lines(self) -> list[str]:
        return [f"frame {self.index + 1}/{len(self.frames)}"]


def replay(path: str | os.PathLike, *, off_screen: bool | None = None,
           screenshot: str | os.PathLike | None = None, time: float | None = None,
           window_size: tuple[int, int] = (1024, 768), camera: str = "surgeon",
           max_frames: int | None = None):
    """Play back a PVD series (or a run's output folder) with a time slider.

    Parameters
    ----------
    path : str or Path
        A ``.pvd`` file or the output folder of ``organsim run``.
    off_screen : bool, optional
        Render without a window (default: when there is no display).
    screenshot : str or Path, optional
        Write a PNG of the frame at ``time`` (default: the last) instead of opening
        a window.
    time : float, optional
        Time (s) of the frame shown first.
    camera : str
        Camera preset.
    max_frames : int, optional
        Close the window after this many timer frames (scripted checks).

    Returns
    -------
    Viewer
        The (closed) viewer, for inspection.
    """
    from ..io.series import read_series
    from .viewer import Viewer

    pvd = find_series(path)
    src = SeriesSource(read_series(pvd))
    src.seek(src.times[-1] if time is None else time)
    viewer = Viewer(src, off_screen=True if screenshot is not None else off_screen,
                    window_size=window_size, title=f"organsim replay: {pvd.name}")
    viewer.paused = True  # the slider drives; space plays
    viewer.scene.camera_preset(camera)
    if screenshot is not None:
        viewer.screenshot(screenshot)
        viewer.close()
        return viewer

    def on_slider(value: float) -> None:
        src.seek(value)
        viewer.refresh()

    if len(src.times) > 1:
        viewer.plotter.add_slider_widget(on_slider, rng=[float(src.times[0]), float(src.times[-1])],
                                         value=src.time, title="time (s)", fmt="%.2f",
                                         pointa=(0.25, 0.06), pointb=(0.75, 0.06), style="modern")
    viewer.show(max_frames=max_frames)
    return viewer
