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
does, so the result is conforming. The children's volumes add up to the
parent's exactly (up to round-off): each side is a closed, consistently
oriented polyhedron, and the two sides share the cut polygon.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# outward faces of a positively oriented tet (same as organsim.mesh.tetmesh.TET_FACES)
_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]], dtype=np.int64)
_EDGES = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]], dtype=np.int64)
_EDGE_OF = np.full((4, 4), -1, dtype=np.int64)
for _e, (_a, _b) in enumerate(_EDGES):
    _EDGE_OF[_a, _b] = _e
    _EDGE_OF[_b, _a] = _e

#: Most children one tet can produce; most cut triangles; most face pieces.
MAX_CHILDREN = 16
MAX_CUT_TRIS = 2
MAX_PIECES = 16


@njit(cache=True)
def _vol(p0, p1, p2, p3):
    ax, ay, az = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
    bx, by, bz = p2[0] - p0[0], p2[1] - p0[1], p2[2] - p0[2]
    cx, cy, cz = p3[0] - p0[0], p3[1] - p0[1], p3[2] - p0[2]
    return (ax * (by * cz - bz * cy) - ay * (bx * cz - bz * cx) + az * (bx * cy - by * cx)) / 6.0


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
def _canonical_face(F, ep, L, tris, nt):
    """Canonical triangulation of face ``F`` (3 local vertex ids, outward) given its edge points."""
    cnt = 0
    for k in range(3):
        if ep[_EDGE_OF[F[k], F[(k + 1) % 3]]] >= 0:
            cnt += 1
    if cnt == 0:
        return _tri_push(tris, nt, F[0], F[1], F[2])
    poly = np.empty(4, dtype=np.int64)
    if cnt == 1:
        for k in range(3):
            g0 = F[k]
            g1 = F[(k + 1) % 3]
            g2 = F[(k + 2) % 3]
            e = _EDGE_OF[g0, g1]
            if ep[e] >= 0:
                p = 4 + e
                nt = _tri_push(tris, nt, g0, p, g2)
                return _tri_push(tris, nt, p, g1, g2)
    if cnt == 2:
        for k in range(3):
            # rotation with the uncrossed edge (g2, g0)
            g0 = F[k]
            g1 = F[(k + 1) % 3]
            g2 = F[(k + 2) % 3]
            if ep[_EDGE_OF[g2, g0]] < 0:
                p01 = 4 + _EDGE_OF[g0, g1]
                p12 = 4 + _EDGE_OF[g1, g2]
                nt = _tri_push(tris, nt, p01, g1, p12)
                poly[0] = g0
                poly[1] = p01
                poly[2] = p12
                poly[3] = g2
                return _poly_tris(poly, 4, L, tris, nt)
    # three points
    g0, g1, g2 = F[0], F[1], F[2]
    p01 = 4 + _EDGE_OF[g0, g1]
    p12 = 4 + _EDGE_OF[g1, g2]
    p20 = 4 + _EDGE_OF[g2, g0]
    nt = _tri_push(tris, nt, g0, p01, p20)
    nt = _tri_push(tris, nt, p01, g1, p12)
    nt = _tri_push(tris, nt, p20, p12, g2)
    return _tri_push(tris, nt, p01, p12, p20)


@njit(cache=True)
def split_tets(gid, oncut, epid, vsign, steiner, pts, min_frac,
               out_tets, out_parent, out_side, out_cut, out_cut_parent,
               out_piece, out_piece_parent, out_mode):
    """Split each tet; see the module docstring.

    Parameters
    ----------
    gid : (w, 4) int64 node ids (positively oriented).
    oncut : (w, 4) bool, vertex lies on the cut.
    epid : (w, 6) int64 node id of the cut point on each edge, -1 if none.
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
                for k in range(ns):
                    if side_tris[k, 0] != v0 and side_tris[k, 1] != v0 and side_tris[k, 2] != v0:
                        kids[nk, 0] = v0
                        kids[nk, 1] = side_tris[k, 0]
                        kids[nk, 2] = side_tris[k, 1]
                        kids[nk, 3] = side_tris[k, 2]
                        kside[nk] = s
                        nk += 1
            # quality guard
            ok = True
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
                npc = _canonical_face(F, ep, L, tris, npc)
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


def run_split(gid, oncut, epid, vsign, steiner, pts, min_frac):
    """Allocate outputs, run :func:`split_tets`, and trim them.

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
    nt, nc, npc = split_tets(
        np.ascontiguousarray(gid, dtype=np.int64), np.ascontiguousarray(oncut, dtype=np.bool_),
        np.ascontiguousarray(epid, dtype=np.int64), np.ascontiguousarray(vsign, dtype=np.int8),
        np.ascontiguousarray(steiner, dtype=np.int64), np.ascontiguousarray(pts, dtype=np.float64),
        float(min_frac), out_tets, out_parent, out_side, out_cut, out_cut_parent,
        out_piece, out_piece_parent, out_mode)
    return {
        "tets": out_tets[:nt], "parent": out_parent[:nt], "side": out_side[:nt],
        "cut": out_cut[:nc], "cut_parent": out_cut_parent[:nc],
        "piece": out_piece[:npc], "piece_parent": out_piece_parent[:npc], "mode": out_mode,
    }


