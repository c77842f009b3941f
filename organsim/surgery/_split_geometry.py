"""Tet face and edge tables and the small compiled geometry primitives the cutting kernels share.

The tables number a tet's four outward faces (:data:`_FACES`), six edges (:data:`_EDGES`)
and the edge between two of its vertices (:data:`_EDGE_OF`); :func:`_vol` is a signed tet
volume and :func:`_tri_normal` a triangle's unnormalised normal.
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
