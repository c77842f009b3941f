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
  theorem); for a valid mesh it equals the sum of the tet volumes;
- :func:`internal_boundary_faces`: boundary faces with tissue right outside them
  and no coincident face on the other side: a non-conforming interface (the two
  sides triangulate the same polygon differently, so the mesh has a crack no cut
  made). The volume and manifold checks cannot see it: the two triangulations'
  contributions cancel, and an isolated one closes on itself.
"""

from __future__ import annotations

import numpy as np

from .tetmesh import TET_FACES, TetMesh

__all__ = ["boundary_defect_sites", "boundary_defects", "enclosed_volume", "folded_faces", "internal_boundary_faces",
           "solid_report"]


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
    edges, verts = boundary_defect_sites(mesh)
    return len(edges), len(verts)


def boundary_defect_sites(mesh: TetMesh) -> tuple[np.ndarray, np.ndarray]:
    """Where the boundary is not a closed 2-manifold.

    Returns
    -------
    edges : ndarray, shape (e, 2), int64
        Boundary edges (smaller node first) not in exactly two boundary faces.
    vertices : ndarray, shape (v,), int64
        Pinched boundary vertices: their boundary faces form more than one fan, ascending.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    bf = mesh.boundary_faces
    if len(bf) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
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
    bad = order[starts[counts != 2]]
    bad_edges = np.column_stack([lo[bad], hi[bad]]).astype(np.int64)
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
    return bad_edges, np.flatnonzero(fans > 1).astype(np.int64)


def internal_boundary_faces(mesh: TetMesh, *, rel_offset: float = 1e-2) -> np.ndarray:
    """Boundary faces that have tissue right outside them and no coincident partner face.

    In the rest configuration every boundary face of a valid mesh has either nothing
    outside it (the skin) or, across a separated cut, a coincident face of the other side
    (same node positions). A face with tissue outside and no such partner lies on an
    interface the two sides triangulate differently (hanging nodes).

    Parameters
    ----------
    mesh : TetMesh
        In its rest configuration (cut sides coincide there).
    rel_offset : float
        The probe point is the face centroid moved out along the normal by this fraction
        of the face's size (square root of twice its area); tissue thinner than that
        outside a face is not seen.

    Returns
    -------
    ndarray, shape (q,), int64
        Indices into ``mesh.boundary_faces``, ascending.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> len(internal_boundary_faces(box_tet_mesh((3, 3, 3), 0.01)))
    0
    """
    bf = mesh.boundary_faces
    if len(bf) == 0:
        return np.zeros(0, dtype=np.int64)
    P = mesh.points[bf]                                   # (k, 3, 3)
    n = np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0])
    size = np.sqrt(np.linalg.norm(n, axis=1))             # sqrt(2 area)
    nn = n / np.maximum(np.linalg.norm(n, axis=1), 1e-300)[:, None]
    probe = P.mean(axis=1) + rel_offset * size[:, None] * nn
    cell = np.asarray(mesh.to_pyvista().find_containing_cell(probe), dtype=np.int64).reshape(-1)
    cand = np.flatnonzero((cell >= 0) & (cell != mesh.boundary_face_tets))
    if len(cand) == 0:
        return cand
    # the locator answers within a tolerance: keep the probes truly inside the tet it found
    T = mesh.points[mesh.tets[cell[cand]]]                       # (c, 4, 3)
    A = np.transpose(T[:, 1:] - T[:, :1], (0, 2, 1))
    lam = np.linalg.solve(A, (probe[cand] - T[:, 0])[:, :, None])[:, :, 0]
    cand = cand[np.minimum(1.0 - lam.sum(axis=1), lam.min(axis=1)) > -1e-9]
    if len(cand) == 0:
        return cand
    # coincident partners: the same three positions (rounded far below any edge length)
    scale = float(np.ptp(mesh.points, axis=0).max()) or 1.0
    q = np.round(P / (1e-9 * scale)).astype(np.int64)
    order = np.lexsort((q[:, :, 2], q[:, :, 1], q[:, :, 0]), axis=-1)       # the corners in a fixed order
    q = np.take_along_axis(q, order[:, :, None], axis=1).reshape(len(bf), 9)
    _, inv, counts = np.unique(q, axis=0, return_inverse=True, return_counts=True)
    partnered = counts[inv.reshape(-1)] > 1
    return cand[~partnered[cand]].astype(np.int64)


def solid_report(mesh: TetMesh) -> dict:
    """All the checks: ``n_folded_faces``, ``n_nonmanifold_boundary_edges``, ``n_pinched_vertices``,
    ``n_internal_boundary_faces`` (:func:`internal_boundary_faces`) and
    ``volume_excess_fraction`` ((sum of tet volumes - enclosed volume) / enclosed volume)."""
    n_edges, n_pinched = boundary_defects(mesh)
    enclosed = enclosed_volume(mesh)
    total = float(mesh.volumes.sum())
    return {
        "n_folded_faces": folded_faces(mesh),
        "n_nonmanifold_boundary_edges": n_edges,
        "n_pinched_vertices": n_pinched,
        "n_internal_boundary_faces": len(internal_boundary_faces(mesh)),
        "volume_excess_fraction": (total - enclosed) / enclosed if enclosed > 0 else float("inf"),
    }
