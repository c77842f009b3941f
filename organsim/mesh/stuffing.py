"""Isosurface stuffing on a body-centred-cubic lattice.

A vectorized implementation of the idea of Labelle & Shewchuk, "Isosurface
stuffing: fast tetrahedral meshes with good dihedral angles" (SIGGRAPH 2007):

1. cover the domain with the BCC lattice of spacing ``h`` (cube corners, the
   "black" vertices, plus cube centres, the "red" vertices); each pair of
   face-adjacent cubes and each of the four edges of their shared face give one
   BCC tetrahedron (12 tets per cube, all congruent, dihedral 60 and 90 deg);
2. evaluate an implicit function ``f`` (negative inside) at the lattice
   vertices and find the cut points where lattice edges cross ``f = 0``;
3. *warp*: a lattice vertex closer to a cut point than ``alpha`` times the edge
   length (``alpha_long`` = 0.24749 for red-black edges, ``alpha_short`` =
   0.41189 for axis edges, the paper's values) is snapped onto that cut point
   and becomes a surface vertex;
4. *fill*: every lattice tet is clipped to the inside by a small set of
   stencils (tet, pyramid or prism) whose quadrilateral faces are split along
   their shorter diagonal (ties: the diagonal through the smaller global id),
   which is a property of the quadrilateral alone, so neighbours agree and the
   mesh is conforming. A prism whose three diagonals happen to be cyclic (it has
   no 3-tet split) gets a Steiner vertex at its centroid.

The paper's parity rule for the quadrilaterals is replaced by the
shorter-diagonal rule above, so its proven angle bounds (10.7 to 164.8 deg) are
not claimed here; :func:`organsim.mesh.tetrahedralize.tetrahedralize` measures
the result and repairs the few bad boundary tets that can remain.

Everything is numpy-vectorized over lattice vertices, edges and tets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import MeshError

__all__ = ["stuff", "StuffingResult", "ALPHA_LONG", "ALPHA_SHORT"]

log = logging.getLogger(__name__)

#: Warp thresholds from Labelle & Shewchuk (2007), uniform lattice.
ALPHA_LONG = 0.24749
ALPHA_SHORT = 0.41189


@dataclass(frozen=True)
class StuffingResult:
    """Output of :func:`stuff`.

    Attributes
    ----------
    points : ndarray, shape (n, 3)
        Vertex positions (same frame and unit as the lattice).
    tets : ndarray, shape (m, 4)
        Positively oriented tetrahedra.
    on_surface : ndarray, shape (n,), bool
        True for vertices on the isosurface (warped vertices and cut points).
    n_lattice_tets : int
        BCC tets that touched the inside.
    n_steiner : int
        Steiner vertices added for cyclic prisms.
    """

    points: np.ndarray
    tets: np.ndarray
    on_surface: np.ndarray
    n_lattice_tets: int
    n_steiner: int


def _bcc_tets(nb: tuple[int, int, int]) -> np.ndarray:
    """All BCC tets of a lattice with ``nb`` black vertices per axis.

    Black vertex (i, j, k) has id ``i*ny*nz + j*nz + k``; red vertex of cube
    (i, j, k) (centre at (i+.5, j+.5, k+.5)) has id ``NB + i*(ny-1)*(nz-1) + ...``.
    Returns an (m, 4) array [red, red, black, black] (unoriented).
    """
    nx, ny, nz = nb
    nc = (nx - 1, ny - 1, nz - 1)
    n_black = nx * ny * nz
    out = []
    for axis in range(3):
        # pairs of cubes c and c + e_axis; shared face at axis-coordinate c[axis]+1
        rng = [np.arange(n) for n in nc]
        rng[axis] = np.arange(nc[axis] - 1)
        ci, cj, ck = np.meshgrid(*rng, indexing="ij")
        ci, cj, ck = ci.ravel(), cj.ravel(), ck.ravel()
        if ci.size == 0:
            continue
        c = np.stack([ci, cj, ck], axis=1)
        c2 = c.copy()
        c2[:, axis] += 1
        red1 = n_black + np.ravel_multi_index(c.T, nc)
        red2 = n_black + np.ravel_multi_index(c2.T, nc)
        # the shared face: black corners at c + e_axis + {0,1} in the other two axes
        a1, a2 = [a for a in range(3) if a != axis]
        corners = []
        for d1, d2 in ((0, 0), (1, 0), (1, 1), (0, 1)):
            b = c.copy()
            b[:, axis] += 1
            b[:, a1] += d1
            b[:, a2] += d2
            corners.append(np.ravel_multi_index(b.T, nb))
        for q in range(4):
            out.append(np.stack([red1, red2, corners[q], corners[(q + 1) % 4]], axis=1))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 4), np.int64)


def _lattice_points(nb, h, origin) -> np.ndarray:
    nx, ny, nz = nb
    gi = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1)
    gr = np.stack(np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), np.arange(nz - 1),
                              indexing="ij"), -1) + 0.5
    pts = np.concatenate([gi.reshape(-1, 3), gr.reshape(-1, 3)], axis=0).astype(np.float64)
    return origin + h * pts


def _find_roots(f, p0, p1, f0, f1, iters: int) -> np.ndarray:
    """Parameter t in (0, 1) of the root of f along p0 + t (p1 - p0) (Illinois method)."""
    a = np.zeros(len(p0))
    b = np.ones(len(p0))
    fa, fb = f0.copy(), f1.copy()
    t = fa / (fa - fb)
    side = np.zeros(len(p0), dtype=np.int8)
    for _ in range(iters):
        ft = f(p0 + t[:, None] * (p1 - p0))
        left = np.sign(ft) == np.sign(fa)
        # replace the endpoint with the same sign; halve the other if it stayed twice
        a = np.where(left, t, a)
        fa = np.where(left, ft, fa)
        fb = np.where(left & (side == 1), fb * 0.5, fb)
        b = np.where(~left, t, b)
        fb = np.where(~left, ft, fb)
        fa = np.where(~left & (side == -1), fa * 0.5, fa)
        side = np.where(left, 1, -1).astype(np.int8)
        done = ft == 0
        denom = fa - fb
        tn = np.where(denom != 0, (fa * b - fb * a) / np.where(denom != 0, denom, 1.0), 0.5 * (a + b))
        t = np.where(done, t, np.clip(tn, a, b))
    return np.clip(t, 1e-6, 1 - 1e-6)


def _banded_values(f, lower_bound, pts, tets, h) -> np.ndarray:
    """Values of f: exact near the surface, sign by flood fill far from it."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    lb = np.asarray(lower_bound(pts), dtype=np.float64)
    near = lb <= h
    fv = np.empty(len(pts))
    fv[near] = f(pts[near])
    far = np.nonzero(~near)[0]
    if len(far):
        e = tets[:, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]].reshape(-1, 2)
        e = e[~near[e[:, 0]] & ~near[e[:, 1]]]
        g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(pts), len(pts)))
        _, comp = connected_components(g, directed=False)
        comps, first = np.unique(comp[far], return_index=True)
        rep = far[first]
        sgn = np.sign(np.asarray(f(pts[rep]), dtype=np.float64))
        sgn[sgn == 0] = 1.0
        fv[far] = sgn[np.searchsorted(comps, comp[far])] * np.maximum(lb[far], h)
    return fv