@njit(cache=True)
def tets_near_boxes(X, tets, blo, bhi, pad):
    """Mask of tets whose bounding box (from positions ``X``) overlaps any box ``[blo_i, bhi_i]``.

    Parameters
    ----------
    X : (n, 3) float64 node positions. tets : (m, 4) int64.
    blo, bhi : (b, 3) box corners. pad : float, box inflation (m).

    Notes
    -----
    Each node first gets an out-code against the union box of all boxes (a bit
    per side it lies beyond); a tet whose four nodes share a bit lies wholly
    beyond one side and is skipped with one AND, so the per-tet work is four
    byte loads for the (many) tets far from the blade.
    """
    m = tets.shape[0]
    n = X.shape[0]
    nb = blo.shape[0]
    out = np.zeros(m, dtype=np.bool_)
    glo = np.empty(3)
    ghi = np.empty(3)
    for d in range(3):
        glo[d] = blo[0, d]
        ghi[d] = bhi[0, d]
        for b in range(1, nb):
            glo[d] = min(glo[d], blo[b, d])
            ghi[d] = max(ghi[d], bhi[b, d])
        glo[d] -= pad
        ghi[d] += pad
    code = np.empty(n, dtype=np.uint8)
    for i in range(n):
        c = 0
        for d in range(3):
            if X[i, d] < glo[d]:
                c |= 1 << (2 * d)
            elif X[i, d] > ghi[d]:
                c |= 2 << (2 * d)
        code[i] = c
    lo = np.empty(3)
    hi = np.empty(3)
    for t in range(m):
        if code[tets[t, 0]] & code[tets[t, 1]] & code[tets[t, 2]] & code[tets[t, 3]]:
            continue
        for d in range(3):
            lo[d] = X[tets[t, 0], d]
            hi[d] = lo[d]
        for k in range(1, 4):
            for d in range(3):
                v = X[tets[t, k], d]
                if v < lo[d]:
                    lo[d] = v
                if v > hi[d]:
                    hi[d] = v
        for b in range(nb):
            ok = True
            for d in range(3):
                if lo[d] > bhi[b, d] + pad or hi[d] < blo[b, d] - pad:
                    ok = False
                    break
            if ok:
                out[t] = True
                break
    return out


