"""Compiled separation of the two sides of a cut.

Nodes are duplicated so that the tets on either side of tagged faces no longer share them
(:func:`separate_sides`, with :func:`component_labels` for the connected pieces around a
node); :func:`flat_faces_between_sides` finds the faces lying on the cut with the blade
between their tets.

The per-increment stages of :meth:`organsim.surgery.cutting.Cutter.advance` here are each
one compiled pass instead of a chain of NumPy calls (the increments that change nothing,
most of a stroke, cost little more than these calls). They release the GIL, so a viewer
or other thread keeps running during a cut.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._sorted_keys import KEY_BASE, _in_sorted, _key3, _sorted_unique, merge_keys
from ._split_geometry import _FACES, _tri_normal


@njit(cache=True)
def tets_touching(tets, node_mask):
    """Ids of the tets with at least one node in ``node_mask`` (n,) bool, ascending."""
    m = tets.shape[0]
    out = np.empty(m, dtype=np.int64)
    c = 0
    for e in range(m):
        if node_mask[tets[e, 0]] or node_mask[tets[e, 1]] or node_mask[tets[e, 2]] or node_mask[tets[e, 3]]:
            out[c] = e
            c += 1
    return out[:c].copy()


@njit(cache=True)
def component_labels(n, rows, cols):
    """Connected components of the undirected graph with edges ``rows[i] - cols[i]`` on ``n`` vertices.

    Labels are numbered in order of each component's smallest vertex (as
    ``scipy.sparse.csgraph.connected_components`` numbers them).
    """
    parent = np.arange(n)
    for q in range(rows.shape[0]):
        a = rows[q]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        b = cols[q]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a != b:
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    label = np.full(n, -1, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    nl = 0
    for v in range(n):
        r = v
        while parent[r] != r:
            r = parent[r]
        if label[r] < 0:
            label[r] = nl
            nl += 1
        out[v] = label[r]
    return out


@njit(cache=True, nogil=True)
def tets_with_marked(tets, mask, k):
    """Ids (ascending) of the tets with at least ``k`` nodes in ``mask`` (n,) bool."""
    m = tets.shape[0]
    out = np.empty(m, dtype=np.int64)
    c = 0
    for e in range(m):
        s = 0
        for j in range(4):
            if mask[tets[e, j]]:
                s += 1
        if s >= k:
            out[c] = e
            c += 1
    return out[:c].copy()


@njit(cache=True, nogil=True)
def separate_sides(tets, keys_all, seed_keys, n_points, near_seeds, valence):
    """Duplicate nodes so that the tets on either side of tagged faces no longer share them.

    Parameters
    ----------
    tets : (m, 4) int64. keys_all : (K,) int64 tagged face keys, ascending, unique.
    seed_keys : (k,) int64 keys of tagged faces that may still be interior (new or pending).
    n_points : int, number of nodes.
    near_seeds : (q,) int64 or None, the tets touching a node of a seed face, ascending,
        when the caller knows them (computed here otherwise).
    valence : (n_points,) int64, number of tets at each node, or (0,) when not kept.

    Returns
    -------
    tets : (m, 4) int64, the input, with the duplicated nodes renumbered in place.
    dup_src : (d,) int64, source node of each new node (new ids ``n_points + arange(d)``).
    keys_all : (K',) int64, updated tagged keys (both sides of every separated face), ascending.
    pending : (p,) int64, keys of tagged faces still interior (crack front), ascending.
    changed : bool, False when nothing was separated (``tets`` and ``keys_all`` are the inputs).
    valence : (n_points + d,) int64, the valences after the separation (the input when
        nothing was separated; (0,) when not kept).

    Notes
    -----
    The tets around the nodes of the seed faces are gathered (grown to all tets around
    every node of an interior tagged face among them). At each such node, the tet
    corners connected through faces that are not tagged form groups; the group with the
    smallest corner keeps the node, every other group gets a copy (numbered by node,
    then group).
    """
    empty = np.zeros(0, dtype=np.int64)
    node_mask = np.zeros(n_points, dtype=np.bool_)
    for i in range(seed_keys.shape[0]):
        k = seed_keys[i]
        for v in (k % KEY_BASE, (k // KEY_BASE) % KEY_BASE, k // (KEY_BASE * KEY_BASE)):
            if v < n_points:
                node_mask[v] = True
    active = np.zeros(n_points, dtype=np.bool_)
    for it in range(20):
        if it == 0 and near_seeds is not None:
            lt = near_seeds
        else:
            lt = tets_touching(tets, node_mask)
        nl = lt.shape[0]
        if nl == 0:
            return tets, empty, keys_all, empty, False, valence
        fk = np.empty(4 * nl, dtype=np.int64)
        for i in range(nl):
            t = lt[i]
            for f in range(4):
                fk[4 * i + f] = _key3(tets[t, _FACES[f, 0]], tets[t, _FACES[f, 1]], tets[t, _FACES[f, 2]])
        order = np.argsort(fk, kind="mergesort")
        npair = 0
        for q in range(4 * nl - 1):
            if fk[order[q + 1]] == fk[order[q]]:
                npair += 1
        sa = np.empty(npair, dtype=np.int64)
        sb = np.empty(npair, dtype=np.int64)
        tagged = np.empty(npair, dtype=np.bool_)
        j = 0
        for q in range(4 * nl - 1):
            if fk[order[q + 1]] == fk[order[q]]:
                sa[j] = order[q]
                sb[j] = order[q + 1]
                tagged[j] = _in_sorted(keys_all, fk[order[q]])
                j += 1
        active[:] = False
        n_tag = 0
        grows = False
        for j in range(npair):
            if tagged[j]:
                t = lt[sa[j] // 4]
                f = sa[j] % 4
                for c in range(3):
                    v = tets[t, _FACES[f, c]]
                    if not active[v]:
                        active[v] = True
                        n_tag += 1
                        if not node_mask[v]:
                            grows = True
        if n_tag == 0:
            return tets, empty, keys_all, empty, False, valence
        if not grows or it == 19:
            break
        for v in range(n_points):
            if active[v]:
                node_mask[v] = True
    # connect corners of active nodes across untagged shared faces
    nc = 4 * nl
    rows = np.empty(3 * npair, dtype=np.int64)
    cols = np.empty(3 * npair, dtype=np.int64)
    ne = 0
    for j in range(npair):
        if tagged[j]:
            continue
        ta = sa[j] // 4
        fa = sa[j] % 4
        tb = sb[j] // 4
        for c in range(3):
            lv_a = _FACES[fa, c]
            node = tets[lt[ta], lv_a]
            if active[node]:
                lv_b = 0
                for q in range(4):
                    if tets[lt[tb], q] == node:
                        lv_b = q
                        break
                rows[ne] = 4 * ta + lv_a
                cols[ne] = 4 * tb + lv_b
                ne += 1
    comp = component_labels(nc, rows[:ne], cols[:ne])
    # one id per (node, group): the first group of a node keeps it, the others get copies
    n_act = 0
    for c in range(nc):
        if active[tets[lt[c // 4], c % 4]]:
            n_act += 1
    act_c = np.empty(n_act, dtype=np.int64)
    pair_key = np.empty(n_act, dtype=np.int64)
    q = 0
    for c in range(nc):
        v = tets[lt[c // 4], c % 4]
        if active[v]:
            act_c[q] = c
            pair_key[q] = v * nc + comp[c]
            q += 1
    ukey = _sorted_unique(pair_key)
    nu = ukey.shape[0]
    new_id = np.empty(nu, dtype=np.int64)
    n_dup = 0
    for i in range(nu):
        if i > 0 and ukey[i] // nc == ukey[i - 1] // nc:
            n_dup += 1
    dup_src = np.empty(n_dup, dtype=np.int64)
    d = 0
    for i in range(nu):
        u = ukey[i] // nc
        if i > 0 and u == ukey[i - 1] // nc:
            new_id[i] = n_points + d
            dup_src[d] = u
            d += 1
        else:
            new_id[i] = u
    T_old = np.empty((nl, 4), dtype=np.int64)
    for i in range(nl):
        for c in range(4):
            T_old[i, c] = tets[lt[i], c]
    out = tets
    track = valence.shape[0] > 0
    val = np.zeros(n_points + n_dup if track else 0, dtype=np.int64)
    if track:
        val[:n_points] = valence
    for q in range(n_act):
        c = act_c[q]
        v_new = new_id[np.searchsorted(ukey, pair_key[q])]
        if track and v_new != out[lt[c // 4], c % 4]:
            val[out[lt[c // 4], c % 4]] -= 1
            val[v_new] += 1
        out[lt[c // 4], c % 4] = v_new
    # both sides of each tagged interior face are tagged; faces still shared stay pending
    extra = np.empty(2 * npair + 4 * nl, dtype=np.int64)
    pend = np.empty(npair, dtype=np.int64)
    ne = 0
    npd = 0
    for j in range(npair):
        if tagged[j]:
            ta = lt[sa[j] // 4]
            fa = sa[j] % 4
            tb = lt[sb[j] // 4]
            fb = sb[j] % 4
            ka = _key3(out[ta, _FACES[fa, 0]], out[ta, _FACES[fa, 1]], out[ta, _FACES[fa, 2]])
            kb = _key3(out[tb, _FACES[fb, 0]], out[tb, _FACES[fb, 1]], out[tb, _FACES[fb, 2]])
            extra[ne] = ka
            extra[ne + 1] = kb
            ne += 2
            if ka == kb:
                pend[npd] = ka
                npd += 1
    # every face whose old key was tagged keeps its tag under its new node ids
    # (this also re-tags faces separated earlier whose nodes were split now)
    for i in range(nl):
        t = lt[i]
        diff = False
        for c in range(4):
            if out[t, c] != T_old[i, c]:
                diff = True
        if diff:
            for f in range(4):
                ko = _key3(T_old[i, _FACES[f, 0]], T_old[i, _FACES[f, 1]], T_old[i, _FACES[f, 2]])
                if _in_sorted(keys_all, ko):
                    extra[ne] = _key3(out[t, _FACES[f, 0]], out[t, _FACES[f, 1]], out[t, _FACES[f, 2]])
                    ne += 1
    keys_new = merge_keys(keys_all, extra[:ne])
    return out, dup_src, keys_new, _sorted_unique(pend[:npd]), True, val


@njit(cache=True, nogil=True)
def flat_faces_between_sides(tets, cand_keys, X, on_cut, tris):
    """Of the faces lying wholly on the cut, those with the blade between their two tets.

    Parameters
    ----------
    tets : (m, 4) int64. cand_keys : (k,) int64 keys of faces with all three nodes on the cut.
    X : (n, 3) float64 current positions (m). on_cut : (n,) bool.
    tris : (T, 3, 3) float64 the stroke's swept triangles (m).

    Returns
    -------
    (q,) int64, ascending: the keys of the candidate faces shared by two tets that lie on
    opposite sides of the plane of the swept triangle nearest each tet (judged at the tet's
    off-cut vertices, summed, or at its centroid when all four are on the cut).

    Notes
    -----
    Dot products of three terms are summed as ``(x0 y0 + x2 y2) + x1 y1`` and means of k
    terms left to right, then divided by k: the order NumPy's ``einsum`` and ``mean`` use,
    so the signs agree with the NumPy formulation to the last bit.
    """
    empty = np.zeros(0, dtype=np.int64)
    cand = _sorted_unique(cand_keys)
    if cand.shape[0] == 0:
        return empty
    n = X.shape[0]
    mask = np.zeros(n, dtype=np.bool_)
    for i in range(cand.shape[0]):
        k = cand[i]
        mask[k % KEY_BASE] = True
        mask[(k // KEY_BASE) % KEY_BASE] = True
        mask[k // (KEY_BASE * KEY_BASE)] = True
    lt = tets_with_marked(tets, mask, 3)
    nl = lt.shape[0]
    fk = np.empty(4 * nl, dtype=np.int64)
    nh = 0
    hit = np.empty(4 * nl, dtype=np.int64)
    for i in range(nl):
        t = lt[i]
        for f in range(4):
            q = 4 * i + f
            fk[q] = _key3(tets[t, _FACES[f, 0]], tets[t, _FACES[f, 1]], tets[t, _FACES[f, 2]])
            if _in_sorted(cand, fk[q]):
                hit[nh] = q
                nh += 1
    hk = np.empty(nh, dtype=np.int64)
    for j in range(nh):
        hk[j] = fk[hit[j]]
    order = hit[:nh][np.argsort(hk, kind="mergesort")]
    npair = 0
    for j in range(nh - 1):
        if fk[order[j + 1]] == fk[order[j]]:
            npair += 1
    if npair == 0:
        return empty
    pa = np.empty(npair, dtype=np.int64)
    pb = np.empty(npair, dtype=np.int64)
    pk = np.empty(npair, dtype=np.int64)
    j2 = 0
    for j in range(nh - 1):
        if fk[order[j + 1]] == fk[order[j]]:
            pa[j2] = order[j] // 4
            pb[j2] = order[j + 1] // 4
            pk[j2] = fk[order[j]]
            j2 += 1
    nt = tris.shape[0]
    tc = np.empty((nt, 3))
    for k in range(nt):
        for d in range(3):
            tc[k, d] = ((tris[k, 0, d] + tris[k, 1, d]) + tris[k, 2, d]) / 3
    side = np.zeros(nl)
    done = np.zeros(nl, dtype=np.bool_)
    cen = np.empty(3)
    nrm = np.empty(3)
    for j in range(2 * npair):
        i = pa[j] if j < npair else pb[j - npair]
        if done[i]:
            continue
        done[i] = True
        t = lt[i]
        for d in range(3):
            cen[d] = (((X[tets[t, 0], d] + X[tets[t, 1], d]) + X[tets[t, 2], d]) + X[tets[t, 3], d]) / 4
        near = 0
        best = np.inf
        for k in range(nt):
            dx = cen[0] - tc[k, 0]
            dy = cen[1] - tc[k, 1]
            dz = cen[2] - tc[k, 2]
            dd = (dx * dx + dy * dy) + dz * dz
            if dd < best:
                best = dd
                near = k
        nrm[0], nrm[1], nrm[2] = _tri_normal(tris[near])
        s_off = 0.0
        any_off = False
        for c in range(4):
            v = tets[t, c]
            sd = ((X[v, 0] - tris[near, 0, 0]) * nrm[0] + (X[v, 2] - tris[near, 0, 2]) * nrm[2]) \
                + (X[v, 1] - tris[near, 0, 1]) * nrm[1]
            e = sd if not on_cut[v] else 0.0
            s_off = e if c == 0 else s_off + e
            any_off = any_off or not on_cut[v]
        if any_off:
            s = s_off
        else:
            s = ((cen[0] - tris[near, 0, 0]) * nrm[0] + (cen[2] - tris[near, 0, 2]) * nrm[2]) \
                + (cen[1] - tris[near, 0, 1]) * nrm[1]
        side[i] = np.sign(s)
    out = np.empty(npair, dtype=np.int64)
    q = 0
    for j in range(npair):
        sa = side[pa[j]]
        sb = side[pb[j]]
        if sa != 0 and sb != 0 and sa != sb:
            out[q] = pk[j]
            q += 1
    return out[:q].copy()
