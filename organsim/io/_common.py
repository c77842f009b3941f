"""Helpers shared by the readers: input checks, VTK message capture, welding."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputFileError, MeshError

log = logging.getLogger("organsim.io")


def check_input_file(path: str | os.PathLike, *, allow_dir: bool = False) -> Path:
    """Return ``path`` as a :class:`Path` after checking it exists and is not empty.

    Raises
    ------
    InputFileError
        If the path does not exist, is a folder (unless ``allow_dir``), or is
        an empty file.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: file not found; check the path (relative paths are taken"
                             f" from {Path.cwd()})")
    if p.is_dir():
        if allow_dir:
            return p
        raise InputFileError(f"{p}: is a folder, expected a file; only a DICOM series may be"
                             " given as a folder (read it with read_image)")
    if p.stat().st_size == 0:
        raise InputFileError(f"{p}: the file is empty (0 bytes); it was probably not written"
                             " completely: export it again")
    return p


def read_head(path: Path, n: int = 2048) -> bytes:
    """The first ``n`` bytes of a file (fewer if it is shorter)."""
    with open(path, "rb") as fh:
        return fh.read(n)


class VtkMessages:
    """Text VTK printed while the context was active (errors and warnings)."""

    def __init__(self, window) -> None:
        self._window = window

    @property
    def text(self) -> str:
        out = self._window.GetOutput() or ""
        return " ".join(out.split())

    @property
    def has_error(self) -> bool:
        """True if VTK reported an error (legacy readers report some only as warnings
        such as "Error reading binary data!")."""
        return "error" in (self._window.GetOutput() or "").lower()

    def summary(self, limit: int = 200) -> str:
        """A short one-line excerpt of what VTK reported, without source-file locations."""
        import re

        t = re.sub(r"(Generic Warning|Warning|ERROR): In \S+, line \d+\s*(\S+ \(0x[0-9a-fA-F]+\))?:?\s*",
                   "", self.text)
        return t if len(t) <= limit else t[:limit] + "..."


@contextlib.contextmanager
def capture_vtk_messages() -> Iterator[VtkMessages]:
    """Redirect VTK's output window to a string for the duration of the block.

    VTK readers often print errors to stderr and return empty data instead of
    raising; inside this block nothing is printed and the caller can inspect
    :attr:`VtkMessages.text` to decide whether to raise.
    """
    from vtkmodules.vtkCommonCore import vtkLogger, vtkOutputWindow, vtkStringOutputWindow

    window = vtkStringOutputWindow()
    previous = vtkOutputWindow.GetInstance()
    previous.Register(None)  # keep the original alive while it is swapped out
    vtkOutputWindow.SetInstance(window)
    # VTK >= 9 also logs errors through vtkLogger straight to stderr
    verbosity = vtkLogger.GetCurrentVerbosityCutoff()
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)
    try:
        yield VtkMessages(window)
    finally:
        vtkLogger.SetStderrVerbosity(verbosity)
        vtkOutputWindow.SetInstance(previous)
        previous.UnRegister(None)


@contextlib.contextmanager
def silence_native_stderr() -> Iterator[None]:
    """Discard what C/C++ libraries write to file descriptor 2 during the block.

    Some readers (ITK's MetaIO, GDCM) print straight to ``std::cerr`` before
    returning an error we re-raise with a clear message; this keeps that noise
    off the user's terminal. Everything written to fd 2 inside the block is
    discarded (Python's ``sys.stderr`` and logging included), so keep the
    block tight around the native call.
    """
    import sys
    import tempfile

    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError):  # no real stderr (embedded interpreter): nothing to do
        yield
        return
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), fd)
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def meshio_read(path: Path, file_format: str):
    """Read with meshio's format reader directly, quietly, raising ordinary exceptions.

    ``meshio.read`` prints the reader's complaint, then calls ``sys.exit`` when
    a file cannot be read; the format modules' own ``read`` functions raise
    instead. Anything meshio prints (warnings) is logged at debug level.
    """
    import io
    import importlib

    module = importlib.import_module(f"meshio.{file_format}")
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return module.read(str(path))
    except SystemExit as exc:  # never let a reader end the program
        raise RuntimeError(sink.getvalue().strip() or "meshio gave up") from exc
    finally:
        if sink.getvalue().strip():
            log.debug("meshio on %s: %s", path, " ".join(sink.getvalue().split()))


def check_finite(points: np.ndarray, path: Path) -> None:
    """Raise :class:`MeshError` if any coordinate is NaN or infinite."""
    pts = np.asarray(points)
    bad = ~np.isfinite(pts).all(axis=1) if pts.ndim == 2 else ~np.isfinite(pts)
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise MeshError(f"{path}: {int(bad.sum())} of {len(pts)} points have NaN or infinite"
                        f" coordinates (first: point {first}); the export is broken: fix or"
                        " re-export the file")


def weld_exact(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices with bit-identical coordinates.

    Used for formats that store each corner separately (STL, glTF seams).
    The welded points keep the order of their first appearance.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
    cells : ndarray, shape (m, k)
        Vertex ids per cell.

    Returns
    -------
    points : ndarray, shape (n_unique, 3)
    cells : ndarray, shape (m, k)
    """
    pts = np.ascontiguousarray(points, dtype=np.float64)
    if len(pts) == 0:
        return pts, cells
    # +0.0 turns -0.0 into 0.0 so the two compare equal byte-wise
    key = np.ascontiguousarray(pts + 0.0).view(np.dtype((np.void, 24))).ravel()
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)            # unique groups in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    new_ids = rank[inverse.ravel()]
    return pts[first[order]], new_ids[np.asarray(cells)]


def save_legacy_vtk(dataset, path: Path) -> None:
    """Write a dataset as a binary legacy ``.vtk`` file in format version 4.2.

    VTK 9 writes version 5.1 by default, which meshio (the other half of organsim's
    readers, and many third-party tools) cannot read; 4.2 reads everywhere: VTK,
    ParaView, pyvista and meshio.
    """
    from vtkmodules.vtkIOLegacy import vtkDataSetWriter

    w = vtkDataSetWriter()
    w.SetFileName(str(path))
    w.SetInputData(dataset)
    w.SetFileTypeToBinary()
    if hasattr(w, "SetFileVersion"):
        w.SetFileVersion(42)
    if not w.Write():
        from ..errors import InputFileError

        raise InputFileError(f"{path}: VTK could not write the legacy .vtk file")