def _lookup(keys_sorted: np.ndarray, vals: np.ndarray, q: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(keys_sorted, q)
    idx = np.clip(idx, 0, len(keys_sorted) - 1)
    if len(keys_sorted) == 0 or np.any(keys_sorted[idx] != q):
        raise MeshError("internal error in isosurface stuffing: a cut point is missing;"
                        " please report this with the input")
    return vals[idx]


def stuff(f: Callable[[np.ndarray], np.ndarray], lo, hi, h: float, *,
          root_iters: int = 4, alpha_long: float = ALPHA_LONG,
          alpha_short: float = ALPHA_SHORT,
          lower_bound: Callable[[np.ndarray], np.ndarray] | None = None) -> StuffingResult:
    """Tetrahedralize ``{x : f(x) < 0}`` by isosurface stuffing.

    Parameters
    ----------
    f : callable
        Vectorized implicit function, ``(k, 3) -> (k,)``, negative inside,
        positive outside, roughly a distance near the surface.
    lo, hi : array_like, shape (3,)
        Corners of a box containing the whole inside.
    h : float
        Lattice spacing (the axis-edge length; long edges are ``sqrt(3)/2 h``).
    root_iters : int
        Illinois iterations per cut point (0: linear interpolation only).
    alpha_long, alpha_short : float
        Warp thresholds as fractions of the edge length.
    lower_bound : callable, optional
        Cheap lower bound of the distance to the surface, ``(k, 3) -> (k,)``.
        When given, ``f`` is evaluated only at lattice vertices closer than
        ``h`` to the surface (and once per far region); far vertices take their
        sign from their region, found by flood fill along lattice edges, which
        cannot cross the surface. This saves most calls of an expensive ``f``.

    Returns
    -------
    StuffingResult

    Examples
    --------
    >>> import numpy as np
    >>> r = stuff(lambda p: np.linalg.norm(p, axis=1) - 1.0, [-1, -1, -1], [1, 1, 1], 0.25)
    >>> r.tets.shape[1]
    4
    """
    lo = np.asarray(lo, float) - 1.5 * h
    hi = np.asarray(hi, float) + 1.5 * h
    nb = tuple(int(np.ceil((hi[a] - lo[a]) / h)) + 1 for a in range(3))
    n_total = int(np.prod(nb)) + int(np.prod([n - 1 for n in nb]))
    if n_total > 60_000_000:
        raise MeshError(f"the lattice would need {n_total:,} vertices (edge length {h:.3g} is too"
                        " small for the object's size); pass a larger edge length")
    pts = _lattice_points(nb, h, lo)
    tets = _bcc_tets(nb)
    if lower_bound is None:
        fv = np.asarray(f(pts), dtype=np.float64).copy()
    else:
        fv = _banded_values(f, lower_bound, pts, tets, h)
    if fv.shape != (len(pts),) or not np.all(np.isfinite(fv)):
        raise MeshError("the implicit function returned non-finite values on the lattice")
    if not np.any(fv < 0):
        raise MeshError("nothing to mesh: no lattice vertex lies inside the object at edge length"
                        f" {h:.3g}; pass a smaller edge length or check the input")

    # keep lattice tets that may touch the inside
    tets = tets[(fv[tets] < 0).any(axis=1)]
    n_lattice = len(tets)

    # ---------------------------------------------------------------- cut points
    e = np.sort(tets[:, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]].reshape(-1, 2), axis=1)
    n_all = len(pts)
    ekey = np.unique(e[:, 0] * n_all + e[:, 1])
    eu, ev = ekey // n_all, ekey % n_all
    cut = (fv[eu] < 0) & (fv[ev] > 0) | (fv[eu] > 0) & (fv[ev] < 0)
    cu, cv, ckey = eu[cut], ev[cut], ekey[cut]
    t = _find_roots(f, pts[cu], pts[cv], fv[cu], fv[cv], root_iters)
    cpos = pts[cu] + t[:, None] * (pts[cv] - pts[cu])
    n_black = int(np.prod(nb))
    long_edge = (cu < n_black) != (cv < n_black)
    alpha = np.where(long_edge, alpha_long, alpha_short)
    length = np.where(long_edge, np.sqrt(3) / 2 * h, h)

    # --------------------------------------------------------------------- warp
    # candidate (vertex, distance, cut id) for each endpoint too close to its cut point
    viol_u = t < alpha
    viol_v = (1 - t) < alpha
    vid = np.concatenate([cu[viol_u], cv[viol_v]])
    vdist = np.concatenate([t[viol_u] * length[viol_u], (1 - t[viol_v]) * length[viol_v]])
    vcut = np.concatenate([np.nonzero(viol_u)[0], np.nonzero(viol_v)[0]])
    order = np.lexsort((vdist, vid))
    vid, vcut = vid[order], vcut[order]
    first = np.ones(len(vid), bool)
    first[1:] = vid[1:] != vid[:-1]
    wv, wc = vid[first], vcut[first]
    pts = pts.copy()
    pts[wv] = cpos[wc]
    sign = np.sign(fv).astype(np.int8)
    sign[wv] = 0
    n_warped = len(wv)

    # cut points that survive the warp (both endpoints still strictly signed)
    keep_cut = (sign[cu] != 0) & (sign[cv] != 0)
    ckey, cpos = ckey[keep_cut], cpos[keep_cut]
    cut_ids = n_all + np.arange(len(ckey))
    all_pts = np.concatenate([pts, cpos], axis=0)
    on_surface = np.zeros(len(all_pts), bool)
    on_surface[wv] = True
    on_surface[:n_all] |= sign == 0
    on_surface[n_all:] = True

    # --------------------------------------------------------------------- fill
    s = sign[tets]
    n_neg = (s < 0).sum(1)
    n_zero = (s == 0).sum(1)
    n_pos = (s > 0).sum(1)
    # sort each tet's vertices: negative, zero, positive
    order = np.argsort(s, axis=1, kind="stable")
    st = np.take_along_axis(tets, order, axis=1)

    def cp(a, b):
        lo_, hi_ = np.minimum(a, b), np.maximum(a, b)
        return _lookup(ckey, cut_ids, lo_ * n_all + hi_)

    new_tets = []
    steiner = []

    # whole tets: no positive vertex and at least one negative one
    new_tets.append(tets[(n_pos == 0) & (n_neg > 0)])
    # tets with all four vertices on the surface are dropped: they are flat
    # slivers hugging the surface (keeping them costs quality, not volume)

    m = (n_neg == 1) & (n_zero == 0)  # 1 neg, 3 pos
    a, b, c, d = st[m].T
    new_tets.append(np.stack([a, cp(a, b), cp(a, c), cp(a, d)], 1))
    m = (n_neg == 1) & (n_zero == 1) & (n_pos == 2)
    a, z, c, d = st[m].T
    new_tets.append(np.stack([a, z, cp(a, c), cp(a, d)], 1))
    m = (n_neg == 1) & (n_zero == 2) & (n_pos == 1)
    a, z1, z2, d = st[m].T
    new_tets.append(np.stack([a, z1, z2, cp(a, d)], 1))
    m = (n_neg == 2) & (n_zero == 1) & (n_pos == 1)
    a, b, z, d = st[m].T
    new_tets.extend(_pyramid(all_pts, z, a, b, cp(b, d), cp(a, d)))
    m = (n_neg == 2) & (n_zero == 0)
    a, b, c, d = st[m].T
    pt, ps = _prism(all_pts, (a, cp(a, c), cp(a, d)), (b, cp(b, c), cp(b, d)))
    new_tets.extend(pt)
    steiner.append(ps)
    m = (n_neg == 3) & (n_zero == 0)
    a, b, c, d = st[m].T
    pt, ps = _prism(all_pts, (a, b, c), (cp(a, d), cp(b, d), cp(c, d)))
    new_tets.extend(pt)
    steiner.append(ps)

    out = np.concatenate(new_tets, axis=0)
    # Steiner vertices of cyclic prisms
    n_steiner = 0
    extra = [s_ for s_ in steiner if len(s_[0])]
    if extra:
        base = len(all_pts)
        new_pts, more = [], []
        for centroids, faces in extra:
            ids = base + np.arange(len(centroids))
            base += len(centroids)
            new_pts.append(centroids)
            more.append(np.concatenate([faces, np.repeat(ids, 8)[:, None]], axis=1))
        all_pts = np.concatenate([all_pts] + new_pts, axis=0)
        on_surface = np.concatenate([on_surface, np.zeros(base - len(on_surface), bool)])
        n_steiner = sum(len(c) for c, _ in extra)
        out = np.concatenate([out] + more, axis=0)

    # drop unused vertices, orient positively
    used, inv = np.unique(out, return_inverse=True)
    out = inv.reshape(out.shape)
    P = all_pts[used]
    on_surface = on_surface[used]
    p = P[out]
    vol = np.einsum("ij,ij->i", p[:, 1] - p[:, 0], np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]))
    flip = vol < 0
    out[flip] = out[flip][:, [1, 0, 2, 3]]
    log.debug("stuffing: %d lattice tets, %d warped vertices, %d cut points, %d tets, %d Steiner",
              n_lattice, n_warped, len(ckey), len(out), n_steiner)
    return StuffingResult(P, out, on_surface, n_lattice, n_steiner)


