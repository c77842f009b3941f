"""``read_any``: read whatever organsim can read, choosing the reader from the file.

The extension decides, with a look at the content where one extension can
hold different things: a legacy ``.vtk`` file may hold a surface
(``DATASET POLYDATA``), a volume mesh (``UNSTRUCTURED_GRID``) or an image
(``STRUCTURED_POINTS``); a ``.vtu``, ``.msh``, ``.mesh`` or ``.xdmf`` file
holding triangles but no tetrahedra is returned as a surface. A file with no
extension is recognised by its first bytes where that is cheap (DICOM, STL,
legacy VTK, Gmsh, PLY, OFF).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..mesh.labelimage import LabelImage
from ..mesh.surface import TriSurface
from ..mesh.tetmesh import TetMesh
from ..units import to_metres
from ._common import check_input_file, read_head
from .atomic import full_suffix
from .images import IMAGE_READ_EXTENSIONS, read_image
from .surfaces import SURFACE_READ_EXTENSIONS, finish_surface, read_surface
from .volumes import MESH_READ_EXTENSIONS, load_raw_mesh, tetmesh_from_raw

__all__ = ["read_any", "sniff_vtk_dataset", "SUPPORTED_EXTENSIONS"]

#: Every extension organsim reads (a folder is read as a DICOM series).
SUPPORTED_EXTENSIONS = tuple(dict.fromkeys(IMAGE_READ_EXTENSIONS + SURFACE_READ_EXTENSIONS
                                           + MESH_READ_EXTENSIONS))


def sniff_vtk_dataset(path: str | os.PathLike) -> str:
    """The ``DATASET`` kind of a legacy VTK file, e.g. ``"POLYDATA"`` or ``"UNSTRUCTURED_GRID"``.

    Raises
    ------
    InputFileError
        If the file has no legacy VTK header.
    """
    p = Path(path)
    lines = read_head(p, 1024).split(b"\n")
    if not lines or not lines[0].startswith(b"# vtk DataFile"):
        raise InputFileError(f"{p}: not a legacy VTK file (it must start with"
                             " '# vtk DataFile Version'); the file is corrupt or mislabelled")
    for line in lines[1:6]:
        if line.strip().upper().startswith(b"DATASET"):
            parts = line.split()
            if len(parts) >= 2:
                return parts[1].decode("ascii", errors="replace").upper()
    raise InputFileError(f"{p}: the legacy VTK header has no DATASET line; the file is corrupt")


def read_any(path: str | os.PathLike, *, units: str) -> LabelImage | TriSurface | TetMesh:
    """Read a label image, a surface or a volume mesh, whichever the file holds.

    Parameters
    ----------
    path : str or os.PathLike
        Any file :func:`read_image`, :func:`read_surface` or :func:`read_mesh`
        reads, or a DICOM series folder.
    units : str
        Length unit of surface and mesh coordinates (``"mm"``, ``"cm"``,
        ``"m"``, ``"um"``). Images carry their own (millimetres) and ignore it,
        but it is still checked, so a typo is caught.

    Returns
    -------
    LabelImage or TriSurface or TetMesh

    Raises
    ------
    InputFileError
        Missing, empty, corrupt or unrecognised file (the message lists the
        supported extensions).

    Examples
    --------
    >>> obj = read_any("Liver5Low.vtk", units="mm")   # doctest: +SKIP
    >>> type(obj).__name__                             # doctest: +SKIP
    'TetMesh'
    """
    scale = to_metres(units)
    p = check_input_file(path, allow_dir=True)
    if p.is_dir():
        return read_image(p)
    ext = full_suffix(p) or _sniff_extension(p)
    if ext == ".vtk":
        kind = sniff_vtk_dataset(p)
        if kind == "POLYDATA":
            return read_surface(p, units=units, file_format=ext)
        if kind in ("STRUCTURED_POINTS", "IMAGE_DATA"):
            return read_image(p)
        return _mesh_or_surface(p, ext, scale=scale, units=units)
    if ext in (".vtu", ".msh", ".mesh", ".xdmf", ".xmf"):
        return _mesh_or_surface(p, ext, scale=scale, units=units)
    if ext in IMAGE_READ_EXTENSIONS:
        return read_image(p)
    if ext in SURFACE_READ_EXTENSIONS:
        return read_surface(p, units=units, file_format=ext)
    raise InputFileError(f"{p}: unknown file type {ext or '(no extension)'!r}; supported:"
                         f" {', '.join(SUPPORTED_EXTENSIONS)}, or a DICOM series folder")


def _sniff_extension(p: Path) -> str:
    """Guess an extension from the first bytes of a file that has none ("" if unsure)."""
    head = read_head(p, 256)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return ".dcm"
    starts = head.lstrip()[:16].lower()
    for magic, ext in ((b"# vtk datafile", ".vtk"), (b"$meshformat", ".msh"), (b"$nod", ".msh"),
                       (b"ply", ".ply"), (b"off", ".off"), (b"solid", ".stl"),
                       (b"meshversionformatted", ".mesh")):
        if starts.startswith(magic):
            return ext
    return ""


def _mesh_or_surface(p: Path, ext: str, *, scale: float, units: str) -> TetMesh | TriSurface:
    raw = load_raw_mesh(p, file_format=ext)
    if raw.cells("tetra", "tetra10"):
        return tetmesh_from_raw(raw, p, scale=scale, units=units)
    tris = [c for c, _ in raw.cells("triangle")]
    quads = [c for c, _ in raw.cells("quad")]
    if any(c.ndim != 2 or c.shape[1] != 3 for c in tris) \
            or any(c.ndim != 2 or c.shape[1] != 4 for c in quads):
        raise InputFileError(f"{p}: malformed face data; the file is truncated or corrupt:"
                             " export it again")
    for c in quads:
        tris.append(np.concatenate([c[:, [0, 1, 2]], c[:, [0, 2, 3]]]))
    if not tris:
        return tetmesh_from_raw(raw, p, scale=scale, units=units)  # raises the clear error
    faces = np.concatenate(tris)
    used = np.unique(faces)
    remap = np.full(len(raw.points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return finish_surface(p, raw.points[used], remap[faces], scale=scale, units=units)
