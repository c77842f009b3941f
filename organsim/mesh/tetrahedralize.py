"""Tetrahedralization: a quality tet mesh from a label image or a closed surface.

Three methods, all followed by the same quality gate:

``"lattice"`` (default, our own code, BSD like the rest of organsim)
    Isosurface stuffing on a body-centred-cubic lattice
    (:mod:`organsim.mesh.stuffing`), straight from the label volume (a lightly
    Gaussian-smoothed indicator of the union of the organ's labels, level 1/2,
    nudged to keep the voxel volume) or from a closed surface (its signed
    distance, offset to keep the enclosed volume). Regions: every tet takes the
    majority label of five samples inside it (centre and midpoints towards its
    corners); then :func:`fit_interfaces` moves interior nodes between two
    regions onto the label boundary (if the tets around stay above 15 deg) and
    regions are re-assigned. So the outer surface is stuffed exactly, and the
    inner interfaces are tet faces that follow the labels to a fraction of an
    edge length (not exactly conforming; structures thinner than an edge stay
    coarse).
``"tetwild"``
    fTetWild through ``pytetwild`` (MPL-2.0), from a surface. Optional extra.
``"tetgen"``
    TetGen through ``tetgen`` (TetGen is AGPL-3.0), from a surface; optional
    extra, imported only when asked for, never required.

The quality gate (:func:`quality_gate`) rejects inverted or zero-volume tets and
dihedral angles outside [``min_dihedral_deg``, ``max_dihedral_deg``]. It first
repairs: interior nodes of bad tets are moved (:func:`improve_interior`),
boundary edges where two thin parts touch are un-pinched
(:func:`unpinch_boundary`), and remaining bad boundary tets are peeled (at most
``max_peel_volume`` of the volume in all); it raises
:class:`~organsim.errors.MeshError` when it cannot.
"""
from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from ..errors import MeshError
from .labelimage import LabelImage
from .stuffing import stuff
from .surface import TriSurface
from .tetmesh import TetMesh

__all__ = ["tetrahedralize", "quality_gate", "default_edge_length", "METHODS",
           "image_implicit", "surface_implicit", "improve_interior", "unpinch_boundary",
           "fit_interfaces", "with_image_regions", "crop_to_labels", "label_mask",
           "present_labels", "boundary_of"]

log = logging.getLogger(__name__)

METHODS = ("lattice", "tetwild", "tetgen")
#: Default quality bounds (degrees).
MIN_DIHEDRAL_DEG = 10.0
MAX_DIHEDRAL_DEG = 170.0


def default_edge_length(extent_m: float) -> float:
    """Default target edge length: 1/25 of the largest extent of the object (m)."""
    return float(extent_m) / 25.0


# ------------------------------------------------------------------- implicits
def label_mask(labels_array: np.ndarray, labels) -> np.ndarray:
    """Boolean mask of the voxels carrying any of ``labels``, in the array's own memory order.

    Unlike ``np.isin``, this never copies a transposed (Fortran-ordered) volume
    into C order, which costs seconds on a CT-sized scan.
    """
    labs = [int(v) for v in labels]
    mask = labels_array == labs[0]
    for v in labs[1:]:
        mask |= labels_array == v
    return mask


def present_labels(image: LabelImage) -> list[int]:
    """Sorted non-zero labels of an image (a fast bincount for small non-negative labels)."""
    lab = image.labels
    if lab.dtype.kind in "ui" and lab.size and lab.dtype.itemsize <= 2:
        lo = int(lab.min())
        if lo >= 0:
            flat = lab.ravel(order="K")  # a view for C- or Fortran-ordered volumes
            counts = np.bincount(flat.astype(np.int64) if lab.dtype.kind == "i" else flat)
            return [int(v) for v in np.nonzero(counts)[0] if v != 0]
    return image.present_labels()


def _mean_edge_length(points: np.ndarray, tets: np.ndarray) -> float:
    """Mean length of the tets' edges, counted per tet (m); cheap stand-in for the unique-edge mean."""
    p = points[tets]
    d = [np.linalg.norm(p[:, a] - p[:, b], axis=1) for a, b in
         ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))]
    return float(np.mean(d)) if len(tets) else 0.0


