"""Compiled assembly of the mesh after a split: new nodes, cut-face tags, new tets, transfer.

The cut points and centroids a split inserts (:func:`new_nodes`), the face keys it makes
or carries (:func:`split_tags`), the new tet array with unused nodes dropped
(:func:`assemble`) and the rows of the nodal transfer matrix (:func:`transfer_rows`).

The per-increment stages of :meth:`organsim.surgery.cutting.Cutter.advance` here are each
one compiled pass instead of a chain of NumPy calls (the increments that change nothing,
most of a stroke, cost little more than these calls). They release the GIL, so a viewer
or other thread keeps running during a cut.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._sorted_keys import KEY_BASE, _in_sorted, _key3
from ._split_geometry import _FACES


@njit(cache=True, nogil=True)
def new_nodes(Xr, ue, new_pt, tpar, forced, einv, wg, w_steiner, on_cut):
    """Cut points on the crossed edges and centroids of the working tets that need one.

    Parameters
    ----------
    Xr : (n, 3) float64 rest positions (m). ue, new_pt, tpar, forced, einv : as from :func:`sweep_edges`.
    wg : (w, 4) int64 working tets. w_steiner : (w,) int64 their centroid node (-1: none yet).
    on_cut : (n,) bool.

    Returns
    -------
    pts_all : (n + c + s, 3) float64, rest positions of the old nodes, then of the c cut
        points (``a + t (b - a)`` on their edge, ascending edge key), then of the s new centroids.
    on_all : (n + c + s,) bool, on the cut (cut points are, centroids are not).
    epid_w : (w, 6) int64, crossing node of each working-tet edge (-1: none).
    w_steiner_new : (w,) int64, every row's centroid node.
    ea, eb : (c,) int64, the edge of each cut point. tt : (c,) float64, its edge parameter.
    st_rows : (s,) int64, the working row of each new centroid.
    """
    n0 = Xr.shape[0]
    ne = ue.shape[0]
    w = wg.shape[0]
    nc = 0
    for i in range(ne):
        if new_pt[i]:
            nc += 1
    ns = 0
    for r in range(w):
        if w_steiner[r] < 0:
            ns += 1
    pts = np.empty((n0 + nc + ns, 3))
    on_all = np.zeros(n0 + nc + ns, dtype=np.bool_)
    for i in range(n0):
        on_all[i] = on_cut[i]
        for d in range(3):
            pts[i, d] = Xr[i, d]
    epid_u = forced.copy()
    ea = np.empty(nc, dtype=np.int64)
    eb = np.empty(nc, dtype=np.int64)
    tt = np.empty(nc)
    k = 0
    for i in range(ne):
        if new_pt[i]:
            epid_u[i] = n0 + k
            a = ue[i, 0]
            b = ue[i, 1]
            t = tpar[i]
            ea[k] = a
            eb[k] = b
            tt[k] = t
            for d in range(3):
                pts[n0 + k, d] = Xr[a, d] + t * (Xr[b, d] - Xr[a, d])
            on_all[n0 + k] = True
            k += 1
    w_st = w_steiner.copy()
    st_rows = np.empty(ns, dtype=np.int64)
    k = 0
    for r in range(w):
        if w_steiner[r] < 0:
            q = n0 + nc + k
            w_st[r] = q
            st_rows[k] = r
            for d in range(3):
                pts[q, d] = (((Xr[wg[r, 0], d] + Xr[wg[r, 1], d]) + Xr[wg[r, 2], d]) + Xr[wg[r, 3], d]) / 4
            k += 1
    epid_w = np.empty((w, 6), dtype=np.int64)
    for r in range(w):
        for e in range(6):
            epid_w[r, e] = epid_u[einv[6 * r + e]]
    return pts, on_all, epid_w, w_st, ea, eb, tt, st_rows


@njit(cache=True, nogil=True)
def split_tags(wg, cut, piece, piece_parent, on_all, keys):
    """Face keys a split makes or carries: cut polygons, pieces of tagged faces, faces lying on the cut.

    Parameters
    ----------
    wg : (w, 4) int64 working tets. cut : (k, 3) int64 cut triangles.
    piece : (p, 3) int64 face pieces, piece_parent : (p, 2) int64 their (row, local face).
    on_all : (N,) bool nodes on the cut. keys : (K,) int64 tagged keys so far, ascending.

    Returns
    -------
    new_keys : (k + p',) int64, the cut triangles' keys, then those of the pieces of tagged faces.
    flat_keys : (q,) int64, keys of the working tets' faces with all three nodes on the cut
        (row-major over (row, local face)).
    """
    nk = cut.shape[0]
    out = np.empty(nk + piece.shape[0], dtype=np.int64)
    for i in range(nk):
        out[i] = _key3(cut[i, 0], cut[i, 1], cut[i, 2])
    n = nk
    for i in range(piece.shape[0]):
        r = piece_parent[i, 0]
        f = piece_parent[i, 1]
        k = _key3(wg[r, _FACES[f, 0]], wg[r, _FACES[f, 1]], wg[r, _FACES[f, 2]])
        if _in_sorted(keys, k):
            out[n] = _key3(piece[i, 0], piece[i, 1], piece[i, 2])
            n += 1
    w = wg.shape[0]
    flat = np.empty(4 * w, dtype=np.int64)
    q = 0
    for r in range(w):
        for f in range(4):
            a = wg[r, _FACES[f, 0]]
            b = wg[r, _FACES[f, 1]]
            c = wg[r, _FACES[f, 2]]
            if on_all[a] and on_all[b] and on_all[c]:
                flat[q] = _key3(a, b, c)
                q += 1
    return out[:n].copy(), flat[:q].copy()


@njit(cache=True, nogil=True)
def assemble(tets, removed, kids, kpar, w_src, region_ids, tet_family, fam_renum, w_fam, pts_all, on_all, seed_keys,
             valence):
    """The new tets (kept ones in order, then the children), with the nodes no tet uses dropped.

    Parameters
    ----------
    tets : (m, 4) int64. removed : (m,) bool, tets replaced by children.
    kids : (c, 4) int64 children, kpar : (c,) int64 their working row.
    w_src : (w,) int64 a current tet of each working row. region_ids : (m,) region of each tet.
    tet_family : (m,) int64. fam_renum : (F + 1,) int64 and w_fam : (w,) int64 from :func:`update_families`.
    pts_all : (N, 3) float64 rest positions of all nodes (the n current ones first), on_all : (N,) bool.
    seed_keys : (k,) int64 face keys (numbered as ``pts_all``) the separation starts from.
    valence : (n,) int64 number of tets of ``tets`` at each current node.

    Returns
    -------
    new_tets : (m', 4) int64 in the compacted numbering. rid : (m',) region ids.
    tet_parent : (m',) int64 current tet each comes from. tet_family : (m',) int64.
    renum : (N,) int64 compacted id of each node (-1: dropped). src : (N',) int64 the node each keeps.
    pts : (N', 3) float64. on_cut : (N',) bool. valence_new : (N',) int64.
    near_seeds : (q,) int64, ascending, the new tets with a node of a seed face that keeps
        all three nodes (what :func:`tets_touching` gives for those nodes).

    Notes
    -----
    A node is dropped when no tet uses it any more; the valences (updated by the removed
    tets and the children only) tell which, so the kept tets are copied in one pass and
    renumbered only if a current node was dropped.
    """
    m = tets.shape[0]
    nk = kids.shape[0]
    N = pts_all.shape[0]
    n0 = valence.shape[0]
    val = np.zeros(N, dtype=np.int64)
    val[:n0] = valence
    nkeep = m
    for t in range(m):
        if removed[t]:
            nkeep -= 1
            for c in range(4):
                val[tets[t, c]] -= 1
    for k in range(nk):
        for c in range(4):
            val[kids[k, c]] += 1
    renum = np.full(N, -1, dtype=np.int64)
    n = 0
    first_drop = N
    for i in range(N):
        if val[i] > 0:
            renum[i] = n
            n += 1
        elif first_drop == N:
            first_drop = i
    src = np.empty(n, dtype=np.int64)
    pts = np.empty((n, 3))
    on = np.empty(n, dtype=np.bool_)
    val_new = np.empty(n, dtype=np.int64)
    for i in range(N):
        q = renum[i]
        if q >= 0:
            src[q] = i
            on[q] = on_all[i]
            val_new[q] = val[i]
            for d in range(3):
                pts[q, d] = pts_all[i, d]
    seed = np.zeros(N, dtype=np.bool_)
    for i in range(seed_keys.shape[0]):
        k = seed_keys[i]
        a = k % KEY_BASE
        b = (k // KEY_BASE) % KEY_BASE
        c = k // (KEY_BASE * KEY_BASE)
        if c < N and renum[a] >= 0 and renum[b] >= 0 and renum[c] >= 0:
            seed[a] = True
            seed[b] = True
            seed[c] = True
    M = nkeep + nk
    new_tets = np.empty((M, 4), dtype=np.int64)
    rid = np.empty(M, dtype=region_ids.dtype)
    parent = np.empty(M, dtype=np.int64)
    fam = np.empty(M, dtype=np.int64)
    near = np.empty(M, dtype=np.int64)
    nfam = fam_renum.shape[0] - 1
    q = 0
    j = 0
    for t in range(m):
        if removed[t]:
            continue
        hit = False
        for c in range(4):
            v = tets[t, c]
            hit = hit or seed[v]
            new_tets[j, c] = v if v < first_drop else renum[v]
        if hit:
            near[q] = j
            q += 1
        rid[j] = region_ids[t]
        parent[j] = t
        f = tet_family[t]
        fam[j] = fam_renum[f] if f >= 0 else fam_renum[nfam]
        j += 1
    for k in range(nk):
        r = kpar[k]
        hit = False
        for c in range(4):
            v = kids[k, c]
            hit = hit or seed[v]
            new_tets[j, c] = renum[v]
        if hit:
            near[q] = j
            q += 1
        rid[j] = region_ids[w_src[r]]
        parent[j] = w_src[r]
        fam[j] = w_fam[r]
        j += 1
    return new_tets, rid, parent, fam, renum, src, pts, on, val_new, near[:q].copy()


@njit(cache=True, nogil=True)
def transfer_rows(src, n0, ea, eb, tt, st_nodes):
    """CSR arrays of the transfer matrix (new nodal field = T @ old) for new nodes ``src``.

    Parameters
    ----------
    src : (N',) int64, the pre-compaction node each new node is (old nodes < n0, then the
        cut points, then the centroids, numbered as in :func:`new_nodes`).
    n0 : int, old nodes. ea, eb : (c,) int64, tt : (c,) float64, the cut points' edges.
    st_nodes : (s, 4) int64, the old nodes each centroid averages.

    Returns
    -------
    indptr (N' + 1,), indices (nnz,) int32 and data (nnz,) float64: a unit row per old
    node, ``(1 - t, t)`` on the edge's ends per cut point, 0.25 on each corner per centroid
    (int32, as ``scipy.sparse`` stores them anyway for fewer than 2**31 entries).
    """
    nc = ea.shape[0]
    nr = src.shape[0]
    indptr = np.empty(nr + 1, dtype=np.int32)
    indptr[0] = 0
    for r in range(nr):
        s = src[r]
        indptr[r + 1] = indptr[r] + (1 if s < n0 else (2 if s < n0 + nc else 4))
    nnz = indptr[nr]
    ind = np.empty(nnz, dtype=np.int32)
    val = np.empty(nnz)
    for r in range(nr):
        s = src[r]
        p = indptr[r]
        if s < n0:
            ind[p] = s
            val[p] = 1.0
        elif s < n0 + nc:
            k = s - n0
            ind[p] = ea[k]
            ind[p + 1] = eb[k]
            val[p] = 1 - tt[k]
            val[p + 1] = tt[k]
        else:
            k = s - n0 - nc
            for c in range(4):
                ind[p + c] = st_nodes[k, c]
                val[p + c] = 0.25
    return indptr, ind, val
