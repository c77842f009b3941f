"""Is a tet mesh a valid solid? Folds, the boundary as a closed 2-manifold, enclosed volume.

Positive signed volumes alone do not make a valid mesh: a tet can overlap its
neighbours (a fold) with every volume positive, and a boundary can touch itself
at an edge or a vertex. The checks here are cheap (vectorized, linear in the
mesh size):

- :func:`folded_faces`: interior faces whose two tets lie on the same side;
- :func:`boundary_defects`: boundary edges not shared by exactly two boundary
  faces, and pinched boundary vertices (whose boundary faces form more than one
  fan);
- :func:`enclosed_volume`: the volume the boundary encloses (divergence
  theorem); for a valid mesh it equals the sum of the tet volumes.
"""

from __future__ import annotations

import numpy as np

from .tetmesh import TET_FACES, TetMesh

__all__ = ["boundary_defects", "enclosed_volume", "folded_faces", "solid_report"]


def folded_faces(mesh: TetMesh) -> int:
    """Number of interior faces whose two tets lie on the same side of it (folds).

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> folded_faces(box_tet_mesh((3, 3, 3), 0.01))
    0
    """
    if mesh.n_tets < 2:
        return 0
    tets = mesh.tets
    x = mesh.points
    faces = tets[:, TET_FACES].reshape(-1, 3)                  # (4m, 3)
    opposite = tets.reshape(-1)                                # face j of a tet is opposite vertex j
    key = np.sort(faces, axis=1)
    order = np.lexsort(key.T[::-1])
    ks = key[order]
    same = np.all(ks[1:] == ks[:-1], axis=1)
    first = order[:-1][same]
    second = order[1:][same]
    f = faces[first]
    n = np.cross(x[f[:, 1]] - x[f[:, 0]], x[f[:, 2]] - x[f[:, 0]])
    s1 = np.einsum("ij,ij->i", x[opposite[first]] - x[f[:, 0]], n)
    s2 = np.einsum("ij,ij->i", x[opposite[second]] - x[f[:, 0]], n)
    return int(np.count_nonzero(s1 * s2 > 0))


def enclosed_volume(mesh: TetMesh, positions: np.ndarray | None = None) -> float:
    """Volume (m^3) enclosed by the boundary faces (outward), by the divergence theorem."""
    x = mesh.points if positions is None else np.asarray(positions, dtype=np.float64)
    bf = mesh.boundary_faces
    if len(bf) == 0:
        return 0.0
    a, b, c = x[bf[:, 0]], x[bf[:, 1]], x[bf[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def boundary_defects(mesh: TetMesh) -> tuple[int, int]:
    """Boundary edges not in exactly two boundary faces, and pinched boundary vertices.

    Returns
    -------
    (n_nonmanifold_edges, n_pinched_vertices) : (int, int)

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> boundary_defects(box_tet_mesh((3, 3, 3), 0.01))
    (0, 0)
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    bf = mesh.boundary_faces
    if len(bf) == 0:
        return 0, 0
    k = len(bf)
    # each face's three edges, as (lo, hi) with the face and the two corner slots
    e = np.concatenate([bf[:, [0, 1]], bf[:, [1, 2]], bf[:, [2, 0]]])
    face = np.tile(np.arange(k), 3)
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    ekey = lo.astype(np.int64) * (mesh.n_points + 1) + hi
    order = np.argsort(ekey, kind="stable")
    ks = ekey[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[starts, len(ks)])
    n_bad_edges = int(np.count_nonzero(counts != 2))
    # fans: a corner (face, vertex) is joined to the corner of the other face across each of
    # the vertex's two edges in the face; a vertex is pinched when its corners form >1 fan
    pair = starts[counts == 2]
    f1, f2 = face[order[pair]], face[order[pair + 1]]
    u, v = lo[order[pair]], hi[order[pair]]
    corner_id = (np.arange(k)[:, None] * 3 + np.arange(3)[None, :])      # (k, 3)

    def slot(faces_, verts):
        return corner_id[faces_, np.argmax(bf[faces_] == verts[:, None], axis=1)]

    rows = np.concatenate([slot(f1, u), slot(f1, v)])
    cols = np.concatenate([slot(f2, u), slot(f2, v)])
    g = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * k, 3 * k))
    _, lab = connected_components(g, directed=False)
    vert = bf.ravel()
    comp = np.unique(np.c_[vert, lab], axis=0)
    fans = np.bincount(comp[:, 0], minlength=mesh.n_points)
    return n_bad_edges, int(np.count_nonzero(fans > 1))


def solid_report(mesh: TetMesh) -> dict:
    """All the checks: ``n_folded_faces``, ``n_nonmanifold_boundary_edges``, ``n_pinched_vertices``,
    ``volume_excess_fraction`` ((sum of tet volumes - enclosed volume) / enclosed volume)."""
    n_edges, n_pinched = boundary_defects(mesh)
    enclosed = enclosed_volume(mesh)
    total = float(mesh.volumes.sum())
    return {
        "n_folded_faces": folded_faces(mesh),
        "n_nonmanifold_boundary_edges": n_edges,
        "n_pinched_vertices": n_pinched,
        "volume_excess_fraction": (total - enclosed) / enclosed if enclosed > 0 else float("inf"),
    }
