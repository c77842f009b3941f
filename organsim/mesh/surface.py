"""Triangle surfaces: the neutral type between readers, repair and meshers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import MeshError
from .tetmesh import _owned

__all__ = ["TriSurface"]


@dataclass(frozen=True, eq=False)
class TriSurface:
    """A triangle surface in metres.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Vertex positions (m).
    faces : ndarray, shape (k, 3)
        Vertex ids per triangle; for a closed organ surface, ordered so that
        normals point outward.
    face_labels : ndarray, shape (k,), optional
        An integer tag per face (for example the region it bounds, or 1 for
        faces created by a cut).

    Examples
    --------
    >>> import numpy as np
    >>> s = TriSurface(np.eye(3), np.array([[0, 1, 2]]))
    >>> s.n_faces
    1
    """

    points: np.ndarray
    faces: np.ndarray
    face_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        pts = np.ascontiguousarray(self.points, dtype=np.float64)
        faces = np.ascontiguousarray(self.faces, dtype=np.int64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise MeshError(f"surface points must have shape (n, 3), got {pts.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise MeshError(f"surface faces must have shape (k, 3), got {faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= len(pts)):
            raise MeshError(f"surface faces refer to vertex ids outside 0..{len(pts) - 1}")
        if self.face_labels is not None:
            lab = np.ascontiguousarray(self.face_labels, dtype=np.int32)
            if lab.shape != (len(faces),):
                raise MeshError(f"face_labels must have shape ({len(faces)},), got {lab.shape}")
            lab = _owned(lab, self.face_labels)
            object.__setattr__(self, "face_labels", lab)
        # the surface's arrays are read-only; never make the caller's own arrays so: copy those
        pts, faces = _owned(pts, self.points), _owned(faces, self.faces)
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "faces", faces)

    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    @cached_property
    def face_normals(self) -> np.ndarray:
        """Unit normal per face, shape (k, 3)."""
        p = self.points[self.faces]
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        ln = np.linalg.norm(n, axis=1, keepdims=True)
        return n / np.where(ln > 0, ln, 1.0)

    @cached_property
    def area(self) -> float:
        """Total area (m^2)."""
        p = self.points[self.faces]
        return float(0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum())

    @cached_property
    def signed_volume(self) -> float:
        """Enclosed volume (m^3) by the divergence theorem; positive if normals point out."""
        p = self.points[self.faces]
        return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0)

    @cached_property
    def edge_face_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Unique undirected edges (e, 2) and how many faces use each (e,)."""
        e = np.sort(self.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        n = np.int64(max(self.n_points, 1))
        keys, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
        edges = np.column_stack([keys // n, keys % n])
        return edges, counts

    @property
    def is_watertight(self) -> bool:
        """True if every edge is shared by exactly two faces."""
        _, c = self.edge_face_counts
        return bool(len(c) > 0 and np.all(c == 2))

    @property
    def is_edge_manifold(self) -> bool:
        """True if no edge is shared by more than two faces."""
        _, c = self.edge_face_counts
        return bool(np.all(c <= 2))

    def to_pyvista(self):
        """This surface as :class:`pyvista.PolyData` (with ``face_label`` if set)."""
        import pyvista as pv

        poly = pv.PolyData.from_regular_faces(np.array(self.points), np.asarray(self.faces))
        if self.face_labels is not None:
            poly.cell_data["face_label"] = np.asarray(self.face_labels)
        return poly

    @classmethod
    def from_pyvista(cls, poly) -> TriSurface:
        """Build from :class:`pyvista.PolyData`; polygons are triangulated."""
        tri = poly if poly.is_all_triangles else poly.triangulate()
        faces = np.asarray(tri.faces).reshape(-1, 4)[:, 1:] if tri.n_cells else np.zeros((0, 3), int)
        labels = np.asarray(tri.cell_data["face_label"]) if "face_label" in tri.cell_data else None
        return cls(np.asarray(tri.points, dtype=np.float64), faces, labels)

    def to_trimesh(self):
        """This surface as an unprocessed :class:`trimesh.Trimesh`."""
        import trimesh

        return trimesh.Trimesh(np.array(self.points), np.array(self.faces), process=False)

    @classmethod
    def from_trimesh(cls, tm) -> TriSurface:
        """Build from a :class:`trimesh.Trimesh`."""
        return cls(np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces))

    def __repr__(self) -> str:
        return f"TriSurface({self.n_points} points, {self.n_faces} faces)"
