"""Compiled blade-sweep stages of the cutter: what a moving blade crosses in one increment.

The surface a blade polyline sweeps between two poses (:func:`swept_quads`), the tets
near it (:func:`blade_candidates`), the crossings of their edges with it
(:func:`edge_hits`, :func:`sweep_edges`), and the rounding of a partially crossed crack
front onto nearby vertices (:func:`completion_vertices`, :func:`front_completions`,
:func:`closest_on_triangles`).

The per-increment stages of :meth:`organsim.surgery.cutting.Cutter.advance` here are each
one compiled pass instead of a chain of NumPy calls (the increments that change nothing,
most of a stroke, cost little more than these calls). They release the GIL, so a viewer
or other thread keeps running during a cut.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._sorted_keys import KEY_BASE, _sorted_unique
from ._split_geometry import _EDGE_OF, _EDGES, _tri_normal


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