@njit(cache=True)
def edge_hits(p0, p1, tris, tol, pad):
    """Crossings of segments ``p0 -> p1`` (e, 3) with triangles (T, 3, 3) (Moller-Trumbore).

    Returns ``count`` (e,) int64, the number of distinct hits per segment (hits
    closer than 1e-7 in the segment parameter are one), and ``t`` (e,), the
    parameter in [0, 1] of the middle distinct hit (NaN where none). ``tol`` is
    the barycentric and parametric tolerance, ``pad`` the box pre-filter's.
    """
    e = p0.shape[0]
    nt = tris.shape[0]
    count = np.zeros(e, dtype=np.int64)
    tpar = np.full(e, np.nan)
    tlo = np.empty((nt, 3))
    thi = np.empty((nt, 3))
    for k in range(nt):
        for d in range(3):
            tlo[k, d] = min(tris[k, 0, d], tris[k, 1, d], tris[k, 2, d])
            thi[k, d] = max(tris[k, 0, d], tris[k, 1, d], tris[k, 2, d])
    ts = np.empty(nt)
    for i in range(e):
        nh = 0
        d0 = p1[i, 0] - p0[i, 0]
        d1 = p1[i, 1] - p0[i, 1]
        d2 = p1[i, 2] - p0[i, 2]
        dn = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        for k in range(nt):
            skip = False
            for d in range(3):
                lo = min(p0[i, d], p1[i, d])
                hi = max(p0[i, d], p1[i, d])
                if lo > thi[k, d] + pad or hi < tlo[k, d] - pad:
                    skip = True
                    break
            if skip:
                continue
            v0x, v0y, v0z = tris[k, 0, 0], tris[k, 0, 1], tris[k, 0, 2]
            e1x, e1y, e1z = tris[k, 1, 0] - v0x, tris[k, 1, 1] - v0y, tris[k, 1, 2] - v0z
            e2x, e2y, e2z = tris[k, 2, 0] - v0x, tris[k, 2, 1] - v0y, tris[k, 2, 2] - v0z
            hx = d1 * e2z - d2 * e2y
            hy = d2 * e2x - d0 * e2z
            hz = d0 * e2y - d1 * e2x
            a = e1x * hx + e1y * hy + e1z * hz
            scale = dn * np.sqrt(e1x * e1x + e1y * e1y + e1z * e1z) * np.sqrt(e2x * e2x + e2y * e2y + e2z * e2z)
            if not abs(a) > 1e-12 * max(scale, 1e-300):
                continue
            f = 1.0 / a
            sx, sy, sz = p0[i, 0] - v0x, p0[i, 1] - v0y, p0[i, 2] - v0z
            u = f * (sx * hx + sy * hy + sz * hz)
            qx = sy * e1z - sz * e1y
            qy = sz * e1x - sx * e1z
            qz = sx * e1y - sy * e1x
            v = f * (d0 * qx + d1 * qy + d2 * qz)
            t = f * (e2x * qx + e2y * qy + e2z * qz)
            if u >= -tol and v >= -tol and u + v <= 1 + tol and t >= -tol and t <= 1 + tol:
                ts[nh] = min(max(t, 0.0), 1.0)
                nh += 1
        if nh == 0:
            continue
        # sort the hits (few) and merge those closer than 1e-7
        for q in range(1, nh):
            v = ts[q]
            r = q - 1
            while r >= 0 and ts[r] > v:
                ts[r + 1] = ts[r]
                r -= 1
            ts[r + 1] = v
        nd = 1
        prev = ts[0]
        for q in range(1, nh):
            cur = ts[q]
            if cur - prev > 1e-7:  # compared with the previous hit, merged or not
                ts[nd] = cur
                nd += 1
            prev = cur
        count[i] = nd
        tpar[i] = ts[nd // 2]
    return count, tpar


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


@njit(cache=True)
def completion_vertices(oncut, epid):
    """Vertices that would complete partially crossed tets into consistent ones.

    A tet the blade tip passed through keeps a crossing pattern no two-colouring
    explains (it is split without separating). Putting every off-cut vertex that
    no crossed edge touches onto the cut makes the pattern consistent when the
    remaining off-cut vertices can be two-coloured by the crossed edges; the
    crack front then runs through those vertices instead of inside the tet.

    Parameters
    ----------
    oncut : (k, 4) bool, vertices already on the cut.
    epid : (k, 6) int64, node id of each edge's crossing (-1 if not crossed),
        edges in :data:`_EDGES` order.

    Returns
    -------
    ok : (k,) bool
        The pattern can be completed (and needs at least one new on-cut vertex).
    add : (k, 4) bool
        The vertices to put on the cut.
    """
    k = oncut.shape[0]
    ok = np.zeros(k, dtype=np.bool_)
    add = np.zeros((k, 4), dtype=np.bool_)
    inc = np.zeros(4, dtype=np.bool_)
    sign = np.zeros(4, dtype=np.int64)
    for t in range(k):
        for i in range(4):
            inc[i] = False
        nc = 0
        for e in range(6):
            if epid[t, e] >= 0:
                nc += 1
                inc[_EDGES[e, 0]] = True
                inc[_EDGES[e, 1]] = True
        if nc == 0:
            continue
        good = True
        n_add = 0
        r = -1
        for i in range(4):
            if oncut[t, i] and inc[i]:
                good = False  # a crossed edge ends on the cut: no consistent completion
            if not oncut[t, i] and not inc[i]:
                n_add += 1
            if not oncut[t, i] and inc[i] and r < 0:
                r = i
        if not good or n_add == 0 or r < 0:
            continue
        for i in range(4):
            sign[i] = 0
        sign[r] = 1
        for j in range(4):
            if j != r and not oncut[t, j] and inc[j]:
                sign[j] = -1 if epid[t, _EDGE_OF[r, j]] >= 0 else 1
        for i in range(4):
            for j in range(i + 1, 4):
                if sign[i] != 0 and sign[j] != 0:
                    if (epid[t, _EDGE_OF[i, j]] >= 0) != (sign[i] != sign[j]):
                        good = False
        if good:
            ok[t] = True
            for i in range(4):
                add[t, i] = not oncut[t, i] and not inc[i]
    return ok, add


@njit(cache=True)
def closest_on_triangles(points, tris):
    """Nearest point on a set of triangles (T, 3, 3) for each point (p, 3).

    Returns the distance (p,) in m, the nearest point (p, 3) and the index of
    its triangle (p,).
    """
    npnt = points.shape[0]
    out = np.full(npnt, np.inf)
    near = np.zeros((npnt, 3))
    which = np.full(npnt, -1, dtype=np.int64)
    for i in range(npnt):
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        best = np.inf
        for k in range(tris.shape[0]):
            ax, ay, az = tris[k, 0, 0], tris[k, 0, 1], tris[k, 0, 2]
            abx, aby, abz = tris[k, 1, 0] - ax, tris[k, 1, 1] - ay, tris[k, 1, 2] - az
            acx, acy, acz = tris[k, 2, 0] - ax, tris[k, 2, 1] - ay, tris[k, 2, 2] - az
            apx, apy, apz = px - ax, py - ay, pz - az
            d1 = abx * apx + aby * apy + abz * apz
            d2 = acx * apx + acy * apy + acz * apz
            # closest point by Voronoi regions of the triangle (Ericson, Real-Time Collision Detection 5.1.5)
            if d1 <= 0.0 and d2 <= 0.0:
                qx, qy, qz = ax, ay, az
            else:
                bpx, bpy, bpz = px - tris[k, 1, 0], py - tris[k, 1, 1], pz - tris[k, 1, 2]
                d3 = abx * bpx + aby * bpy + abz * bpz
                d4 = acx * bpx + acy * bpy + acz * bpz
                cpx, cpy, cpz = px - tris[k, 2, 0], py - tris[k, 2, 1], pz - tris[k, 2, 2]
                d5 = abx * cpx + aby * cpy + abz * cpz
                d6 = acx * cpx + acy * cpy + acz * cpz
                vc = d1 * d4 - d3 * d2
                vb = d5 * d2 - d1 * d6
                va = d3 * d6 - d5 * d4
                if d3 >= 0.0 and d4 <= d3:
                    qx, qy, qz = tris[k, 1, 0], tris[k, 1, 1], tris[k, 1, 2]
                elif vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
                    v = d1 / (d1 - d3)
                    qx, qy, qz = ax + v * abx, ay + v * aby, az + v * abz
                elif d6 >= 0.0 and d5 <= d6:
                    qx, qy, qz = tris[k, 2, 0], tris[k, 2, 1], tris[k, 2, 2]
                elif vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
                    w = d2 / (d2 - d6)
                    qx, qy, qz = ax + w * acx, ay + w * acy, az + w * acz
                elif va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
                    w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
                    bx, by, bz = tris[k, 1, 0], tris[k, 1, 1], tris[k, 1, 2]
                    qx = bx + w * (tris[k, 2, 0] - bx)
                    qy = by + w * (tris[k, 2, 1] - by)
                    qz = bz + w * (tris[k, 2, 2] - bz)
                else:
                    den = 1.0 / (va + vb + vc)
                    v = vb * den
                    w = vc * den
                    qx = ax + abx * v + acx * w
                    qy = ay + aby * v + acy * w
                    qz = az + abz * v + acz * w
            dd = (px - qx) ** 2 + (py - qy) ** 2 + (pz - qz) ** 2
            if dd < best:
                best = dd
                near[i, 0] = qx
                near[i, 1] = qy
                near[i, 2] = qz
                which[i] = k
        out[i] = np.sqrt(best)
    return out, near, which
