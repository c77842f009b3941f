"""Tetrahedral volume meshes: VTU, legacy VTK, Gmsh MSH (v1, v2, v4), MEDIT ``.mesh``, XDMF.

Mesh formats carry no length unit, so :func:`read_mesh` takes an explicit
``units=`` and returns a :class:`~organsim.mesh.tetmesh.TetMesh` in metres.

What is kept from a file:

* linear tetrahedra; quadratic ones (``tetra10``) are read as linear tets on
  their corner nodes. Every other cell (boundary triangles, lines, points,
  hexahedra) is dropped, and nodes no tet uses are removed, both with a log
  message; node order is otherwise kept;
* a region id per tet from the format's cell tags: ``region`` (organsim's
  own), ``gmsh:physical`` (or the elementary tag where there is no physical
  one), ``medit:ref``, ``CellEntityIds``, ``cell_tags``, ``MaterialIds``;
  region names from Gmsh ``$PhysicalNames`` of dimension 3 or organsim's
  ``region_names`` field data in VTU;
* tets with negative volume are reoriented (two nodes swapped) and the count
  is logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError, MeshError, OrganSimError
from ..mesh.tetmesh import TetMesh, decode_region_names, tet_volumes
from ..units import check_plausible_size, to_metres
from ._common import (capture_vtk_messages, check_finite, check_input_file, meshio_read, read_head,
                      save_legacy_vtk)
from .atomic import atomic_output, full_suffix
from .gmsh import read_gmsh_v1, write_gmsh41
from .surfaces import read_vtk_dataset

__all__ = ["read_mesh", "write_mesh", "MESH_READ_EXTENSIONS", "MESH_WRITE_EXTENSIONS",
           "RawMesh", "load_raw_mesh", "tetmesh_from_raw"]

log = logging.getLogger("organsim.io")

#: Extensions read by :func:`read_mesh`.
MESH_READ_EXTENSIONS = (".vtu", ".vtk", ".msh", ".mesh", ".xdmf", ".xmf")
#: Extensions written by :func:`write_mesh`.
MESH_WRITE_EXTENSIONS = (".vtu", ".vtk", ".msh", ".mesh", ".xdmf")

#: Cell-data names taken as the region id, in order of preference.
REGION_ARRAYS = ("region", "regions", "gmsh:physical", "medit:ref", "CellEntityIds",
                 "cell_tags", "MaterialIds", "material", "gmsh:geometrical")

_VTK_TYPE_NAMES = {10: "tetra", 24: "tetra10", 5: "triangle", 9: "quad", 7: "polygon",
                   3: "line", 1: "vertex", 11: "voxel", 12: "hexahedron", 13: "wedge",
                   14: "pyramid"}


class RawMesh:
    """What a file holds, before it becomes a TetMesh (file units, all cell types).

    Attributes
    ----------
    points : ndarray, shape (n, 3)
    blocks : list of (cell type, connectivity (m, k), tags (m,) or None)
    region_names : dict[int, str]
    """

    def __init__(self, points, blocks, region_names=None) -> None:
        self.points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        self.blocks = blocks
        self.region_names = dict(region_names or {})

    def cells(self, *types: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
        return [(c, t) for name, c, t in self.blocks if name in types and len(c)]

    @property
    def cell_types(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, c, _ in self.blocks:
            out[name] = out.get(name, 0) + len(c)
        return out


# ====================================================================== read
def read_mesh(path: str | os.PathLike, *, units: str, file_format: str | None = None) -> TetMesh:
    """Read a tetrahedral volume mesh and convert it to metres.

    Parameters
    ----------
    path : str or os.PathLike
        ``.vtu``, ``.vtk`` (legacy UNSTRUCTURED_GRID), ``.msh`` (Gmsh v1, v2
        or v4, ASCII or binary), ``.mesh`` (MEDIT) or ``.xdmf``/``.xmf``.
    units : str
        Length unit of the file's coordinates: ``"mm"``, ``"cm"``, ``"m"``
        or ``"um"``. Files written by organsim are in metres.
    file_format : str, optional
        An extension such as ``".msh"`` to use instead of the file's own
        (for files named without one).

    Returns
    -------
    TetMesh
        Positively oriented tets with their region ids and names.

    Raises
    ------
    InputFileError
        Missing, empty, truncated or corrupt file, or an unknown extension.
    MeshError
        No tetrahedra in the file (it may be a surface), or NaN/infinite
        coordinates.
    UnitsError
        Unknown unit, or a size implausible for an organ.

    Examples
    --------
    >>> mesh = read_mesh("sofa_liver.msh", units="cm")   # doctest: +SKIP
    >>> mesh.n_points, mesh.n_tets                        # doctest: +SKIP
    (181, 596)
    """
    scale = to_metres(units)
    p = check_input_file(path)
    raw = load_raw_mesh(p, file_format=file_format)
    return tetmesh_from_raw(raw, p, scale=scale, units=units)


def load_raw_mesh(p: Path, *, file_format: str | None = None) -> RawMesh:
    """Read any supported volume-mesh file into a :class:`RawMesh` (file units)."""
    ext = (file_format or full_suffix(p)).lower()
    if ext not in MESH_READ_EXTENSIONS:
        raise InputFileError(f"{p}: unknown volume-mesh extension {ext or '(none)'!r}; supported:"
                             f" {', '.join(MESH_READ_EXTENSIONS)}")
    try:
        if ext in (".vtu", ".vtk"):
            return _load_vtk(p, ext)
        if ext == ".msh" and b"$NOD" in read_head(p, 64) and b"$MeshFormat" not in read_head(p, 64):
            points, blocks = read_gmsh_v1(p)
            return RawMesh(points, blocks)
        return _load_meshio(p, ext)
    except OrganSimError:
        raise
    except Exception as exc:  # noqa: BLE001 - library errors become ours
        raise InputFileError(f"{p}: cannot read this {ext} mesh ({_short(exc)}); the file may be"
                             " truncated or corrupt: export it again") from exc


def _short(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _load_vtk(p: Path, ext: str) -> RawMesh:
    import pyvista as pv

    data = read_vtk_dataset(p, ext)
    grid = pv.wrap(data)
    if isinstance(grid, pv.PolyData):
        raise MeshError(f"{p}: holds a surface (POLYDATA, {grid.n_cells} cells), not a volume"
                        " mesh; read it with read_surface, or tetrahedralize it with"
                        " `organsim mesh`")
    if not isinstance(grid, pv.UnstructuredGrid):
        raise InputFileError(f"{p}: holds a {type(grid).__name__}, not an unstructured grid of"
                             " tetrahedra (read images with read_image)")
    celltypes = np.asarray(grid.celltypes)
    tags = None
    for name in REGION_ARRAYS:
        if name in grid.cell_data:
            arr = np.asarray(grid.cell_data[name])
            if arr.ndim == 1 and _integral(arr):
                tags = arr.astype(np.int64)
                break
    blocks = []
    for vtk_type, conn in grid.cells_dict.items():
        sel = celltypes == vtk_type
        name = _VTK_TYPE_NAMES.get(int(vtk_type), f"vtk_type_{int(vtk_type)}")
        blocks.append((name, np.asarray(conn, dtype=np.int64), None if tags is None else tags[sel]))
    return RawMesh(grid.points, blocks, decode_region_names(grid.field_data))


def _integral(arr: np.ndarray) -> bool:
    if np.issubdtype(arr.dtype, np.integer):
        return True
    return bool(np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                and np.all(arr == np.round(arr)))


def _load_meshio(p: Path, ext: str) -> RawMesh:
    fmt = {".msh": "gmsh", ".mesh": "medit", ".xdmf": "xdmf", ".xmf": "xdmf"}[ext]
    with capture_vtk_messages():
        mesh = meshio_read(p, fmt)
    key = next((k for k in REGION_ARRAYS if k in mesh.cell_data), None)
    if key == "gmsh:physical" and "gmsh:geometrical" in mesh.cell_data:
        # gmsh files without physical groups: fall back to the elementary tags
        if all(np.all(np.asarray(t) == 0) for t in mesh.cell_data[key]):
            key = "gmsh:geometrical"
    blocks = []
    for i, block in enumerate(mesh.cells):
        tags = None
        if key is not None:
            t = np.asarray(mesh.cell_data[key][i]).reshape(-1)
            tags = t.astype(np.int64) if t.size == len(block.data) and _integral(t) else None
        blocks.append((block.type, np.asarray(block.data, dtype=np.int64), tags))
    names = {}
    for name, value in (mesh.field_data or {}).items():
        v = np.asarray(value).ravel()
        if v.size == 2 and int(v[1]) == 3:  # gmsh: {name: [tag, dim]}
            names[int(v[0])] = str(name)
    return RawMesh(mesh.points, blocks, names)


def tetmesh_from_raw(raw: RawMesh, path: Path, *, scale: float, units: str) -> TetMesh:
    """Keep the tets of a :class:`RawMesh`, clean them and build a TetMesh in metres."""
    tet_blocks = raw.cells("tetra") + [(c[:, :4], t) for c, t in raw.cells("tetra10")]
    if sum(raw.cell_types.values()) == 0:
        raise InputFileError(f"{path}: holds {len(raw.points)} points but no cells; the file is"
                             " truncated or corrupt: export it again")
    if not tet_blocks:
        found = ", ".join(f"{n} {k}" for k, n in raw.cell_types.items()) or "no cells"
        if any(k in raw.cell_types for k in ("triangle", "quad", "polygon")):
            raise MeshError(f"{path}: holds no tetrahedra ({found}); it looks like a surface:"
                            " read it with read_surface, or tetrahedralize it with"
                            " `organsim mesh`")
        raise MeshError(f"{path}: holds no tetrahedra ({found}); organsim needs a tetrahedral"
                        " volume mesh (convert other elements with Gmsh or TetGen)")
    if raw.cells("tetra10"):
        log.warning("%s: quadratic tets (tetra10) read as linear tets on their corner nodes", path)
    dropped = {k: n for k, n in raw.cell_types.items() if k not in ("tetra", "tetra10")}
    if dropped:
        log.info("%s: ignored non-tet cells: %s", path,
                 ", ".join(f"{n} {k}" for k, n in dropped.items()))
    for c, t in tet_blocks:
        if c.ndim != 2 or c.shape[1] != 4 or (t is not None and len(t) != len(c)):
            raise InputFileError(f"{path}: malformed tetrahedron data (connectivity of shape"
                                 f" {c.shape}); the file is truncated or corrupt: export it again")
    tets = np.concatenate([c for c, _ in tet_blocks])
    if all(t is not None for _, t in tet_blocks):
        rid = np.concatenate([t for _, t in tet_blocks])
    else:
        rid = np.ones(len(tets), dtype=np.int64)
    if np.all(rid == 0):  # e.g. Gmsh tags 0 = "no physical group": one unnamed region
        rid = np.ones(len(tets), dtype=np.int64)
    points = raw.points
    if tets.min() < 0 or tets.max() >= len(points):
        raise InputFileError(f"{path}: tetrahedra refer to nodes that do not exist (ids up to"
                             f" {tets.max()} for {len(points)} nodes); the file is corrupt or"
                             " truncated: export it again")
    used = np.unique(tets)
    if len(used) < len(points):
        log.info("%s: removed %d nodes that no tetrahedron uses", path, len(points) - len(used))
        remap = np.full(len(points), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        points, tets = points[used], remap[tets]
    check_finite(points, path)
    points = points * scale
    check_plausible_size(points, source=str(path), units=units)
    vol = tet_volumes(points, tets)
    neg = vol < 0
    if np.any(neg):
        tets = tets.copy()
        tets[neg] = tets[neg][:, [0, 2, 1, 3]]
        log.warning("%s: reoriented %d of %d tetrahedra with negative volume", path,
                    int(neg.sum()), len(tets))
    n_flat = int(np.count_nonzero(vol == 0))
    if n_flat:
        log.warning("%s: %d tetrahedra have zero volume (degenerate); repair or remesh before"
                    " simulating", path, n_flat)
    if rid.min() < np.iinfo(np.int32).min or rid.max() > np.iinfo(np.int32).max:
        raise InputFileError(f"{path}: region ids out of the 32-bit range; the tags are corrupt")
    names = {k: v for k, v in raw.region_names.items() if k in set(np.unique(rid).tolist())}
    try:
        return TetMesh(points, tets, rid.astype(np.int32), names)
    except MeshError as exc:
        raise MeshError(f"{path}: {exc}") from exc


# ===================================================================== write
def write_mesh(mesh: TetMesh, path: str | os.PathLike, *, units: str = "m",
               msh_version: str = "4.1") -> Path:
    """Write a tetrahedral mesh (atomically).

    Parameters
    ----------
    mesh : TetMesh
    path : str or os.PathLike
        ``.vtu`` (XML, with the ``region`` cell array and region names),
        ``.vtk`` (legacy, ``region`` array only, no names), ``.msh`` (Gmsh, regions as physical
        groups with their names; in v4.1 the tets are grouped by region, in
        their original order within each region), ``.mesh`` (MEDIT, regions as references)
        or ``.xdmf`` (one self-contained XML file, ``region`` cell array).
    units : str, default "m"
        Unit the coordinates are written in; read back with the same ``units=``.
    msh_version : {"4.1", "2.2"}
        Gmsh file version for ``.msh``.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> mesh = box_tet_mesh((3, 3, 3), 0.01)
    >>> out = write_mesh(mesh, pathlib.Path(tempfile.mkdtemp()) / "box.msh")
    >>> read_mesh(out, units="m").n_tets == mesh.n_tets
    True
    """
    final = Path(path)
    ext = full_suffix(final)
    if ext not in MESH_WRITE_EXTENSIONS:
        raise InputFileError(f"{final}: cannot write a volume mesh as {ext or '(no extension)'!r};"
                             f" supported: {', '.join(MESH_WRITE_EXTENSIONS)}")
    if msh_version not in ("4.1", "2.2"):
        raise InputFileError(f"msh_version must be '4.1' or '2.2', got {msh_version!r}")
    pts = np.asarray(mesh.points) / to_metres(units)
    with atomic_output(final) as tmp:
        try:
            _write(mesh, pts, tmp, ext, msh_version)
        except OrganSimError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputFileError(f"{final}: cannot write the mesh ({_short(exc)})") from exc
    return final


def _write(mesh: TetMesh, pts: np.ndarray, tmp: Path, ext: str, msh_version: str) -> None:
    import meshio

    rid = np.asarray(mesh.region_ids, dtype=np.int32)
    tets = np.asarray(mesh.tets)
    if ext in (".vtu", ".vtk"):
        grid = mesh.to_pyvista()
        grid.points = pts
        if ext == ".vtk":
            # VTK's own legacy reader (ParaView and other tools; organsim reads legacy files
            # with its checked parser) crashes on a file cut short inside a string array,
            # so legacy files carry no string field data: region names need .vtu
            grid.field_data.clear()
        with capture_vtk_messages() as msgs:
            if ext == ".vtk":
                save_legacy_vtk(grid, tmp)  # version 4.2: meshio reads it, not 5.1
            else:
                grid.save(str(tmp), binary=True)
        if msgs.has_error:
            raise InputFileError(f"VTK could not write the mesh: {msgs.summary()}")
    elif ext == ".msh" and msh_version == "4.1":
        write_gmsh41(tmp, pts, tets, rid, mesh.region_names)
    elif ext == ".msh":
        field = {name: np.array([k, 3]) for k, name in mesh.region_names.items()}
        m = meshio.Mesh(pts, [("tetra", tets)], field_data=field,
                        cell_data={"gmsh:physical": [rid], "gmsh:geometrical": [rid]})
        meshio.write(tmp, m, file_format="gmsh22", binary=False)
    elif ext == ".mesh":
        m = meshio.Mesh(pts, [("tetra", tets)], cell_data={"medit:ref": [rid]})
        meshio.write(tmp, m, file_format="medit")
    else:  # .xdmf, with data inline so that one file holds everything
        m = meshio.Mesh(pts, [("tetra", tets)], cell_data={"region": [rid]})
        meshio.write(tmp, m, file_format="xdmf", data_format="XML")
