"""Triangle surfaces: STL, OBJ, PLY, OFF, VTP/VTK, GLB/glTF, GIFTI, SOFA ``.trian``.

Surface formats carry no length unit, so every reader takes an explicit
``units=`` and returns a :class:`~organsim.mesh.surface.TriSurface` in
metres. Coordinates are otherwise kept as stored, with one exception:
GIFTI surfaces are defined in the NIfTI world frame (**RAS**) and are
converted to organsim's **LPS** (x and y negated, a rotation, so face
orientation is kept), so that they overlay the matching NIfTI image. The
pointset is taken in its own data space; a ``CoordinateSystemTransformMatrix``
to another space (e.g. Talairach) is not applied. GIFTI is parsed here
(XML with ASCII, base64 or zlib-base64 arrays) so nibabel is not needed.

Vertices are merged only where the format itself splits them: STL stores
every triangle corner separately and glTF splits vertices along UV/normal
seams, so both are welded (bit-identical coordinates only). OBJ, PLY, OFF,
VTP and ``.trian`` index shared vertices and are kept exactly as stored.
Polygons are triangulated (fan triangulation for OBJ/OFF/PLY polygons, VTK's
triangle filter for VTK files); points, lines and other non-surface cells
are dropped.
"""

from __future__ import annotations

import base64
import gzip
import logging
import os
import re
import warnings
import zlib
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from ..errors import InputFileError, MeshError, OrganSimError
from ..mesh.surface import TriSurface
from ..units import check_plausible_size, to_metres
from ._common import (capture_vtk_messages, check_finite, check_input_file, meshio_read,
                      read_head, save_legacy_vtk, weld_exact)
from .atomic import atomic_output, full_suffix
from .legacy_vtk import check_vtk_cells, check_vtk_xml_counts, read_legacy_vtk

__all__ = ["read_surface", "write_surface", "SURFACE_READ_EXTENSIONS", "SURFACE_WRITE_EXTENSIONS"]

log = logging.getLogger("organsim.io")

#: Extensions read by :func:`read_surface`.
SURFACE_READ_EXTENSIONS = (".stl", ".obj", ".ply", ".off", ".vtp", ".vtk", ".glb", ".gltf",
                           ".gii", ".gii.gz", ".trian")
#: Extensions written by :func:`write_surface`.
SURFACE_WRITE_EXTENSIONS = (".stl", ".obj", ".ply", ".off", ".vtp", ".vtk", ".glb")


# ====================================================================== read
def read_surface(path: str | os.PathLike, *, units: str,
                 file_format: str | None = None) -> TriSurface:
    """Read a triangle surface and convert it to metres.

    Parameters
    ----------
    path : str or os.PathLike
        ``.stl`` (ASCII or binary), ``.obj``, ``.ply``, ``.off``, ``.vtp``,
        ``.vtk`` (legacy POLYDATA, or an UNSTRUCTURED_GRID of surface cells),
        ``.glb``/``.gltf``, ``.gii``/``.gii.gz`` (GIFTI, converted RAS -> LPS)
        or SOFA's ``.trian``.
    units : str
        Length unit the file's coordinates are in: ``"mm"``, ``"cm"``,
        ``"m"`` or ``"um"``. Files exported from imaging software are
        usually in ``"mm"``.
    file_format : str, optional
        An extension such as ``".stl"`` to use instead of the file's own
        (for files named without one).

    Returns
    -------
    TriSurface
        Points (n, 3) in metres and faces (k, 3).

    Raises
    ------
    InputFileError
        Missing, empty, truncated or corrupt file, unknown extension, or no
        triangles in it.
    MeshError
        NaN or infinite coordinates, or a volume mesh given as a surface.
    UnitsError
        An unknown unit, or a size implausible for an organ (a units mistake).

    Examples
    --------
    >>> surf = read_surface("LiverSurface.stl", units="mm")   # doctest: +SKIP
    >>> surf.n_points, surf.n_faces                            # doctest: +SKIP
    (24998, 49992)
    """
    scale = to_metres(units)
    p = check_input_file(path)
    ext = (file_format or full_suffix(p)).lower()
    reader = _READERS.get(ext)
    if reader is None:
        raise InputFileError(f"{p}: unknown surface extension {ext or '(none)'!r}; supported:"
                             f" {', '.join(SURFACE_READ_EXTENSIONS)}")
    try:
        points, faces, labels = reader(p, ext)
    except OrganSimError:
        raise
    except Exception as exc:  # noqa: BLE001 - library errors become ours
        raise InputFileError(f"{p}: cannot read this {ext} surface ({_short(exc)}); the file may"
                             " be truncated or corrupt: export it again") from exc
    return finish_surface(p, points, faces, labels, scale=scale, units=units)


