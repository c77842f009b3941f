"""Hinges a separation left on the boundary, and the crack faces to close so that none stays.

A cut separates the tets on either side of its tagged faces by duplicating the nodes
whose surrounding tets fall apart into groups (:func:`~organsim.surgery._separation.separate_sides`).
Where the crack front of a cut runs *along* the skin (or along an earlier cut) instead of
into the tissue, the two sides stay joined through one edge or one vertex only: a
*hinge*. The boundary is then not a closed 2-manifold there (a boundary edge in four
faces, or a vertex whose boundary faces form two fans): the mouth of the cut is pinched
shut at that edge, renders as a crease and leaves the mechanics joined through a
zero-area connection.

:func:`hinge_faces` finds, near the nodes a separation worked on, the boundary edges in
more than two boundary faces and the pinched vertices, and returns the tagged faces
through them that were still interior before the separation (the faces of this
increment, or pending crack faces). Separating again with those faces closed moves the
crack front off the skin into the tissue, where it is a proper crack tip; the faces stay
tagged as pending crack faces, so a later stroke that cuts far enough opens them.
"""

from __future__ import annotations

import numpy as np

from ..mesh.tetmesh import TET_FACES
from ..mesh.topology import FACE_KEY_BASE, face_keys
from ._separation import component_labels, tets_touching

__all__ = ["faces_now", "hinge_faces", "key_nodes"]


