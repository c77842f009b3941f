"""Surface repair: from an exported or extracted organ surface to a closed, outward, manifold one.

:func:`repair_surface` runs every step and returns the new surface with a
:class:`RepairReport` of what was changed. Each step is also a public function
returning ``(new_surface, count)``, so it can be used alone:

1. :func:`merge_duplicate_vertices` (tolerance relative to the bounding box),
2. :func:`remove_degenerate_faces` (repeated vertex ids, zero area; a "cap"
   whose vertex lies on its opposite edge is removed by splitting that edge
   in the neighbouring triangle, so no hole is opened),
3. :func:`remove_duplicate_faces` (two copies with opposite winding cancel),
4. :func:`remove_small_components` (segmentation specks; every component
   above a fraction of the largest is kept, e.g. both kidneys),
5. :func:`fix_nonmanifold_edges` (faces on edges used by more than two faces
   are removed; the holes left are filled by step 7),
6. :func:`orient_consistently` (one winding per component),
7. :func:`fill_holes` (any size: each boundary loop gets a ring patch relaxed
   into a smooth membrane; a loop so large that it looks open by nature, like
   a valve leaflet, is refused), then :func:`fix_nonmanifold_vertices`
   (shells touching at one point are cut apart there and re-filled),
8. :func:`orient_outward` (positive enclosed volume per shell),
9. :func:`remove_self_intersections` (intersecting triangles and their
   neighbours are cut out and the holes re-filled; what remains is reported).

If the result is not watertight, edge-manifold and of positive volume,
:func:`repair_surface` raises :class:`~organsim.errors.MeshError` saying why.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import MeshError
from .surface import TriSurface

__all__ = [
    "RepairReport", "repair_surface", "merge_duplicate_vertices", "remove_unused_vertices",
    "remove_degenerate_faces", "remove_duplicate_faces", "remove_small_components",
    "fix_nonmanifold_edges", "orient_consistently", "orient_outward", "fill_holes",
    "find_self_intersections", "remove_self_intersections", "boundary_loops",
    "nonmanifold_vertices", "fix_nonmanifold_vertices",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- small helpers

def _labels(s: TriSurface) -> np.ndarray | None:
    return None if s.face_labels is None else np.asarray(s.face_labels)


def _make(points: np.ndarray, faces: np.ndarray, labels: np.ndarray | None) -> TriSurface:
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    return TriSurface(points, faces, None if labels is None else np.asarray(labels).reshape(-1))


def _diag(points: np.ndarray) -> float:
    if len(points) == 0:
        return 1.0
    d = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    return d if d > 0 else 1.0


def _face_areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    p = points[faces]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)


_EDGE_CACHE: list = [None, None]


def _edge_table(faces: np.ndarray):
    """Half-edge table: sorted undirected edge id per half-edge, and the unique edges.

    Returns ``(edges (e, 2), edge_of_halfedge (3k,), counts (e,))``; half-edge
    ``3 * f + c`` goes from ``faces[f, c]`` to ``faces[f, (c + 1) % 3]``.
    The last result is cached for the same (read-only) faces array, since the
    repair steps ask for it repeatedly on a surface no step changed.
    """
    if _EDGE_CACHE[0] is faces and not faces.flags.writeable:
        return _EDGE_CACHE[1]
    out = _edge_table_uncached(faces)
    if not faces.flags.writeable:
        _EDGE_CACHE[0], _EDGE_CACHE[1] = faces, out
    return out


def _edge_table_uncached(faces: np.ndarray):
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    lo = np.minimum(he[:, 0], he[:, 1])
    hi = np.maximum(he[:, 0], he[:, 1])
    n = np.int64(faces.max()) + 1 if faces.size else np.int64(1)
    key = lo * n + hi
    ukey, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    edges = np.stack([ukey // n, ukey % n], axis=1)
    return edges, inv.ravel(), counts


def _unique1d(x: np.ndarray) -> np.ndarray:
    """Sorted unique values of a 1D integer array (sort-based; numpy's hash path is
    pathologically slow on some structured int64 keys)."""
    x = np.sort(np.asarray(x).ravel())
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """A 1D int64 key per row of a small-int (k, 3) array (for fast unique)."""
    n = np.int64(rows.max()) + 1 if rows.size else np.int64(1)
    if n < 2_000_000:
        return (rows[:, 0] * n + rows[:, 1]) * n + rows[:, 2]
    _, inv = np.unique(rows, axis=0, return_inverse=True)
    return inv.ravel().astype(np.int64)


def _face_components(faces: np.ndarray, n_points: int, *, via: str = "vertex") -> tuple[int, np.ndarray]:
    """Connected components of faces (sharing a vertex, or a manifold edge)."""
    k = len(faces)
    if k == 0:
        return 0, np.zeros(0, np.int64)
    if via == "vertex":
        # Faces and vertices in one bipartite graph.
        rows = np.repeat(np.arange(k), 3)
        cols = faces.ravel() + k
        g = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(k + n_points,) * 2)
        n, lab = connected_components(g, directed=False)
        lab = lab[:k]
        _, lab = np.unique(lab, return_inverse=True)
        return int(lab.max()) + 1, lab
    _, e_of_he, counts = _edge_table(faces)
    fid = np.repeat(np.arange(k), 3)
    order = np.argsort(e_of_he, kind="stable")
    e_sorted = e_of_he[order]
    same = e_sorted[1:] == e_sorted[:-1]
    a, b = fid[order][:-1][same], fid[order][1:][same]
    keep = counts[e_sorted[:-1][same]] == 2
    g = sparse.coo_matrix((np.ones(keep.sum()), (a[keep], b[keep])), shape=(k, k))
    n, lab = connected_components(g, directed=False)
    return int(n), lab


def remove_unused_vertices(surface: TriSurface) -> tuple[TriSurface, int]:
    """Drop vertices no face uses.

    Returns
    -------
    (TriSurface, int)
        The compacted surface and the number of vertices removed.

    Examples
    --------
    >>> s = TriSurface(np.eye(4)[:, :3], np.array([[0, 1, 2]]))
    >>> remove_unused_vertices(s)[1]
    1
    """
    used = np.flatnonzero(np.bincount(surface.faces.ravel(), minlength=surface.n_points))
    if len(used) == surface.n_points:
        return surface, 0
    remap = np.full(surface.n_points, -1, np.int64)
    remap[used] = np.arange(len(used))
    return (_make(surface.points[used], remap[surface.faces], _labels(surface)),
            surface.n_points - len(used))


# --------------------------------------------------------------------------- steps 1-3

def merge_duplicate_vertices(surface: TriSurface, *, tolerance: float = 1e-6) -> tuple[TriSurface, int]:
    """Merge vertices closer than ``tolerance`` times the bounding-box diagonal.

    Parameters
    ----------
    surface : TriSurface
    tolerance : float
        Relative to the bounding-box diagonal (default 1e-6: a micrometre on a
        1 m box, far below any imaging resolution).

    Returns
    -------
    (TriSurface, int)
        The welded surface (unused vertices dropped) and the number of
        vertices merged away.

    Examples
    --------
    >>> pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], float)
    >>> merge_duplicate_vertices(TriSurface(pts, [[0, 1, 2], [3, 2, 0]]))[1]
    1
    """
    pts = surface.points
    n = len(pts)
    if n == 0:
        return surface, 0
    tol = float(tolerance) * _diag(pts)
    pairs = cKDTree(pts).query_pairs(tol, output_type="ndarray")
    if len(pairs) == 0:
        return remove_unused_vertices(surface)[0], 0
    g = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    ncomp, lab = connected_components(g, directed=False)
    # Representative of each cluster: its lowest vertex id.
    rep = np.full(ncomp, n, np.int64)
    np.minimum.at(rep, lab, np.arange(n))
    faces = rep[lab][surface.faces]
    out, _ = remove_unused_vertices(_make(pts, faces, _labels(surface)))
    return out, n - ncomp


def remove_degenerate_faces(surface: TriSurface, *, area_tolerance: float = 1e-12
                            ) -> tuple[TriSurface, int]:
    """Remove triangles with a repeated vertex or (near) zero area.

    A zero-area "cap" (one vertex lying on the opposite edge) is removed by
    splitting that edge in the neighbouring triangle at the vertex, which keeps
    a closed surface closed. Other zero-area triangles are dropped.

    Parameters
    ----------
    surface : TriSurface
    area_tolerance : float
        Areas below ``area_tolerance * diag**2`` count as zero.

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of degenerate triangles removed.

    Examples
    --------
    >>> pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    >>> remove_degenerate_faces(TriSurface(pts, [[0, 1, 2], [0, 1, 1]]))[1]
    1
    """
    faces = surface.faces
    labels = _labels(surface)
    if len(faces) == 0:
        return surface, 0
    pts = surface.points
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    tiny = _face_areas(pts, faces) <= float(area_tolerance) * _diag(pts) ** 2
    bad = repeated | tiny
    n_bad = int(bad.sum())
    if n_bad == 0:
        return surface, 0
    faces = faces.copy()
    keep = ~bad
    new_faces: list[list[int]] = []
    new_labels: list[int] = []
    caps = np.flatnonzero(tiny & ~repeated)
    if len(caps):
        # Map each undirected edge to the faces using it, for the cap splits.
        edges, e_of_he, _ = _edge_table(faces)
        he_face = np.repeat(np.arange(len(faces)), 3)
        by_edge: dict[int, list[int]] = {}
        cap_edges = set()
        for f in caps:
            for c in range(3):
                cap_edges.add(int(e_of_he[3 * f + c]))
        for h in np.flatnonzero(np.isin(e_of_he, list(cap_edges))):
            by_edge.setdefault(int(e_of_he[h]), []).append(int(he_face[h]))
        for f in caps:
            tri = faces[f]
            p = pts[tri]
            lengths = [np.linalg.norm(p[(c + 1) % 3] - p[c]) for c in range(3)]
            c = int(np.argmax(lengths))  # longest edge tri[c] -> tri[c+1]; tri[c+2] lies on it
            a, b, m = int(tri[c]), int(tri[(c + 1) % 3]), int(tri[(c + 2) % 3])
            eid = int(e_of_he[3 * f + c])
            nbrs = [g for g in by_edge.get(eid, []) if g != f and keep[g]]
            if len(nbrs) != 1 or lengths[c] == 0:
                continue  # nothing safe to split: just drop the cap
            g = nbrs[0]
            tg = [int(v) for v in faces[g]]
            if m in tg:
                continue
            # In g the edge runs b -> a; split it at m: (b, m, x) and (m, a, x).
            i = tg.index(b)
            if tg[(i + 1) % 3] != a:
                continue  # inconsistent winding; leave it to the hole filler
            x = tg[(i + 2) % 3]
            keep[g] = False
            new_faces += [[b, m, x], [m, a, x]]
            if labels is not None:
                new_labels += [int(labels[g])] * 2
    out_faces = np.vstack([faces[keep], np.asarray(new_faces, np.int64).reshape(-1, 3)])
    out_labels = None if labels is None else np.concatenate([labels[keep], new_labels]).astype(np.int64)
    out, _ = remove_unused_vertices(_make(pts, out_faces, out_labels))
    return out, n_bad


def remove_duplicate_faces(surface: TriSurface) -> tuple[TriSurface, int]:
    """Remove repeated triangles (same three vertices).

    Copies with the same winding collapse to one; a pair with opposite
    winding (a zero-thickness double wall) cancels out entirely.

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of faces removed.

    Examples
    --------
    >>> pts = np.eye(3)
    >>> remove_duplicate_faces(TriSurface(pts, [[0, 1, 2], [1, 2, 0], [2, 1, 0]]))[1]
    2
    """
    faces = surface.faces
    if len(faces) == 0:
        return surface, 0
    key = _row_keys(np.sort(faces, axis=1))
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    if np.all(counts == 1):
        return surface, 0
    # Winding parity of each face relative to its sorted key (+1 even permutation).
    rot = np.argmin(faces, axis=1)
    r = np.stack([faces[np.arange(len(faces)), (rot + c) % 3] for c in range(3)], axis=1)
    parity = np.where(r[:, 1] < r[:, 2], 1, -1)
    net = np.zeros(len(counts), np.int64)
    np.add.at(net, inv, parity)
    keep = np.zeros(len(faces), bool)
    # Keep the first face of each key whose winding agrees with the net winding.
    order = np.argsort(inv, kind="stable")
    first_seen = np.zeros(len(counts), bool)
    for f in order:
        k = inv[f]
        if first_seen[k] or net[k] == 0:
            continue
        if counts[k] == 1 or np.sign(net[k]) == parity[f]:
            keep[f] = True
            first_seen[k] = True
    labels = _labels(surface)
    out, _ = remove_unused_vertices(_make(surface.points, faces[keep],
                                          None if labels is None else labels[keep]))
    return out, int(len(faces) - keep.sum())


# --------------------------------------------------------------------------- step 4

def _component_sizes(points, faces, lab, n) -> tuple[np.ndarray, np.ndarray]:
    area = np.bincount(lab, _face_areas(points, faces), minlength=n)
    p = points[faces]
    vol = np.abs(np.bincount(lab, np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6.0,
                             minlength=n))
    return area, vol


def remove_small_components(surface: TriSurface, *, min_fraction: float = 0.02
                            ) -> tuple[TriSurface, int]:
    """Drop disconnected pieces smaller than ``min_fraction`` of the largest.

    A piece is kept if its area is at least ``min_fraction`` times the
    largest piece's area (an organ in several large parts, like two kidneys,
    keeps every part; specks of segmentation noise go).

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of components removed.

    Examples
    --------
    >>> import trimesh
    >>> big = trimesh.creation.icosphere(radius=1.0)
    >>> speck = trimesh.creation.icosphere(radius=0.01).apply_translation([3, 0, 0])
    >>> s = TriSurface.from_trimesh(trimesh.util.concatenate([big, speck]))
    >>> remove_small_components(s)[1]
    1
    """
    faces = surface.faces
    n, lab = _face_components(faces, surface.n_points)
    if n <= 1:
        return surface, 0
    area, _ = _component_sizes(surface.points, faces, lab, n)
    keep_c = area >= float(min_fraction) * area.max()
    keep = keep_c[lab]
    labels = _labels(surface)
    out, _ = remove_unused_vertices(_make(surface.points, faces[keep],
                                          None if labels is None else labels[keep]))
    return out, int(n - keep_c.sum())


# --------------------------------------------------------------------------- step 5

def fix_nonmanifold_edges(surface: TriSurface) -> tuple[TriSurface, int]:
    """Remove the faces on edges shared by more than two faces.

    The holes this opens are closed by :func:`fill_holes` (as
    :func:`repair_surface` does). Faces left hanging by the removal (a face
    with two boundary edges, e.g. a fin) are removed too.

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of faces removed.

    Examples
    --------
    >>> pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], float)
    >>> s = TriSurface(pts, [[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    >>> fix_nonmanifold_edges(s)[1]
    3
    """
    faces = surface.faces
    labels = _labels(surface)
    removed = 0
    keep = np.ones(len(faces), bool)
    for _ in range(10):
        f = faces[keep]
        if len(f) == 0:
            break
        _, e_of_he, counts = _edge_table(faces if keep.all() else f)
        per_face = counts[e_of_he].reshape(-1, 3)
        bad = np.any(per_face > 2, axis=1) | (np.sum(per_face == 1, axis=1) >= 2)
        if removed == 0 and not np.any(per_face > 2):
            break  # no non-manifold edge: leave open surfaces' fins alone
        if not bad.any():
            break
        idx = np.flatnonzero(keep)[bad]
        keep[idx] = False
        removed += len(idx)
    if removed == 0:
        return surface, 0
    out, _ = remove_unused_vertices(_make(surface.points, faces[keep],
                                          None if labels is None else labels[keep]))
    return out, removed


def nonmanifold_vertices(surface: TriSurface) -> np.ndarray:
    """Vertices where two or more fans of faces meet at a point only (bow-ties).

    Returns
    -------
    ndarray of int64
        Ids of the non-manifold vertices (edge-manifold surfaces only).
    """
    faces = surface.faces
    n = surface.n_points
    if len(faces) == 0:
        return np.zeros(0, np.int64)
    # Count, per vertex, the corner-connected fans: corners of the faces around
    # a vertex linked when their faces share an edge through that vertex.
    k = len(faces)
    corner_v = faces.ravel()
    # For each half-edge (u->v) in face f, corners (f,u) and (f,v) are on that edge.
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    c_from = np.arange(3 * k)
    c_to = (np.arange(3 * k) // 3) * 3 + (np.arange(3 * k) % 3 + 1) % 3
    und = np.sort(he, axis=1)
    key = und[:, 0] * n + und[:, 1]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    same = ks[1:] == ks[:-1]
    a_he, b_he = order[:-1][same], order[1:][same]
    # Link corners of the same vertex across the two faces of the edge.
    rows, cols = [], []
    for ca_a, ca_b, cb_a, cb_b in ((c_from[a_he], c_to[a_he], c_from[b_he], c_to[b_he]),):
        va, vb = corner_v[ca_a], corner_v[cb_a]
        match = va == vb
        rows += [ca_a[match], ca_b[match]]
        cols += [cb_a[match], cb_b[match]]
        rows += [ca_a[~match], ca_b[~match]]
        cols += [cb_b[~match], cb_a[~match]]
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    g = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * k, 3 * k))
    _, fan = connected_components(g, directed=False)
    fans_per_vertex = np.zeros(n, np.int64)
    nf = np.int64(fan.max()) + 1
    uniq = _unique1d(corner_v * nf + fan)
    np.add.at(fans_per_vertex, uniq // nf, 1)
    return np.flatnonzero(fans_per_vertex > 1).astype(np.int64)


def fix_nonmanifold_vertices(surface: TriSurface) -> tuple[TriSurface, int]:
    """Cut out the faces around vertices where shells touch at a single point.

    Each such "bow-tie" vertex loses all its faces; the holes left (one per
    fan, none through the vertex any more) are closed by :func:`fill_holes`.

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of non-manifold vertices removed.
    """
    bad = nonmanifold_vertices(surface)
    if len(bad) == 0:
        return surface, 0
    hit = np.zeros(surface.n_points, bool)
    hit[bad] = True
    keep = ~np.any(hit[surface.faces], axis=1)
    labels = _labels(surface)
    out, _ = remove_unused_vertices(_make(surface.points, surface.faces[keep],
                                          None if labels is None else labels[keep]))
    return out, int(len(bad))


# --------------------------------------------------------------------------- orientation

def orient_consistently(surface: TriSurface) -> tuple[TriSurface, int]:
    """Give every edge-connected component one consistent winding.

    Two faces sharing a manifold edge are consistent when they traverse it in
    opposite directions. Within each component the winding of the majority
    is kept and the others are flipped.

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of faces flipped.

    Raises
    ------
    MeshError
        If a component is not orientable (a Moebius-like strip).

    Examples
    --------
    >>> pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)
    >>> orient_consistently(TriSurface(pts, [[0, 1, 2], [1, 2, 3]]))[1]
    1
    """
    faces = surface.faces
    k = len(faces)
    if k == 0:
        return surface, 0
    _, e_of_he, counts = _edge_table(faces)
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    fid = np.repeat(np.arange(k), 3)
    order = np.argsort(e_of_he, kind="stable")
    es = e_of_he[order]
    same = (es[1:] == es[:-1]) & (counts[es[:-1]] == 2)
    a_he, b_he = order[:-1][same], order[1:][same]
    fa, fb = fid[a_he], fid[b_he]
    consistent = he[a_he, 0] != he[b_he, 0]  # opposite directions
    # Double cover: node f (as is) and f + k (flipped). Consistent neighbours
    # link as-is with as-is; inconsistent ones link as-is with flipped.
    fb_as = np.where(consistent, fb, fb + k)
    fb_fl = np.where(consistent, fb + k, fb)
    r = np.concatenate([fa, fa + k])
    c = np.concatenate([fb_as, fb_fl])
    g = sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(2 * k, 2 * k))
    _, lab = connected_components(g, directed=False)
    if np.any(lab[:k] == lab[k:]):
        raise MeshError("the surface is not orientable (a Moebius-like strip): no consistent"
                        " inside and outside exists; re-export or re-segment the organ")
    # Each component of the surface gives two classes of the cover (as-is and
    # flipped views). Keep the class holding most faces as they are; on a tie,
    # the class holding face node with the lowest id.
    n_lab = int(lab.max()) + 1
    size = np.bincount(lab[:k], minlength=n_lab)
    first = np.full(n_lab, 2 * k, np.int64)
    np.minimum.at(first, lab, np.arange(2 * k))
    a_cls, f_cls = lab[:k], lab[k:]
    keep_dir = (size[a_cls] > size[f_cls]) | ((size[a_cls] == size[f_cls]) & (first[a_cls] < first[f_cls]))
    flip = ~keep_dir
    if not flip.any():
        return surface, 0
    new = faces.copy()
    new[flip] = new[flip][:, ::-1]
    return _make(surface.points, new, _labels(surface)), int(flip.sum())


def _winding_number(points: np.ndarray, faces: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Generalized winding number of query points ``q`` (m, 3) w.r.t. a triangle set."""
    out = np.zeros(len(q))
    chunk = max(1, 2_000_000 // max(len(faces), 1))
    for s in range(0, len(q), chunk):
        a = points[faces[:, 0]][None] - q[s:s + chunk, None]
        b = points[faces[:, 1]][None] - q[s:s + chunk, None]
        c = points[faces[:, 2]][None] - q[s:s + chunk, None]
        la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
        det = np.einsum("mfi,mfi->mf", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("mfi,mfi->mf", a, b) * lc
               + np.einsum("mfi,mfi->mf", b, c) * la + np.einsum("mfi,mfi->mf", c, a) * lb)
        out[s:s + chunk] = np.arctan2(det, den).sum(axis=1) / (2 * np.pi)
    return out


def orient_outward(surface: TriSurface) -> tuple[TriSurface, int]:
    """Make each closed shell's normals point outward (positive enclosed volume).

    Components are first made consistent (:func:`orient_consistently`). A
    shell nested inside another (a cavity) is oriented to point into the
    cavity, i.e. out of the material; an open component is left as it is.

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of faces flipped in all.

    Examples
    --------
    >>> import trimesh
    >>> inv = trimesh.creation.icosphere(subdivisions=1).invert()
    >>> s, n = orient_outward(TriSurface(inv.vertices, inv.faces))
    >>> s.signed_volume > 0, n
    (True, 80)
    """
    return _orient_outward(surface, consistent=False)


def _orient_outward(surface: TriSurface, *, consistent: bool) -> tuple[TriSurface, int]:
    """:func:`orient_outward`; ``consistent=True`` skips the winding pass (already done)."""
    s, n_flip = (surface, 0) if consistent else orient_consistently(surface)
    faces = s.faces.copy()
    n, lab = _face_components(s.faces, s.n_points, via="edge")
    p = s.points[faces]
    vol_f = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6.0
    vol = np.bincount(lab, vol_f, minlength=n)
    _, e_of_he, counts = _edge_table(s.faces)
    open_c = np.zeros(n, bool)
    open_c[lab[np.repeat(np.arange(len(faces)), 3)[counts[e_of_he] != 2]]] = True
    closed = np.flatnonzero(~open_c)
    # Nesting depth of each closed shell: how many other closed shells contain it.
    want_positive = np.ones(n, bool)
    if len(closed) > 1:
        for ci in closed:
            q = s.points[faces[lab == ci][0, 0]][None]
            depth = 0
            for cj in closed:
                if cj == ci or abs(vol[cj]) <= abs(vol[ci]):
                    continue
                w = _winding_number(s.points, faces[lab == cj], q + 0.0)[0]
                depth += int(abs(w) > 0.5)
            want_positive[ci] = depth % 2 == 0
    flip_c = np.zeros(n, bool)
    flip_c[closed] = (vol[closed] > 0) != want_positive[closed]
    flip = flip_c[lab]
    if flip.any():
        faces[flip] = faces[flip][:, ::-1]
        n_flip_total = int(np.sum(flip))
        return _make(s.points, faces, _labels(s)), n_flip + n_flip_total
    return s, n_flip


# --------------------------------------------------------------------------- holes

def boundary_loops(surface: TriSurface) -> list[np.ndarray]:
    """The closed loops of boundary edges (edges used by one face only).

    Each loop lists vertex ids in the direction of the faces' winding (the
    half-edges ``loop[i] -> loop[i+1]`` belong to existing faces). A loop
    that passes a vertex twice (two holes touching at a point) is split into
    simple loops.

    Returns
    -------
    list of ndarray of int64

    Examples
    --------
    >>> import trimesh
    >>> m = trimesh.creation.icosphere(subdivisions=1)
    >>> s = TriSurface(m.vertices, m.faces[1:])
    >>> [len(l) for l in boundary_loops(s)]
    [3]
    """
    faces = surface.faces
    if len(faces) == 0:
        return []
    _, e_of_he, counts = _edge_table(faces)
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    bhe = he[counts[e_of_he] == 1]
    if len(bhe) == 0:
        return []
    out_edges: dict[int, list[int]] = {}
    for u, v in bhe.tolist():
        out_edges.setdefault(u, []).append(v)
    loops: list[np.ndarray] = []
    remaining = len(bhe)
    while remaining:
        start = next(u for u, vs in out_edges.items() if vs)
        loop = [start]
        u = start
        while True:
            vs = out_edges.get(u)
            if not vs:
                break  # open chain (inconsistent winding): stop this loop here
            v = vs.pop()
            remaining -= 1
            if v == start:
                break
            loop.append(v)
            u = v
            if len(loop) > len(bhe) + 1:
                break
        loops.extend(_split_simple(loop))
    return loops


def _split_simple(loop: list[int]) -> list[np.ndarray]:
    """Split a closed vertex loop that visits a vertex twice into simple loops."""
    out = []
    stack = [list(loop)]
    while stack:
        lp = stack.pop()
        seen: dict[int, int] = {}
        for j, v in enumerate(lp):
            if v in seen:
                i = seen[v]
                stack.append(lp[i:j])            # the sub-loop v ... (back to v)
                stack.append(lp[:i] + lp[j:])    # the rest, through v once
                break
            seen[v] = j
        else:
            out.append(np.asarray(lp, np.int64))
    return out


def _ring_patch(points: np.ndarray, loop: np.ndarray, base: int, *, relax_iterations: int = 80
                ) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate one boundary loop: shrinking concentric rings, then relaxation.

    Rings of new vertices step towards the loop's centroid about one edge
    length apart, each with fewer vertices, zipped together; the interior
    vertices are then relaxed (Laplacian, loop fixed) into a smooth membrane.
    Returns new points (r, 3) (ids start at ``base``) and faces (t, 3) whose
    winding matches the surface around the loop.
    """
    n = len(loop)
    P = points[loop]
    if n == 3:
        return np.zeros((0, 3)), np.array([[loop[0], loop[2], loop[1]]], np.int64)
    seg = np.linalg.norm(np.roll(P, -1, axis=0) - P, axis=1)
    perim = float(seg.sum())
    mid = 0.5 * (P + np.roll(P, -1, axis=0))
    centre = (mid * seg[:, None]).sum(axis=0) / max(perim, 1e-300)
    arc = np.r_[0.0, np.cumsum(seg)] / max(perim, 1e-300)   # (n + 1,), loop parameter
    closed = np.vstack([P, P[:1]])
    n_rings = int(max(np.floor(n / (2 * np.pi * 0.87)) - 1, 0))
    rings_ids = [np.asarray(loop, np.int64)]
    rings_par = [arc[:-1]]
    new_pts = []
    nid = base
    for k in range(1, n_rings + 1):
        t = 1.0 - k / (n_rings + 1)
        m = max(3, int(round(n * t)))
        par = np.arange(m) / m
        q = np.stack([np.interp(par, arc, closed[:, d]) for d in range(3)], axis=1)
        new_pts.append(centre + t * (q - centre))
        rings_ids.append(np.arange(nid, nid + m, dtype=np.int64))
        rings_par.append(par)
        nid += m
    new_pts.append(centre[None])
    c_id = nid
    faces: list[tuple[int, int, int]] = []
    for k in range(n_rings):
        o, i = rings_ids[k], rings_ids[k + 1]
        po, pi = rings_par[k], rings_par[k + 1]
        no, ni = len(o), len(i)
        a = b = 0
        while a < no or b < ni:
            po_next = po[a + 1] if a + 1 < no else 1.0
            pi_next = pi[b + 1] if b + 1 < ni else 1.0
            if a < no and (b >= ni or po_next <= pi_next):
                faces.append((int(o[(a + 1) % no]), int(o[a]), int(i[b % ni])))
                a += 1
            else:
                faces.append((int(o[a % no]), int(i[b]), int(i[(b + 1) % ni])))
                b += 1
    last = rings_ids[-1]
    faces_arr = np.vstack([np.asarray(faces, np.int64).reshape(-1, 3),
                           np.stack([np.roll(last, -1), last, np.full(len(last), c_id)], axis=1)])
    new_pts = np.vstack(new_pts)
    # Relax the new (interior) vertices: each moves to the mean of its neighbours.
    if relax_iterations > 0 and len(new_pts) > 1:
        all_ids = np.concatenate([loop, np.arange(base, base + len(new_pts))])
        lookup = np.full(int(all_ids.max()) + 1, -1, np.int64)
        lookup[all_ids] = np.arange(len(all_ids))
        lf = lookup[faces_arr]
        e = np.vstack([lf[:, [0, 1]], lf[:, [1, 2]], lf[:, [2, 0]]])
        size = len(all_ids)
        adj = sparse.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                                shape=(size, size)).tocsr()
        adj.data[:] = 1.0  # duplicates summed: back to a 0/1 adjacency
        deg = np.asarray(adj.sum(axis=1)).ravel()
        X = np.vstack([P, new_pts])
        for _ in range(relax_iterations):
            X[n:] = (adj @ X)[n:] / deg[n:, None]
        new_pts = X[n:]
    return new_pts, faces_arr


def fill_holes(surface: TriSurface, *, max_hole_fraction: float | None = 0.5
               ) -> tuple[TriSurface, int]:
    """Close every boundary loop with a patch, whatever its size.

    Each loop gets concentric rings of new vertices towards its centroid,
    relaxed into a smooth membrane (Laplacian, boundary fixed); three-edge
    holes get one triangle. New faces take the winding of the surrounding
    surface, and the face label of the face beside the loop.

    Parameters
    ----------
    surface : TriSurface
        Should be consistently oriented (see :func:`orient_consistently`).
    max_hole_fraction : float or None
        Refuse a hole whose patch would have more than this fraction of the
        surface's own area (the surface is then open by nature, e.g. a heart
        valve leaflet, not damaged). ``None`` fills every hole.

    Returns
    -------
    (TriSurface, int)
        The new surface and the number of holes filled.

    Raises
    ------
    MeshError
        If a hole is refused by ``max_hole_fraction``.

    Examples
    --------
    >>> import trimesh
    >>> m = trimesh.creation.icosphere(subdivisions=3)
    >>> keep = m.triangles_center[:, 2] < 0.7           # cut a cap off
    >>> s, n = fill_holes(TriSurface(m.vertices, m.faces[keep]))
    >>> n, s.is_watertight
    (1, True)
    """
    loops = boundary_loops(surface)
    if not loops:
        return surface, 0
    pts = surface.points
    faces = surface.faces
    labels = _labels(surface)
    area = surface.area
    _, e_of_he, counts = _edge_table(faces)
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    bmask = counts[e_of_he] == 1
    he_face = {(int(u), int(v)): int(f) for (u, v), f in
               zip(he[bmask], np.repeat(np.arange(len(faces)), 3)[bmask])}
    new_pts = [pts]
    new_faces = [faces]
    new_labels = [labels] if labels is not None else None
    base = len(pts)
    n_filled = 0
    for loop in loops:
        if len(loop) < 3:
            raise MeshError(f"a boundary loop of {len(loop)} vertices cannot be filled (the"
                            " winding around it is inconsistent); orient the surface first")
        add_pts, add_faces = _ring_patch(pts, loop, base)
        patch_area = float(_face_areas(np.vstack(new_pts + [add_pts]), add_faces).sum())
        if max_hole_fraction is not None and patch_area > float(max_hole_fraction) * area:
            raise MeshError(
                f"the surface has an open boundary of {len(loop)} edges whose filling patch would"
                f" be {100 * patch_area / max(area, 1e-300):.0f}% of the surface's own area: it looks"
                " open by nature (a leaflet or membrane), not damaged; it cannot be closed into an"
                " organ volume. Mesh it as a shell of the tissue's thickness (CLI: organsim mesh"
                " --thickness MM; Python: mesh_surface(..., thickness=...)), or pass"
                " max_hole_fraction=None to close it anyway")
        new_pts.append(add_pts)
        new_faces.append(add_faces)
        if new_labels is not None:
            f0 = he_face.get((int(loop[0]), int(loop[1])), 0)
            new_labels.append(np.full(len(add_faces), labels[f0]))
        base += len(add_pts)
        n_filled += 1
    out = _make(np.vstack(new_pts), np.vstack(new_faces),
                None if new_labels is None else np.concatenate(new_labels))
    return out, n_filled


# --------------------------------------------------------------------------- self-intersections

def find_self_intersections(surface: TriSurface, *, max_entries: int = 20_000_000) -> np.ndarray:
    """Pairs of triangles that cross each other (sharing no vertex).

    Candidate pairs come from a uniform grid of bounding boxes (broad phase,
    compiled with numba; each pair is tested once, in the cell holding the
    low corner of the boxes' overlap), a box overlap and a separating-plane
    test; each is confirmed by segment/triangle tests of the six
    edges (two non-coplanar triangles intersect iff an edge of one crosses the
    other). Triangles that share a vertex or an edge are not tested, and
    coplanar overlaps are not detected.

    Returns
    -------
    ndarray of int64, shape (p, 2)
        Face index pairs ``(f, g)`` with ``f < g``.

    Examples
    --------
    >>> import trimesh
    >>> a = trimesh.creation.box()
    >>> b = trimesh.creation.box().apply_translation([0.3, 0.4, 0.2])
    >>> s = TriSurface.from_trimesh(trimesh.util.concatenate([a, b]))
    >>> len(find_self_intersections(s)) > 0
    True
    """
    pts = surface.points
    faces = surface.faces
    if len(faces) < 2:
        return np.zeros((0, 2), np.int64)
    tri = np.ascontiguousarray(pts[faces])
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    ext = (hi - lo).max(axis=1)
    h = float(np.median(ext))
    if not np.isfinite(h) or h <= 0:
        h = float(ext.max()) or 1.0
    origin = lo.min(axis=0)
    # Coarsen the grid if huge triangles would make too many (triangle, cell) entries.
    while True:
        i0 = np.floor((lo - origin) / h).astype(np.int64)
        i1 = np.floor((hi - origin) / h).astype(np.int64)
        count = np.prod(i1 - i0 + 1, axis=1)
        if count.sum() <= max_entries:
            break
        h *= 2.0
    dims = (i1.max(axis=0) + 1).astype(np.int64)
    from . import _si_kernels as k

    tid, key = k.grid_entries(i0, i1, count, dims)
    order = np.argsort(key, kind="stable")
    key, tid = key[order], tid[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]).astype(np.int64)
    ends = np.append(starts[1:], len(key)).astype(np.int64)
    out = k.si_pairs(tri, np.ascontiguousarray(faces), lo, hi, i0, key, tid, starts, ends, dims)
    if len(out) == 0:
        return np.zeros((0, 2), np.int64)
    n = np.int64(len(faces))
    code = _unique1d(out[:, 0] * n + out[:, 1])
    return np.stack([code // n, code % n], axis=1)


def remove_self_intersections(surface: TriSurface, *, max_rounds: int = 4,
                              max_hole_fraction: float | None = 0.5
                              ) -> tuple[TriSurface, int, int]:
    """Cut out crossing triangles (and their neighbours) and re-fill the holes.

    Returns
    -------
    (TriSurface, int, int)
        The new surface, the number of intersecting face pairs found first,
        and the number left after ``max_rounds`` rounds (0 when resolved).
    """
    pairs = find_self_intersections(surface)
    found = len(pairs)
    s = surface
    for _ in range(max_rounds):
        if len(pairs) == 0:
            break
        bad_v = _unique1d(s.faces[_unique1d(pairs)])
        ring = np.any(np.isin(s.faces, bad_v), axis=1)
        labels = _labels(s)
        s, _ = remove_unused_vertices(_make(s.points, s.faces[~ring],
                                            None if labels is None else labels[~ring]))
        s, _ = remove_small_components(s, min_fraction=0.02)
        s, _ = fix_nonmanifold_edges(s)
        s, _ = orient_consistently(s)
        s, _ = fill_holes(s, max_hole_fraction=max_hole_fraction)
        pairs = find_self_intersections(s)
    return s, found, len(pairs)


# --------------------------------------------------------------------------- the whole repair

@dataclass
class RepairReport:
    """What :func:`repair_surface` changed, step by step (counts)."""

    points_in: int = 0
    faces_in: int = 0
    vertices_merged: int = 0
    degenerate_faces_removed: int = 0
    duplicate_faces_removed: int = 0
    components_removed: int = 0
    nonmanifold_faces_removed: int = 0
    nonmanifold_vertices_removed: int = 0
    faces_reoriented: int = 0
    holes_filled: int = 0
    faces_flipped_outward: int = 0
    self_intersections_found: int = 0
    self_intersections_remaining: int = 0
    points_out: int = 0
    faces_out: int = 0
    components_out: int = 0
    watertight: bool = False
    edge_manifold: bool = False
    nonmanifold_vertices: int = 0
    volume_m3: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True if any step changed the surface."""
        return any([self.vertices_merged, self.degenerate_faces_removed,
                    self.duplicate_faces_removed, self.components_removed,
                    self.nonmanifold_faces_removed, self.nonmanifold_vertices_removed,
                    self.faces_reoriented, self.holes_filled,
                    self.faces_flipped_outward, self.self_intersections_found])

    def as_dict(self) -> dict:
        """All fields as plain Python values (JSON-ready)."""
        d = asdict(self)
        d["changed"] = self.changed
        return d

    def summary(self) -> str:
        """A few readable lines: what was wrong, what was done, and the result."""
        steps = [
            ("duplicate vertices merged", self.vertices_merged),
            ("degenerate faces removed", self.degenerate_faces_removed),
            ("duplicate faces removed", self.duplicate_faces_removed),
            ("small disconnected pieces removed", self.components_removed),
            ("faces on non-manifold edges removed", self.nonmanifold_faces_removed),
            ("pinched (non-manifold) vertices cut out and re-filled",
             self.nonmanifold_vertices_removed),
            ("faces re-wound for a consistent orientation", self.faces_reoriented),
            ("holes filled", self.holes_filled),
            ("faces flipped to point outward", self.faces_flipped_outward),
            ("self-intersecting face pairs found", self.self_intersections_found),
        ]
        lines = [f"repair: {self.points_in} points / {self.faces_in} faces in,"
                 f" {self.points_out} points / {self.faces_out} faces out"]
        done = [f"  {n} {what}" for what, n in steps if n]
        lines += done or ["  nothing to repair"]
        if self.self_intersections_found:
            lines.append(f"  self-intersections left: {self.self_intersections_remaining}")
        lines.append(f"  result: {'watertight' if self.watertight else 'OPEN'},"
                     f" {'edge-manifold' if self.edge_manifold else 'NON-MANIFOLD'},"
                     f" {self.components_out} component(s), volume {self.volume_m3 * 1e6:.2f} cm^3")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def repair_surface(surface: TriSurface, *, merge_tolerance: float = 1e-6,
                   min_component_fraction: float = 0.02,
                   max_hole_fraction: float | None = 0.5,
                   fix_self_intersections: bool = True,
                   require_closed: bool = True) -> tuple[TriSurface, RepairReport]:
    """Repair an organ surface into a closed, outward, edge-manifold one.

    Parameters
    ----------
    surface : TriSurface
        Points in metres.
    merge_tolerance : float
        Vertices closer than this fraction of the bounding-box diagonal merge.
    min_component_fraction : float
        Disconnected pieces with less than this fraction of the largest
        piece's area are dropped (segmentation specks).
    max_hole_fraction : float or None
        A hole whose patch would exceed this fraction of the surface area is
        not filled (the surface is open by nature). ``None``: fill anything.
    fix_self_intersections : bool
        Detect crossing triangles and cut them out and re-fill; turn off for
        surfaces known to be free of them (e.g. straight from
        :func:`~organsim.mesh.extract.extract_surface`) to save time.
    require_closed : bool
        Raise :class:`MeshError` if the result is not watertight,
        edge-manifold and of positive volume.

    Returns
    -------
    (TriSurface, RepairReport)

    Raises
    ------
    MeshError
        If the surface is empty, non-orientable, has a hole refused by
        ``max_hole_fraction``, or cannot be closed.

    Examples
    --------
    >>> import trimesh
    >>> m = trimesh.creation.icosphere(subdivisions=3).invert()
    >>> keep = m.triangles_center[:, 2] < 0.5                # inward, with a hole
    >>> s, rep = repair_surface(TriSurface(m.vertices, m.faces[keep]))
    >>> s.is_watertight, s.signed_volume > 0, rep.holes_filled
    (True, True, 1)
    """
    if surface.n_faces == 0:
        raise MeshError("the surface has no triangles; check the file or the label selection")
    if not np.all(np.isfinite(surface.points)):
        raise MeshError("the surface has NaN or infinite vertex coordinates; the file is corrupt"
                        " or was exported wrongly")
    rep = RepairReport(points_in=surface.n_points, faces_in=surface.n_faces)
    s, rep.vertices_merged = merge_duplicate_vertices(surface, tolerance=merge_tolerance)
    s, rep.degenerate_faces_removed = remove_degenerate_faces(s)
    s, rep.duplicate_faces_removed = remove_duplicate_faces(s)
    s, rep.components_removed = remove_small_components(s, min_fraction=min_component_fraction)
    s, rep.nonmanifold_faces_removed = fix_nonmanifold_edges(s)
    if s.n_faces == 0:
        raise MeshError("nothing is left of the surface after removing degenerate, duplicate and"
                        " non-manifold faces; the input is not a usable organ surface")
    s, rep.faces_reoriented = orient_consistently(s)
    s, rep.holes_filled = fill_holes(s, max_hole_fraction=max_hole_fraction)
    s, rep.nonmanifold_vertices_removed = fix_nonmanifold_vertices(s)
    if rep.nonmanifold_vertices_removed:
        s, _ = orient_consistently(s)
        s, n = fill_holes(s, max_hole_fraction=max_hole_fraction)
        rep.holes_filled += n
    s, rep.faces_flipped_outward = _orient_outward(
        s, consistent=rep.holes_filled == 0 and rep.nonmanifold_vertices_removed == 0)
    if fix_self_intersections:
        s, rep.self_intersections_found, rep.self_intersections_remaining = \
            remove_self_intersections(s, max_hole_fraction=max_hole_fraction)
        if rep.self_intersections_found:
            s, n = fix_nonmanifold_vertices(s)
            if n:
                rep.nonmanifold_vertices_removed += n
                s, _ = orient_consistently(s)
                s, n = fill_holes(s, max_hole_fraction=max_hole_fraction)
                rep.holes_filled += n
            s, extra = orient_outward(s)
            rep.faces_flipped_outward += extra
        if rep.self_intersections_remaining:
            rep.notes.append(f"{rep.self_intersections_remaining} pair(s) of crossing triangles could"
                             " not be removed; a tetrahedralizer may reject this surface (try"
                             " remeshing it coarser first)")
    rep.points_out, rep.faces_out = s.n_points, s.n_faces
    rep.components_out = _face_components(s.faces, s.n_points)[0]
    _, _, counts = _edge_table(s.faces)
    rep.watertight = bool(len(counts) and np.all(counts == 2))
    rep.edge_manifold = bool(np.all(counts <= 2))
    rep.nonmanifold_vertices = int(len(nonmanifold_vertices(s))) if rep.edge_manifold else 0
    if rep.nonmanifold_vertices:
        rep.notes.append(f"{rep.nonmanifold_vertices} vertex/vertices where shells touch at a point")
    rep.volume_m3 = s.signed_volume
    log.info("%s", rep.summary())
    if require_closed:
        why = []
        if not rep.watertight:
            why.append(f"{int(np.sum(counts == 1))} boundary edges remain open")
        if not rep.edge_manifold:
            why.append("some edges are shared by more than two faces")
        if rep.volume_m3 <= 0:
            why.append(f"the enclosed volume is not positive ({rep.volume_m3:.3g} m^3)")
        if why:
            raise MeshError("the surface could not be repaired into a closed organ: "
                            + "; ".join(why) + ". Re-export it closed, or extract it again from"
                            " the label image")
    return s, rep
