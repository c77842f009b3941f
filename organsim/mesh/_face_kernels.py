"""Compiled kernel for the boundary of a tetrahedral mesh.

The boundary is recomputed for every new mesh a cut produces (the viewer draws it,
instruments anchor to it), so it is found in linear time, without a comparison
sort: each tet's four vertex ids are sorted once, which gives every face as
(lo, mid, hi) (the face opposite a vertex is the other three, in order). Three
stable counting-sort passes, by hi, by mid, then by lo (buckets of the smallest
vertex), leave equal faces next to each other; a face with no equal neighbour
belongs to one tet only. Work arrays are int32 (ids and face numbers must be
below 2**31); the outputs are int64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# outward faces of a positively oriented tet (the same as organsim.mesh.tetmesh.TET_FACES);
# face j is the one opposite vertex j
_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]], dtype=np.int64)

_LOW32 = 0xFFFFFFFF


@njit(cache=True)
def boundary_faces(tets, n_points):
    """Faces that belong to one tet only.

    Parameters
    ----------
    tets : (m, 4) int64
        Vertex ids, each in ``[0, n_points)``.
    n_points : int
        Number of points (below 2**31); ``4 m`` must be below 2**31 too.

    Returns
    -------
    faces : (b, 3) int64
        Boundary faces in tet order, then in local face order (``_FACES``), oriented
        as the tet's outward face.
    owner : (b,) int64
        The tet of each.

    Notes
    -----
    A face that occurs two or more times (shared by tets, also in non-manifold or
    duplicated configurations) is not boundary. Inside the kernel a face is
    numbered ``4 * tet + r``, ``r`` the sorted position of the vertex it is
    opposite.
    """
    m = tets.shape[0]
    k = 4 * m
    n = n_points
    if n >= 2**31 or k >= 2**31:
        raise ValueError("boundary_faces: ids and face numbers must be below 2**31")
    # sorted ids of each tet (s0 <= s1 <= s2 <= s3) and the bucket sizes of all three keys:
    # face r0 = (s1, s2, s3), r1 = (s0, s2, s3), r2 = (s0, s1, s3), r3 = (s0, s1, s2)
    S = np.empty((m, 4), dtype=np.int32)
    c_lo = np.zeros(n + 1, dtype=np.int32)
    c_mid = np.zeros(n + 1, dtype=np.int32)
    c_hi = np.zeros(n + 1, dtype=np.int32)
    for e in range(m):
        a = np.int32(tets[e, 0])
        b = np.int32(tets[e, 1])
        c = np.int32(tets[e, 2])
        d = np.int32(tets[e, 3])
        a, b = min(a, b), max(a, b)
        c, d = min(c, d), max(c, d)
        a, c = min(a, c), max(a, c)
        b, d = min(b, d), max(b, d)
        b, c = min(b, c), max(b, c)
        S[e, 0] = a
        S[e, 1] = b
        S[e, 2] = c
        S[e, 3] = d
        c_lo[a + 1] += 3
        c_lo[b + 1] += 1
        c_mid[b + 1] += 2
        c_mid[c + 1] += 2
        c_hi[c + 1] += 1
        c_hi[d + 1] += 3
    for v in range(n):
        c_lo[v + 1] += c_lo[v]
        c_mid[v + 1] += c_mid[v]
        c_hi[v + 1] += c_hi[v]
    # pass 1, by hi, a tet at a time: record mid << 32 | face
    R = np.empty(k, dtype=np.int64)
    for e in range(m):
        m1 = np.int64(S[e, 1]) << 32
        s2 = S[e, 2]
        s3 = S[e, 3]
        m2 = np.int64(s2) << 32
        f = 4 * e
        p = c_hi[s3]
        c_hi[s3] = p + 3
        R[p] = m2 | f
        R[p + 1] = m2 | (f + 1)
        R[p + 2] = m1 | (f + 2)
        q = c_hi[s2]
        c_hi[s2] = q + 1
        R[q] = m1 | (f + 3)
    # pass 2, by mid (stable): record lo << 32 | face
    R2 = np.empty(k, dtype=np.int64)
    for i in range(k):
        x = R[i]
        md = np.int32(x >> 32)
        fid = np.int32(x & _LOW32)
        e = fid >> 2
        lo = S[e, 0] if (fid & 3) > 0 else S[e, 1]
        p = c_mid[md]
        c_mid[md] = p + 1
        R2[p] = (np.int64(lo) << 32) | fid
    # pass 3, by lo (stable): faces now in (lo, mid, hi) order
    T = np.empty(k, dtype=np.int32)
    for i in range(k):
        x = R2[i]
        lo = np.int32(x >> 32)
        p = c_lo[lo]
        c_lo[lo] = p + 1
        T[p] = np.int32(x & _LOW32)
    # a face is shared when it equals its predecessor or successor
    shared = np.empty(k, dtype=np.bool_)
    prev_lo = np.int32(-1)
    prev_key = np.int64(-1)
    prev_eq = False
    for i in range(k):
        fid = T[i]
        e = fid >> 2
        r = fid & 3
        lo = S[e, 0] if r > 0 else S[e, 1]
        md = S[e, 2] if r < 2 else S[e, 1]
        hi = S[e, 3] if r < 3 else S[e, 2]
        key = (np.int64(md) << 32) | hi
        eq = (lo == prev_lo) & (key == prev_key)
        if i > 0:
            shared[T[i - 1]] = prev_eq | eq
        prev_eq = eq
        prev_lo = lo
        prev_key = key
    if k > 0:
        shared[T[k - 1]] = prev_eq
    n_shared = 0
    for f in range(k):
        n_shared += shared[f]
    nb = k - n_shared
    faces = np.empty((nb, 3), dtype=np.int64)
    owner = np.empty(nb, dtype=np.int64)
    all4 = shared.view(np.uint32)  # 0x01010101: every face of the tet is shared
    i = 0
    for e in range(m):
        if all4[e] == 0x01010101:
            continue
        s0 = S[e, 0]
        s1 = S[e, 1]
        s2 = S[e, 2]
        for j in range(4):
            # face j is opposite vertex j: its number is 4 e + that vertex's sorted
            # position (of equal ids, the first; the faces opposite them are shared)
            v = tets[e, j]
            if not shared[4 * e + (v > s0) + (v > s1) + (v > s2)]:
                faces[i, 0] = tets[e, _FACES[j, 0]]
                faces[i, 1] = tets[e, _FACES[j, 1]]
                faces[i, 2] = tets[e, _FACES[j, 2]]
                owner[i] = e
                i += 1
    return faces, owner
