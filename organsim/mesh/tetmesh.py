"""The tetrahedral mesh every stage of organsim passes along.

A :class:`TetMesh` holds node positions in metres, linear tetrahedra, and a
region id per tetrahedron (parenchyma, tumour, vessel...). It is immutable by
convention: operations return new meshes, and derived data (volumes, boundary,
quality) is computed once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import MeshError
from ._check_kernels import index_summary

__all__ = ["TetMesh", "TET_FACES", "tet_volumes", "dihedral_angles", "REGION_NAMES_FIELD",
           "encode_region_names", "decode_region_names"]

#: Field-data array that carries the region names in the VTU files organsim writes: the
#: JSON text ``{"id": "name", ...}`` as UTF-8 bytes (a UInt8 array). VTK's String arrays
#: would be the natural choice, but meshio refuses them (it exits the process on one),
#: and a numeric array reads in meshio, pyvista and ParaView alike.
REGION_NAMES_FIELD = "region_names_json"


def encode_region_names(names: dict[int, str]) -> np.ndarray:
    """Region names as the UInt8 field array :data:`REGION_NAMES_FIELD` holds.

    Examples
    --------
    >>> arr = encode_region_names({2: "tumour", 1: "parenchyma"})
    >>> arr.dtype.name, bytes(arr).decode()
    ('uint8', '{"1": "parenchyma", "2": "tumour"}')
    >>> decode_region_names({REGION_NAMES_FIELD: arr})
    {1: 'parenchyma', 2: 'tumour'}
    """
    import json

    text = json.dumps({str(k): str(v) for k, v in sorted(names.items())}, ensure_ascii=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def decode_region_names(field_data) -> dict[int, str]:
    """Region names from a file's field data (a mapping of name -> array), any organsim version.

    Reads :data:`REGION_NAMES_FIELD` (JSON bytes, written since organsim 0.1's interoperable
    results) and, from older files, the ``region_names`` String array of ``"id:name"`` entries.
    Anything else is ignored (an empty dict).

    Examples
    --------
    >>> decode_region_names({"region_names": np.array(["1:parenchyma", "3:vessel"])})
    {1: 'parenchyma', 3: 'vessel'}
    """
    import json

    names: dict[int, str] = {}
    if REGION_NAMES_FIELD in field_data:
        raw = np.asarray(field_data[REGION_NAMES_FIELD]).ravel()
        try:
            doc = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            doc = {}
        if isinstance(doc, dict):
            for k, v in doc.items():
                if str(k).strip().lstrip("-").isdigit():
                    names[int(k)] = str(v)
        if names:
            return names
    if "region_names" in field_data:
        for entry in np.asarray(field_data["region_names"]).ravel():
            k, _, v = str(entry).partition(":")
            if k.strip().lstrip("-").isdigit():
                names[int(k)] = v
    return names

#: Local vertex ids of the four faces of a positively oriented tet, each
#: ordered so that its normal points out of the tet.
TET_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]], dtype=np.int64)

#: Local vertex ids of the six edges of a tet.
TET_EDGES = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]], dtype=np.int64)


def tet_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Signed volumes of tetrahedra.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Node positions (m).
    tets : ndarray, shape (m, 4)
        Node ids per tet.

    Returns
    -------
    ndarray, shape (m,)
        Signed volume (m^3); positive for the orientation organsim uses.
    """
    p = points[tets]
    a = p[:, 1] - p[:, 0]
    b = p[:, 2] - p[:, 0]
    c = p[:, 3] - p[:, 0]
    return np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0


