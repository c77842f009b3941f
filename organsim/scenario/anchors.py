"""Points anchored to the tissue, and paths through time.

An instrument point in a scenario (a grasp's ``at_mm``, a cut's ``path_mm``)
names a material point of the organ: it is projected onto the rest surface
once and then follows that point as the organ deforms. A point picked with
the mouse on the *deformed* surface is anchored the same way, through the
triangle it lies on, so a live action and its replay from TOML grab the
same tissue.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..mesh.tetmesh import TetMesh

__all__ = ["SurfaceAnchors", "eval_anchor", "polyline_at", "path_at_time"]


class SurfaceAnchors:
    """Closest-point queries on a mesh's boundary.

    The search tree is built at the first query: after a cut increment the
    procedure makes a new one, and most increments never anchor anything.

    Parameters
    ----------
    mesh : TetMesh
        The rest mesh (its boundary faces are the anchor triangles).
    face_mask : ndarray of bool, shape (b,), optional
        Which of ``mesh.boundary_faces`` may be anchored to (all by default); e.g. only the
        faces a cut made, or only those it did not.
    """

    def __init__(self, mesh: TetMesh, face_mask: np.ndarray | None = None) -> None:
        self.mesh = mesh
        self.face_mask = None if face_mask is None else np.asarray(face_mask, dtype=bool)

    @cached_property
    def faces(self) -> np.ndarray:
        """Boundary triangles that may be anchored to, shape (f, 3)."""
        faces = self.mesh.boundary_faces
        if self.face_mask is None:
            return faces
        if self.face_mask.shape != (len(faces),):
            raise ValueError(f"face_mask has shape {self.face_mask.shape}; expected "
                             f"({len(faces)},), one flag per boundary face of the mesh")
        return faces[self.face_mask]

    @cached_property
    def _rest_tree(self):
        from scipy.spatial import cKDTree

        return cKDTree(self.mesh.points[self.faces].mean(axis=1))

    def anchor(self, point: np.ndarray, *, positions: np.ndarray | None = None,
               k: int = 12) -> tuple[np.ndarray, np.ndarray]:
        """The boundary point closest to ``point``, as a triangle and weights.

        Parameters
        ----------
        point : ndarray, shape (3,)
            Query point (m).
        positions : ndarray, shape (n, 3), optional
            Node positions to search in (m); the rest positions by default.
        k : int
            Candidate triangles tried (nearest by centroid).

        Returns
        -------
        nodes : ndarray, shape (3,)
            The triangle's node ids.
        weights : ndarray, shape (3,)
            Barycentric weights (non-negative, summing to 1).
        """
        point = np.asarray(point, dtype=np.float64)
        k = min(k, len(self.faces))
        if positions is None:
            x = self.mesh.points
            _, idx = self._rest_tree.query(point, k=k)
            idx = np.atleast_1d(idx)
        else:
            x = np.asarray(positions, dtype=np.float64)
            cent = x[self.faces].mean(axis=1)
            idx = np.argsort(np.linalg.norm(cent - point, axis=1))[:k]
        tri = x[self.faces[idx]]
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        n = np.cross(b - a, c - a)
        area2 = np.einsum("ij,ij->i", n, n)
        safe = np.where(area2 > 0, area2, 1.0)
        q = point - (np.einsum("ij,ij->i", point - a, n) / safe)[:, None] * n
        w0 = np.einsum("ij,ij->i", np.cross(c - b, q - b), n)
        w1 = np.einsum("ij,ij->i", np.cross(a - c, q - c), n)
        w = np.clip(np.c_[w0, w1, area2 - w0 - w1] / safe[:, None], 0, None)
        w /= np.where(w.sum(axis=1) > 0, w.sum(axis=1), 1.0)[:, None]
        proj = np.einsum("ij,ijk->ik", w, tri)
        best = int(np.argmin(np.linalg.norm(proj - point, axis=1)))
        return self.faces[idx[best]], w[best]

    def rest_point(self, point: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The rest position (m, shape (3,)) of the material point at ``point`` on the deformed surface."""
        nodes, w = self.anchor(point, positions=positions)
        return w @ self.mesh.points[nodes]

    def on_rest_surface(self, point: np.ndarray) -> np.ndarray:
        """``point`` (m) projected onto the rest surface, shape (3,)."""
        nodes, w = self.anchor(point)
        return w @ self.mesh.points[nodes]


def eval_anchor(nodes: np.ndarray, w: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Current position (3,) and outward unit normal (3,) of an anchored point.

    Parameters
    ----------
    nodes : ndarray, shape (3,)
    w : ndarray, shape (3,)
        Barycentric weights.
    x : ndarray, shape (n, 3)
        Current node positions (m).
    """
    tri = x[nodes]
    pos = w @ tri
    nrm = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    ln = np.linalg.norm(nrm)
    return pos, (nrm / ln if ln > 0 else np.array([0.0, 0.0, 1.0]))


def polyline_at(points: np.ndarray, s: float) -> np.ndarray:
    """Point at arc-length fraction ``s`` in [0, 1] of a polyline of shape (k, 3).

    Examples
    --------
    >>> polyline_at(np.array([[0.0, 0, 0], [1.0, 0, 0], [1.0, 1.0, 0]]), 0.75)
    array([1. , 0.5, 0. ])
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 1:
        return points[0].copy()
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    target = np.clip(s, 0.0, 1.0) * cum[-1]
    return np.array([np.interp(target, cum, points[:, c]) for c in range(3)])


def path_at_time(points: np.ndarray, times: np.ndarray, t: float) -> np.ndarray:
    """Point of a timed path at time ``t`` (linear between way points; held before and after).

    Parameters
    ----------
    points : ndarray, shape (k, 3)
    times : ndarray, shape (k,)
        Non-decreasing times (s) at which each way point is reached.
    t : float

    Examples
    --------
    >>> path_at_time(np.array([[0.0, 0, 0], [2.0, 0, 0]]), np.array([1.0, 2.0]), 1.25)
    array([0.5, 0. , 0. ])
    """
    points = np.asarray(points, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    return np.array([np.interp(t, times, points[:, c]) for c in range(3)])
