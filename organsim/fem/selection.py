"""Select nodes and boundary faces of a :class:`~organsim.mesh.TetMesh`.

Node selectors return sorted node ids, shape (k,), int64. Face selectors
return indices into ``mesh.boundary_faces`` (sorted, int64). An empty
selection raises :class:`~organsim.errors.SimulationError` naming the mesh
extent, since fixing or loading nothing is almost always a mistake.

Examples
--------
>>> from organsim.mesh.generators import box_tet_mesh
>>> mesh = box_tet_mesh((5, 3, 3), 0.01)
>>> box(mesh, (-1e-6, -1, -1), (1e-6, 1, 1)).size   # the x = 0 face
9
"""

from __future__ import annotations

import numpy as np

from ..errors import SimulationError
from ..mesh.tetmesh import TetMesh

__all__ = ["box", "sphere", "region", "ids", "surface_nodes", "surface_patch", "faces_nodes",
           "face_normals", "face_areas"]


def _span(mesh: TetMesh) -> str:
    lo, hi = mesh.points.min(axis=0), mesh.points.max(axis=0)
    f = lambda a: "(" + ", ".join(f"{x:.4g}" for x in a) + ")"  # noqa: E731
    return f"the mesh spans {f(lo)} to {f(hi)} m"


def _vec3(v, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise SimulationError(f"{what} must be 3 finite numbers (m), got {v!r}")
    return a


def _nonempty(sel: np.ndarray, msg: str, mesh: TetMesh) -> np.ndarray:
    if sel.size == 0:
        raise SimulationError(f"{msg} selects no node; {_span(mesh)}: widen the selection")
    return sel.astype(np.int64, copy=False)


def box(mesh: TetMesh, lo, hi) -> np.ndarray:
    """Nodes inside the axis-aligned box ``lo <= x <= hi`` (bounds included).

    Parameters
    ----------
    mesh : TetMesh
    lo, hi : array_like, shape (3,)
        Box corners (m); ``np.inf`` is allowed for an open side.

    Returns
    -------
    ndarray, shape (k,), int64
        Sorted node ids.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> box(box_tet_mesh((3, 3, 3), 1.0), (-0.5, -0.5, -0.5), (0.5, 0.5, 0.5)).tolist()
    [0]
    """
    lo_a = np.asarray(lo, dtype=np.float64)
    hi_a = np.asarray(hi, dtype=np.float64)
    if lo_a.shape != (3,) or hi_a.shape != (3,) or np.any(np.isnan(lo_a)) or np.any(np.isnan(hi_a)):
        raise SimulationError(f"box corners must be 3 numbers each (m), got lo={lo!r}, hi={hi!r}")
    if np.any(lo_a > hi_a):
        raise SimulationError(f"box lo {lo_a.tolist()} exceeds hi {hi_a.tolist()} on some axis; "
                              "give the smaller corner first")
    p = mesh.points
    sel = np.flatnonzero(np.all((p >= lo_a) & (p <= hi_a), axis=1))
    return _nonempty(sel, f"box ({lo_a.tolist()}, {hi_a.tolist()})", mesh)


def sphere(mesh: TetMesh, center, radius: float) -> np.ndarray:
    """Nodes within ``radius`` (m) of ``center`` (m), bound included.

    Returns
    -------
    ndarray, shape (k,), int64
        Sorted node ids.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> sphere(box_tet_mesh((3, 3, 3), 1.0), (0, 0, 0), 1.0).tolist()
    [0, 1, 3, 9]
    """
    c = _vec3(center, "sphere center")
    r = float(radius)
    if not np.isfinite(r) or r < 0:
        raise SimulationError(f"sphere radius must be a finite length >= 0 (m), got {radius!r}")
    d2 = np.einsum("ij,ij->i", mesh.points - c, mesh.points - c)
    sel = np.flatnonzero(d2 <= r * r * (1 + 1e-12))
    return _nonempty(sel, f"sphere (center {c.tolist()}, radius {r:g} m)", mesh)


def _region_id(mesh: TetMesh, name_or_id) -> int:
    if isinstance(name_or_id, (int, np.integer)) and not isinstance(name_or_id, bool):
        rid = int(name_or_id)
        if rid not in set(np.unique(mesh.region_ids).tolist()):
            raise SimulationError(f"region id {rid} has no tet; the mesh has regions "
                                  f"{dict(sorted(mesh.region_names.items()))}")
        return rid
    for k, v in mesh.region_names.items():
        if v == name_or_id:
            return int(k)
    raise SimulationError(f"no region named {name_or_id!r}; the mesh has regions "
                          f"{dict(sorted(mesh.region_names.items()))}: use one of those names or ids")


def region_tets(mesh: TetMesh, name_or_id) -> np.ndarray:
    """Ids of the tets of a region (by name or id), shape (t,), int64."""
    rid = _region_id(mesh, name_or_id)
    sel = np.flatnonzero(mesh.region_ids == rid)
    if sel.size == 0:
        raise SimulationError(f"region {name_or_id!r} (id {rid}) has no tet in this mesh")
    return sel.astype(np.int64)


def region(mesh: TetMesh, name_or_id) -> np.ndarray:
    """Nodes of the tets of one region, by name (``"ligament"``) or id.

    Returns
    -------
    ndarray, shape (k,), int64
        Sorted node ids.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> region(box_tet_mesh((2, 2, 2), 1.0), "tissue").tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    return np.unique(mesh.tets[region_tets(mesh, name_or_id)]).astype(np.int64)


def ids(mesh: TetMesh, node_ids) -> np.ndarray:
    """Validate explicit node ids: integers within ``0..n-1``; returns them sorted and unique.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> ids(box_tet_mesh((2, 2, 2), 1.0), [3, 1, 3]).tolist()
    [1, 3]
    """
    a = np.asarray(node_ids)
    if a.size == 0:
        raise SimulationError("the node id list is empty; give at least one node id")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise SimulationError("node ids must be integers; got non-integer values")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise SimulationError(f"node ids must be integers, got dtype {a.dtype}")
    a = a.ravel().astype(np.int64)
    bad = (a < 0) | (a >= mesh.n_points)
    if np.any(bad):
        raise SimulationError(f"node ids {a[bad][:5].tolist()} are outside 0..{mesh.n_points - 1}; "
                              "ids refer to rows of mesh.points")
    return np.unique(a)


def surface_nodes(mesh: TetMesh) -> np.ndarray:
    """All nodes on the boundary surface, sorted, shape (b,), int64."""
    return np.asarray(mesh.boundary_nodes, dtype=np.int64)


def face_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals of triangles (right-hand rule on the vertex order), shape (k, 3)."""
    p = points[faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(norm > 0, norm, 1.0)


def face_areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Areas (m^2) of triangles, shape (k,)."""
    p = points[faces]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)


def faces_nodes(mesh: TetMesh, face_ids) -> np.ndarray:
    """Sorted node ids of the given boundary faces, shape (k,), int64."""
    f = np.asarray(face_ids, dtype=np.int64)
    return np.unique(mesh.boundary_faces[f]).astype(np.int64)


def surface_patch(mesh: TetMesh, *, center=None, radius: float | None = None, normal=None,
                  angle_deg: float = 30.0, lo=None, hi=None) -> np.ndarray:
    """Boundary faces selected by position and/or orientation.

    Every criterion given must hold (they combine with AND):

    * ``center`` + ``radius``: face centroid within ``radius`` (m) of ``center`` (m);
    * ``normal`` (+ ``angle_deg``, default 30): outward face normal within ``angle_deg``
      degrees of ``normal``;
    * ``lo`` + ``hi``: face centroid inside the box (m).

    Returns
    -------
    ndarray, shape (k,), int64
        Sorted indices into ``mesh.boundary_faces``.

    Raises
    ------
    SimulationError
        No criterion given, or nothing selected.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> m = box_tet_mesh((3, 3, 3), 1.0)
    >>> len(surface_patch(m, normal=(0, 0, 1), angle_deg=1))   # the top face: 4 cells x 2 triangles
    8
    """
    faces = mesh.boundary_faces
    keep = np.ones(len(faces), dtype=bool)
    crit = []
    cen = mesh.points[faces].mean(axis=1)
    if (center is None) != (radius is None):
        raise SimulationError("surface_patch needs both center and radius, or neither")
    if center is not None:
        c = _vec3(center, "patch center")
        r = float(radius)
        if not np.isfinite(r) or r < 0:
            raise SimulationError(f"patch radius must be a finite length >= 0 (m), got {radius!r}")
        keep &= np.linalg.norm(cen - c, axis=1) <= r
        crit.append(f"within {r:g} m of {c.tolist()}")
    if normal is not None:
        nv = _vec3(normal, "patch normal")
        nn = np.linalg.norm(nv)
        if nn == 0:
            raise SimulationError("patch normal is the zero vector; give a direction such as (0, 0, 1)")
        cosmin = np.cos(np.radians(float(angle_deg)))
        keep &= face_normals(mesh.points, faces) @ (nv / nn) >= cosmin - 1e-12
        crit.append(f"normal within {angle_deg:g} deg of {nv.tolist()}")
    if (lo is None) != (hi is None):
        raise SimulationError("surface_patch needs both lo and hi for a box, or neither")
    if lo is not None:
        lo_a, hi_a = _vec3(lo, "patch box lo"), _vec3(hi, "patch box hi")
        keep &= np.all((cen >= lo_a) & (cen <= hi_a), axis=1)
        crit.append(f"centroid in box ({lo_a.tolist()}, {hi_a.tolist()})")
    if not crit:
        raise SimulationError("surface_patch needs a criterion: center+radius, normal (+angle_deg) "
                              "or lo+hi")
    sel = np.flatnonzero(keep)
    if sel.size == 0:
        raise SimulationError(f"surface patch ({'; '.join(crit)}) selects no boundary face; "
                              f"{_span(mesh)}: widen the patch")
    return sel.astype(np.int64)
