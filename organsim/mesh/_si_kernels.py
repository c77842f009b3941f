"""Compiled (numba) kernels of :func:`organsim.mesh.repair.find_self_intersections`.

Kept in their own module, imported on first use, so that importing
:mod:`organsim.mesh.repair` does not import numba, and so that numba's on-disk
cache (``cache=True``) works (it cannot cache functions defined in a closure).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["grid_entries", "si_pairs"]


@numba.njit(cache=True)
def grid_entries(i0, i1, count, dims):
    total = 0
    for f in range(len(count)):
        total += count[f]
    tid = np.empty(total, np.int64)
    key = np.empty(total, np.int64)
    k = 0
    for f in range(len(count)):
        for x in range(i0[f, 0], i1[f, 0] + 1):
            for y in range(i0[f, 1], i1[f, 1] + 1):
                for z in range(i0[f, 2], i1[f, 2] + 1):
                    tid[k] = f
                    key[k] = x + dims[0] * (y + dims[1] * z)
                    k += 1
    return tid, key

@numba.njit(cache=True)
def seg_hits(p, q, a, b, c):
    eps = 1e-9
    d0, d1, d2 = q[0] - p[0], q[1] - p[1], q[2] - p[2]
    e10, e11, e12 = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    e20, e21, e22 = c[0] - a[0], c[1] - a[1], c[2] - a[2]
    h0 = d1 * e22 - d2 * e21
    h1 = d2 * e20 - d0 * e22
    h2 = d0 * e21 - d1 * e20
    det = e10 * h0 + e11 * h1 + e12 * h2
    scale = (np.sqrt(e10 * e10 + e11 * e11 + e12 * e12)
             * np.sqrt(e20 * e20 + e21 * e21 + e22 * e22)
             * np.sqrt(d0 * d0 + d1 * d1 + d2 * d2))
    if abs(det) <= 1e-12 * scale or det == 0.0:
        return False
    inv = 1.0 / det
    s0, s1, s2 = p[0] - a[0], p[1] - a[1], p[2] - a[2]
    u = inv * (s0 * h0 + s1 * h1 + s2 * h2)
    if u <= eps or u >= 1 - eps:
        return False
    q0 = s1 * e12 - s2 * e11
    q1 = s2 * e10 - s0 * e12
    q2 = s0 * e11 - s1 * e10
    v = inv * (d0 * q0 + d1 * q1 + d2 * q2)
    if v <= eps or u + v >= 1 - eps:
        return False
    t = inv * (e20 * q0 + e21 * q1 + e22 * q2)
    return t > eps and t < 1 - eps

@numba.njit(cache=True)
def separated(A, B):
    # All of B strictly on one side of A's plane.
    n0 = (A[1, 1] - A[0, 1]) * (A[2, 2] - A[0, 2]) - (A[1, 2] - A[0, 2]) * (A[2, 1] - A[0, 1])
    n1 = (A[1, 2] - A[0, 2]) * (A[2, 0] - A[0, 0]) - (A[1, 0] - A[0, 0]) * (A[2, 2] - A[0, 2])
    n2 = (A[1, 0] - A[0, 0]) * (A[2, 1] - A[0, 1]) - (A[1, 1] - A[0, 1]) * (A[2, 0] - A[0, 0])
    pos = 0
    neg = 0
    for k in range(3):
        dd = (B[k, 0] - A[0, 0]) * n0 + (B[k, 1] - A[0, 1]) * n1 + (B[k, 2] - A[0, 2]) * n2
        if dd > 0:
            pos += 1
        elif dd < 0:
            neg += 1
    return pos == 3 or neg == 3

@numba.njit(cache=True)
def si_pairs(tri, faces, lo, hi, i0, key, tid, starts, ends, dims):
    out = np.empty((64, 2), np.int64)
    n_out = 0
    for g in range(len(starts)):
        s, e = starts[g], ends[g]
        if e - s < 2:
            continue
        cell = key[s]
        cx = cell % dims[0]
        cy = (cell // dims[0]) % dims[1]
        cz = cell // (dims[0] * dims[1])
        for ia in range(s, e):
            i = tid[ia]
            for ib in range(ia + 1, e):
                j = tid[ib]
                if i == j:
                    continue
                if (lo[i, 0] > hi[j, 0] or lo[j, 0] > hi[i, 0] or lo[i, 1] > hi[j, 1]
                        or lo[j, 1] > hi[i, 1] or lo[i, 2] > hi[j, 2] or lo[j, 2] > hi[i, 2]):
                    continue
                # Test each pair once: in the cell holding the low corner of the
                # two boxes' overlap.
                if (max(i0[i, 0], i0[j, 0]) != cx or max(i0[i, 1], i0[j, 1]) != cy
                        or max(i0[i, 2], i0[j, 2]) != cz):
                    continue
                shared = False
                for u in range(3):
                    for w in range(3):
                        if faces[i, u] == faces[j, w]:
                            shared = True
                if shared:
                    continue
                A = tri[i]
                B = tri[j]
                if separated(A, B) or separated(B, A):
                    continue
                hit = False
                for k in range(3):
                    if seg_hits(A[k], A[(k + 1) % 3], B[0], B[1], B[2]) or \
                            seg_hits(B[k], B[(k + 1) % 3], A[0], A[1], A[2]):
                        hit = True
                        break
                if hit:
                    if n_out == len(out):
                        bigger = np.empty((2 * len(out), 2), np.int64)
                        bigger[:n_out] = out[:n_out]
                        out = bigger
                    out[n_out, 0] = min(i, j)
                    out[n_out, 1] = max(i, j)
                    n_out += 1
    return out[:n_out]
