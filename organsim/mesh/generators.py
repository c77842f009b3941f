"""Tetrahedral meshes of simple shapes built in code (tests, benchmarks, exercises)."""

from __future__ import annotations

import numpy as np

from ..errors import MeshError
from .tetmesh import TetMesh

__all__ = ["box_tet_mesh"]

# Kuhn (Freudenthal) split of the unit cube into 6 tets along the 0-7 diagonal;
# every cube is split the same way, so neighbouring cubes share conforming faces.
# Corner c has offsets (c & 1, (c >> 1) & 1, (c >> 2) & 1).
_KUHN = np.array([
    [0, 1, 3, 7], [0, 1, 5, 7], [0, 2, 3, 7],
    [0, 2, 6, 7], [0, 4, 5, 7], [0, 4, 6, 7],
], dtype=np.int64)


def box_tet_mesh(shape: tuple[int, int, int], spacing: float | tuple[float, float, float],
                 *, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> TetMesh:
    """A box of ``shape`` nodes split into 6 tets per grid cell.

    Parameters
    ----------
    shape : (int, int, int)
        Nodes along x, y, z (at least 2 each).
    spacing : float or (float, float, float)
        Node spacing (m).
    origin : (float, float, float)
        Position of the corner node with the smallest coordinates (m).

    Returns
    -------
    TetMesh
        ``prod(shape)`` nodes and ``6 * prod(shape - 1)`` positively oriented tets;
        node ``(i, j, k)`` has id ``i + nx * (j + ny * k)``.

    Examples
    --------
    >>> m = box_tet_mesh((40, 10, 10), 0.01)   # the step-beam-19k benchmark mesh
    >>> m.n_points, m.n_tets
    (4000, 18954)
    """
    nx, ny, nz = (int(s) for s in shape)
    if min(nx, ny, nz) < 2:
        raise MeshError(f"a box mesh needs at least 2 nodes per axis, got shape {shape}")
    h = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    pts = np.column_stack([i.ravel(order="F"), j.ravel(order="F"), k.ravel(order="F")]) * h
    pts = pts + np.asarray(origin, dtype=np.float64)
    ci, cj, ck = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), np.arange(nz - 1), indexing="ij")
    base = (ci + nx * (cj + ny * ck)).ravel()
    corner = np.array([(c & 1) + nx * (((c >> 1) & 1) + ny * ((c >> 2) & 1)) for c in range(8)])
    tets = (base[:, None, None] + corner[_KUHN][None, :, :]).reshape(-1, 4)
    mesh = TetMesh(pts, tets)
    neg = mesh.volumes < 0
    if np.any(neg):
        tets = tets.copy()
        tets[neg] = tets[neg][:, [0, 2, 1, 3]]
        mesh = TetMesh(pts, tets)
    return mesh