def crop_to_labels(image: LabelImage, labels, *, margin: int = 2) -> LabelImage:
    """The part of ``image`` around the voxels of ``labels`` (plus ``margin`` voxels).

    Voxels of other labels inside the box are kept; world positions are
    unchanged (the origin moves with the crop). Meshing a small organ in a
    large scan then only touches the organ's box.
    """
    mask = label_mask(image.labels, labels)
    if not mask.any():
        raise MeshError(f"no voxel carries label(s) {list(labels)}; present labels are "
                        f"{image.present_labels()}; pass one of those")
    lo = np.array([np.nonzero(mask.any(axis=ax))[0][0] for ax in ((1, 2), (0, 2), (0, 1))])
    hi = np.array([np.nonzero(mask.any(axis=ax))[0][-1] + 1 for ax in ((1, 2), (0, 2), (0, 1))])
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, image.shape)
    if np.all(lo == 0) and np.all(hi == image.shape):
        return image
    sub = np.ascontiguousarray(image.labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    origin = image.index_to_world(lo[None].astype(float))[0]
    return LabelImage(sub, image.spacing, origin, image.direction, image.label_names)


def _image_field(image: LabelImage, labels, smoothing: float):
    """Cropped, padded, smoothed indicator of ``labels`` and its placement (cached per call site)."""
    from scipy import ndimage

    mask = label_mask(image.labels, labels)
    if not mask.any():
        raise MeshError(f"no voxel carries label(s) {list(labels)}; present labels are "
                        f"{image.present_labels()}; pass one of those")
    idx = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0], \
        np.nonzero(mask.any(axis=(0, 1)))[0]
    start = np.array([a[0] for a in idx])
    stop = np.array([a[-1] + 1 for a in idx])
    margin = int(np.ceil(3 * smoothing)) + 2
    crop = np.zeros(tuple(stop - start + 2 * margin), dtype=np.float32)
    crop[margin:-margin, margin:-margin, margin:-margin] = mask[
        start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]]
    if smoothing > 0:
        crop = ndimage.gaussian_filter(crop, sigma=smoothing, mode="constant", cval=0.0)
    sp = np.asarray(image.spacing, dtype=np.float64)
    return crop, start - margin, sp, (start - 0.5) * sp, (stop - 0.5) * sp


def image_implicit(image: LabelImage, labels, *, smoothing: float = 1.0, level: float = 0.0,
                   _field=None):
    """Implicit function of the region ``labels`` of an image, in its physical frame.

    The physical frame is the image's index frame scaled by the spacing
    (``q = spacing * ijk``, metres); world = ``origin + direction @ q``.

    Parameters
    ----------
    image : LabelImage
    labels : sequence of int
        Labels that make up the object.
    smoothing : float
        Gaussian sigma in voxels applied to the 0/1 indicator before taking
        its 1/2 level set (0: trilinear interpolation of the raw indicator).
    level : float
        Shift of the iso-level in indicator units (positive grows the object);
        used to preserve the voxel volume.

    Returns
    -------
    f : callable, (k, 3) m -> (k,)
        Negative inside; about 0.5 far outside and -0.5 deep inside.
    lo, hi : ndarray, shape (3,)
        Physical-frame box (m) around the object.
    """
    from scipy import ndimage

    crop, shift, sp, lo, hi = _field if _field is not None else _image_field(image, labels,
                                                                            smoothing)
    field = (0.5 - level) - crop

    def f(q: np.ndarray) -> np.ndarray:
        ijk = np.asarray(q, dtype=np.float64) / sp - shift
        return ndimage.map_coordinates(field, ijk.T, order=1, mode="constant", cval=0.5 - level)

    return f, lo, hi


def surface_implicit(surface: TriSurface, *, level: float = 0.0):
    """Signed distance to a closed, outward-oriented surface (negative inside).

    ``level`` (m) offsets the surface outward (used to preserve volume).

    Returns ``(f, lo, hi)`` like :func:`image_implicit`, in the surface's frame (m).
    """
    # the vtkmodules submodules, not ``import vtk``, which loads every VTK library (seconds)
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkDoubleArray
    from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

    if surface.n_faces == 0:
        raise MeshError("the surface has no faces; expected a closed organ surface")
    poly = surface.to_pyvista()
    imp = vtkImplicitPolyDataDistance()
    imp.SetInput(poly)

    def f(q: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(q, dtype=np.float64)
        if len(q) == 0:
            return np.zeros(0)
        out = vtkDoubleArray()
        out.SetNumberOfTuples(len(q))
        imp.FunctionValue(numpy_to_vtk(q, deep=True), out)
        return vtk_to_numpy(out).astype(np.float64).copy() - level

    lo = surface.points.min(axis=0)
    hi = surface.points.max(axis=0)
    return f, lo, hi


def surface_distance_lower_bound(surface: TriSurface):
    """A cheap lower bound of the distance to a surface: (k, 3) m -> (k,) m.

    Distance to the nearest vertex minus the largest distance from a point of a
    triangle to its nearest corner (bounded by the longest edge).
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(surface.points)
    p = surface.points[surface.faces]
    longest = float(np.max(np.linalg.norm(p - np.roll(p, 1, axis=1), axis=2))) if len(p) else 0.0

    def lb(q: np.ndarray) -> np.ndarray:
        d, _ = tree.query(q)
        return np.maximum(d - longest, 0.0)

    return lb


# ---------------------------------------------------------------- quality gate
def boundary_of(mesh: TetMesh) -> tuple[np.ndarray, np.ndarray]:
    """Boundary faces (k, 3), outward, and their tets (k,), with 1-D keys (fast).

    Same result as ``mesh.boundary_faces`` / ``mesh.boundary_face_tets`` (up to
    order), without ``np.unique(axis=0)``.
    """
    from .tetmesh import TET_FACES

    faces = mesh.tets[:, TET_FACES].reshape(-1, 3)
    srt = np.sort(faces, axis=1)
    n = np.int64(max(mesh.n_points, 1))
    key = (srt[:, 0] * n + srt[:, 1]) * n + srt[:, 2]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    single = np.ones(len(ks), bool)
    dup = ks[1:] == ks[:-1]
    single[1:] &= ~dup
    single[:-1] &= ~dup
    idx = np.sort(order[single])
    return faces[idx], idx // 4


def _boundary_edge_manifold(mesh: TetMesh) -> bool:
    bf = boundary_of(mesh)[0]
    if len(bf) == 0:
        return False
    e = np.sort(bf[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, c = np.unique(e, axis=0, return_counts=True)
    return bool(np.all(c == 2))


def unpinch_boundary(mesh: TetMesh, *, max_volume_fraction: float = 0.005,
                     rounds: int = 8) -> tuple[TetMesh, int]:
    """Make the boundary edge-manifold by removing tets at pinched edges.

    Where a thin part of an organ is thinner than the edge length, two parts
    of the mesh can touch along a single edge (its boundary then has four
    faces at that edge). This removes, per round, the smallest boundary tet at
    each such edge until none is left, within ``max_volume_fraction`` of the
    volume.

    Returns
    -------
    mesh : TetMesh
    n_removed : int
    """
    v0 = mesh.volume
    cur = mesh
    removed = 0
    for _ in range(rounds):
        bf, bft = boundary_of(cur)
        e = np.sort(bf[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        key = e[:, 0] * cur.n_points + e[:, 1]
        uk, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        pinched = cnt[inv] > 2
        if not pinched.any():
            break
        face_idx = np.repeat(np.arange(len(bf)), 3)[pinched]
        tets = bft[face_idx]
        ekey = key[pinched]
        # per pinched edge, the smallest tet among its boundary tets
        order = np.lexsort((cur.volumes[tets], ekey))
        first = np.ones(len(order), bool)
        first[1:] = ekey[order][1:] != ekey[order][:-1]
        drop = np.unique(tets[order][first])
        keep = np.ones(cur.n_tets, bool)
        keep[drop] = False
        trial, _ = cur.submesh(keep)
        if v0 - trial.volume > max_volume_fraction * v0:
            break
        removed += len(drop)
        cur = trial
    return cur, removed


def _bad_mask(mesh: TetMesh, lo: float, hi: float) -> np.ndarray:
    ang = mesh.dihedral_angles
    vol = mesh.volumes
    scale = np.mean(np.abs(vol)) if len(vol) else 1.0
    return (ang.min(1) < lo) | (ang.max(1) > hi) | (vol <= 1e-12 * scale)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of (k, 3) arrays (np.cross has a large per-call overhead on small arrays)."""
    return np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
                     a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                     a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)


