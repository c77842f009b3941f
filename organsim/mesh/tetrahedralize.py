"""Tetrahedralization: a quality tet mesh from a label image or a closed surface.

Three methods, all followed by the same quality gate:

``"lattice"`` (default, our own code, BSD like the rest of organsim)
    Isosurface stuffing on a body-centred-cubic lattice
    (:mod:`organsim.mesh.stuffing`), straight from the label volume (a lightly
    Gaussian-smoothed indicator of the organ's labels, level 1/2) or from a
    closed surface (its signed distance). Every tet gets a region: the
    majority label of five samples in the tet (centre and the midpoints towards
    its corners), so interfaces between regions follow tet faces (they are
    *not* conforming to the label boundaries below the edge length).
``"tetwild"``
    fTetWild through ``pytetwild`` (MPL-2.0), from a surface. Optional extra.
``"tetgen"``
    TetGen through ``tetgen`` (TetGen is AGPL-3.0), from a surface; optional
    extra, imported only when asked for, never required.

The quality gate (:func:`quality_gate`) rejects inverted or zero-volume tets and
dihedral angles outside [``min_dihedral_deg``, ``max_dihedral_deg``]; it first
tries to repair by peeling bad tets that lie on the boundary (a volume change
of at most ``max_peel_volume`` of the whole), and raises
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
           "image_implicit", "surface_implicit"]

log = logging.getLogger(__name__)

METHODS = ("lattice", "tetwild", "tetgen")
#: Default quality bounds (degrees).
MIN_DIHEDRAL_DEG = 10.0
MAX_DIHEDRAL_DEG = 170.0


def default_edge_length(extent_m: float) -> float:
    """Default target edge length: 1/25 of the largest extent of the object (m)."""
    return float(extent_m) / 25.0


# ------------------------------------------------------------------- implicits
def image_implicit(image: LabelImage, labels, *, smoothing: float = 1.0, level: float = 0.0):
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

    mask = np.isin(image.labels, np.asarray(list(labels)))
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
    field = (0.5 - level) - crop
    sp = np.asarray(image.spacing, dtype=np.float64)
    shift = start - margin

    def f(q: np.ndarray) -> np.ndarray:
        ijk = np.asarray(q, dtype=np.float64) / sp - shift
        return ndimage.map_coordinates(field, ijk.T, order=1, mode="constant", cval=0.5 - level)

    lo = (start - 0.5) * sp
    hi = (stop - 0.5) * sp
    return f, lo, hi


def surface_implicit(surface: TriSurface):
    """Signed distance to a closed, outward-oriented surface (negative inside).

    Returns ``(f, lo, hi)`` like :func:`image_implicit`, in the surface's frame (m).
    """
    import pyvista as pv
    import vtk

    if surface.n_faces == 0:
        raise MeshError("the surface has no faces; expected a closed organ surface")
    poly = surface.to_pyvista()
    imp = vtk.vtkImplicitPolyDataDistance()
    imp.SetInput(poly)

    def f(q: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(q, dtype=np.float64)
        if len(q) == 0:
            return np.zeros(0)
        from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

        out = vtk.vtkDoubleArray()
        out.SetNumberOfTuples(len(q))
        imp.FunctionValue(numpy_to_vtk(q, deep=True), out)
        return vtk_to_numpy(out).astype(np.float64).copy()

    del pv
    lo = surface.points.min(axis=0)
    hi = surface.points.max(axis=0)
    return f, lo, hi


# ---------------------------------------------------------------- quality gate
def _boundary_edge_manifold(mesh: TetMesh) -> bool:
    bf = mesh.boundary_faces
    if len(bf) == 0:
        return False
    e = np.sort(bf[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, c = np.unique(e, axis=0, return_counts=True)
    return bool(np.all(c == 2))


def _bad_mask(mesh: TetMesh, lo: float, hi: float) -> np.ndarray:
    ang = mesh.dihedral_angles
    vol = mesh.volumes
    scale = np.mean(np.abs(vol)) if len(vol) else 1.0
    return (ang.min(1) < lo) | (ang.max(1) > hi) | (vol <= 1e-12 * scale)


def quality_gate(mesh: TetMesh, *, min_dihedral_deg: float = MIN_DIHEDRAL_DEG,
                 max_dihedral_deg: float = MAX_DIHEDRAL_DEG, max_peel_volume: float = 0.005,
                 source: str = "mesh") -> tuple[TetMesh, dict]:
    """Check a tet mesh's quality; repair by peeling bad boundary tets, or raise.

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
        ``n_peeled`` (tets removed) and ``peeled_volume_fraction``.

    Raises
    ------
    MeshError
        Inverted tets, or bad tets that are not on the boundary or cost too much volume.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> m, info = quality_gate(box_tet_mesh((3, 3, 3), 0.01))
    >>> info["n_peeled"]
    0
    """
    info = {"n_peeled": 0, "peeled_volume_fraction": 0.0}
    if mesh.n_tets == 0:
        raise MeshError(f"{source}: the tet mesh is empty; try a smaller edge length")
    n_inv = int(np.count_nonzero(mesh.volumes < 0))
    if n_inv:
        raise MeshError(f"{source}: {n_inv} inverted tets; the mesher produced an invalid mesh."
                        " Try method='lattice' or another edge length")
    v0 = mesh.volume
    cur = mesh
    for _ in range(4):
        bad = _bad_mask(cur, min_dihedral_deg, max_dihedral_deg)
        if not bad.any():
            break
        on_bnd = np.zeros(cur.n_tets, bool)
        on_bnd[cur.boundary_face_tets] = True
        peel = bad & on_bnd
        if not peel.any():
            break
        trial, _ = cur.submesh(~peel)
        if abs(v0 - trial.volume) > max_peel_volume * v0 or not _boundary_edge_manifold(trial):
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
    lab = np.where(np.isin(lab, labels), lab, 0)
    counts = np.stack([(lab == L).sum(1) + 0.5 * (lab[:, 0] == L) for L in labels], 1)
    overall = np.array([np.count_nonzero(image.labels == L) for L in labels])
    best = labels[np.argmax(counts + 1e-9 * overall[None, :] / max(overall.max(), 1), axis=1)]
    return best.astype(np.int32)


def _lattice_image(image: LabelImage, labels, edge_length: float, smoothing: float,
                   region_names: dict[int, str] | None, level: float = 0.0) -> TetMesh:
    f, lo, hi = image_implicit(image, labels, smoothing=smoothing, level=level)
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


def _lattice_surface(surface: TriSurface, edge_length: float) -> TetMesh:
    f, lo, hi = surface_implicit(surface)
    res = stuff(f, lo, hi, edge_length)
    return TetMesh(res.points, res.tets)


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
                   smoothing: float = 1.0, min_dihedral_deg: float = MIN_DIHEDRAL_DEG,
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
    if method not in METHODS:
        raise MeshError(f"unknown meshing method {method!r}; expected one of {', '.join(METHODS)}")
    if isinstance(source, LabelImage):
        labs = list(labels) if labels is not None else source.present_labels()
        if not labs:
            raise MeshError("the label image holds no non-zero voxel; nothing to mesh")
        missing = [L for L in labs if not np.any(source.labels == L)]
        if missing:
            raise MeshError(f"no voxel of label(s) {missing} in the image; present labels are "
                            f"{source.present_labels()}")
        if edge_length is None:
            mask = np.isin(source.labels, labs)
            idx = np.argwhere(mask)
            extent = (idx.max(0) - idx.min(0) + 1) * source.spacing
            edge_length = default_edge_length(float(extent.max()))
        _check_edge(edge_length)
        if method != "lattice":
            from .extract import extract_surface  # the surface engineer's module
            from .repair import repair_surface

            surf, _ = repair_surface(extract_surface(source, labs))
            mesh = tetrahedralize(surf, edge_length=edge_length, method=method,
                                  min_dihedral_deg=min_dihedral_deg,
                                  max_dihedral_deg=max_dihedral_deg)
            return mesh
        mesh = _lattice_image(source, labs, edge_length, smoothing, region_names)
    elif isinstance(source, TriSurface):
        if edge_length is None:
            edge_length = default_edge_length(float(np.ptp(source.points, axis=0).max()))
        _check_edge(edge_length)
        if method == "lattice":
            mesh = _lattice_surface(source, edge_length)
        elif method == "tetwild":
            mesh = _tetwild_surface(source, edge_length)
        else:
            mesh = _tetgen_surface(source, edge_length)
    else:
        raise MeshError(f"cannot tetrahedralize a {type(source).__name__}; expected a LabelImage"
                        " or a TriSurface")
    mesh, _ = quality_gate(mesh, min_dihedral_deg=min_dihedral_deg,
                           max_dihedral_deg=max_dihedral_deg, source=f"{method} mesher")
    return mesh


def _check_edge(edge_length) -> None:
    if not np.isfinite(edge_length) or edge_length <= 0:
        raise MeshError(f"edge length must be a positive number of metres, got {edge_length!r}")