def finish_surface(path: Path, points, faces, labels=None, *, scale: float, units: str
                   ) -> TriSurface:
    """Check what a reader found and build the surface in metres (shared by read_any)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        raise InputFileError(f"{path}: the file holds no triangles ({len(points)} points);"
                             " expected a triangle surface: export the organ as a surface mesh")
    if faces.min() < 0 or faces.max() >= len(points):
        raise InputFileError(f"{path}: triangles refer to vertices that do not exist (ids up to"
                             f" {faces.max()} for {len(points)} vertices); the file is corrupt"
                             " or truncated: export it again")
    check_finite(points, path)
    points = points * scale
    check_plausible_size(points, source=str(path), units=units)
    try:
        return TriSurface(points, faces, labels)
    except MeshError as exc:
        raise MeshError(f"{path}: {exc}") from exc


def _short(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _fan(polys: list[list[int]]) -> np.ndarray:
    """Fan-triangulate polygons given as lists of vertex ids."""
    tris = [(poly[0], poly[i], poly[i + 1]) for poly in polys for i in range(1, len(poly) - 1)]
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


# --------------------------------------------------------------------- STL
def _read_stl(path: Path, ext: str):
    data = path.read_bytes()
    if len(data) >= 84:
        n = int(np.frombuffer(data, dtype="<u4", count=1, offset=80)[0])
        if len(data) == 84 + 50 * n:
            rec = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            tri = np.frombuffer(data, dtype=rec, count=n, offset=84)["v"].astype(np.float64)
            pts, faces = weld_exact(tri.reshape(-1, 3), np.arange(3 * n).reshape(-1, 3))
            return pts, faces, None
    head = data[:512].lstrip()
    if head[:5].lower() == b"solid" and (b"facet" in data[:4096] or b"endsolid" in data[:4096]) \
            and _looks_like_text(data[:4096]):
        return _read_stl_ascii(path, data)
    if len(data) >= 84:
        raise InputFileError(
            f"{path}: truncated or corrupt binary STL: its header announces {n} triangles"
            f" ({84 + 50 * n} bytes) but the file has {len(data)} bytes; export it again")
    raise InputFileError(f"{path}: too short to be an STL file ({len(data)} bytes); export it again")


def _looks_like_text(b: bytes) -> bool:
    return not any(c < 9 or 13 < c < 32 for c in b)


def _read_stl_ascii(path: Path, data: bytes):
    text = data.decode("ascii", errors="replace")
    floats = re.findall(r"^\s*vertex\s+(\S+)\s+(\S+)\s+(\S+)", text, flags=re.MULTILINE)
    n_facets = len(re.findall(r"^\s*endfacet", text, flags=re.MULTILINE))
    if not re.search(r"^\s*endsolid", text, flags=re.MULTILINE) or len(floats) != 3 * n_facets:
        raise InputFileError(f"{path}: truncated ASCII STL ({len(floats)} vertices for"
                             f" {n_facets} complete facets, or no 'endsolid'); export it again")
    try:
        corners = np.array(floats, dtype=np.float64)
    except ValueError as exc:
        raise InputFileError(f"{path}: corrupt ASCII STL: a vertex line holds something that is"
                             f" not a number ({_short(exc)})") from exc
    pts, faces = weld_exact(corners, np.arange(len(corners)).reshape(-1, 3))
    return pts, faces, None


# --------------------------------------------------------------------- OBJ
def _numbers(lines: list[str], per_line: int, dtype, skip: int = 0,
             first_of_slashed: bool = False) -> np.ndarray | None:
    """Parse lines of exactly ``per_line`` numbers (after ``skip`` characters) in one go.

    Returns None where the fast path does not apply (other counts, unparsable
    tokens), so the caller falls back to a line-by-line parse with precise errors.
    With ``first_of_slashed``, OBJ tokens such as ``12/5/7`` are read as ``12``.
    """
    if not lines:
        return np.zeros((0, per_line), dtype=dtype)
    text = " ".join(ln[skip:] for ln in lines)
    if first_of_slashed and "/" in text:
        text = re.sub(r"/\S*", "", text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            vals = np.fromstring(text, dtype=dtype, sep=" ")
        except ValueError:
            return None
    if vals.size != per_line * len(lines):
        return None
    return vals.reshape(len(lines), per_line)


def _read_obj(path: Path, ext: str):
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    v_lines = [ln for ln in lines if ln.startswith("v ")]
    f_lines = [ln for ln in lines if ln.startswith("f ")]
    if not v_lines and not f_lines:
        raise InputFileError(f"{path}: no 'v' or 'f' lines found; not a Wavefront OBJ file")
    verts = _numbers(v_lines, 3, np.float64, skip=2)
    faces = _numbers(f_lines, 3, np.int64, skip=2, first_of_slashed=True)
    if verts is None or faces is None or (faces.size and faces.min() < 0):
        verts, polys = _read_obj_lines(path, lines)  # w or colours, polygons, relative ids
        faces = _fan(polys)
    else:
        faces = faces - 1
    # OBJ announces no counts; a file cut off mid-line that leaves vertices no face uses
    # is taken as truncated (a cut exactly at a line end cannot be told from a smaller file)
    if not text.endswith("\n") and len(np.unique(faces)) < len(verts):
        raise InputFileError(f"{path}: the OBJ file ends mid-line and {len(verts)} vertices are"
                             f" used by only {len(faces)} triangles; it looks truncated: export"
                             " it again")
    return verts, faces, None


def _read_obj_lines(path: Path, lines: list[str]) -> tuple[np.ndarray, list[list[int]]]:
    """The general OBJ parse, line by line (polygons, negative ids, extra vertex values)."""
    verts: list[list[float]] = []
    polys: list[list[int]] = []
    for lineno, line in enumerate(lines, 1):
        if line.startswith("v "):
            parts = line.split()
            if len(parts) < 4:
                raise InputFileError(f"{path}: line {lineno}: a vertex needs x y z, got"
                                     f" {line.strip()!r}; the file is truncated or corrupt")
            verts.append([float(parts[1]), float(parts[2]), float(parts[3])])
        elif line.startswith("f "):
            ids = []
            for tok in line.split()[1:]:
                i = int(tok.split("/", 1)[0])
                ids.append(i - 1 if i > 0 else len(verts) + i)  # negative: relative
            if len(ids) < 3:
                raise InputFileError(f"{path}: line {lineno}: a face needs at least 3"
                                     f" vertices, got {line.strip()!r}; the file is"
                                     " truncated or corrupt")
            polys.append(ids)
    return np.asarray(verts, dtype=np.float64).reshape(-1, 3), polys


# --------------------------------------------------------------------- OFF
def _read_off(path: Path, ext: str):
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln.split("#", 1)[0].strip() for ln in fh]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].upper().endswith("OFF") and not lines[0][:3].upper() == "OFF":
        raise InputFileError(f"{path}: does not start with 'OFF'; not an OFF file")
    first = lines[0].split()
    rest = first[1:] if len(first) > 1 else None
    counts_line = rest if rest else lines[1].split()
    body = lines[1:] if rest else lines[2:]
    nv, nf = int(counts_line[0]), int(counts_line[1])
    if len(body) < nv + nf:
        raise InputFileError(f"{path}: truncated OFF: header announces {nv} vertices and {nf}"
                             f" faces, the file holds {len(body)} data lines; export it again")
    verts = _numbers(body[:nv], 3, np.float64)
    if verts is None:  # colours or other extra values per vertex
        verts = np.array([ln.split()[:3] for ln in body[:nv]], dtype=np.float64)
    tris = _numbers(body[nv:nv + nf], 4, np.int64)
    if tris is not None and np.all(tris[:, 0] == 3):
        return verts, tris[:, 1:], None
    polys = []
    for ln in body[nv:nv + nf]:
        tok = ln.split()
        k = int(tok[0])
        polys.append([int(t) for t in tok[1:1 + k]])
    return verts, _fan(polys), None


# ---------------------------------------------------------------- PLY (meshio)
def _read_ply(path: Path, ext: str):
    head = read_head(path, 1 << 16)
    if not head.startswith(b"ply"):
        raise InputFileError(f"{path}: does not start with 'ply'; not a PLY file")
    if b"end_header" not in head:  # meshio loops forever on a header cut short
        raise InputFileError(f"{path}: truncated PLY: no 'end_header' line; export it again")
    mesh = meshio_read(path, "ply")
    polys: list[np.ndarray] = []
    n_polys = 0
    for block in mesh.cells:
        data = np.asarray(block.data)
        n_polys += len(data)
        if block.type == "triangle":
            polys.append(data)
        elif block.type in ("quad", "polygon") or block.type.startswith("polygon"):
            polys.append(_fan([list(r) for r in data]))
    # meshio returns what it could read of a cut-off binary file: compare with the header
    header = head[:head.index(b"end_header")].decode("ascii", errors="replace")
    counts = dict(re.findall(r"^element\s+(\w+)\s+(\d+)", header, flags=re.MULTILINE))
    n_vert, n_face = int(counts.get("vertex", -1)), int(counts.get("face", -1))
    if (n_vert >= 0 and len(mesh.points) != n_vert) or (n_face >= 0 and n_polys != n_face):
        raise InputFileError(f"{path}: truncated PLY: the header announces {n_vert} vertices and"
                             f" {n_face} faces, the file holds {len(mesh.points)} and {n_polys};"
                             " export it again")
    faces = np.concatenate(polys) if polys else np.zeros((0, 3), np.int64)
    return mesh.points, faces, None


# ------------------------------------------------------------ VTK (vtp, vtk)
def _read_vtk_surface(path: Path, ext: str):
    data = read_vtk_dataset(path, ext)
    return _surface_from_vtk(data, path)


def read_vtk_dataset(path: Path, ext: str | None = None):
    """Read a ``.vtp``/``.vtu``/``.vtk`` file into a checked VTK object, raising on any error.

    Legacy ``.vtk`` files are parsed and checked by :mod:`organsim.io.legacy_vtk`
    (never by VTK's C++ legacy reader); XML files are read by VTK, then their
    cells are checked before any filter walks them.
    """
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLUnstructuredGridReader

    ext = ext or full_suffix(path)
    if ext == ".vtk":
        head = read_head(path, 256)
        if not head.startswith(b"# vtk DataFile"):
            raise InputFileError(f"{path}: not a legacy VTK file (it must start with"
                                 " '# vtk DataFile Version'); the file is corrupt or mislabelled")
        # never VTK's C++ legacy reader: it trusts the declared counts and crashes the
        # process (segfault) on corrupt binary files; ours checks everything first
        data = read_legacy_vtk(path)
        if data.GetNumberOfPoints() == 0:
            raise InputFileError(f"{path}: the file holds no points; it is empty, truncated or"
                                 " corrupt: export it again")
        return data
    check_vtk_xml_counts(path)  # VTK allocates what the header announces, before reading
    if ext == ".vtp":
        reader = vtkXMLPolyDataReader()
    else:
        reader = vtkXMLUnstructuredGridReader()
    with capture_vtk_messages() as msgs:
        reader.SetFileName(str(path))
        reader.Update()
        data = reader.GetOutputDataObject(0)
    if msgs.has_error:
        raise InputFileError(f"{path}: VTK cannot read this file ({msgs.summary()}); it may be"
                             " truncated or corrupt: export it again")
    if data is None or data.GetNumberOfPoints() == 0:
        raise InputFileError(f"{path}: the file holds no points; it is empty, truncated or"
                             " corrupt: export it again")
    check_vtk_cells(data, path)
    return data


def _surface_from_vtk(data, path: Path):
    import pyvista as pv
    from vtkmodules.vtkFiltersCore import vtkTriangleFilter
    from vtkmodules.vtkFiltersGeometry import vtkGeometryFilter

    grid = pv.wrap(data)
    if isinstance(grid, pv.UnstructuredGrid):
        dims = {pv.CellType(c).name for c in np.unique(grid.celltypes)} if grid.n_cells else set()
        solid = [d for d in dims if d in _SOLID_CELLS]
        if solid:
            raise MeshError(f"{path}: holds a volume mesh ({', '.join(sorted(solid))} cells), not"
                            " a surface; read it with read_mesh (CLI: organsim mesh / info)")
        geo = vtkGeometryFilter()
        geo.SetInputData(data)
        geo.Update()
        data = geo.GetOutput()
    elif not isinstance(grid, pv.PolyData):
        raise InputFileError(f"{path}: holds a {type(grid).__name__}, not a surface; expected"
                             " POLYDATA (read images with read_image)")
    labels_name = "face_label"
    tri = vtkTriangleFilter()
    tri.SetInputData(data)
    tri.PassVertsOff()
    tri.PassLinesOff()
    tri.Update()
    poly = pv.wrap(tri.GetOutput())
    faces = np.asarray(poly.faces).reshape(-1, 4)[:, 1:] if poly.n_cells else np.zeros((0, 3))
    labels = None
    if labels_name in poly.cell_data and len(poly.cell_data[labels_name]) == len(faces):
        labels = np.asarray(poly.cell_data[labels_name])
    return np.asarray(poly.points, dtype=np.float64), faces, labels


_SOLID_CELLS = {"TETRA", "HEXAHEDRON", "WEDGE", "PYRAMID", "VOXEL", "QUADRATIC_TETRA",
                "QUADRATIC_HEXAHEDRON", "PENTAGONAL_PRISM", "HEXAGONAL_PRISM", "POLYHEDRON"}


# ---------------------------------------------------------- glTF (trimesh)
def _read_gltf(path: Path, ext: str):
    import trimesh

    scene = trimesh.load(str(path), force="scene", process=False)
    meshes = []
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geom = scene.geometry[name]
        if isinstance(geom, trimesh.Trimesh) and len(geom.faces):
            meshes.append(geom.copy().apply_transform(transform))
    if not meshes:
        raise InputFileError(f"{path}: the glTF scene holds no triangle mesh; export the organ"
                             " as a mesh")
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    pts = np.concatenate([m.vertices for m in meshes])
    faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets)])
    pts, faces = weld_exact(pts, faces)
    return pts, faces, None


# ------------------------------------------------------------------- GIFTI
_GIFTI_DTYPES = {"NIFTI_TYPE_UINT8": "u1", "NIFTI_TYPE_INT8": "i1", "NIFTI_TYPE_INT16": "i2",
                 "NIFTI_TYPE_UINT16": "u2", "NIFTI_TYPE_INT32": "i4", "NIFTI_TYPE_UINT32": "u4",
                 "NIFTI_TYPE_INT64": "i8", "NIFTI_TYPE_UINT64": "u8",
                 "NIFTI_TYPE_FLOAT32": "f4", "NIFTI_TYPE_FLOAT64": "f8"}


def _read_gifti(path: Path, ext: str):
    raw = path.read_bytes()
    if ext == ".gii.gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputFileError(f"{path}: the gzip stream is truncated or corrupt"
                                 f" ({_short(exc)}); export it again") from exc
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise InputFileError(f"{path}: not valid GIFTI XML ({exc}); the file is truncated or"
                             " corrupt: export it again") from exc
    if root.tag != "GIFTI":
        raise InputFileError(f"{path}: the XML root is <{root.tag}>, not <GIFTI>")
    arrays = {}
    for da in root.iter("DataArray"):
        intent = da.get("Intent", "")
        if intent in ("NIFTI_INTENT_POINTSET", "NIFTI_INTENT_TRIANGLE") and intent not in arrays:
            arrays[intent] = _gifti_array(da, path)
    if "NIFTI_INTENT_POINTSET" not in arrays or "NIFTI_INTENT_TRIANGLE" not in arrays:
        raise InputFileError(f"{path}: the GIFTI file has no POINTSET and TRIANGLE arrays; it is"
                             " not a surface (a GIFTI of per-vertex data?)")
    ras = arrays["NIFTI_INTENT_POINTSET"].astype(np.float64)
    lps = ras * np.array([-1.0, -1.0, 1.0])  # NIfTI world RAS -> organsim LPS
    return lps, arrays["NIFTI_INTENT_TRIANGLE"], None


def _gifti_array(da, path: Path) -> np.ndarray:
    dtype = _GIFTI_DTYPES.get(da.get("DataType", ""))
    if dtype is None:
        raise InputFileError(f"{path}: unsupported GIFTI DataType {da.get('DataType')!r}")
    ndim = int(da.get("Dimensionality", "1"))
    shape = tuple(int(da.get(f"Dim{i}", "0")) for i in range(ndim))
    encoding = da.get("Encoding", "ASCII")
    node = da.find("Data")
    text = (node.text or "") if node is not None else ""
    if encoding == "ASCII":
        arr = np.array(text.split(), dtype=dtype)
    elif encoding in ("Base64Binary", "GZipBase64Binary"):
        blob = base64.b64decode(text)
        if encoding == "GZipBase64Binary":
            blob = zlib.decompress(blob, zlib.MAX_WBITS | 32)  # zlib or gzip header
        endian = ">" if da.get("Endian", "LittleEndian") == "BigEndian" else "<"
        arr = np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder(endian))
    else:
        raise InputFileError(f"{path}: GIFTI encoding {encoding!r} (external data file) is not"
                             " supported; save the surface with embedded data")
    if arr.size != int(np.prod(shape)):
        raise InputFileError(f"{path}: a GIFTI array holds {arr.size} values, its header says"
                             f" {shape}; the file is truncated or corrupt")
    order = "F" if da.get("ArrayIndexingOrder") == "ColumnMajorOrder" else "C"
    return arr.reshape(shape, order=order)


# ------------------------------------------------------------- SOFA .trian
def _read_trian(path: Path, ext: str):
    """SOFA ``.trian``: N; N lines ``x y z``; M; M lines ``i j k n0 n1 n2`` (0-based)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln.split() for ln in fh if ln.strip()]
    try:
        nv = int(lines[0][0])
        verts = np.array([ln[:3] for ln in lines[1:1 + nv]], dtype=np.float64)
        nt = int(lines[1 + nv][0]) if len(lines) > 1 + nv else -1
        tris = np.array([ln[:3] for ln in lines[2 + nv:2 + nv + nt]], dtype=np.int64)
    except (ValueError, IndexError) as exc:
        raise InputFileError(f"{path}: not a SOFA .trian file ({_short(exc)}); expected a vertex"
                             " count, the vertices, a triangle count, the triangles") from exc
    if len(verts) != nv or nt < 0 or len(tris) != nt or verts.shape[1:] != (3,) \
            or (nt and tris.shape[1:] != (3,)):
        raise InputFileError(f"{path}: truncated .trian: it announces {nv} vertices and"
                             f" {max(nt, 0)} triangles but holds fewer; export it again")
    return verts, tris.reshape(-1, 3), None