def _tet_scores(p: np.ndarray) -> np.ndarray:
    """Score min(min dihedral, 180 - max dihedral) (deg) of tets given as corner arrays (..., 4, 3).

    Non-positive tets score -1.
    """
    from .tetmesh import TET_FACES

    shp = p.shape[:-2]
    q = p.reshape(-1, 4, 3)
    a, b, c = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0], q[:, 3] - q[:, 0]
    vol = np.einsum("ij,ij->i", a, _cross(b, c))
    n = np.stack([_cross(q[:, j] - q[:, i], q[:, k] - q[:, i]) for i, j, k in TET_FACES], 1)
    ln = np.linalg.norm(n, axis=2, keepdims=True)
    n = n / np.where(ln > 0, ln, 1.0)
    pairs = [(2, 3), (1, 3), (1, 2), (0, 3), (0, 2), (0, 1)]
    ang = np.degrees(np.arccos(np.clip(np.stack([-np.einsum("ij,ij->i", n[:, f1], n[:, f2])
                                                  for f1, f2 in pairs], 1), -1, 1)))
    sc = np.minimum(ang.min(1), 180.0 - ang.max(1))
    scale = np.abs(vol).mean() if len(vol) else 1.0
    sc = np.where(vol > 1e-9 * scale, sc, -1.0)
    return sc.reshape(shp)


