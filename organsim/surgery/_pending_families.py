"""Compiled bookkeeping of the cutter's pending families.

A tet the blade tip is still inside is split without separating its sides and remembered,
with its crossing nodes and centroid, as a pending family; a later increment restores and
re-splits it. Here: the working set one increment re-splits (:func:`working_set`), the
nodes ending a pending crossed edge (:func:`crossed_edge_ends`), and the family records
after a split (:func:`update_families`) and after a separation (:func:`remap_families`).

The per-increment stages of :meth:`organsim.surgery.cutting.Cutter.advance` here are each
one compiled pass instead of a chain of NumPy calls (the increments that change nothing,
most of a stroke, cost little more than these calls). They release the GIL, so a viewer
or other thread keeps running during a cut.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._split_geometry import _EDGES


@njit(cache=True, nogil=True)
def crossed_edge_ends(n, fam_verts, fam_epid):
    """Mask (n,) bool of the nodes ending a crossed edge of a pending family (``fam_epid >= 0``)."""
    out = np.zeros(n, dtype=np.bool_)
    for f in range(fam_verts.shape[0]):
        for e in range(6):
            if fam_epid[f, e] >= 0:
                out[fam_verts[f, _EDGES[e, 0]]] = True
                out[fam_verts[f, _EDGES[e, 1]]] = True
    return out


@njit(cache=True, nogil=True)
def working_set(tets, tet_family, fresh, fam_touched, fam_verts, fam_epid, fam_steiner, fam_gen):
    """The tets one increment re-splits: fresh candidates, then the original tets of touched families.

    Parameters
    ----------
    tets : (m, 4) int64. tet_family : (m,) int64 (-1: none).
    fresh : (f,) int64 tets in no family. fam_touched : (g,) int64 families, ascending, unique.
    fam_verts : (F, 4) int64, fam_epid : (F, 6) int64, fam_steiner : (F,) int64
        Each family's original tet, the crossing node on each of its edges (-1: none)
        and its centroid node.
    fam_gen : (F, 6) int64
        The increment that added each crossing node (-1: none).

    Returns
    -------
    wg : (f + g, 4) int64 node ids.
    w_src : (f + g,) int64 a tet of the current mesh each row stands for (a family: its first tet).
    w_steiner : (f + g,) int64 centroid node (-1 for fresh tets).
    w_forced : (f + g, 6) int64 crossing node of each edge (-1 for fresh tets).
    removed : (m,) bool, the tets the working rows replace.
    w_gen : (f + g, 6) int64 the increment that added each crossing node (-1 for fresh tets).
    """
    m = tets.shape[0]
    nf = fresh.shape[0]
    ng = fam_touched.shape[0]
    w = nf + ng
    wg = np.empty((w, 4), dtype=np.int64)
    w_src = np.empty(w, dtype=np.int64)
    w_steiner = np.full(w, -1, dtype=np.int64)
    w_forced = np.full((w, 6), -1, dtype=np.int64)
    w_gen = np.full((w, 6), -1, dtype=np.int64)
    removed = np.zeros(m, dtype=np.bool_)
    for i in range(nf):
        t = fresh[i]
        removed[t] = True
        for c in range(4):
            wg[i, c] = tets[t, c]
        w_src[i] = t
    if ng > 0:
        slot = np.full(fam_verts.shape[0], -1, dtype=np.int64)
        for j in range(ng):
            slot[fam_touched[j]] = j
        first = np.full(ng, -1, dtype=np.int64)
        for t in range(m):
            f = tet_family[t]
            if f >= 0 and slot[f] >= 0:
                removed[t] = True
                if first[slot[f]] < 0:
                    first[slot[f]] = t
        for j in range(ng):
            f = fam_touched[j]
            r = nf + j
            for c in range(4):
                wg[r, c] = fam_verts[f, c]
            for e in range(6):
                w_forced[r, e] = fam_epid[f, e]
                w_gen[r, e] = fam_gen[f, e]
            w_src[r] = first[j]
            w_steiner[r] = fam_steiner[f]
    return wg, w_src, w_steiner, w_forced, removed, w_gen


@njit(cache=True, nogil=True)
def update_families(fam_verts, fam_epid, fam_steiner, fam_stroke, fam_gen, fam_touched, mode, wg, epid_w,
                    w_steiner, w_gen, stroke_no, increment_no):
    """Pending families after a split: the untouched ones, then the working rows split without separating.

    ``fam_gen`` (F, 6) and ``w_gen`` (w, 6): the increment that added each crossing node
    of a family and of a working row (-1: none, or added now); a node added now gets
    ``increment_no``.

    Returns
    -------
    fam_verts (F', 4), fam_epid (F', 6), fam_steiner (F',), fam_stroke (F',), fam_gen (F', 6) : int64
    fam_renum : (F + 1,) int64, new id of each old family (-1: restored), and -1 at [F].
    w_fam : (w,) int64, the new family of each working row (-1: none).
    """
    nf = fam_verts.shape[0]
    keep = np.ones(nf, dtype=np.bool_)
    for j in range(fam_touched.shape[0]):
        keep[fam_touched[j]] = False
    fam_renum = np.full(nf + 1, -1, dtype=np.int64)
    n_old = 0
    for f in range(nf):
        if keep[f]:
            fam_renum[f] = n_old
            n_old += 1
    w = wg.shape[0]
    n_new = 0
    for r in range(w):
        if mode[r] == 2:
            n_new += 1
    F = n_old + n_new
    fv = np.empty((F, 4), dtype=np.int64)
    fe = np.empty((F, 6), dtype=np.int64)
    fs = np.empty(F, dtype=np.int64)
    fk = np.empty(F, dtype=np.int64)
    fgen = np.empty((F, 6), dtype=np.int64)
    w_fam = np.full(w, -1, dtype=np.int64)
    for f in range(nf):
        g = fam_renum[f]
        if g >= 0:
            fv[g] = fam_verts[f]
            fe[g] = fam_epid[f]
            fs[g] = fam_steiner[f]
            fk[g] = fam_stroke[f]
            fgen[g] = fam_gen[f]
    g = n_old
    for r in range(w):
        if mode[r] == 2:
            fv[g] = wg[r]
            fe[g] = epid_w[r]
            fs[g] = w_steiner[r]
            fk[g] = stroke_no
            for e in range(6):
                if epid_w[r, e] < 0:
                    fgen[g, e] = -1
                elif w_gen[r, e] >= 0:
                    fgen[g, e] = w_gen[r, e]
                else:
                    fgen[g, e] = increment_no
            w_fam[r] = g
            g += 1
    return fv, fe, fs, fk, fgen, fam_renum, w_fam


@njit(cache=True, nogil=True)
def remap_families(tets, tet_family, fam_verts, fam_epid, dup_src, n_before):
    """Point family records at the copies of duplicated nodes their own children use.

    Parameters
    ----------
    tets : (m, 4) int64 (after separation). tet_family : (m,) int64.
    fam_verts : (F, 4) int64, fam_epid : (F, 6) int64 node ids (-1: none).
    dup_src : (d,) int64 source of each copy ``n_before + i``.

    Returns
    -------
    fam_verts, fam_epid : updated copies. A reference to a duplicated node becomes the
    first of (the node, its copies in order) that a tet of the family uses.
    """
    nf = fam_verts.shape[0]
    refs = np.empty((nf, 10), dtype=np.int64)
    for f in range(nf):
        for j in range(4):
            refs[f, j] = fam_verts[f, j]
        for j in range(6):
            refs[f, 4 + j] = fam_epid[f, j]
    is_src = np.zeros(n_before, dtype=np.bool_)
    for i in range(dup_src.shape[0]):
        is_src[dup_src[i]] = True
    hit = np.zeros(nf, dtype=np.bool_)
    for f in range(nf):
        for j in range(10):
            v = refs[f, j]
            if v >= 0 and v < n_before and is_src[v]:
                hit[f] = True
    # tets of the hit families, grouped by family
    cnt = np.zeros(nf + 1, dtype=np.int64)
    m = tets.shape[0]
    for t in range(m):
        f = tet_family[t]
        if f >= 0 and hit[f]:
            cnt[f + 1] += 1
    for f in range(nf):
        cnt[f + 1] += cnt[f]
    ft = np.empty(cnt[nf], dtype=np.int64)
    pos = cnt[:nf].copy()
    for t in range(m):
        f = tet_family[t]
        if f >= 0 and hit[f]:
            ft[pos[f]] = t
            pos[f] += 1
    for f in range(nf):
        if not hit[f]:
            continue
        for j in range(10):
            s = refs[f, j]
            if s < 0 or s >= n_before or not is_src[s]:
                continue
            # candidates in order: the node itself, then its copies
            for i in range(-1, dup_src.shape[0]):
                if i >= 0 and dup_src[i] != s:
                    continue
                cand = s if i < 0 else n_before + i
                found = False
                for q in range(cnt[f], cnt[f + 1]):
                    t = ft[q]
                    for c in range(4):
                        if tets[t, c] == cand:
                            found = True
                if found:
                    refs[f, j] = cand
                    break
    return refs[:, :4].copy(), refs[:, 4:].copy()