def dihedral_angles(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """The six interior dihedral angles of each tet, in degrees.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
    tets : ndarray, shape (m, 4)

    Returns
    -------
    ndarray, shape (m, 6)
        Angle (degrees) at each edge in :data:`TET_EDGES` order.
    """
    p = points[tets]
    # outward (unnormalised) face normals, face f is opposite vertex f
    n = np.empty((len(tets), 4, 3))
    for f in range(4):
        i, j, k = TET_FACES[f]
        n[:, f] = np.cross(p[:, j] - p[:, i], p[:, k] - p[:, i])
    norm = np.linalg.norm(n, axis=2, keepdims=True)
    n = n / np.where(norm > 0, norm, 1.0)
    out = np.empty((len(tets), 6))
    for e, (a, b) in enumerate(TET_EDGES):
        # the edge (a, b) is shared by the faces opposite the other two vertices
        f1, f2 = [v for v in range(4) if v not in (a, b)]
        cosang = -np.einsum("ij,ij->i", n[:, f1], n[:, f2])
        out[:, e] = np.degrees(np.arccos(np.clip(cosang, -1.0, 1.0)))
    return out


def _owned(a: np.ndarray, source) -> np.ndarray:
    """``a`` made read-only, copied first when it is the caller's writeable array."""
    if a.flags.writeable and isinstance(source, np.ndarray) and np.shares_memory(a, source):
        a = a.copy()
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class TetMesh:
    """A linear tetrahedral mesh with a region id per element.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Node positions in metres (float64).
    tets : ndarray, shape (m, 4)
        Node ids of each tetrahedron (int64), positively oriented.
    region_ids : ndarray, shape (m,), optional
        Region id per tet (int32); defaults to all 1.
    region_names : dict[int, str], optional
        Name of each region id, e.g. ``{1: "parenchyma", 2: "tumour"}``.

    Examples
    --------
    >>> import numpy as np
    >>> mesh = TetMesh(np.eye(4, 3), np.array([[3, 0, 1, 2]]))
    >>> round(mesh.volume, 6)
    0.166667
    """

    points: np.ndarray
    tets: np.ndarray
    region_ids: np.ndarray | None = None
    region_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pts = np.ascontiguousarray(self.points, dtype=np.float64)
        tets = np.ascontiguousarray(self.tets, dtype=np.int64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise MeshError(f"points must have shape (n, 3), got {pts.shape}")
        if tets.ndim != 2 or tets.shape[1] != 4:
            raise MeshError(f"tets must have shape (m, 4), got {tets.shape}")
        if not np.all(np.isfinite(pts)):
            raise MeshError("mesh points contain NaN or infinite coordinates;"
                            " fix or re-export the mesh")
        if self.region_ids is None:
            rid = np.ones(len(tets), dtype=np.int32)
        else:
            rid = np.ascontiguousarray(self.region_ids, dtype=np.int32)
            if rid.shape != (len(tets),):
                raise MeshError(f"region_ids must have shape ({len(tets)},), got {rid.shape}")
        # the mesh's arrays are read-only; never make the caller's own arrays so: copy those
        pts, tets, rid = (_owned(a, src) for a, src in
                          ((pts, self.points), (tets, self.tets), (rid, self.region_ids)))
        lo, hi, present, counted = index_summary(tets, rid)   # one pass each (read-only arrays)
        if tets.size and (lo < 0 or hi >= len(pts)):
            raise MeshError(f"tets refer to node ids outside 0..{len(pts) - 1}")
        if not counted:
            present = np.unique(rid).astype(np.int32)
        present.setflags(write=False)
        names = {int(k): str(v) for k, v in dict(self.region_names).items()}
        for r in present.tolist():
            names.setdefault(int(r), "tissue" if r == 1 and not names else f"region_{r}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "tets", tets)
        object.__setattr__(self, "region_ids", rid)
        object.__setattr__(self, "_present_regions", present)
        object.__setattr__(self, "region_names", names)

    def __setstate__(self, state: dict) -> None:
        # unpickling (a Dask sweep sends meshes to its workers) restores the arrays writeable:
        # make them read-only again, as immutable as the original's, and of the array types
        # the compiled kernels were compiled for (numba compiles a writeable array's anew)
        for key, value in state.items():
            for a in value if isinstance(value, tuple) else (value,):   # cached pairs of arrays too
                if isinstance(a, np.ndarray):
                    a.setflags(write=False)
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ sizes
    @property
    def n_points(self) -> int:
        """Number of nodes."""
        return len(self.points)

    @property
    def n_tets(self) -> int:
        """Number of tetrahedra."""
        return len(self.tets)

    # ---------------------------------------------------------------- derived
    @property
    def present_region_ids(self) -> np.ndarray:
        """The distinct region ids the tets carry, ascending, shape (k,) int32 (read-only).

        Found while the mesh is built (one pass over the ids); ``region_names`` may also
        name regions no tet carries any more (after a resection, say).
        """
        present = self.__dict__.get("_present_regions")
        if present is None:   # a mesh pickled before this was recorded
            present = np.unique(self.region_ids).astype(np.int32)
            present.setflags(write=False)
            object.__setattr__(self, "_present_regions", present)
        return present

    @cached_property
    def volumes(self) -> np.ndarray:
        """Signed volume of each tet, shape (m,), m^3."""
        v = tet_volumes(self.points, self.tets)
        v.setflags(write=False)
        return v

    @property
    def volume(self) -> float:
        """Total volume (m^3)."""
        return float(self.volumes.sum())

    def region_volumes(self) -> dict[str, float]:
        """Volume (m^3) of each named region."""
        out = {}
        for rid, name in self.region_names.items():
            out[name] = float(self.volumes[self.region_ids == rid].sum())
        return out

    @cached_property
    def _boundary(self) -> tuple[np.ndarray, np.ndarray]:
        from ._face_kernels import boundary_faces

        # the faces of one tet only, in linear time (bucketed by smallest vertex, no sort)
        bf, bt = boundary_faces(np.ascontiguousarray(self.tets, dtype=np.int64), max(self.n_points, 1))
        bf.setflags(write=False)
        bt.setflags(write=False)
        return bf, bt

    @property
    def boundary_faces(self) -> np.ndarray:
        """Boundary triangles, shape (k, 3), ordered with outward normals."""
        return self._boundary[0]

    @property
    def boundary_face_tets(self) -> np.ndarray:
        """The tet each boundary face belongs to, shape (k,)."""
        return self._boundary[1]

    @cached_property
    def boundary_nodes(self) -> np.ndarray:
        """Sorted ids of the nodes on the boundary, shape (b,)."""
        return np.unique(self.boundary_faces)

    @cached_property
    def edges(self) -> np.ndarray:
        """Unique edges, shape (e, 2), each sorted."""
        e = np.sort(self.tets[:, TET_EDGES].reshape(-1, 2), axis=1)
        n = np.int64(max(self.n_points, 1))
        keys = np.unique(e[:, 0] * n + e[:, 1])
        return np.column_stack([keys // n, keys % n])

    @cached_property
    def dihedral_angles(self) -> np.ndarray:
        """Six dihedral angles per tet (degrees), shape (m, 6)."""
        return dihedral_angles(self.points, self.tets)

    def quality(self) -> dict[str, float | int]:
        """Summary of element quality.

        Returns
        -------
        dict
            ``min_dihedral_deg``, ``max_dihedral_deg``, ``min_radius_ratio``
            (3 r_in / r_circ, 1 for a regular tet), ``mean_radius_ratio``,
            ``n_inverted`` (volume <= 0) and ``mean_edge_length_m``.
        """
        if self.n_tets == 0:
            return {"min_dihedral_deg": float("nan"), "max_dihedral_deg": float("nan"),
                    "min_radius_ratio": float("nan"), "mean_radius_ratio": float("nan"),
                    "n_inverted": 0, "mean_edge_length_m": float("nan")}
        ang = self.dihedral_angles
        rr = self.radius_ratios
        el = np.linalg.norm(self.points[self.edges[:, 1]] - self.points[self.edges[:, 0]], axis=1)
        return {
            "min_dihedral_deg": float(ang.min()),
            "max_dihedral_deg": float(ang.max()),
            "min_radius_ratio": float(rr.min()),
            "mean_radius_ratio": float(rr.mean()),
            "n_inverted": int(np.count_nonzero(self.volumes <= 0)),
            "mean_edge_length_m": float(el.mean()),
        }

    @cached_property
    def radius_ratios(self) -> np.ndarray:
        """Normalised radius ratio 3 r_in / r_circ per tet, shape (m,), in [0, 1]."""
        p = self.points[self.tets]
        v = np.abs(self.volumes)
        area = np.zeros(self.n_tets)
        for f in TET_FACES:
            area += 0.5 * np.linalg.norm(np.cross(p[:, f[1]] - p[:, f[0]], p[:, f[2]] - p[:, f[0]]), axis=1)
        r_in = 3.0 * v / np.where(area > 0, area, 1.0)
        # circumradius from the edge lengths: 24 V R = sqrt(prod of the three products of opposite edges)
        d = lambda i, j: np.linalg.norm(p[:, i] - p[:, j], axis=1)  # noqa: E731
        a, b, c = d(0, 1) * d(2, 3), d(0, 2) * d(1, 3), d(0, 3) * d(1, 2)
        s = (a + b + c) * (a + b - c) * (a - b + c) * (-a + b + c)
        r_circ = np.sqrt(np.clip(s, 0, None)) / np.where(v > 0, 24.0 * v, np.inf)
        rr = np.where(r_circ > 0, 3.0 * r_in / np.where(r_circ > 0, r_circ, 1.0), 0.0)
        rr.setflags(write=False)
        return rr

    # ------------------------------------------------------------ derivations
    def with_points(self, points: np.ndarray) -> TetMesh:
        """The same connectivity and regions at new node positions (shape (n, 3), m)."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape != self.points.shape:
            raise MeshError(f"new points must have shape {self.points.shape}, got {pts.shape}")
        return TetMesh(pts, self.tets, self.region_ids, self.region_names)

    def submesh(self, tet_mask: np.ndarray) -> tuple[TetMesh, np.ndarray]:
        """Keep the tets selected by ``tet_mask`` and drop unused nodes.

        Returns
        -------
        mesh : TetMesh
        node_map : ndarray, shape (n_new,)
            Parent node id of each new node.
        """
        tet_mask = np.asarray(tet_mask, dtype=bool)
        tets = self.tets[tet_mask]
        used = np.unique(tets)
        remap = np.full(self.n_points, -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        sub = TetMesh(self.points[used], remap[tets], self.region_ids[tet_mask],
                      {k: v for k, v in self.region_names.items()})
        return sub, used

    def to_pyvista(self):
        """This mesh as a :class:`pyvista.UnstructuredGrid` with a ``region`` cell array.

        The region names go in the field array :data:`REGION_NAMES_FIELD` (JSON bytes), which
        meshio, pyvista and ParaView all read.
        """
        import pyvista as pv

        grid = pv.UnstructuredGrid({pv.CellType.TETRA: np.asarray(self.tets)}, np.array(self.points))
        grid.cell_data["region"] = np.asarray(self.region_ids)
        grid.field_data[REGION_NAMES_FIELD] = encode_region_names(self.region_names)
        return grid

    @classmethod
    def from_pyvista(cls, grid, *, region_array: str = "region") -> TetMesh:
        """Build from a :class:`pyvista.UnstructuredGrid` holding tetrahedra only.

        Non-tet cells (vertices, lines, triangles) are ignored; a grid without
        tets raises :class:`~organsim.errors.MeshError`.
        """
        import pyvista as pv

        cells = grid.cells_dict if hasattr(grid, "cells_dict") else {}
        tets = cells.get(pv.CellType.TETRA)
        if tets is None or len(tets) == 0:
            raise MeshError("the grid holds no tetrahedra; expected a tetrahedral volume mesh")
        rid = None
        if region_array in grid.cell_data:
            celltypes = np.asarray(grid.celltypes)
            rid = np.asarray(grid.cell_data[region_array])[celltypes == pv.CellType.TETRA]
        names = decode_region_names(grid.field_data)
        return cls(np.asarray(grid.points, dtype=np.float64), np.asarray(tets), rid, names)

    def __repr__(self) -> str:
        regions = ", ".join(f"{k}:{v}" for k, v in sorted(self.region_names.items()))
        return f"TetMesh({self.n_points} points, {self.n_tets} tets, regions {{{regions}}})"