def improve_interior(mesh: TetMesh, *, target_deg: float = MIN_DIHEDRAL_DEG,
                     rounds: int = 4) -> tuple[TetMesh, int]:
    """Move interior nodes of bad tets to raise their worst dihedral angle.

    Only nodes that are not on the boundary move, and a move is accepted only
    if every tet around the node stays positively oriented and the node's
    worst score ``min(min dihedral, 180 - max dihedral)`` improves, so the
    boundary and the validity of the mesh are preserved. Candidate positions:
    the centroid of the node's neighbours, and steps away from the plane of
    the opposite face of each bad tet.

    Returns
    -------
    mesh : TetMesh
    n_moved : int
    """
    pts = np.array(mesh.points)
    tets = mesh.tets
    bnd = np.zeros(mesh.n_points, bool)
    bnd[boundary_of(mesh)[0].ravel()] = True
    flat = tets.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(mesh.n_points + 1))
    h = _mean_edge_length(mesh.points, mesh.tets)
    dirs = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1],
                     [1, 1, 1], [-1, -1, -1], [1, -1, 1], [-1, 1, -1], [1, 1, -1], [-1, -1, 1],
                     [1, -1, -1], [-1, 1, 1]], float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    n_moved = 0
    for _ in range(rounds):
        score = _tet_scores(pts[tets])
        bad = np.nonzero(score < target_deg)[0]
        if len(bad) == 0:
            break
        cand_nodes = np.unique(tets[bad])
        cand_nodes = cand_nodes[~bnd[cand_nodes]]
        if len(cand_nodes) == 0:
            break
        moved_round = 0
        for v in cand_nodes:
            inc = order[starts[v]:starts[v + 1]] // 4
            local = tets[inc]
            cur = score[inc].min()
            p0 = pts[v]
            nb = np.unique(local)
            nb = nb[nb != v]
            cands = [pts[nb].mean(0)]
            for t in inc[score[inc] < target_deg]:
                k = int(np.nonzero(tets[t] == v)[0][0])
                others = pts[np.delete(tets[t], k)]
                nrm = np.cross(others[1] - others[0], others[2] - others[0])
                nrm /= max(np.linalg.norm(nrm), 1e-300)
                side = np.sign(np.dot(p0 - others[0], nrm)) or 1.0
                cands += [p0 + side * nrm * s_ * h for s_ in (0.1, 0.2, 0.35, 0.5)]
            cands += list(p0 + dirs * 0.15 * h) + list(p0 + dirs * 0.3 * h)
            cands = np.array(cands)
            # corner arrays for every candidate: (c, k, 4, 3)
            corners = np.broadcast_to(pts[local], (len(cands),) + local.shape + (3,)).copy()
            mask = local == v
            corners[:, mask] = cands[:, None, :]
            sc = _tet_scores(corners).min(1)
            best = int(np.argmax(sc))
            if sc[best] > cur + 1e-6:
                pts[v] = cands[best]
                score[inc] = _tet_scores(pts[local])
                moved_round += 1
        n_moved += moved_round
        if moved_round == 0:
            break
    if n_moved == 0:
        return mesh, 0
    return mesh.with_points(pts), n_moved


class FoldedMeshError(MeshError):
    """The mesher's output folds over itself (see :func:`organsim.mesh.validity.folded_faces`)."""


def quality_gate(mesh: TetMesh, *, min_dihedral_deg: float = MIN_DIHEDRAL_DEG,
                 max_dihedral_deg: float = MAX_DIHEDRAL_DEG, max_peel_volume: float = 0.005,
                 source: str = "mesh") -> tuple[TetMesh, dict]:
    """Check a tet mesh's quality; repair it (interior node moves, then peeling), or raise.

    Parameters
    ----------
    mesh : TetMesh
    min_dihedral_deg, max_dihedral_deg : float
        Accepted range of dihedral angles.
    max_peel_volume : float
        Largest fraction of the volume the repair may remove.
    source : str
        Name used in error messages.

    Returns
    -------
    mesh : TetMesh
        The accepted mesh (``mesh`` itself when nothing needed fixing).
    info : dict
        ``n_moved`` (interior nodes moved by :func:`improve_interior`),
        ``n_peeled`` (boundary tets removed) and ``peeled_volume_fraction``.

    Raises
    ------
    MeshError
        Inverted tets, a fold (an interior face with both its tets on one side, or tet
        volumes that do not add up to the volume the boundary encloses), or bad tets
        that are not on the boundary or cost too much volume.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> m, info = quality_gate(box_tet_mesh((3, 3, 3), 0.01))
    >>> info["n_peeled"]
    0
    """
    info = {"n_peeled": 0, "peeled_volume_fraction": 0.0, "n_moved": 0, "n_unpinched": 0}
    if mesh.n_tets == 0:
        raise MeshError(f"{source}: the tet mesh is empty; try a smaller edge length")
    n_inv = int(np.count_nonzero(mesh.volumes < 0))
    if n_inv:
        raise MeshError(f"{source}: {n_inv} inverted tets; the mesher produced an invalid mesh."
                        " Try method='lattice' or another edge length")
    v0 = mesh.volume
    cur = mesh
    if _bad_mask(cur, min_dihedral_deg, max_dihedral_deg).any():
        cur, info["n_moved"] = improve_interior(
            cur, target_deg=max(min_dihedral_deg, 180.0 - max_dihedral_deg))
    if not _boundary_edge_manifold(cur):
        cur, info["n_unpinched"] = unpinch_boundary(cur, max_volume_fraction=max_peel_volume)
    for _ in range(4):
        bad = _bad_mask(cur, min_dihedral_deg, max_dihedral_deg)
        if not bad.any():
            break
        on_bnd = np.zeros(cur.n_tets, bool)
        on_bnd[boundary_of(cur)[1]] = True
        peel = bad & on_bnd
        if not peel.any():
            break
        trial, _ = cur.submesh(~peel)
        if abs(v0 - trial.volume) > max_peel_volume * v0 or (
                _boundary_edge_manifold(cur) and not _boundary_edge_manifold(trial)):
            break
        info["n_peeled"] += int(peel.sum())
        cur = trial
    bad = _bad_mask(cur, min_dihedral_deg, max_dihedral_deg)
    if bad.any():
        ang = cur.dihedral_angles[bad]
        raise MeshError(
            f"{source}: {int(bad.sum())} tets fail the quality gate (dihedral angles "
            f"{ang.min():.2f}..{ang.max():.2f} deg, accepted {min_dihedral_deg:g}..{max_dihedral_deg:g})"
            " and could not be repaired; try method='lattice', a smaller edge length, or a"
            " smoother input surface")
    # positive volumes do not make a solid: a tet can overlap its neighbours (a fold)
    from .validity import enclosed_volume, folded_faces

    n_fold = folded_faces(cur)
    enclosed = enclosed_volume(cur)
    excess = (cur.volume - enclosed) / enclosed if enclosed > 0 else float("inf")
    if n_fold or abs(excess) > 1e-9:
        raise FoldedMeshError(
            f"{source}: the tet mesh folds over itself ({n_fold} interior faces have both tets on one"
            f" side; the tet volumes sum to {100 * excess:+.3g}% of the volume the boundary encloses) and"
            " cannot be used; try a slightly different edge length (a few percent) or method='tetwild'")
    info["peeled_volume_fraction"] = float((v0 - cur.volume) / v0)
    if info["n_peeled"]:
        log.info("%s: peeled %d bad boundary tets (%.3f%% of the volume)", source,
                 info["n_peeled"], 100 * info["peeled_volume_fraction"])
    return cur, info