def key_nodes(keys: np.ndarray) -> np.ndarray:
    """The three node ids of each face key (:func:`~organsim.mesh.topology.face_keys`), flattened, shape (3 k,)."""
    keys = np.asarray(keys, dtype=np.int64)
    return np.concatenate([keys % FACE_KEY_BASE, (keys // FACE_KEY_BASE) % FACE_KEY_BASE,
                           keys // (FACE_KEY_BASE * FACE_KEY_BASE)])


def _original_ids(ids: np.ndarray, dup_src: np.ndarray, n_points: int) -> np.ndarray:
    """Node ids before a separation: copies (``>= n_points``) mapped to their source."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(dup_src) == 0:
        return ids
    return np.where(ids >= n_points, dup_src[np.maximum(ids - n_points, 0)], ids)


def hinge_faces(tets: np.ndarray, dup_src: np.ndarray, n_points: int, seed_keys: np.ndarray,
                tagged_keys: np.ndarray, near_nodes: np.ndarray) -> np.ndarray:
    """Tagged faces, still interior before a separation, through which it left a hinge.

    Parameters
    ----------
    tets : ndarray, shape (m, 4), int64
        Tets after the separation.
    dup_src : ndarray, shape (d,), int64
        Source node of each node copy the separation made (copies are ``n_points + arange(d)``).
    n_points : int
        Number of nodes before the separation.
    seed_keys : ndarray, shape (k,), int64
        Keys (node ids before the separation) of the tagged faces that were still interior:
        the only ones a separation can be asked to leave closed.
    tagged_keys : ndarray, shape (K,), int64, ascending
        Keys of the tagged faces after the separation (both sides of every separated face).
    near_nodes : ndarray, shape (q,), int64
        Nodes (before the separation) the separation worked on: the nodes of the seed faces.

    Returns
    -------
    ndarray, shape (h,), int64
        Keys (node ids before the separation) of the faces to keep closed, ascending;
        empty when the boundary near ``near_nodes`` is a closed 2-manifold or no seed face
        passes through its defects.

    Notes
    -----
    One face per defect (the least closing that can mend it; the caller separates again and
    asks again): at a non-manifold edge the crack face through it with the smallest key, at
    a pinched vertex a crack face whose two sides lie in different fans there (rejoining it
    joins them), else the smallest. Only the tets around ``near_nodes`` and their copies are
    looked at, so the cost is that of the cut's neighbourhood, not of the mesh. Non-manifold
    edges are handled first; pinched vertices only when no edge is left (an edge hinge also
    pinches its two ends).
    """
    empty = np.zeros(0, dtype=np.int64)
    tets = np.asarray(tets, dtype=np.int64)
    n_now = n_points + len(dup_src)
    watch = np.zeros(n_now, dtype=bool)
    watch[np.asarray(near_nodes, dtype=np.int64)] = True
    if len(dup_src):
        copies = np.arange(n_points, n_now)
        watch[copies] = True
        watch[dup_src] = True
        watch[copies[watch[dup_src]]] = True
    local = tets[tets_touching(tets, watch)]
    if len(local) == 0:
        return empty
    faces = local[:, TET_FACES].reshape(-1, 3)
    keys = face_keys(faces)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    bf = faces[first[counts == 1]]
    # a face of a local tet with a watched node has its other tet local too: these counts are exact
    bf = bf[watch[bf].any(axis=1)]
    if len(bf) == 0:
        return empty
    k = len(bf)
    e = np.concatenate([bf[:, [0, 1]], bf[:, [1, 2]], bf[:, [2, 0]]])
    lo, hi = e.min(axis=1), e.max(axis=1)
    face_of = np.tile(np.arange(k), 3)
    ekey = lo * n_now + hi
    order = np.argsort(ekey, kind="stable")
    ks = ekey[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts_e = np.diff(np.r_[starts, len(ks)])
    exact = watch[lo[order[starts]]] | watch[hi[order[starts]]]    # all its faces are in bf
    bad_edge = exact & (counts_e > 2)
    is_tagged = np.isin(face_keys(bf), tagged_keys)
    seed_keys = np.asarray(seed_keys, dtype=np.int64)
    before = face_keys(_original_ids(bf.ravel(), dup_src, n_points).reshape(-1, 3))
    closable = is_tagged & np.isin(before, seed_keys)
    if bad_edge.any():
        # each such edge: close one crack face through it (its two sides are two of the
        # edge's boundary faces); the smallest key, so the choice does not depend on order
        grp = np.repeat(np.arange(len(starts)), counts_e)
        f = face_of[order]
        sel = np.repeat(bad_edge, counts_e) & closable[f]
        return np.unique(_min_per_group(grp[sel], before[f[sel]]))
    # pinched vertices: a corner (face, vertex) is joined to the corner of the other face
    # across each of the vertex's two edges; a watched vertex with corners in >1 fan is pinched
    pair = starts[counts_e == 2]
    f1, f2 = face_of[order[pair]], face_of[order[pair + 1]]
    u, v = lo[order[pair]], hi[order[pair]]
    corner = np.arange(3 * k).reshape(k, 3)

    def slot(fs, vs):
        return corner[fs, np.argmax(bf[fs] == vs[:, None], axis=1)]

    lab = component_labels(3 * k, np.r_[slot(f1, u), slot(f1, v)], np.r_[slot(f2, u), slot(f2, v)])
    vc = np.unique(bf.ravel() * np.int64(3 * k) + lab)          # (vertex, fan) pairs
    fans = np.bincount(vc // (3 * k), minlength=n_now)
    pinched = (fans > 1) & watch
    if not pinched.any():
        return empty
    # each pinched vertex: close one crack face at it, preferably one whose two sides lie in
    # different fans (rejoining them joins the fans)
    fc = np.flatnonzero((pinched[bf] & closable[:, None]).ravel())     # corners (3 face + slot)
    if len(fc) == 0:
        return empty
    vert, key, fan = bf.ravel()[fc], before[fc // 3], lab[fc]
    o = np.lexsort((fan, key, vert))
    vert, key, fan = vert[o], key[o], fan[o]
    same_pair = (vert[1:] == vert[:-1]) & (key[1:] == key[:-1])
    joins = np.zeros(len(vert), dtype=bool)
    joins[1:] |= same_pair & (fan[1:] != fan[:-1])
    rank = np.where(joins, 0, 1)                                       # joining faces first
    o2 = np.lexsort((key, rank, vert))
    first = np.r_[True, vert[o2][1:] != vert[o2][:-1]]
    return np.unique(key[o2][first])


def _min_per_group(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The smallest ``value`` of each ``group`` label (in ascending group order)."""
    if len(group) == 0:
        return value[:0]
    o = np.lexsort((value, group))
    first = np.r_[True, group[o][1:] != group[o][:-1]]
    return value[o][first]


def faces_now(tets: np.ndarray, dup_src: np.ndarray, n_points: int, keys_before: np.ndarray) -> np.ndarray:
    """Keys of faces under the node ids after a separation, given their keys before it.

    Parameters
    ----------
    tets : ndarray, shape (m, 4), int64
        Tets after the separation.
    dup_src : ndarray, shape (d,), int64
        Source node of each copy (copies are ``n_points + arange(d)``).
    n_points : int
        Number of nodes before the separation.
    keys_before : ndarray, shape (k,), int64
        Face keys in the node ids before the separation.

    Returns
    -------
    ndarray, shape (k',), int64
        The keys of every face of ``tets`` whose key before the separation is in
        ``keys_before``, ascending (a face separated since appears once per side).
    """
    keys_before = np.asarray(keys_before, dtype=np.int64)
    if len(keys_before) == 0:
        return keys_before
    n_now = n_points + len(dup_src)
    mark = np.zeros(n_now, dtype=bool)
    mark[key_nodes(keys_before)] = True
    if len(dup_src):
        mark[n_points:] = mark[dup_src]
    local = tets[tets_touching(tets, mark)]
    faces = local[:, TET_FACES].reshape(-1, 3)
    before = face_keys(_original_ids(faces.ravel(), dup_src, n_points).reshape(-1, 3))
    return np.unique(face_keys(faces[np.isin(before, keys_before)]))
