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


@njit(cache=True, inline="always")
def _tri_normal(tri):
    """Unnormalised normal ``u x v`` (twice the area vector) of a triangle (3, 3), u = p1 - p0, v = p2 - p0."""
    ux = tri[1, 0] - tri[0, 0]
    uy = tri[1, 1] - tri[0, 1]
    uz = tri[1, 2] - tri[0, 2]
    vx = tri[2, 0] - tri[0, 0]
    vy = tri[2, 1] - tri[0, 1]
    vz = tri[2, 2] - tri[0, 2]
    return uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx


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


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: numba compiles one version of a kernel per argument
    writability, so inputs passed as read-only views share one (warmed) version."""
    v = a.view()
    v.setflags(write=False)
    return v


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
        np.ascontiguousarray(steiner, dtype=np.int64), readonly(np.ascontiguousarray(pts, dtype=np.float64)),
        float(min_frac), out_tets, out_parent, out_side, out_cut, out_cut_parent,
        out_piece, out_piece_parent, out_mode)
    return {
        "tets": out_tets[:nt], "parent": out_parent[:nt], "side": out_side[:nt],
        "cut": out_cut[:nc], "cut_parent": out_cut_parent[:nc],
        "piece": out_piece[:npc], "piece_parent": out_piece_parent[:npc], "mode": out_mode,
    }


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


# ---------------------------------------------------------------------------
# Per-increment stages of :meth:`organsim.surgery.cutting.Cutter.advance`, each
# one compiled pass instead of a chain of NumPy calls (the increments that
# change nothing, most of a stroke, cost little more than these calls). They
# release the GIL, so a viewer or other thread keeps running during a cut.

#: Base for encoding a sorted node pair or triple as one int64 (node ids < 2**21; cutting.face_keys).
KEY_BASE = 1 << 21


@njit(cache=True, nogil=True)
def swept_quads(a, b, min_area):
    """Triangles swept by a blade polyline between two poses, degenerate ones dropped.

    Parameters
    ----------
    a, b : (s, 3) float64
        The blade's points (m) at the previous and the current pose.
    min_area : float
        Triangles of area (m^2) not above this are dropped.

    Returns
    -------
    (T, 3, 3) float64
        The triangles ``(a_i, a_i+1, b_i+1)`` of every segment, then the
        triangles ``(a_i, b_i+1, b_i)``, as
        :func:`organsim.surgery.cutting.swept_triangles` orders them, less the
        degenerate ones.
    """
    ns = a.shape[0] - 1
    out = np.empty((2 * ns, 3, 3))
    keep = 0
    for h in range(2):
        for i in range(ns):
            for d in range(3):
                out[keep, 0, d] = a[i, d]
                if h == 0:
                    out[keep, 1, d] = a[i + 1, d]
                    out[keep, 2, d] = b[i + 1, d]
                else:
                    out[keep, 1, d] = b[i + 1, d]
                    out[keep, 2, d] = b[i, d]
            cx, cy, cz = _tri_normal(out[keep])
            if 0.5 * np.sqrt(cx * cx + cy * cy + cz * cz) > min_area:
                keep += 1
    return out[:keep].copy()


@njit(cache=True, nogil=True)
def blade_candidates(X, tets, tet_family, n_fam, tris):
    """Tets whose bounding box overlaps a swept triangle's, split into fresh tets and pending families.

    Parameters
    ----------
    X : (n, 3) float64 current node positions (m). tets : (m, 4) int64.
    tet_family : (m,) int64 pending family of each tet, -1 for none.
    n_fam : int, number of pending families.
    tris : (T, 3, 3) float64 swept triangles (m), ``T >= 1``.

    Returns
    -------
    fresh : (f,) int64, candidate tets in no family, ascending.
    fam : (g,) int64, families of the other candidates, ascending.
    amax : float, the largest absolute coordinate of the triangles (m).

    Notes
    -----
    The triangles' boxes are inflated by ``1e-9 max(amax, 1e-3)``. Each node first gets an
    out-code against the union of the boxes (a bit per side it lies beyond); a tet whose
    four nodes share a bit lies wholly beyond one side and is skipped with one AND, so the
    per-tet work is four byte loads for the (many) tets far from the blade.
    """
    nt = tris.shape[0]
    blo = np.empty((nt, 3))
    bhi = np.empty((nt, 3))
    amax = 0.0
    for k in range(nt):
        for d in range(3):
            blo[k, d] = min(tris[k, 0, d], tris[k, 1, d], tris[k, 2, d])
            bhi[k, d] = max(tris[k, 0, d], tris[k, 1, d], tris[k, 2, d])
            amax = max(amax, abs(blo[k, d]), abs(bhi[k, d]))
    pad = 1e-9 * max(amax, 1e-3)
    # out-code of each node against the union of the boxes
    glo = np.empty(3)
    ghi = np.empty(3)
    for d in range(3):
        glo[d] = blo[0, d]
        ghi[d] = bhi[0, d]
        for k in range(1, nt):
            glo[d] = min(glo[d], blo[k, d])
            ghi[d] = max(ghi[d], bhi[k, d])
        glo[d] -= pad
        ghi[d] += pad
    n = X.shape[0]
    code = np.empty(n, dtype=np.uint8)
    for i in range(n):
        c = 0
        for d in range(3):
            if X[i, d] < glo[d]:
                c |= 1 << (2 * d)
            elif X[i, d] > ghi[d]:
                c |= 2 << (2 * d)
        code[i] = c
    m = tets.shape[0]
    fresh = np.empty(m, dtype=np.int64)
    seen = np.zeros(n_fam, dtype=np.bool_)
    nfresh = 0
    nseen = 0
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
        near = False
        for b in range(nt):
            ok = True
            for d in range(3):
                if lo[d] > bhi[b, d] + pad or hi[d] < blo[b, d] - pad:
                    ok = False
                    break
            if ok:
                near = True
                break
        if near:
            f = tet_family[t]
            if f < 0:
                fresh[nfresh] = t
                nfresh += 1
            elif not seen[f]:
                seen[f] = True
                nseen += 1
    fam = np.empty(nseen, dtype=np.int64)
    j = 0
    for f in range(n_fam):
        if seen[f]:
            fam[j] = f
            j += 1
    return fresh[:nfresh].copy(), fam, amax


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
def working_set(tets, tet_family, fresh, fam_touched, fam_verts, fam_epid, fam_steiner):
    """The tets one increment re-splits: fresh candidates, then the original tets of touched families.

    Parameters
    ----------
    tets : (m, 4) int64. tet_family : (m,) int64 (-1: none).
    fresh : (f,) int64 tets in no family. fam_touched : (g,) int64 families, ascending, unique.
    fam_verts : (F, 4) int64, fam_epid : (F, 6) int64, fam_steiner : (F,) int64
        Each family's original tet, the crossing node on each of its edges (-1: none)
        and its centroid node.

    Returns
    -------
    wg : (f + g, 4) int64 node ids.
    w_src : (f + g,) int64 a tet of the current mesh each row stands for (a family: its first tet).
    w_steiner : (f + g,) int64 centroid node (-1 for fresh tets).
    w_forced : (f + g, 6) int64 crossing node of each edge (-1 for fresh tets).
    removed : (m,) bool, the tets the working rows replace.
    """
    m = tets.shape[0]
    nf = fresh.shape[0]
    ng = fam_touched.shape[0]
    w = nf + ng
    wg = np.empty((w, 4), dtype=np.int64)
    w_src = np.empty(w, dtype=np.int64)
    w_steiner = np.full(w, -1, dtype=np.int64)
    w_forced = np.full((w, 6), -1, dtype=np.int64)
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
            w_src[r] = first[j]
            w_steiner[r] = fam_steiner[f]
    return wg, w_src, w_steiner, w_forced, removed


@njit(cache=True, nogil=True)
def sweep_edges(wg, w_forced, X, tris, tol, pad, on_cut, front_nodes, keeps_off, snap):
    """Unique edges of the working tets, their crossings with the swept surface, and snapping.

    Parameters
    ----------
    wg : (w, 4) int64 working tets. w_forced : (w, 6) int64 crossing node already on each edge (-1: none).
    X : (n, 3) float64 current positions (m). tris : (T, 3, 3) float64 swept triangles.
    tol, pad : float, the crossing tolerances of :func:`edge_hits`.
    on_cut : (n,) bool, nodes already on the cut. front_nodes : (k,) int64, nodes put onto it now.
    keeps_off : (n,) bool, nodes that must not be snapped onto the cut.
    snap : float, edge-parameter snapping threshold.

    Returns
    -------
    ue : (ne, 2) int64, the unique edges (smaller node first), ascending by key.
    einv : (6 w,) int64, the unique edge of each working-tet edge (``TET_EDGES`` order).
    forced : (ne,) int64, crossing node already on each edge (-1: none; the last row's wins).
    tpar : (ne,) float64, edge parameter of the crossing (NaN: none); a crossing within
        ``snap`` of a vertex in ``keeps_off`` is moved to ``snap`` from it.
    new_pt : (ne,) bool, the edge gets a new crossing node.
    on_cut_new : (n,) bool, ``on_cut`` with the front nodes and the snapped vertices.
    n_newly : int, nodes in ``on_cut_new`` and not in ``on_cut``.
    """
    w = wg.shape[0]
    n6 = 6 * w
    keys = np.empty(n6, dtype=np.int64)
    for t in range(w):
        for e in range(6):
            a = wg[t, _EDGES[e, 0]]
            b = wg[t, _EDGES[e, 1]]
            if a > b:
                a, b = b, a
            keys[6 * t + e] = a * KEY_BASE + b
    order = np.argsort(keys)
    einv = np.empty(n6, dtype=np.int64)
    ukey = np.empty(n6, dtype=np.int64)
    ne = 0
    for q in range(n6):
        k = keys[order[q]]
        if ne == 0 or k != ukey[ne - 1]:
            ukey[ne] = k
            ne += 1
        einv[order[q]] = ne - 1
    ue = np.empty((ne, 2), dtype=np.int64)
    p0 = np.empty((ne, 3))
    p1 = np.empty((ne, 3))
    for i in range(ne):
        ue[i, 0] = ukey[i] // KEY_BASE
        ue[i, 1] = ukey[i] % KEY_BASE
        for d in range(3):
            p0[i, d] = X[ue[i, 0], d]
            p1[i, d] = X[ue[i, 1], d]
    forced = np.full(ne, -1, dtype=np.int64)
    for j in range(n6):
        v = w_forced[j // 6, j % 6]
        if v >= 0:
            forced[einv[j]] = v
    count, tpar = edge_hits(p0, p1, tris, tol, pad)
    oc = on_cut.copy()
    for i in range(front_nodes.shape[0]):
        oc[front_nodes[i]] = True
    odd = np.empty(ne, dtype=np.bool_)
    for i in range(ne):
        odd[i] = count[i] % 2 == 1 and forced[i] < 0
        if odd[i]:
            # near an end: snap the crossing onto that vertex, or, for a vertex that must stay
            # off the cut, move it to ``snap`` along the edge (never closer: a crossing next to
            # a vertex leaves near-zero-volume pieces that blow up the solver)
            if tpar[i] < snap:
                if keeps_off[ue[i, 0]]:
                    tpar[i] = snap
                else:
                    oc[ue[i, 0]] = True
            if tpar[i] > 1 - snap:
                if keeps_off[ue[i, 1]]:
                    tpar[i] = 1 - snap
                else:
                    oc[ue[i, 1]] = True
    new_pt = np.empty(ne, dtype=np.bool_)
    for i in range(ne):
        new_pt[i] = odd[i] and not oc[ue[i, 0]] and not oc[ue[i, 1]]
    n_newly = 0
    for i in range(oc.shape[0]):
        if oc[i] and not on_cut[i]:
            n_newly += 1
    return ue, einv, forced, tpar, new_pt, oc, n_newly


@njit(cache=True, nogil=True)
def _key3(a, b, c):
    """Order-independent int64 key of a node triple (as ``cutting.face_keys``)."""
    if a > b:
        a, b = b, a
    if b > c:
        b, c = c, b
    if a > b:
        a, b = b, a
    return a + KEY_BASE * (b + KEY_BASE * c)


@njit(cache=True, nogil=True)
def _in_sorted(keys, x):
    """Whether ``x`` is in the ascending array ``keys``."""
    i = np.searchsorted(keys, x)
    return i < keys.shape[0] and keys[i] == x


@njit(cache=True, nogil=True)
def _sorted_unique(a):
    """``np.unique(a)`` for a 1-D int64 array."""
    s = np.sort(a)
    n = 0
    for i in range(s.shape[0]):
        if n == 0 or s[i] != s[n - 1]:
            s[n] = s[i]
            n += 1
    return s[:n].copy()


@njit(cache=True, nogil=True)
def merge_keys(keys, extra):
    """``np.unique(np.concatenate([keys, extra]))`` for ``keys`` ascending and unique (int64)."""
    e = _sorted_unique(extra)
    out = np.empty(keys.shape[0] + e.shape[0], dtype=np.int64)
    i = 0
    j = 0
    n = 0
    while i < keys.shape[0] or j < e.shape[0]:
        if j >= e.shape[0] or (i < keys.shape[0] and keys[i] < e[j]):
            v = keys[i]
            i += 1
        elif i >= keys.shape[0] or e[j] < keys[i]:
            v = e[j]
            j += 1
        else:
            v = keys[i]
            i += 1
            j += 1
        out[n] = v
        n += 1
    return out[:n].copy()


@njit(cache=True, nogil=True)
def isin_sorted(x, keys):
    """``np.isin(x, keys)`` for ``keys`` ascending (int64)."""
    out = np.empty(x.shape[0], dtype=np.bool_)
    for i in range(x.shape[0]):
        out[i] = _in_sorted(keys, x[i])
    return out


@njit(cache=True, nogil=True)
def remap_keys(keys, renum):
    """Face keys under a node renumbering, those with a dropped node (``renum`` -1) left out.

    Parameters
    ----------
    keys : (k,) int64 face keys. renum : (n,) int64 new id of each node, -1 if dropped.

    Returns
    -------
    (k',) int64, ascending, unique.
    """
    out = np.empty(keys.shape[0], dtype=np.int64)
    n = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        a = renum[k % KEY_BASE]
        b = renum[(k // KEY_BASE) % KEY_BASE]
        c = renum[k // (KEY_BASE * KEY_BASE)]
        if a >= 0 and b >= 0 and c >= 0:
            out[n] = _key3(a, b, c)
            n += 1
    return _sorted_unique(out[:n])


@njit(cache=True, nogil=True)
def remap_ids(a, renum):
    """Node ids ``a`` (any shape, flattened) under ``renum``; -1 stays -1 (and dropped nodes become -1)."""
    out = np.empty(a.shape[0], dtype=np.int64)
    for i in range(a.shape[0]):
        out[i] = renum[a[i]] if a[i] >= 0 else -1
    return out


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
def update_families(fam_verts, fam_epid, fam_steiner, fam_stroke, fam_touched, mode, wg, epid_w, w_steiner,
                    stroke_no):
    """Pending families after a split: the untouched ones, then the working rows split without separating.

    Returns
    -------
    fam_verts (F', 4), fam_epid (F', 6), fam_steiner (F',), fam_stroke (F',) : int64
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
    w_fam = np.full(w, -1, dtype=np.int64)
    for f in range(nf):
        g = fam_renum[f]
        if g >= 0:
            fv[g] = fam_verts[f]
            fe[g] = fam_epid[f]
            fs[g] = fam_steiner[f]
            fk[g] = fam_stroke[f]
    g = n_old
    for r in range(w):
        if mode[r] == 2:
            fv[g] = wg[r]
            fe[g] = epid_w[r]
            fs[g] = w_steiner[r]
            fk[g] = stroke_no
            w_fam[r] = g
            g += 1
    return fv, fe, fs, fk, fam_renum, w_fam


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


@njit(cache=True, nogil=True)
def front_completions(fam_verts, fam_epid, cand_mask, on_cut, X, tris, front_snap, keeps_off):
    """Pending families whose crack front can be rounded onto nearby vertices.

    Parameters
    ----------
    fam_verts : (F, 4) int64, fam_epid : (F, 6) int64, the families' original tets and crossings.
    cand_mask : (F,) bool, the families to consider.
    on_cut : (n,) bool. X : (n, 3) float64 current positions (m).
    tris : (T, 3, 3) float64 the stroke's swept triangles (m).
    front_snap : float, largest distance of a vertex to put onto the cut from the swept
        surface, as a fraction of its tet's mean edge length.
    keeps_off : (n,) bool, nodes that must stay off the cut (they end a crossed edge of a
        pending tet, which could then never split consistently).

    Returns
    -------
    fams : (g,) int64, the families to restore, ascending.
    nodes : (k,) int64, the vertices to put onto the cut, ascending, unique.

    Notes
    -----
    A candidate qualifies when :func:`completion_vertices` completes it and each added
    vertex is within ``front_snap`` times the tet's mean edge length (in ``X``) of ``tris``
    and not in ``keeps_off``.
    """
    nf = fam_verts.shape[0]
    nc = 0
    for f in range(nf):
        if cand_mask[f]:
            nc += 1
    cand = np.empty(nc, dtype=np.int64)
    oc = np.empty((nc, 4), dtype=np.bool_)
    ep = np.empty((nc, 6), dtype=np.int64)
    j = 0
    for f in range(nf):
        if cand_mask[f]:
            cand[j] = f
            for c in range(4):
                oc[j, c] = on_cut[fam_verts[f, c]]
            for e in range(6):
                ep[j, e] = fam_epid[f, e]
            j += 1
    ok, add = completion_vertices(oc, ep)
    # the added vertices, row-major over (candidate, corner)
    na = 0
    for j in range(nc):
        if ok[j]:
            for c in range(4):
                if add[j, c]:
                    na += 1
    arow = np.empty(na, dtype=np.int64)
    anode = np.empty(na, dtype=np.int64)
    pts = np.empty((na, 3))
    h = np.zeros(nc)
    q = 0
    for j in range(nc):
        if not ok[j]:
            continue
        V = fam_verts[cand[j]]
        s = 0.0
        for e in range(6):
            a = V[_EDGES[e, 0]]
            b = V[_EDGES[e, 1]]
            dx = X[a, 0] - X[b, 0]
            dy = X[a, 1] - X[b, 1]
            dz = X[a, 2] - X[b, 2]
            s += np.sqrt(dx * dx + dy * dy + dz * dz)
        h[j] = s / 6
        for c in range(4):
            if add[j, c]:
                arow[q] = j
                anode[q] = V[c]
                for d in range(3):
                    pts[q, d] = X[V[c], d]
                q += 1
    dist, _, _ = closest_on_triangles(pts, tris)
    use = ok.copy()
    for q in range(na):
        j = arow[q]
        if dist[q] > front_snap * h[j] or keeps_off[anode[q]]:
            use[j] = False
    ng = 0
    for j in range(nc):
        if use[j]:
            ng += 1
    fams = np.empty(ng, dtype=np.int64)
    g = 0
    for j in range(nc):
        if use[j]:
            fams[g] = cand[j]
            g += 1
    nodes = np.empty(na, dtype=np.int64)
    k = 0
    for q in range(na):
        if use[arow[q]]:
            nodes[k] = anode[q]
            k += 1
    return fams, _sorted_unique(nodes[:k])


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