# -------------------------------------------------------------------- meshers
def _orient(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    p = points[tets]
    vol = np.einsum("ij,ij->i", p[:, 1] - p[:, 0], np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]))
    tets = np.array(tets, dtype=np.int64)
    tets[vol < 0] = tets[vol < 0][:, [1, 0, 2, 3]]
    return tets


def _regions_from_image(image: LabelImage, labels, q_points: np.ndarray,
                        tets: np.ndarray) -> np.ndarray:
    """Majority label among 5 samples per tet (physical frame), restricted to ``labels``."""
    labels = np.asarray(list(labels))
    p = q_points[tets]
    cen = p.mean(1)
    samples = np.concatenate([cen[:, None], 0.5 * (p + cen[:, None])], axis=1)  # (m, 5, 3)
    ijk = np.rint(samples / image.spacing).astype(np.int64)
    for a in range(3):
        np.clip(ijk[..., a], 0, image.shape[a] - 1, out=ijk[..., a])
    lab = image.labels[ijk[..., 0], ijk[..., 1], ijk[..., 2]]
    lab = np.where(label_mask(lab, labels), lab, 0)
    # the centre sample breaks ties; a full tie goes to the first label listed
    counts = np.stack([(lab == L).sum(1) + 0.5 * (lab[:, 0] == L) for L in labels], 1)
    best = labels[np.argmax(counts, axis=1)]
    return best.astype(np.int32)


