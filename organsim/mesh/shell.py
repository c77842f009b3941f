"""Open surfaces (valve leaflets, membranes, thin walls) as solid shells.

Some anatomy is segmented or exported as an open surface by nature: the mitral
valve's leaflets, a membrane, the mid-surface of a vessel or bladder wall. Such a
surface encloses no volume, so it cannot be tetrahedralized as an organ; given the
tissue's thickness it can: the shell is every point within ``thickness / 2`` of
the surface. :func:`shell_label_image` voxelizes that shell exactly (distance to
the triangles, evaluated only in a narrow band), and the image goes through the
same lattice mesher as a segmentation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import MeshError
from .labelimage import LabelImage
from .surface import TriSurface

__all__ = ["shell_label_image"]

#: Voxels across the shell thickness (the lattice mesher then smooths and stuffs them).
VOXELS_PER_THICKNESS = 5


def shell_label_image(surface: TriSurface, *, thickness: float,
                      voxel_size: float | None = None, label_name: str = "tissue") -> LabelImage:
    """Voxelize the shell of half-thickness ``thickness / 2`` around a surface.

    Parameters
    ----------
    surface : TriSurface
        Mid-surface (m); open or closed, need not be manifold.
    thickness : float
        Tissue thickness (m): a point belongs to the shell if its distance to
        the surface is at most ``thickness / 2``.
    voxel_size : float, optional
        Voxel edge (m); default ``thickness / 5``.
    label_name : str
        Name of label 1.

    Returns
    -------
    LabelImage
        Label 1 on the shell, axis-aligned (identity direction), in metres.

    Examples
    --------
    >>> import pyvista as pv
    >>> disc = pv.Disc(inner=0, outer=0.02, c_res=24).triangulate().rotate_x(30).rotate_y(20)
    >>> disc = TriSurface.from_pyvista(disc)
    >>> img = shell_label_image(disc, thickness=0.002)
    >>> abs(img.label_volume(1) / (np.pi * 0.02**2 * 0.002) - 1) < 0.1
    True
    """
    import pyvista as pv

    thickness = float(thickness)
    if not np.isfinite(thickness) or thickness <= 0:
        raise MeshError(f"shell thickness must be a positive length in metres, got {thickness!r}")
    if surface.n_faces == 0:
        raise MeshError("the surface has no triangles: nothing to thicken into a shell")
    vox = float(voxel_size) if voxel_size else thickness / VOXELS_PER_THICKNESS
    half = 0.5 * thickness
    lo = surface.points.min(axis=0) - half - 2 * vox
    hi = surface.points.max(axis=0) + half + 2 * vox
    shape = np.ceil((hi - lo) / vox).astype(np.int64) + 1
    if np.prod(shape) > 200_000_000:
        raise MeshError(f"a shell of thickness {thickness * 1e3:.3g} mm around a surface"
                        f" {np.ptp(surface.points, axis=0).max() * 1e3:.0f} mm across needs"
                        f" {np.prod(shape):.3g} voxels; give a larger thickness or voxel size")
    # 1. mark the voxels the surface passes through: sample every triangle at
    #    about half a voxel (barycentric grid), then keep a band around them
    p = surface.points[surface.faces]
    longest = np.linalg.norm(p - np.roll(p, 1, axis=1), axis=2).max(axis=1)
    n_sub = int(np.clip(np.ceil(longest.max() / (0.5 * vox)), 1, 64))
    a, b = np.meshgrid(np.arange(n_sub + 1), np.arange(n_sub + 1), indexing="ij")
    keep = a + b <= n_sub
    w = np.column_stack([a[keep], b[keep]]) / n_sub                      # (s, 2)
    samples = (p[:, None, 0] * (1 - w[:, 0] - w[:, 1])[None, :, None]
               + p[:, None, 1] * w[None, :, 0, None] + p[:, None, 2] * w[None, :, 1, None])
    ijk = np.rint((samples.reshape(-1, 3) - lo) / vox).astype(np.int64)
    hit = np.zeros(tuple(shape), dtype=bool)
    hit[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    band = ndimage.distance_transform_edt(~hit) * vox <= half + 2 * vox
    # 2. exact distance to the triangles, only in the band
    idx = np.argwhere(band)
    pts = lo + idx * vox
    poly = surface.to_pyvista()
    cloud = pv.PolyData(pts)
    dist = np.abs(np.asarray(cloud.compute_implicit_distance(poly)["implicit_distance"]))
    labels = np.zeros(tuple(shape), dtype=np.uint8)
    inside = idx[dist < half]
    labels[inside[:, 0], inside[:, 1], inside[:, 2]] = 1
    if not labels.any():
        raise MeshError(f"the shell of thickness {thickness * 1e3:.3g} mm holds no voxel;"
                        " give a larger thickness")
    return LabelImage(labels, spacing=(vox, vox, vox), origin=lo, label_names={1: label_name})