_READERS = {".stl": _read_stl, ".obj": _read_obj, ".ply": _read_ply, ".off": _read_off,
            ".vtp": _read_vtk_surface, ".vtk": _read_vtk_surface, ".glb": _read_gltf,
            ".gltf": _read_gltf, ".gii": _read_gifti, ".gii.gz": _read_gifti,
            ".trian": _read_trian}


# ===================================================================== write
def write_surface(surface: TriSurface, path: str | os.PathLike, *, units: str = "m") -> Path:
    """Write a triangle surface (atomically).

    Parameters
    ----------
    surface : TriSurface
        Points in metres.
    path : str or os.PathLike
        ``.stl`` (binary), ``.obj``, ``.ply`` (binary), ``.off``, ``.vtp``
        (keeps ``face_labels``), ``.vtk`` (legacy) or ``.glb``.
    units : str, default "m"
        Unit to write coordinates in (``"mm"`` for 3D printing or CAD tools).
        Read the file back with the same ``units=``.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> tet = TriSurface(np.array([[0, 0, 0], [.05, 0, 0], [0, .05, 0], [0, 0, .05]]),
    ...                  np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]))
    >>> out = write_surface(tet, pathlib.Path(tempfile.mkdtemp()) / "tet.stl", units="mm")
    >>> read_surface(out, units="mm").n_points
    4
    """
    final = Path(path)
    ext = full_suffix(final)
    if ext not in SURFACE_WRITE_EXTENSIONS:
        raise InputFileError(f"{final}: cannot write a surface as {ext or '(no extension)'!r};"
                             f" supported: {', '.join(SURFACE_WRITE_EXTENSIONS)}")
    pts = np.asarray(surface.points) / to_metres(units)
    faces = np.asarray(surface.faces)
    with atomic_output(final) as tmp:
        try:
            _WRITERS[ext](surface, pts, faces, tmp)
        except OrganSimError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputFileError(f"{final}: cannot write the surface ({_short(exc)})") from exc
    return final