def fit_interfaces(mesh: TetMesh, image: LabelImage, labels, *, smoothing: float = 1.0,
                   rounds: int = 3, min_score_deg: float = 15.0) -> tuple[TetMesh, int]:
    """Move interior nodes onto the label boundaries between regions, then re-assign regions.

    Each interior node shared by tets of exactly two regions is moved by a
    Newton step towards the 1/2 level of the (smoothed) indicator of the
    smaller of the two labels, if every tet around it keeps a score
    ``min(min dihedral, 180 - max dihedral)`` of at least ``min_score_deg``
    (or its current score, if lower). Boundary nodes never move, so the organ's
    surface and volume are unchanged; region interfaces follow the labels
    instead of staying jagged at the lattice's resolution.

    Returns
    -------
    mesh : TetMesh
        Same connectivity, moved nodes, re-assigned regions (image label names).
    n_moved : int
    """
    from scipy import ndimage

    labels = [int(L) for L in labels]
    if len(labels) < 2 or mesh.n_tets == 0:
        return mesh, 0
    sizes = {L: int(np.count_nonzero(image.labels == L)) for L in labels}
    fields = {L: _image_field(image, [L], smoothing) for L in labels if sizes[L]}
    D = np.asarray(image.direction)
    pts = np.array(mesh.points)
    tets = mesh.tets
    bnd = np.zeros(mesh.n_points, bool)
    bnd[boundary_of(mesh)[0].ravel()] = True
    flat = tets.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(mesh.n_points + 1))
    h = _mean_edge_length(mesh.points, mesh.tets)

    def phi(L, q):  # 0.5 - smoothed indicator of L at physical-frame points q
        crop, shift, sp, _, _ = fields[L]
        ijk = q / sp - shift
        return 0.5 - ndimage.map_coordinates(crop, ijk.T, order=1, mode="constant", cval=0.0)

    rid = _regions_from_image(image, labels, (pts - image.origin) @ D, tets)
    n_moved = 0
    for _ in range(rounds):
        r_inc = rid[order // 4]  # region of each (node, tet) incidence, grouped by node
        rmin = np.minimum.reduceat(r_inc, starts[:-1].clip(max=len(r_inc) - 1))
        rmax = np.maximum.reduceat(r_inc, starts[:-1].clip(max=len(r_inc) - 1))
        cand = np.nonzero((rmin != rmax) & ~bnd & (np.diff(starts) > 0))[0]
        if len(cand) == 0:
            break
        score = _tet_scores(pts[tets])
        # the label each candidate node fits to: the smaller of exactly two regions around it
        size_of = np.array([sizes.get(int(r), 0) for r in range(int(rid.max()) + 1)])
        two = rmin[cand] != rmax[cand]
        lab_small = np.where(size_of[rmin[cand]] <= size_of[rmax[cand]], rmin[cand], rmax[cand])
        steps = np.zeros((len(cand), 3))
        valid = np.zeros(len(cand), bool)
        e = 0.5 * float(np.min(image.spacing))
        offsets = np.vstack([np.zeros(3), e * np.eye(3), -e * np.eye(3)])  # (7, 3)
        for L in np.unique(lab_small):
            if int(L) not in fields:
                continue
            sel = np.nonzero(two & (lab_small == L))[0]
            q0 = (pts[cand[sel]] - image.origin) @ D
            val = phi(int(L), (q0[:, None, :] + offsets[None]).reshape(-1, 3)).reshape(-1, 7)
            grad = (val[:, 1:4] - val[:, 4:7]) / (2 * e)
            g2 = (grad ** 2).sum(1)
            ok = (g2 > 0) & (np.abs(val[:, 0]) > 1e-6)
            st = -(val[:, 0] / np.where(ok, g2, 1.0))[:, None] * grad
            n = np.linalg.norm(st, axis=1, keepdims=True)
            st = st * np.minimum(1.0, 0.4 * h / np.maximum(n, 1e-12 * h))
            steps[sel] = st @ D.T  # back to world directions
            valid[sel] = ok
        # only nodes between exactly two regions
        node_of = flat[order]
        r_inc = rid[order // 4]
        third = (r_inc != rmin[node_of]) & (r_inc != rmax[node_of])
        has_third = np.logical_or.reduceat(third, starts[:-1].clip(max=len(third) - 1))
        todo = np.zeros(mesh.n_points, bool)
        todo[cand[valid & ~has_third[cand]]] = True
        step_of = np.zeros((mesh.n_points, 3))
        step_of[cand] = steps
        moved = 0
        for frac in (1.0, 0.5):
            # move all candidates at once (Jacobi), then undo the moves around any tet that
            # got worse than allowed, until none is left; the rest is accepted
            moving = todo.copy()
            P = pts.copy()
            P[moving] += frac * step_of[moving]
            aff = np.nonzero(moving[tets].any(axis=1))[0]
            while len(aff):
                sc = _tet_scores(P[tets[aff]])
                viol = sc < np.minimum(score[aff], min_score_deg)
                if not viol.any():
                    break
                rv = tets[aff[viol]].ravel()
                rv = rv[moving[rv]]
                moving[rv] = False
                P[rv] = pts[rv]
                aff = np.nonzero(moving[tets].any(axis=1))[0]
            if len(aff):
                score[aff] = _tet_scores(P[tets[aff]])
            pts = P
            moved += int(moving.sum())
            todo &= ~moving
            if not todo.any():
                break
        n_moved += moved
        rid = _regions_from_image(image, labels, (pts - image.origin) @ D, tets)
        if moved == 0:
            break
    if n_moved == 0:
        return mesh, 0
    return TetMesh(pts, tets, rid, mesh.region_names), n_moved


def with_image_regions(mesh: TetMesh, image: LabelImage, labels,
                       region_names: dict[int, str] | None = None) -> TetMesh:
    """The mesh with each tet's region set to the majority label of ``labels`` inside it.

    Parameters
    ----------
    mesh : TetMesh
        In world (LPS) metres, overlapping the image.
    image : LabelImage
    labels : sequence of int
    region_names : dict[int, str], optional
        Overrides ``image.label_names``.
    """
    q = (mesh.points - image.origin) @ np.asarray(image.direction)
    rid = _regions_from_image(image, labels, q, mesh.tets)
    names = dict(image.label_names)
    if region_names:
        names.update(region_names)
    present = set(rid.tolist())
    names = {int(L): names.get(int(L), f"label_{int(L)}") for L in labels if int(L) in present}
    return TetMesh(mesh.points, mesh.tets, rid, names)


def _fit_and_name(mesh: TetMesh, image: LabelImage, labels, smoothing: float,
                  region_names) -> TetMesh:
    mesh, _ = fit_interfaces(mesh, image, labels, smoothing=smoothing)
    names = dict(image.label_names)
    if region_names:
        names.update(region_names)
    present = set(mesh.region_ids.tolist())
    names = {int(L): names.get(int(L), f"label_{int(L)}") for L in labels if int(L) in present}
    return TetMesh(mesh.points, mesh.tets, mesh.region_ids, names)


def _lattice_image(image: LabelImage, labels, edge_length: float, smoothing: float,
                   region_names: dict[int, str] | None, level: float = 0.0,
                   _field=None) -> TetMesh:
    f, lo, hi = image_implicit(image, labels, smoothing=smoothing, level=level, _field=_field)
    res = stuff(f, lo, hi, edge_length)
    q = res.points
    tets = res.tets
    rid = _regions_from_image(image, labels, q, tets)
    world = image.origin + q @ np.asarray(image.direction).T
    tets = _orient(world, tets)
    names = dict(image.label_names)
    if region_names:
        names.update(region_names)
    names = {int(L): names.get(int(L), f"label_{int(L)}") for L in labels}
    return TetMesh(world, tets, rid, {k: v for k, v in names.items() if k in set(rid.tolist())})


def _volume_corrected_lattice(image, labs, edge_length, smoothing, region_names, target):
    """Lattice mesh whose iso-level is nudged (at most two secant steps) to match ``target`` volume."""
    fld = _image_field(image, labs, smoothing)
    m0 = _lattice_image(image, labs, edge_length, smoothing, region_names, level=0.0, _field=fld)
    err0 = m0.volume / target - 1.0
    if abs(err0) < 0.002:
        return _fit_and_name(m0, image, labs, smoothing, region_names), 0.0
    # a level shift c moves the surface by about c / |grad f|; |grad f| ~ 1/(sqrt(2 pi) sigma)
    sigma = max(smoothing, 0.4) * float(np.mean(image.spacing))
    area = _boundary_area(m0)
    c1 = float(np.clip(-err0 * m0.volume / area / (np.sqrt(2 * np.pi) * sigma), -0.2, 0.2))
    m1 = _lattice_image(image, labs, edge_length, smoothing, region_names, level=c1, _field=fld)
    err1 = m1.volume / target - 1.0
    best, best_err, best_c = (m0, err0, 0.0) if abs(err0) <= abs(err1) else (m1, err1, c1)
    if abs(err1 - err0) > 1e-12 and abs(best_err) > 0.002:
        c2 = float(np.clip(c1 - err1 * c1 / (err1 - err0), -0.25, 0.25))
        m2 = _lattice_image(image, labs, edge_length, smoothing, region_names, level=c2,
                            _field=fld)
        err2 = m2.volume / target - 1.0
        if abs(err2) < abs(best_err):
            best, best_err, best_c = m2, err2, c2
    return _fit_and_name(best, image, labs, smoothing, region_names), best_c


def _boundary_area(mesh: TetMesh) -> float:
    p = mesh.points[boundary_of(mesh)[0]]
    return float(0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum())


def _lattice_surface(surface: TriSurface, edge_length: float, *,
                     preserve_volume: bool = True) -> TetMesh:
    """Stuff the inside of a surface; optionally offset it (one extra pass) to keep its volume."""
    lb0 = surface_distance_lower_bound(surface)

    def run(level: float) -> TetMesh:
        f, lo, hi = surface_implicit(surface, level=level)
        lb = (lambda q: np.maximum(lb0(q) - abs(level), 0.0)) if level else lb0  # noqa: E731
        res = stuff(f, lo - abs(level), hi + abs(level), edge_length, lower_bound=lb)
        return TetMesh(res.points, res.tets)

    m0 = run(0.0)
    target = surface.signed_volume
    err0 = m0.volume / target - 1.0
    if not preserve_volume or abs(err0) < 0.002 or target <= 0:
        return m0
    # the signed distance has unit gradient: offsetting by c changes the volume by ~ c * area
    c = float(np.clip(-err0 * m0.volume / _boundary_area(m0), -0.2 * edge_length,
                      0.2 * edge_length))
    m1 = run(c)
    return m1 if abs(m1.volume / target - 1.0) < abs(err0) else m0


def _tetwild_surface(surface: TriSurface, edge_length: float) -> TetMesh:
    try:
        import pytetwild
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MeshError("method 'tetwild' needs the optional package pytetwild (MPL-2.0):"
                        " pip install pytetwild, or use method='lattice'") from exc
    # copies: the wrapper rejects read-only arrays
    v, t = pytetwild.tetrahedralize(np.array(surface.points, np.float64),
                                    np.array(surface.faces, np.int32),
                                    edge_length_abs=float(edge_length), quiet=True, loglevel=6)
    v = np.asarray(v, np.float64)
    t = _orient(v, np.asarray(t, np.int64))
    used, inv = np.unique(t, return_inverse=True)
    return TetMesh(v[used], inv.reshape(t.shape))


def _tetgen_surface(surface: TriSurface, edge_length: float) -> TetMesh:
    try:
        import tetgen
    except ImportError as exc:  # pragma: no cover
        raise MeshError("method 'tetgen' needs the optional package tetgen (TetGen is AGPL-3.0):"
                        " pip install tetgen, or use method='lattice'") from exc
    gen = tetgen.TetGen(np.array(surface.points, np.float64), np.array(surface.faces, np.int32))
    maxvol = edge_length ** 3 / (6 * np.sqrt(2))
    try:
        nodes, elems = gen.tetrahedralize(order=1, quality=True, mindihedral=12.0, minratio=1.5,
                                          maxvolume=maxvol, verbose=0)[:2]
    except RuntimeError as exc:
        raise MeshError(f"TetGen failed on the surface ({exc}); the surface probably self-"
                        "intersects: repair it first or use method='lattice'") from exc
    nodes = np.asarray(nodes, np.float64)
    t = _orient(nodes, np.asarray(elems, np.int64)[:, :4])
    used, inv = np.unique(t, return_inverse=True)
    return TetMesh(nodes[used], inv.reshape(t.shape))


def tetrahedralize(source: LabelImage | TriSurface, *, edge_length: float | None = None,
                   method: Literal["lattice", "tetwild", "tetgen"] = "lattice",
                   labels=None, region_names: dict[int, str] | None = None,
                   smoothing: float = 1.0, preserve_volume: bool = True,
                   min_dihedral_deg: float = MIN_DIHEDRAL_DEG,
                   max_dihedral_deg: float = MAX_DIHEDRAL_DEG) -> TetMesh:
    """A quality tetrahedral mesh of a label image or a closed surface.

    Parameters
    ----------
    source : LabelImage or TriSurface
        A label volume (meshed straight from the voxels; ``method="lattice"``
        only) or a closed, outward-oriented surface in metres (repair it first
        with :func:`organsim.mesh.repair.repair_surface`).
    edge_length : float, optional
        Target edge length (m). Default: 1/25 of the object's largest extent.
    method : {"lattice", "tetwild", "tetgen"}
        See the module docstring; ``"lattice"`` is the default and the only
        one that needs no optional package.
    labels : sequence of int, optional
        Image only: the labels to mesh (default: every non-zero label); each
        becomes a region of the mesh.
    region_names : dict[int, str], optional
        Image only: names overriding ``image.label_names``.
    smoothing : float
        Image only: Gaussian sigma (voxels) applied to the label indicator.
    preserve_volume : bool
        Lattice only: nudge the iso-level (images: at most two extra passes;
        surfaces: one) so that the mesh volume matches the voxel volume of the
        labels or the surface's enclosed volume; without it, smoothing and the
        inscribed polyhedron lose about 1 to 5 % on coarse meshes.
    min_dihedral_deg, max_dihedral_deg : float
        Quality gate bounds.

    Returns
    -------
    TetMesh
        Positively oriented tets, in metres (world LPS for images), with a
        region per tet.

    Raises
    ------
    MeshError
        Empty input, unknown method, or a result that fails the quality gate.

    Examples
    --------
    >>> import numpy as np
    >>> from organsim.mesh import LabelImage
    >>> g = np.indices((30, 30, 30)) - 14.5
    >>> img = LabelImage((np.sqrt((g ** 2).sum(0)) < 10).astype(np.uint8), (1e-3,) * 3, (0, 0, 0))
    >>> mesh = tetrahedralize(img, edge_length=4e-3)
    >>> mesh.quality()["min_dihedral_deg"] >= 10
    True
    """
    return _tetrahedralize(source, edge_length=edge_length, method=method, labels=labels,
                           region_names=region_names, smoothing=smoothing,
                           preserve_volume=preserve_volume, min_dihedral_deg=min_dihedral_deg,
                           max_dihedral_deg=max_dihedral_deg)[0]


def _tetrahedralize(source: LabelImage | TriSurface, *, edge_length: float | None = None,
                   method: Literal["lattice", "tetwild", "tetgen"] = "lattice",
                   labels=None, region_names: dict[int, str] | None = None,
                   smoothing: float = 1.0, preserve_volume: bool = True,
                   min_dihedral_deg: float = MIN_DIHEDRAL_DEG,
                   max_dihedral_deg: float = MAX_DIHEDRAL_DEG) -> tuple[TetMesh, dict]:
    """Like :func:`tetrahedralize`; also returns the quality gate's info dict."""
    if method not in METHODS:
        raise MeshError(f"unknown meshing method {method!r}; expected one of {', '.join(METHODS)}")
    if isinstance(source, LabelImage):
        labs = list(labels) if labels is not None else present_labels(source)
        if not labs:
            raise MeshError("the label image holds no non-zero voxel; nothing to mesh")
        present = set(present_labels(source))
        missing = [L for L in labs if L not in present]
        if missing:
            raise MeshError(f"no voxel of label(s) {missing} in the image; present labels are "
                            f"{present_labels(source)}")
        source = crop_to_labels(source, labs)
        if edge_length is None:
            mask = label_mask(source.labels, labs)
            idx = np.argwhere(mask)
            extent = (idx.max(0) - idx.min(0) + 1) * source.spacing
            edge_length = default_edge_length(float(extent.max()))
        _check_edge(edge_length)
        if method != "lattice":
            from .extract import extract_surface  # the surface engineer's module
            from .repair import repair_surface

            surf, _ = repair_surface(extract_surface(source, labs), fix_self_intersections=False)
            mesh, info = _tetrahedralize(surf, edge_length=edge_length, method=method,
                                         min_dihedral_deg=min_dihedral_deg,
                                         max_dihedral_deg=max_dihedral_deg)
            return with_image_regions(mesh, source, labs, region_names), info
        if preserve_volume:
            mesh, _ = _volume_corrected_lattice(source, labs, edge_length, smoothing,
                                                region_names, source.label_volume(labs))
        else:
            mesh = _fit_and_name(_lattice_image(source, labs, edge_length, smoothing, region_names),
                                 source, labs, smoothing, region_names)
    elif isinstance(source, TriSurface):
        if edge_length is None:
            edge_length = default_edge_length(float(np.ptp(source.points, axis=0).max()))
        _check_edge(edge_length)
        if method == "lattice":
            mesh = _lattice_surface(source, edge_length, preserve_volume=preserve_volume)
        elif method == "tetwild":
            mesh = _tetwild_surface(source, edge_length)
        else:
            mesh = _tetgen_surface(source, edge_length)
    else:
        raise MeshError(f"cannot tetrahedralize a {type(source).__name__}; expected a LabelImage"
                        " or a TriSurface")
    return quality_gate(mesh, min_dihedral_deg=min_dihedral_deg,
                        max_dihedral_deg=max_dihedral_deg, source=f"{method} mesher")


def _check_edge(edge_length) -> None:
    if not np.isfinite(edge_length) or edge_length <= 0:
        raise MeshError(f"edge length must be a positive number of metres, got {edge_length!r}")