def _diag_first(P, q0, q1, q2, q3) -> np.ndarray:
    """For quads (q0, q1, q2, q3) in cyclic order, True where the diagonal q0-q2 is chosen.

    Rule: the shorter diagonal; on a tie, the one through the smallest global id.
    It depends only on the quad, so the two tets sharing it agree.
    """
    d02 = ((P[q0] - P[q2]) ** 2).sum(1)
    d13 = ((P[q1] - P[q3]) ** 2).sum(1)
    m02 = np.minimum(q0, q2)
    m13 = np.minimum(q1, q3)
    return np.where(d02 == d13, m02 < m13, d02 < d13)


def _pyramid(P, apex, q0, q1, q2, q3):
    """Split pyramids (apex over quad q0 q1 q2 q3) into two tets each."""
    if len(apex) == 0:
        return []
    f = _diag_first(P, q0, q1, q2, q3)
    t1 = np.where(f[:, None], np.stack([apex, q0, q1, q2], 1), np.stack([apex, q0, q1, q3], 1))
    t2 = np.where(f[:, None], np.stack([apex, q0, q2, q3], 1), np.stack([apex, q1, q2, q3], 1))
    return [t1, t2]


def _prism(P, bottom, top):
    """Split prisms (bottom v0 v1 v2, top w0 w1 w2, vertical edges vi-wi).

    Returns (list of tet arrays, (steiner centroids (s, 3), steiner faces (8s, 3))).
    """
    v = np.stack(bottom, 1)
    w = np.stack(top, 1)
    k = len(v)
    if k == 0:
        return [], (np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    # quad i joins vertical edges i and i+1: (v_i, v_{i+1}, w_{i+1}, w_i)
    # bot[i] True: its diagonal touches the bottom vertex v_i (v_i - w_{i+1}),
    # else it touches v_{i+1} (v_{i+1} - w_i)
    bot = np.stack([_diag_first(P, v[:, i], v[:, (i + 1) % 3], w[:, (i + 1) % 3], w[:, i])
                    for i in range(3)], 1)
    # v_i touches two diagonals iff quad i has bot and quad i-1 has not
    # (quad i-1 joins edges i-1, i; its non-bot diagonal is v_i - w_{i-1})
    tets = []
    done = np.zeros(k, bool)
    for i in range(3):
        ip, im = (i + 1) % 3, (i - 1) % 3
        # v_i is a hub: tet (v_i, w_i, w_ip, w_im) + pyramid v_i over quad (v_ip, v_im, w_im, w_ip)
        hub_v = bot[:, i] & ~bot[:, im] & ~done
        if hub_v.any():
            r = np.nonzero(hub_v)[0]
            tets.append(np.stack([v[r, i], w[r, i], w[r, ip], w[r, im]], 1))
            tets.extend(_pyramid(P, v[r, i], v[r, ip], v[r, im], w[r, im], w[r, ip]))
            done |= hub_v
        # w_i is a hub: quad i chose v_ip - w_i (not bot) and quad im chose v_im - w_i (bot)
        hub_w = ~bot[:, i] & bot[:, im] & ~done
        if hub_w.any():
            r = np.nonzero(hub_w)[0]
            tets.append(np.stack([w[r, i], v[r, i], v[r, ip], v[r, im]], 1))
            tets.extend(_pyramid(P, w[r, i], v[r, ip], v[r, im], w[r, im], w[r, ip]))
            done |= hub_w
    r = np.nonzero(~done)[0]  # cyclic: Steiner point at the centroid, 8 tets
    if len(r) == 0:
        return tets, (np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    vv, ww = v[r], w[r]
    cen = (P[vv].sum(1) + P[ww].sum(1)) / 6.0
    faces = [np.stack([vv[:, 0], vv[:, 1], vv[:, 2]], 1), np.stack([ww[:, 0], ww[:, 1], ww[:, 2]], 1)]
    for i in range(3):
        ip = (i + 1) % 3
        f = _diag_first(P, vv[:, i], vv[:, ip], ww[:, ip], ww[:, i])
        faces.append(np.where(f[:, None], np.stack([vv[:, i], vv[:, ip], ww[:, ip]], 1),
                              np.stack([vv[:, i], vv[:, ip], ww[:, i]], 1)))
        faces.append(np.where(f[:, None], np.stack([vv[:, i], ww[:, ip], ww[:, i]], 1),
                              np.stack([vv[:, ip], ww[:, ip], ww[:, i]], 1)))
    faces = np.stack(faces, 1).reshape(-1, 3)  # (8 per prism)
    return tets, (cen, faces)