def _write_stl(surface, pts, faces, tmp: Path) -> None:
    rec = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    out = np.zeros(len(faces), dtype=rec)
    out["normal"] = surface.face_normals
    out["v"] = pts[faces]
    header = b"organsim binary STL".ljust(80, b" ")
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(np.uint32(len(faces)).tobytes())
        fh.write(out.tobytes())


def _rows(row_format: str, arr: np.ndarray) -> str:
    """Format every row of ``arr`` with one C-level ``%`` (much faster than np.savetxt)."""
    return (row_format * len(arr)) % tuple(np.asarray(arr).ravel().tolist())


def _write_obj(surface, pts, faces, tmp: Path) -> None:
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write("# organsim surface\n")
        fh.write(_rows("v %r %r %r\n", pts))  # repr: shortest text that reads back exactly
        fh.write(_rows("f %d %d %d\n", faces + 1))


def _write_off(surface, pts, faces, tmp: Path) -> None:
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"OFF\n{len(pts)} {len(faces)} 0\n")
        fh.write(_rows("%r %r %r\n", pts))
        fh.write(_rows("3 %d %d %d\n", faces))


def _write_ply(surface, pts, faces, tmp: Path) -> None:
    import meshio

    meshio.write(tmp, meshio.Mesh(pts, [("triangle", faces.astype(np.int32))]), file_format="ply",
                 binary=True)


def _write_vtk(surface, pts, faces, tmp: Path) -> None:
    import pyvista as pv

    poly = pv.PolyData.from_regular_faces(np.array(pts), np.asarray(faces))
    if surface.face_labels is not None:
        poly.cell_data["face_label"] = np.asarray(surface.face_labels)
    with capture_vtk_messages() as msgs:
        if tmp.suffix.lower() == ".vtk":
            save_legacy_vtk(poly, tmp)  # version 4.2: meshio reads it, not 5.1
        else:
            poly.save(str(tmp), binary=True)
    if msgs.has_error:
        raise InputFileError(f"VTK could not write the surface: {msgs.summary()}")


def _write_glb(surface, pts, faces, tmp: Path) -> None:
    import trimesh

    tm = trimesh.Trimesh(np.array(pts), np.array(faces), process=False)
    tmp.write_bytes(tm.export(file_type="glb"))


_WRITERS = {".stl": _write_stl, ".obj": _write_obj, ".off": _write_off, ".ply": _write_ply,
            ".vtp": _write_vtk, ".vtk": _write_vtk, ".glb": _write_glb}
