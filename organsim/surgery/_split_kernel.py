"""Compiled kernel that splits tetrahedra along a cut (blade sweep or level set).

Every tet handed to :func:`split_tets` carries

* its four node ids,
* which of its vertices lie on the cut ("on-cut", snapped there),
* for each of its six edges the id of the node inserted where the cut
  crosses that edge (``-1`` if the edge is not crossed),
* optionally a side (+1/-1) per vertex (level-set cuts know the side; blade
  cuts derive it from the crossing pattern),
* a Steiner node id (the tet's centroid, already created by the caller).

A tet whose crossing pattern is *consistent* (its off-cut vertices can be
two-coloured so that exactly the edges between different colours are
crossed: 3 or 4 crossed edges, or fewer when vertices lie on the cut) is fully
crossed: it is split into the two sides of the cut, each side a convex
polytope (tet, pyramid, prism or wedge) tetrahedralised by coning from its
vertex with the smallest global id over its faces, every quadrilateral face
split by the diagonal through its smallest-id vertex. The cut polygon between
the sides is returned (oriented from side +1 towards side -1) so the caller
can separate the sides along it.

A tet whose pattern is *inconsistent* (the cut's boundary - the blade tip -
lies inside it) is split without separation: each face is triangulated by the
same canonical rule and coned to the tet's centroid (a Steiner point). All
such children have positive volume, because each face piece lies in a plane
of the parent tet and the centroid is strictly inside it.

Both rules triangulate a tet face in the same way whatever its neighbour
does, so the result is conforming. A tet split without separation earlier and
split again (a pending family, restored to its original tet) is the exception
handled apart: its neighbours have refined the triangles they already had, so
its faces are triangulated as their history did (oldest edge points first,
``epid_gen``), and a separating split cones from a vertex that suits those
faces (:func:`_apex_for`). The children's volumes add up to the
parent's exactly (up to round-off): each side is a closed, consistently
oriented polyhedron, and the two sides share the cut polygon.

:func:`run_split` allocates the outputs of :func:`split_tets`, runs it and trims them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._split_geometry import _EDGE_OF, _EDGES, _FACES, _vol

#: Most children one tet can produce; most cut triangles; most face pieces.
MAX_CHILDREN = 16
MAX_CUT_TRIS = 2
MAX_PIECES = 16


@njit(cache=True)
def _tri_push(tris, nt, a, b, c):
    tris[nt, 0] = a
    tris[nt, 1] = b
    tris[nt, 2] = c
    return nt + 1


@njit(cache=True)
def _poly_tris(poly, npoly, L, tris, nt):
    """Triangulate a triangle or quad (local ids) into ``tris``; quads by the min-global-id diagonal."""
    if npoly == 3:
        return _tri_push(tris, nt, poly[0], poly[1], poly[2])
    # quad
    k = 0
    for i in range(1, 4):
        if L[poly[i]] < L[poly[k]]:
            k = i
    q0 = poly[k]
    q1 = poly[(k + 1) % 4]
    q2 = poly[(k + 2) % 4]
    q3 = poly[(k + 3) % 4]
    nt = _tri_push(tris, nt, q0, q1, q2)
    return _tri_push(tris, nt, q0, q2, q3)


@njit(cache=True)
def _tri_split(T, pe, L, tris, nt):
    """Canonical triangulation of triangle ``T`` (3 local ids) with points ``pe`` on its edges.

    ``pe[k]`` is the local id of the point on edge ``(T[k], T[k+1])``, or -1. One point:
    split from it to the opposite corner; two: the corner triangle between them and the
    quad by its min-global-id diagonal; three: four triangles. The result depends only on
    the triangle and its points, not on the order ``T`` lists them in, so two tets sharing
    the triangle split it alike.
    """
    cnt = 0
    for k in range(3):
        if pe[k] >= 0:
            cnt += 1
    if cnt == 0:
        return _tri_push(tris, nt, T[0], T[1], T[2])
    if cnt == 1:
        for k in range(3):
            if pe[k] >= 0:
                g0 = T[k]
                g1 = T[(k + 1) % 3]
                g2 = T[(k + 2) % 3]
                nt = _tri_push(tris, nt, g0, pe[k], g2)
                return _tri_push(tris, nt, pe[k], g1, g2)
    if cnt == 2:
        poly = np.empty(4, dtype=np.int64)
        for k in range(3):
            # rotation with the uncrossed edge (g2, g0)
            if pe[(k + 2) % 3] < 0:
                g0 = T[k]
                g1 = T[(k + 1) % 3]
                g2 = T[(k + 2) % 3]
                p01 = pe[k]
                p12 = pe[(k + 1) % 3]
                nt = _tri_push(tris, nt, p01, g1, p12)
                poly[0] = g0
                poly[1] = p01
                poly[2] = p12
                poly[3] = g2
                return _poly_tris(poly, 4, L, tris, nt)
    # three points
    nt = _tri_push(tris, nt, T[0], pe[0], pe[2])
    nt = _tri_push(tris, nt, pe[0], T[1], pe[1])
    nt = _tri_push(tris, nt, pe[2], pe[1], T[2])
    return _tri_push(tris, nt, pe[0], pe[1], pe[2])


@njit(cache=True)
def _canonical_face(F, ep, L, tris, nt):
    """Canonical triangulation of face ``F`` (3 local vertex ids, outward) given its edge points."""
    pe = np.empty(3, dtype=np.int64)
    for k in range(3):
        e = _EDGE_OF[F[k], F[(k + 1) % 3]]
        pe[k] = 4 + e if ep[e] >= 0 else -1
    return _tri_split(F, pe, L, tris, nt)


#: Generation given to the cut points an increment adds (later than every stored one)
_NEW_POINT = np.int64(1) << 62


@njit(cache=True)
def _history_face(F, ep, gen, L, tris, nt):
    """Face ``F`` triangulated as the splits that made its edge points left it, refined by the new ones.

    ``gen[e]`` is when the point on edge ``e`` was added (the increment that first split the
    tet without separating), -1 for the points this increment adds. The face is split
    canonically by its oldest points, each of those triangles by the next ones, and so on:
    what a neighbour across the face did, which refines the triangles it already had instead
    of starting again from the whole face. With no earlier points this is
    :func:`_canonical_face`.
    """
    gs = np.empty(3, dtype=np.int64)
    ng = 0
    for k in range(3):
        e = _EDGE_OF[F[k], F[(k + 1) % 3]]
        if ep[e] >= 0:
            g = gen[e] if gen[e] >= 0 else _NEW_POINT
            dup = False
            for j in range(ng):
                if gs[j] == g:
                    dup = True
            if not dup:
                gs[ng] = g
                ng += 1
    gs[:ng].sort()
    cur = np.empty((16, 3), dtype=np.int64)
    nxt = np.empty((16, 3), dtype=np.int64)
    for k in range(3):
        cur[0, k] = F[k]
    nc = 1
    pe = np.empty(3, dtype=np.int64)
    T = np.empty(3, dtype=np.int64)
    for j in range(ng):
        nn = 0
        for i in range(nc):
            for k in range(3):
                T[k] = cur[i, k]
            for k in range(3):
                a = T[k]
                b = T[(k + 1) % 3]
                pe[k] = -1
                if a < 4 and b < 4:
                    e = _EDGE_OF[a, b]
                    if ep[e] >= 0 and (gen[e] if gen[e] >= 0 else _NEW_POINT) == gs[j]:
                        pe[k] = 4 + e
            nn = _tri_split(T, pe, L, nxt, nn)
        cur, nxt = nxt, cur
        nc = nn
    for i in range(nc):
        nt = _tri_push(tris, nt, cur[i, 0], cur[i, 1], cur[i, 2])
    return nt


@njit(cache=True)
def _older_point(F, ep, gen):
    """Local id of the older of the two edge points on face ``F`` when they were added at
    different times (its quad must be split through it, as the face's history did), else -1."""
    p = -1
    gp = 0
    n = 0
    for k in range(3):
        e = _EDGE_OF[F[k], F[(k + 1) % 3]]
        if ep[e] >= 0:
            n += 1
            g = gen[e] if gen[e] >= 0 else _NEW_POINT
            if p < 0:
                p = 4 + e
                gp = g
            elif g != gp:
                if g < gp:
                    p = 4 + e
                    gp = g
            else:
                p = -2      # same time: no constraint
    if n != 2 or p < 0:
        return -1
    return p


@njit(cache=True)
def _quad_through(poly, v, tris, nt):
    """Split quad ``poly`` (4 local ids, cyclic) by its diagonal through vertex ``v``."""
    k = 0
    for i in range(4):
        if poly[i] == v:
            k = i
    nt = _tri_push(tris, nt, poly[k], poly[(k + 1) % 4], poly[(k + 2) % 4])
    return _tri_push(tris, nt, poly[k], poly[(k + 2) % 4], poly[(k + 3) % 4])


@njit(cache=True)
def _apex_for(oncut_t, sign, s, cp, ncp, L, P, side_tris, ns, vmin):
    """Local id of the side's vertex to cone from: of those from which every triangle of the
    side's faces not containing it cones to a tet of volume above ``vmin``, the one whose
    smallest such tet is largest (the lowest global id on a tie); -1 if none."""
    best = -1
    best_v = vmin
    for c in range(4 + ncp):
        if c < 4:
            if not (oncut_t[c] or sign[c] == s):
                continue
            v = c
        else:
            v = cp[c - 4]
        worst = np.inf
        for k in range(ns):
            if side_tris[k, 0] != v and side_tris[k, 1] != v and side_tris[k, 2] != v:
                worst = min(worst, _vol(P[v], P[side_tris[k, 0]], P[side_tris[k, 1]], P[side_tris[k, 2]]))
        if worst > best_v or (worst == best_v and best >= 0 and L[v] < L[best]):
            best = v
            best_v = worst
    return best


@njit(cache=True)
def split_tets(gid, oncut, epid, epid_gen, vsign, steiner, pts, min_frac,
               out_tets, out_parent, out_side, out_cut, out_cut_parent,
               out_piece, out_piece_parent, out_mode):
    """Split each tet; see the module docstring.

    Parameters
    ----------
    gid : (w, 4) int64 node ids (positively oriented).
    oncut : (w, 4) bool, vertex lies on the cut.
    epid : (w, 6) int64 node id of the cut point on each edge, -1 if none.
    epid_gen : (w, 6) int64 when each cut point was added, for a tet split without
        separation earlier and split again now (its faces were triangulated by those points
        then); -1 for points added now and for fresh tets. The faces are split as their
        history split them (:func:`_history_face`), so they stay conforming with neighbours
        that refine their own triangles.
    vsign : (w, 4) int8 side of each vertex if known (+1/-1), else 0.
    steiner : (w,) int64 node id of the centroid node of each tet.
    pts : (N, 3) float64 rest positions of all nodes, including cut and Steiner nodes.
    min_frac : float, smallest child volume, relative to the parent's, accepted
        for a separating split; below it the tet falls back to the Steiner split.
    out_* : preallocated outputs (children, their parent row and side
        (+1, -1, or 0 for Steiner children and unsplit tets of unknown side),
        cut triangles and their parent row, face pieces (for carrying cut-face
        tags) with (row, local face), and the mode per tet: 0 unsplit, 1 split
        and separable, 2 Steiner split).

    Returns
    -------
    (n_children, n_cut_tris, n_pieces)
    """
    w = gid.shape[0]
    nt_out = 0
    nc_out = 0
    np_out = 0
    L = np.empty(11, dtype=np.int64)
    P = np.empty((11, 3))
    sign = np.zeros(4, dtype=np.int64)
    tris = np.empty((24, 3), dtype=np.int64)
    tparent = np.empty(24, dtype=np.int64)
    cut_tris = np.empty((2, 3), dtype=np.int64)
    side_tris = np.empty((24, 3), dtype=np.int64)
    kids = np.empty((16, 4), dtype=np.int64)
    kside = np.empty(16, dtype=np.int64)
    poly = np.empty(4, dtype=np.int64)
    cp = np.empty(4, dtype=np.int64)
    F = np.empty(3, dtype=np.int64)
    for t in range(w):
        for i in range(4):
            L[i] = gid[t, i]
            for d in range(3):
                P[i, d] = pts[gid[t, i], d]
        ncross = 0
        for e in range(6):
            L[4 + e] = epid[t, e]
            if epid[t, e] >= 0:
                ncross += 1
                for d in range(3):
                    P[4 + e, d] = pts[epid[t, e], d]
        L[10] = steiner[t]
        for d in range(3):
            P[10, d] = pts[steiner[t], d]
        vparent = _vol(P[0], P[1], P[2], P[3])
        ep = epid[t]
        # ---------------------------------------------------- classification
        bad = False
        r = -1
        for i in range(4):
            sign[i] = 0
            if not oncut[t, i] and r < 0:
                r = i
        for e in range(6):
            if ep[e] >= 0 and (oncut[t, _EDGES[e, 0]] or oncut[t, _EDGES[e, 1]]):
                bad = True
        if r < 0:
            bad = bad or ncross > 0
        else:
            sign[r] = 1
            for j in range(4):
                if j != r and not oncut[t, j]:
                    sign[j] = -1 if ep[_EDGE_OF[r, j]] >= 0 else 1
            for i in range(4):
                for j in range(i + 1, 4):
                    if not oncut[t, i] and not oncut[t, j]:
                        crossed = ep[_EDGE_OF[i, j]] >= 0
                        if crossed != (sign[i] != sign[j]):
                            bad = True
            if vsign[t, r] != 0 and vsign[t, r] != sign[r]:
                for i in range(4):
                    sign[i] = -sign[i]
        mode = 0
        if ncross > 0:
            mode = 2 if bad else 1
        nk = 0
        nct = 0
        npc = 0
        if mode == 1:
            # cut polygon (local ids), ordered
            ncp = 0
            for i in range(4):
                if oncut[t, i]:
                    cp[ncp] = i
                    ncp += 1
            if ncp == 0 and ncross == 4:
                # 2-2 split: plus vertices a, b; minus c, d
                a = -1
                b = -1
                c = -1
                dd = -1
                for i in range(4):
                    if sign[i] > 0:
                        if a < 0:
                            a = i
                        else:
                            b = i
                    else:
                        if c < 0:
                            c = i
                        else:
                            dd = i
                cp[0] = 4 + _EDGE_OF[a, c]
                cp[1] = 4 + _EDGE_OF[a, dd]
                cp[2] = 4 + _EDGE_OF[b, dd]
                cp[3] = 4 + _EDGE_OF[b, c]
                ncp = 4
            else:
                for e in range(6):
                    if ep[e] >= 0:
                        cp[ncp] = 4 + e
                        ncp += 1
            # orient the cut polygon with its normal towards side -1
            xm = -1
            for i in range(4):
                if sign[i] < 0 and not oncut[t, i]:
                    xm = i
                    break
            if ncp == 4:
                ux = P[cp[2], 0] - P[cp[0], 0]
                uy = P[cp[2], 1] - P[cp[0], 1]
                uz = P[cp[2], 2] - P[cp[0], 2]
                vx = P[cp[3], 0] - P[cp[1], 0]
                vy = P[cp[3], 1] - P[cp[1], 1]
                vz = P[cp[3], 2] - P[cp[1], 2]
            else:
                ux = P[cp[1], 0] - P[cp[0], 0]
                uy = P[cp[1], 1] - P[cp[0], 1]
                uz = P[cp[1], 2] - P[cp[0], 2]
                vx = P[cp[2], 0] - P[cp[0], 0]
                vy = P[cp[2], 1] - P[cp[0], 1]
                vz = P[cp[2], 2] - P[cp[0], 2]
            nx = uy * vz - uz * vy
            ny = uz * vx - ux * vz
            nz = ux * vy - uy * vx
            cx = 0.0
            cy = 0.0
            cz = 0.0
            for k in range(ncp):
                cx += P[cp[k], 0] / ncp
                cy += P[cp[k], 1] / ncp
                cz += P[cp[k], 2] / ncp
            dot = nx * (P[xm, 0] - cx) + ny * (P[xm, 1] - cy) + nz * (P[xm, 2] - cz)
            if dot < 0:
                for k in range(ncp // 2):
                    tmp = cp[k]
                    cp[k] = cp[ncp - 1 - k]
                    cp[ncp - 1 - k] = tmp
            nct = _poly_tris(cp, ncp, L, cut_tris, 0)
            history = False
            apex_failed = False
            for si in range(2):
                s = 1 - 2 * si
                ns = 0
                for f in range(4):
                    for k in range(3):
                        F[k] = _FACES[f, k]
                    npoly = 0
                    for k in range(3):
                        va = F[k]
                        vb = F[(k + 1) % 3]
                        if oncut[t, va] or sign[va] == s:
                            poly[npoly] = va
                            npoly += 1
                        e = _EDGE_OF[va, vb]
                        if ep[e] >= 0:
                            poly[npoly] = 4 + e
                            npoly += 1
                    if npoly >= 3:
                        n0 = ns
                        hv = _older_point(F, ep, epid_gen[t]) if npoly == 4 else -1
                        if hv >= 0:
                            # the face was split by its older point first (neighbours refine that)
                            history = True
                            ns = _quad_through(poly, hv, side_tris, ns)
                        else:
                            ns = _poly_tris(poly, npoly, L, side_tris, ns)
                        for k in range(n0, ns):
                            tris[npc, 0] = side_tris[k, 0]
                            tris[npc, 1] = side_tris[k, 1]
                            tris[npc, 2] = side_tris[k, 2]
                            tparent[npc] = f
                            npc += 1
                for k in range(nct):
                    if s == 1:
                        ns = _tri_push(side_tris, ns, cut_tris[k, 0], cut_tris[k, 1], cut_tris[k, 2])
                    else:
                        ns = _tri_push(side_tris, ns, cut_tris[k, 0], cut_tris[k, 2], cut_tris[k, 1])
                # apex: the side's vertex with the smallest global id
                v0 = -1
                for i in range(4):
                    if (oncut[t, i] or sign[i] == s) and (v0 < 0 or L[i] < L[v0]):
                        v0 = i
                for k in range(ncp):
                    if v0 < 0 or L[cp[k]] < L[v0]:
                        v0 = cp[k]
                if history:
                    # a quad split by its history need not have its diagonal through the
                    # min-id vertex: cone from the vertex whose smallest cone is largest
                    v0 = _apex_for(oncut[t], sign, s, cp, ncp, L, P, side_tris, ns, min_frac * vparent)
                    if v0 < 0:
                        v0 = 0
                        apex_failed = True
                for k in range(ns):
                    if side_tris[k, 0] != v0 and side_tris[k, 1] != v0 and side_tris[k, 2] != v0:
                        kids[nk, 0] = v0
                        kids[nk, 1] = side_tris[k, 0]
                        kids[nk, 2] = side_tris[k, 1]
                        kids[nk, 3] = side_tris[k, 2]
                        kside[nk] = s
                        nk += 1
            # quality guard
            ok = not apex_failed
            for k in range(nk):
                v = _vol(P[kids[k, 0]], P[kids[k, 1]], P[kids[k, 2]], P[kids[k, 3]])
                if not (v > min_frac * vparent):
                    ok = False
            if not ok:
                mode = 2
                nct = 0
        if mode == 2:
            nk = 0
            npc = 0
            for f in range(4):
                for k in range(3):
                    F[k] = _FACES[f, k]
                n0 = npc
                npc = _history_face(F, ep, epid_gen[t], L, tris, npc)
                for k in range(n0, npc):
                    tparent[k] = f
            for k in range(npc):
                kids[nk, 0] = 10
                kids[nk, 1] = tris[k, 0]
                kids[nk, 2] = tris[k, 1]
                kids[nk, 3] = tris[k, 2]
                kside[nk] = 0
                nk += 1
        if mode == 0:
            kids[0, 0] = 0
            kids[0, 1] = 1
            kids[0, 2] = 2
            kids[0, 3] = 3
            s0 = 0
            for i in range(4):
                if not oncut[t, i]:
                    s0 = sign[i]
                    break
            kside[0] = s0
            nk = 1
        out_mode[t] = mode
        for k in range(nk):
            for c in range(4):
                out_tets[nt_out, c] = L[kids[k, c]]
            out_parent[nt_out] = t
            out_side[nt_out] = kside[k]
            nt_out += 1
        for k in range(nct):
            for c in range(3):
                out_cut[nc_out, c] = L[cut_tris[k, c]]
            out_cut_parent[nc_out] = t
            nc_out += 1
        if mode != 0:
            for k in range(npc):
                for c in range(3):
                    out_piece[np_out, c] = L[tris[k, c]]
                out_piece_parent[np_out, 0] = t
                out_piece_parent[np_out, 1] = tparent[k]
                np_out += 1
    return nt_out, nc_out, np_out


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: numba compiles one version of a kernel per argument
    writability, so inputs passed as read-only views share one (warmed) version."""
    v = a.view()
    v.setflags(write=False)
    return v


def run_split(gid, oncut, epid, vsign, steiner, pts, min_frac, epid_gen=None):
    """Allocate outputs, run :func:`split_tets`, and trim them.

    ``epid_gen`` (w, 6): when each cut point was added (see :func:`split_tets`); default
    -1 (all new).

    Returns
    -------
    dict with ``tets`` (c, 4), ``parent`` (c,), ``side`` (c,), ``cut`` (k, 3),
    ``cut_parent`` (k,), ``piece`` (p, 3), ``piece_parent`` (p, 2), ``mode`` (w,).
    """
    w = len(gid)
    out_tets = np.empty((w * MAX_CHILDREN, 4), dtype=np.int64)
    out_parent = np.empty(w * MAX_CHILDREN, dtype=np.int64)
    out_side = np.empty(w * MAX_CHILDREN, dtype=np.int64)
    out_cut = np.empty((w * MAX_CUT_TRIS, 3), dtype=np.int64)
    out_cut_parent = np.empty(w * MAX_CUT_TRIS, dtype=np.int64)
    out_piece = np.empty((w * MAX_PIECES, 3), dtype=np.int64)
    out_piece_parent = np.empty((w * MAX_PIECES, 2), dtype=np.int64)
    out_mode = np.empty(w, dtype=np.int64)
    gen = (np.full((w, 6), -1, dtype=np.int64) if epid_gen is None
           else np.ascontiguousarray(epid_gen, dtype=np.int64))
    nt, nc, npc = split_tets(
        np.ascontiguousarray(gid, dtype=np.int64), np.ascontiguousarray(oncut, dtype=np.bool_),
        np.ascontiguousarray(epid, dtype=np.int64), readonly(gen), np.ascontiguousarray(vsign, dtype=np.int8),
        np.ascontiguousarray(steiner, dtype=np.int64), readonly(np.ascontiguousarray(pts, dtype=np.float64)),
        float(min_frac), out_tets, out_parent, out_side, out_cut, out_cut_parent,
        out_piece, out_piece_parent, out_mode)
    return {
        "tets": out_tets[:nt], "parent": out_parent[:nt], "side": out_side[:nt],
        "cut": out_cut[:nc], "cut_parent": out_cut_parent[:nc],
        "piece": out_piece[:npc], "piece_parent": out_piece_parent[:npc], "mode": out_mode,
    }
