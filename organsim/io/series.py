"""Result time series: one VTU file per frame plus a ParaView ``.pvd`` index.

A run that writes ``out/liver.pvd`` produces::

    out/liver.pvd                  the collection ParaView opens (time -> file)
    out/liver/liver_000000.vtu     frame 0
    out/liver/liver_000001.vtu     frame 1 ...

The ``.pvd`` file is rewritten (atomically) after every frame, so a run that
stops early still leaves a series ParaView can open. Coordinates are in
metres; every frame is a complete mesh, so the topology may change between
frames (cutting, resection).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import uuid
from pathlib import Path
from types import TracebackType
from xml.etree import ElementTree as ET

import numpy as np

from ..errors import InputFileError, MeshError, SimulationError
from .atomic import atomic_output
from ._common import capture_vtk_messages, check_input_file
from .surfaces import read_vtk_dataset

__all__ = ["SeriesWriter", "read_series", "exact_time"]

log = logging.getLogger("organsim.io")


class SeriesWriter:
    """Write a simulation, frame by frame, as a VTU/PVD time series.

    Parameters
    ----------
    pvd_path : str or os.PathLike
        Path of the ``.pvd`` index to write; its folder is created if needed.
        Frames go to ``<stem>/<stem>_NNNNNN.vtu`` beside it. Frame files left
        there by an earlier run with the same name are removed on the first
        write, so the folder never mixes two runs.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> mesh = box_tet_mesh((3, 2, 2), (0.05, 0.05, 0.05))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "beam.pvd"
    >>> with SeriesWriter(out) as series:
    ...     for step in range(3):
    ...         u = np.zeros_like(mesh.points); u[:, 2] = -1e-3 * step
    ...         _ = series.write(0.01 * step, mesh, points=mesh.points + u)
    >>> [round(t, 2) for t, _ in read_series(out)]
    [0.0, 0.01, 0.02]
    """

    def __init__(self, pvd_path: str | os.PathLike) -> None:
        self.path = Path(pvd_path)
        if self.path.suffix.lower() != ".pvd":
            raise InputFileError(f"{self.path}: a result series must be written to a .pvd file"
                                 " (e.g. results/liver.pvd)")
        self.stem = self.path.stem
        self.frame_dir = self.path.parent / self.stem
        self._entries: list[tuple[float, str]] = []
        self._closed = False
        self._prefix = self.stem
        self._stale: list[Path] = []

    # ------------------------------------------------------------ protocol
    def __enter__(self) -> SeriesWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def n_frames(self) -> int:
        """Number of frames written so far."""
        return len(self._entries)

    @property
    def times(self) -> list[float]:
        """Times (s) of the frames written so far."""
        return [t for t, _ in self._entries]

    def write(self, time: float, mesh, *, points: np.ndarray | None = None,
              point_data: dict[str, np.ndarray] | None = None,
              cell_data: dict[str, np.ndarray] | None = None) -> Path:
        """Write one frame and update the ``.pvd`` index.

        Parameters
        ----------
        time : float
            Simulation time of the frame (s); not smaller than the previous one. It is
            written to 12 significant digits (:func:`exact_time`), so that a sum of time
            steps such as ``0.12000000000000001`` is written ``0.12``.
        mesh : TetMesh
            The rest (reference) mesh of this frame; its topology may differ
            from the previous frame's.
        points : ndarray, shape (n, 3), optional
            Current node positions (m). When given, the frame is drawn at
            these positions and a ``displacement`` point array
            (``points - mesh.points``, m) is added unless ``point_data``
            already has one.
        point_data : dict[str, ndarray], optional
            Nodal fields, each of shape (n,) or (n, c) (or (n, 3, 3)).
        cell_data : dict[str, ndarray], optional
            Per-tet fields, each of shape (m,) or (m, c) (or (m, 3, 3)). The
            ``region`` array is always written.

        Returns
        -------
        pathlib.Path
            The frame file written.
        """
        if self._closed:
            raise SimulationError(f"{self.path}: the series is closed; open a new SeriesWriter")
        t = exact_time(time)
        if not math.isfinite(t):
            raise SimulationError(f"{self.path}: frame time must be finite, got {time!r}")
        if self._entries and t < self._entries[-1][0]:
            raise SimulationError(f"{self.path}: frame time {t} is earlier than the previous"
                                  f" frame's ({self._entries[-1][0]}); times must not decrease")
        if not self._entries:
            self._start()
        grid = mesh.to_pyvista()
        if points is not None:
            pts = np.asarray(points, dtype=np.float64)
            if pts.shape != mesh.points.shape:
                raise MeshError(f"points must have the mesh's shape {mesh.points.shape},"
                                f" got {pts.shape}")
            grid.points = pts
            if not point_data or "displacement" not in point_data:
                grid.point_data["displacement"] = pts - mesh.points
        for name, values in (point_data or {}).items():
            grid.point_data[name] = _field(values, mesh.n_points, name, "point")
        for name, values in (cell_data or {}).items():
            grid.cell_data[name] = _field(values, mesh.n_tets, name, "cell")
        index = len(self._entries)
        rel = f"{self.stem}/{self._prefix}_{index:06d}.vtu"
        target = self.path.parent / rel
        with atomic_output(target) as tmp, capture_vtk_messages() as msgs:
            grid.save(str(tmp), binary=True)
            if msgs.has_error:
                raise InputFileError(f"{target}: VTK could not write the frame: {msgs.summary()}")
        self._entries.append((t, rel))
        self._write_pvd()
        return target

    def close(self) -> None:
        """Finish the series (the ``.pvd`` index is already up to date).

        The frames of an earlier run into the same ``.pvd`` are deleted only now,
        once the new series is complete: until then the index lists either the old
        frames or the new ones, never a file that is gone.
        """
        if not self._closed and not self._entries:
            self._write_pvd()  # an empty but valid collection
        if not self._closed:
            for p in self._stale:
                with contextlib.suppress(OSError):
                    p.unlink()
            if self._stale:
                log.info("removed %d frame files of an earlier run from %s", len(self._stale), self.frame_dir)
        self._closed = True

    # ------------------------------------------------------------ internals
    def _start(self) -> None:
        self.frame_dir.mkdir(parents=True, exist_ok=True)
        stem = re.escape(self.stem)
        frame = re.compile(rf"^{stem}(-[0-9a-f]{{6}})?_\d{{6}}\.vtu$")
        # temporaries of writes that were killed are never anyone's file
        for p in self.frame_dir.glob(f".{self.stem}*.partial.vtu"):
            with contextlib.suppress(OSError):
                p.unlink()
        self._stale = [p for p in self.frame_dir.iterdir() if frame.match(p.name)]
        if self._stale:
            # an earlier run's frames stay until this series is complete: write next to them
            self._prefix = f"{self.stem}-{uuid.uuid4().hex[:6]}"

    def _write_pvd(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = ['<?xml version="1.0"?>',
                 '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">',
                 "  <Collection>"]
        for t, rel in self._entries:
            lines.append(f'    <DataSet timestep="{t!r}" group="" part="0" file="{rel}"/>')
        lines += ["  </Collection>", "</VTKFile>", ""]
        with atomic_output(self.path) as tmp:
            tmp.write_text("\n".join(lines), encoding="utf-8")


def exact_time(t: float) -> float:
    """A frame time without the float noise of summed time steps: 12 significant digits.

    A step of 1e-5 s over an hour needs 9; the 12th digit is far below any time step,
    so the time each frame is written with is the step's time exactly as a person writes it.

    Examples
    --------
    >>> t = 0.0
    >>> for _ in range(6):
    ...     t += 0.02
    >>> t, exact_time(t)
    (0.12000000000000001, 0.12)
    >>> 0.1 * 3, exact_time(0.1 * 3)
    (0.30000000000000004, 0.3)
    """
    t = float(t)
    return float(f"{t:.12g}") if math.isfinite(t) else t


def _field(values, n: int, name: str, kind: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise MeshError(f"{kind} field {name!r} must have {n} rows (one per {kind}),"
                        f" got shape {arr.shape}")
    if arr.ndim > 2:
        arr = arr.reshape(n, -1)  # tensors (n, 3, 3) -> (n, 9), as ParaView expects
    return arr


def read_series(pvd_path: str | os.PathLike) -> list[tuple[float, object]]:
    """Read a ``.pvd`` series back, every frame in memory.

    Parameters
    ----------
    pvd_path : str or os.PathLike
        A ``.pvd`` file written by :class:`SeriesWriter` (or ParaView).

    Returns
    -------
    list of (float, pyvista.UnstructuredGrid)
        Time (s) and the frame's grid (coordinates in m), in file order.

    Raises
    ------
    InputFileError
        If the index or a frame file is missing or unreadable.
    """
    import pyvista as pv

    path = check_input_file(pvd_path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputFileError(f"{path}: not a valid .pvd file ({exc}); it may be truncated:"
                             " re-run or re-export the series") from exc
    coll = root.find("Collection")
    if root.tag != "VTKFile" or coll is None:
        raise InputFileError(f"{path}: not a VTK collection (.pvd) file; expected"
                             " <VTKFile type=\"Collection\">")
    frames = []
    for ds in coll.findall("DataSet"):
        rel = ds.get("file")
        if rel is None:
            raise InputFileError(f"{path}: a DataSet entry has no file attribute")
        frame = path.parent / rel
        check_input_file(frame)
        try:
            t = float(ds.get("timestep", len(frames)))
        except ValueError as exc:
            raise InputFileError(f"{path}: timestep {ds.get('timestep')!r} is not a number") from exc
        ext = frame.suffix.lower()
        if ext not in (".vtu", ".vtp", ".vtk"):
            raise InputFileError(f"{frame}: a frame of {path.name} must be a .vtu, .vtp or .vtk"
                                 f" file, not {ext or '(no extension)'!r}")
        try:
            # checked reads: VTK's own readers crash (segfault, bad_alloc) on corrupt files
            grid = pv.wrap(read_vtk_dataset(frame, ext))
        except InputFileError as exc:
            raise InputFileError(f"{frame}: this frame of {path.name} is empty or corrupt"
                                 f" ({exc}); re-run the simulation") from exc
        frames.append((t, grid))
    return frames
