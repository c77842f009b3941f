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
from numba import njit

from ._separation import tets_touching
from ._sorted_keys import _key3

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
    # the boundary faces with a watched node (a face of a local tet with a watched node has
    # its other tet local too: these are exact), their edges grouped, and the fans at their
    # corners: one compiled pass
    bf, grp, counts_e, exact, lab = _local_boundary(local, watch, n_now)
    k = len(bf)
    if k == 0:
        return empty
    bad_edge = exact & (counts_e > 2)
    is_tagged = np.isin(face_keys(bf), tagged_keys)
    seed_keys = np.asarray(seed_keys, dtype=np.int64)
    before = face_keys(_original_ids(bf.ravel(), dup_src, n_points).reshape(-1, 3))
    closable = is_tagged & np.isin(before, seed_keys)
    if bad_edge.any():
        # each such edge: close one crack face through it (its two sides are two of the
        # edge's boundary faces); the smallest key, so the choice does not depend on order
        f = np.tile(np.arange(k), 3)                   # the face of each face-edge
        sel = bad_edge[grp] & closable[f]
        return np.unique(_min_per_group(grp[sel], before[f[sel]]))
    # pinched vertices: a watched vertex whose corners lie in more than one fan
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


@njit(cache=True, nogil=True)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True, nogil=True)
def _local_boundary(local, watch, n_now):
    """Boundary faces of the tets ``local`` (l, 4) with a watched node, and their edges and fans.

    Returns
    -------
    bf : (k, 3) int64, the faces (outward as the tets give them).
    grp : (3 k,) int64, the edge group of face-edge ``j * k + f`` (edge j of face f: (0,1), (1,2), (2,0)).
    counts : (g,) int64, boundary faces in each edge group.
    exact : (g,) bool, the group's edge has a watched node (all its faces are among ``bf``).
    lab : (3 k,) int64, fan label of corner ``3 f + c``: corners of one vertex joined across
        the edges of faces that are the only two at that edge.
    """
    nl = local.shape[0]
    keys = np.empty(4 * nl, dtype=np.int64)
    for i in range(nl):
        for f in range(4):
            keys[4 * i + f] = _key3(local[i, TET_FACES[f, 0]], local[i, TET_FACES[f, 1]], local[i, TET_FACES[f, 2]])
    order = np.argsort(keys)
    bf = np.empty((4 * nl, 3), dtype=np.int64)
    k = 0
    q = 0
    while q < 4 * nl:
        r = q + 1
        while r < 4 * nl and keys[order[r]] == keys[order[q]]:
            r += 1
        if r - q == 1:
            i = order[q] // 4
            f = order[q] % 4
            a = local[i, TET_FACES[f, 0]]
            b = local[i, TET_FACES[f, 1]]
            c = local[i, TET_FACES[f, 2]]
            if watch[a] or watch[b] or watch[c]:
                bf[k, 0] = a
                bf[k, 1] = b
                bf[k, 2] = c
                k += 1
        q = r
    bf = bf[:k].copy()
    ek = np.empty(3 * k, dtype=np.int64)
    for j in range(3):
        for f in range(k):
            a = bf[f, j]
            b = bf[f, (j + 1) % 3]
            if a > b:
                a, b = b, a
            ek[j * k + f] = a * n_now + b
    eo = np.argsort(ek)
    grp = np.empty(3 * k, dtype=np.int64)
    counts = np.empty(3 * k, dtype=np.int64)
    exact = np.empty(3 * k, dtype=np.bool_)
    parent = np.arange(3 * k)
    g = 0
    q = 0
    while q < 3 * k:
        r = q + 1
        while r < 3 * k and ek[eo[r]] == ek[eo[q]]:
            r += 1
        lo = ek[eo[q]] // n_now
        hi = ek[eo[q]] % n_now
        counts[g] = r - q
        exact[g] = watch[lo] or watch[hi]
        for t in range(q, r):
            grp[eo[t]] = g
        if r - q == 2:
            # join the corners of both ends across the two faces
            f1 = eo[q] % k
            f2 = eo[q + 1] % k
            for v in (lo, hi):
                c1 = 0
                c2 = 0
                for c in range(3):
                    if bf[f1, c] == v:
                        c1 = c
                    if bf[f2, c] == v:
                        c2 = c
                ra = _find(parent, 3 * f1 + c1)
                rb = _find(parent, 3 * f2 + c2)
                if ra != rb:
                    if ra < rb:
                        parent[rb] = ra
                    else:
                        parent[ra] = rb
        g += 1
        q = r
    lab = np.empty(3 * k, dtype=np.int64)
    for c in range(3 * k):
        lab[c] = _find(parent, c)
    return bf, grp, counts[:g].copy(), exact[:g].copy(), lab
