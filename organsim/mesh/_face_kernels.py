"""Compiled kernel for the boundary of a tetrahedral mesh.

The boundary is recomputed for every new mesh a cut produces (the viewer draws it,
instruments anchor to it), so it is found in linear time: faces are bucketed by
their smallest vertex and compared within each (short) bucket, instead of sorting
all of them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# outward faces of a positively oriented tet (the same as organsim.mesh.tetmesh.TET_FACES)
_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]], dtype=np.int64)


@njit(cache=True)
def boundary_faces(tets, n_points):
    """Faces that belong to one tet only.

    Parameters
    ----------
    tets : (m, 4) int64. n_points : int.

    Returns
    -------
    faces : (b, 3) int64
        Boundary faces in tet order, oriented as the tet's outward face.
    owner : (b,) int64
        The tet of each.
    """
    m = tets.shape[0]
    k = 4 * m
    start = np.zeros(n_points + 1, dtype=np.int64)
    lo = np.empty(k, dtype=np.int64)
    for e in range(m):
        for j in range(4):
            a = tets[e, _FACES[j, 0]]
            b = tets[e, _FACES[j, 1]]
            c = tets[e, _FACES[j, 2]]
            s = min(a, min(b, c))
            lo[4 * e + j] = s
            start[s + 1] += 1
    for i in range(n_points):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    bface = np.empty(k, dtype=np.int64)
    bmid = np.empty(k, dtype=np.int64)
    bhi = np.empty(k, dtype=np.int64)
    for e in range(m):
        for j in range(4):
            a = tets[e, _FACES[j, 0]]
            b = tets[e, _FACES[j, 1]]
            c = tets[e, _FACES[j, 2]]
            s = lo[4 * e + j]
            big = max(a, max(b, c))
            p = fill[s]
            fill[s] += 1
            bface[p] = 4 * e + j
            bmid[p] = a + b + c - s - big
            bhi[p] = big
    single = np.ones(k, dtype=np.bool_)
    for v in range(n_points):
        for p in range(start[v], start[v + 1]):
            for q in range(p + 1, start[v + 1]):
                if bmid[p] == bmid[q] and bhi[p] == bhi[q]:
                    single[bface[p]] = False
                    single[bface[q]] = False
    nb = 0
    for f in range(k):
        if single[f]:
            nb += 1
    faces = np.empty((nb, 3), dtype=np.int64)
    owner = np.empty(nb, dtype=np.int64)
    i = 0
    for f in range(k):
        if single[f]:
            e = f // 4
            j = f % 4
            faces[i, 0] = tets[e, _FACES[j, 0]]
            faces[i, 1] = tets[e, _FACES[j, 1]]
            faces[i, 2] = tets[e, _FACES[j, 2]]
            owner[i] = e
            i += 1
    return faces, owner
