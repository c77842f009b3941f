"""Compiled pass that checks a tetrahedral mesh's index arrays as a :class:`~organsim.mesh.tetmesh.TetMesh`
is built.

A cut builds a new mesh every increment that changes it, so these checks sit on the
interactive path of cutting: one pass over the tets and one over the region ids, instead of
numpy's separate minimum, maximum and count passes (with a copy of the ids to 64 bits).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Region ids below this are counted in a table; larger (or negative) ones are left to numpy.
REGION_TABLE = 1 << 16


@njit(cache=True, nogil=True)
def index_summary(tets, region_ids):
    """Smallest and largest node id in ``tets`` (m, 4), and the region ids present.

    Returns
    -------
    lo, hi : int
        Smallest and largest node id (0 and -1 for no tets).
    present : ndarray (k,) int32
        The distinct region ids, ascending; empty when an id is negative or not below
        :data:`REGION_TABLE` (then the caller counts them itself).
    counted : bool
        Whether ``present`` was counted (all ids in range).
    """
    m = tets.shape[0]
    lo = 0
    hi = -1
    if m:
        lo = tets[0, 0]
        hi = tets[0, 0]
    for e in range(m):
        for a in range(4):
            v = tets[e, a]
            if v < lo:
                lo = v
            elif v > hi:
                hi = v
    seen = np.zeros(REGION_TABLE, dtype=np.bool_)
    top = -1
    for e in range(region_ids.shape[0]):
        r = region_ids[e]
        if r < 0 or r >= REGION_TABLE:
            return lo, hi, np.zeros(0, dtype=np.int32), False
        seen[r] = True
        if r > top:
            top = r
    k = 0
    for r in range(top + 1):
        if seen[r]:
            k += 1
    present = np.empty(k, dtype=np.int32)
    k = 0
    for r in range(top + 1):
        if seen[r]:
            present[k] = r
            k += 1
    return lo, hi, present, True
