"""Synthetic CT-like organ segmentations (deterministic, seeded).

These label volumes feed the shipped meshes (``meshes/``) and the
``mesh-phantom`` benchmark, so that shipped organs go through exactly the path
a patient's segmentation would: label image -> surface -> repair -> tets.

Every phantom is defined by an implicit function in millimetres, in an organ
frame whose axes are the world LPS axes (x to the patient's Left, y
Posterior, z Superior), and sampled at voxel centres. The organ's size in
millimetres is therefore the same whatever the grid: ``shape=(128,)*3`` at
1.6 mm and ``shape=(256,)*3`` at 1 mm give the same liver, sampled finer.
The grid is centred on the organ, and the image origin is set so that the
organ lands at a plausible place in a patient frame whose origin is near the
body's midline at the level of the first lumbar vertebra (the liver in the
right upper quadrant, the right kidney posterior and inferior to it).

``seed`` changes only the low-frequency shape variation and the lesion
jitter; the same seed always gives the same voxels. ``specks`` adds isolated
mislabelled voxel blobs outside the organ (segmentation noise) so that the
repair step has something real to remove; it is off by default and off for
the shipped meshes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import ImageError
from .mesh.labelimage import LabelImage

__all__ = ["liver_phantom", "kidney_phantom", "block_phantom",
           "LIVER_LABELS", "KIDNEY_LABELS", "BLOCK_LABELS"]

#: Label ids and names of :func:`liver_phantom`.
LIVER_LABELS = {1: "parenchyma", 2: "tumour", 3: "vessel", 4: "ligament"}
#: Label ids and names of :func:`kidney_phantom`.
KIDNEY_LABELS = {1: "parenchyma", 2: "pelvis"}
#: Label ids and names of :func:`block_phantom`.
BLOCK_LABELS = {1: "tissue"}

# World (LPS, mm) position of each organ frame's origin.
_LIVER_CENTRE_MM = np.array([-60.0, 10.0, 40.0])
_KIDNEY_CENTRE_MM = np.array([-70.0, 75.0, -55.0])
_BLOCK_CENTRE_MM = np.array([0.0, 0.0, 0.0])


# --------------------------------------------------------------------------- helpers

def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (union of two implicit solids), blend width ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth maximum (intersection / subtraction), blend width ``k`` mm."""
    return -_smin(-a, -b, k)


def _ellipsoid(x, y, z, c, r) -> np.ndarray:
    """Approximate signed distance (mm) to an ellipsoid of centre ``c`` and semi-axes ``r``."""
    q = np.sqrt(((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2)
    # Scale the normalised radius so the field is ~ a distance near the surface.
    return (q - 1.0) * min(r)


def _capsule(x, y, z, a, b, r) -> np.ndarray:
    """Signed distance (mm) to a capsule (tube with round ends) from ``a`` to ``b``, radius ``r``."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ab = b - a
    t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / float(ab @ ab)
    t = np.clip(t, 0.0, 1.0)
    dx = x - (a[0] + t * ab[0])
    dy = y - (a[1] + t * ab[1])
    dz = z - (a[2] + t * ab[2])
    return np.sqrt(dx * dx + dy * dy + dz * dz) - r


def _wobble(x, y, z, rng: np.random.Generator, *, amplitude_mm: float, n_waves: int,
            wavelength_mm: tuple[float, float]) -> np.ndarray:
    """Seeded smooth (low-frequency) scalar field, peak amplitude about ``amplitude_mm``."""
    out = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z)))
    dirs = rng.normal(size=(n_waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lam = rng.uniform(*wavelength_mm, size=n_waves)
    phase = rng.uniform(0, 2 * np.pi, size=n_waves)
    amp = rng.uniform(0.5, 1.0, size=n_waves)
    amp *= amplitude_mm / amp.sum()
    for d, l, p, a in zip(dirs, lam, phase, amp):
        out += a * np.sin((2 * np.pi / l) * (d[0] * x + d[1] * y + d[2] * z) + p)
    return out


def _grid_spacing(shape, spacing_mm) -> tuple[tuple[int, int, int], np.ndarray]:
    shp = tuple(int(s) for s in np.broadcast_to(np.asarray(shape), (3,)))
    sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if min(shp) < 2:
        raise ImageError(f"a phantom needs at least 2 voxels per axis, got shape {shp}")
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ImageError(f"phantom voxel spacing must be positive (mm), got {sp}")
    return shp, sp


def _frame(shape, sp, centre_mm, half_extent_mm, what: str):
    """Grid geometry centred on the organ; the sub-box of voxels that can hold it.

    Returns ``origin_mm`` (world position of voxel 0), the local (organ-frame,
    mm) coordinates of each axis' voxel centres, and the index slices of the
    sub-box that covers the organ's bounding box.
    """
    shp = np.asarray(shape)
    fov = shp * sp
    need = 2.0 * np.asarray(half_extent_mm)
    if np.any(fov < need):
        raise ImageError(
            f"the {what} phantom does not fit in a {shp.tolist()} grid at {sp.tolist()} mm voxels"
            f" (field of view {np.round(fov, 1).tolist()} mm, the organ needs about"
            f" {np.round(need, 1).tolist()} mm); use a larger shape or a larger spacing_mm")
    local_first = -0.5 * (shp - 1) * sp  # local coordinate of voxel 0's centre
    origin_mm = np.asarray(centre_mm) + local_first
    axes = [local_first[a] + sp[a] * np.arange(shp[a]) for a in range(3)]
    slices = []
    for a in range(3):
        inside = np.nonzero(np.abs(axes[a]) <= half_extent_mm[a] + sp[a])[0]
        slices.append(slice(int(inside[0]), int(inside[-1]) + 1))
    return origin_mm, axes, tuple(slices)


def _add_specks(labels: np.ndarray, organ: np.ndarray, sp: np.ndarray, n: int,
                rng: np.random.Generator, label: int) -> None:
    """Put ``n`` small blobs of ``label`` in background voxels well away from the organ."""
    if n <= 0:
        return
    far = ndimage.distance_transform_edt(~organ, sampling=sp) > 6.0
    far[[0, -1], :, :] = False
    far[:, [0, -1], :] = False
    far[:, :, [0, -1]] = False
    cand = np.flatnonzero(far)
    if len(cand) == 0:
        return
    picks = rng.choice(cand, size=min(n, len(cand)), replace=False)
    for flat in picks:
        i, j, k = np.unravel_index(flat, labels.shape)
        size = rng.integers(1, 3, size=3)  # blobs of 1 to 2 voxels per axis
        labels[i:i + size[0], j:j + size[1], k:k + size[2]] = label


def _image(labels, sp, origin_mm, names) -> LabelImage:
    return LabelImage(labels, spacing=sp * 1e-3, origin=origin_mm * 1e-3, direction=np.eye(3),
                      label_names=dict(names))


# --------------------------------------------------------------------------- liver

# Organ-frame geometry of the liver (mm).
_RIGHT_LOBE = ((-30.0, 6.0, -2.0), (62.0, 70.0, 68.0))
_LEFT_LOBE = ((42.0, -14.0, 18.0), (52.0, 46.0, 30.0))
_LIVER_HALF_EXTENT = np.array([97.0, 72.0, 74.0])
# Portal (inflow) and hepatic (outflow) vein trees: (start, end, radius).
_VESSELS = (
    ((2.0, 28.0, -28.0), (-5.0, 14.0, -12.0), 6.0),      # portal trunk
    ((-5.0, 14.0, -12.0), (-42.0, 30.0, 12.0), 5.0),     # right portal vein
    ((-42.0, 30.0, 12.0), (-74.0, 34.0, -4.0), 4.0),     # right posterior branch
    ((-42.0, 30.0, 12.0), (-62.0, 6.0, 34.0), 4.0),      # right anterior branch
    ((-5.0, 14.0, -12.0), (34.0, -6.0, 14.0), 5.0),      # left portal vein
    ((34.0, -6.0, 14.0), (70.0, -16.0, 17.0), 4.0),      # left lateral branch
    ((-10.0, 36.0, 30.0), (-16.0, -34.0, 22.0), 4.0),    # middle hepatic vein
    ((-10.0, 36.0, 30.0), (46.0, -12.0, 26.0), 4.0),     # left hepatic vein
)
_TUMOUR_CENTRE = np.array([-50.0, -22.0, -20.0])
_TUMOUR_RADIUS = 12.5


def _liver_field(x, y, z, rng: np.random.Generator) -> np.ndarray:
    """Implicit liver (negative inside, ~mm distance), organ frame (sparse grid axes)."""
    f = _smin(_ellipsoid(x, y, z, *_RIGHT_LOBE), _ellipsoid(x, y, z, *_LEFT_LOBE), 22.0)
    # Visceral (inferior) surface: a sloping plane, lowest under the right lobe.
    slope = 0.28
    zmin = -56.0 + slope * (x + 30.0)
    f = _smax(f, (zmin - z) / np.sqrt(1 + slope ** 2), 10.0)
    # Flatter posterior (bare area, against the diaphragm and IVC).
    f = _smax(f, y - 58.0, 10.0)
    # Inferior notch between the lobes (ligamentum teres / gallbladder fossa).
    notch = np.sqrt((x - 14.0) ** 2 + (y + 46.0) ** 2 + (z + 34.0) ** 2) - 26.0
    f = _smax(f, -notch, 6.0)
    # Seeded low-frequency variation of the surface (|wobble| <= 4 mm), evaluated
    # only where it can matter: near the surface and near the 3 mm vessel margin.
    amp = 4.0
    band = np.abs(f + 1.5) <= amp + 1.5 + 0.5
    xs, ys, zs = (np.broadcast_to(v, f.shape)[band] for v in (x, y, z))
    f[band] += _wobble(xs, ys, zs, rng, amplitude_mm=amp, n_waves=6, wavelength_mm=(70.0, 140.0))
    return f


def _box_slices(axes, lo, hi):
    """Index slices of the (local-coordinate) sample axes inside the box [lo, hi] (mm)."""
    out = []
    for a in range(3):
        idx = np.flatnonzero((axes[a] >= lo[a]) & (axes[a] <= hi[a]))
        if len(idx) == 0:
            return None
        out.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(out)


def liver_phantom(*, shape: tuple[int, int, int] | int = (128, 128, 128),
                  spacing_mm: float | tuple[float, float, float] = 1.6, seed: int = 0,
                  specks: int = 0) -> LabelImage:
    """A synthetic liver segmentation with a tumour, veins and a ligament band.

    About 18 cm wide (patient left-right), 13 cm antero-posterior and 14 cm
    cranio-caudal, ~1.4 L: a large right lobe and a thinner left lobe blended
    together, a domed top, a sloping visceral surface with a notch between the
    lobes, and seeded low-frequency surface variation.

    Parameters
    ----------
    shape : (int, int, int) or int
        Voxels along i, j, k. The default grid covers 205 mm at 1.6 mm.
    spacing_mm : float or (float, float, float)
        Voxel size (mm). The organ size in mm does not depend on the grid
        (``shape=256, spacing_mm=1.0`` is the ``mesh-phantom`` benchmark).
    seed : int
        Seed of the shape variation and of the tumour jitter.
    specks : int
        Number of isolated mislabelled blobs (1-2 voxels per axis, label 1)
        added outside the organ, mimicking segmentation noise. 0 by default.

    Returns
    -------
    LabelImage
        Labels ``{1: "parenchyma", 2: "tumour", 3: "vessel", 4: "ligament"}``;
        spacing and origin in metres, identity direction, world frame LPS.
        The tumour (~2.5 cm) sits inside the right lobe, the vessels (radius
        4-6 mm, portal and hepatic vein branches) stay inside the parenchyma,
        and the ligament is a ~4 mm thick band of the superior/posterior
        surface (fixing it pins the organ).

    Raises
    ------
    ImageError
        If the grid is too small to hold the organ.

    Examples
    --------
    >>> img = liver_phantom(shape=(64, 64, 64), spacing_mm=3.2)
    >>> sorted(img.label_names.items())[0]
    (1, 'parenchyma')
    """
    shp, sp = _grid_spacing(shape, spacing_mm)
    rng = np.random.default_rng(seed)
    origin_mm, axes, sl = _frame(shp, sp, _LIVER_CENTRE_MM, _LIVER_HALF_EXTENT, "liver")
    x, y, z = np.meshgrid(axes[0][sl[0]], axes[1][sl[1]], axes[2][sl[2]], indexing="ij",
                          sparse=True)
    f = _liver_field(x, y, z, np.random.default_rng(rng.integers(2 ** 32)))
    organ = f <= 0.0
    sub = np.zeros(organ.shape, np.uint8)
    sub[organ] = 1
    ax = (x.ravel(), y.ravel(), z.ravel())

    # Tumour: a bumpy sphere in the right lobe, jittered by the seed (evaluated
    # in its own bounding box only).
    trng = np.random.default_rng(rng.integers(2 ** 32))
    c = _TUMOUR_CENTRE + trng.uniform(-4.0, 4.0, size=3)
    r = _TUMOUR_RADIUS + trng.uniform(-1.5, 1.5)
    ft = np.full(organ.shape, np.inf)
    tb = _box_slices(ax, c - r - 6.0, c + r + 6.0)
    if tb is not None:
        tx, ty, tz = x[tb[0], :, :], y[:, tb[1], :], z[:, :, tb[2]]
        v = np.sqrt((tx - c[0]) ** 2 + (ty - c[1]) ** 2 + (tz - c[2]) ** 2) - r
        ft[tb] = v + _wobble(tx - c[0], ty - c[1], tz - c[2], trng, amplitude_mm=1.5, n_waves=4,
                             wavelength_mm=(20.0, 40.0))

    # Vessels: union of tubes, kept at least 3 mm inside the capsule.
    fv = np.full(organ.shape, np.inf)
    for a, b, rad in _VESSELS:
        lo = np.minimum(a, b) - rad - 1.0
        hi = np.maximum(a, b) + rad + 1.0
        vb = _box_slices(ax, lo, hi)
        if vb is None:
            continue
        fv[vb] = np.minimum(fv[vb], _capsule(x[vb[0], :, :], y[:, vb[1], :], z[:, :, vb[2]],
                                             a, b, rad))
    vessel = (fv <= 0.0) & (f <= -3.0) & (ft > 3.0)
    sub[vessel] = 3
    sub[(ft <= 0.0) & organ] = 2

    # Ligament: the outer ~4 mm of the superior/posterior surface (bare area);
    # the depth below the surface is computed in a padded box around that area.
    thick = max(4.0, 2.5 * float(sp.max()))
    pad = thick + 3.0 * float(sp.max())
    lb = _box_slices(ax, np.array([-75.0, 5.0, 18.0]) - pad, np.array([35.0, 1e9, 1e9]) + pad)
    if lb is not None:
        depth = ndimage.distance_transform_edt(organ[lb], sampling=sp)
        lx, ly, lz = x[lb[0], :, :], y[:, lb[1], :], z[:, :, lb[2]]
        band = ((depth <= thick) & organ[lb] & (lz > 18.0) & (ly > 5.0) & (lx > -75.0)
                & (lx < 35.0))
        part = sub[lb]
        part[band & (part == 1)] = 4

    labels = np.zeros(shp, np.uint8)
    labels[sl] = sub
    _add_specks(labels, labels > 0, sp, specks, rng, 1)
    return _image(labels, sp, origin_mm, LIVER_LABELS)


# --------------------------------------------------------------------------- kidney

_KIDNEY_HALF_EXTENT = np.array([42.0, 30.0, 64.0])


def _kidney_field(x, y, z, rng: np.random.Generator):
    """Implicit right kidney (negative inside), organ frame; medial is +x."""
    # Bend the long (z) axis so the lateral border is convex: a bean.
    xb = x + 9.0 * (z / 55.0) ** 2
    f = _ellipsoid(xb, y, z, (0.0, 0.0, 0.0), (30.0, 20.0, 55.0))
    # Hilum: a notch on the medial side.
    hil = _ellipsoid(xb, y, z, (31.0, 0.0, 0.0), (13.0, 11.0, 18.0))
    f = _smax(f, -hil, 5.0)
    f = f + _wobble(x, y, z, rng, amplitude_mm=1.5, n_waves=4, wavelength_mm=(50.0, 90.0))
    pelvis = _ellipsoid(xb, y, z, (10.0, 0.0, 0.0), (9.0, 7.0, 20.0))
    return f, pelvis


def kidney_phantom(*, shape: tuple[int, int, int] | int = (64, 64, 96),
                   spacing_mm: float | tuple[float, float, float] = 1.5, seed: int = 0,
                   specks: int = 0) -> LabelImage:
    """A synthetic right kidney: bean-shaped, ~11 x 6 x 4 cm, with a renal pelvis.

    Parameters
    ----------
    shape : (int, int, int) or int
        Voxels along i, j, k (default covers 96 x 96 x 144 mm at 1.5 mm).
    spacing_mm : float or (float, float, float)
        Voxel size (mm); the organ size in mm does not depend on it.
    seed : int
        Seed of the low-frequency shape variation.
    specks : int
        Number of isolated mislabelled blobs added outside the organ.

    Returns
    -------
    LabelImage
        Labels ``{1: "parenchyma", 2: "pelvis"}`` (the pelvis is an inner
        region near the hilum), metres, LPS, long axis along z (superior).

    Examples
    --------
    >>> img = kidney_phantom()
    >>> 0.09e-3 < img.label_volume([1, 2]) < 0.2e-3
    True
    """
    shp, sp = _grid_spacing(shape, spacing_mm)
    rng = np.random.default_rng(seed)
    origin_mm, axes, sl = _frame(shp, sp, _KIDNEY_CENTRE_MM, _KIDNEY_HALF_EXTENT, "kidney")
    x, y, z = np.meshgrid(axes[0][sl[0]], axes[1][sl[1]], axes[2][sl[2]], indexing="ij",
                          sparse=True)
    f, fp = _kidney_field(x, y, z, np.random.default_rng(rng.integers(2 ** 32)))
    organ = f <= 0.0
    sub = np.zeros(organ.shape, np.uint8)
    sub[organ] = 1
    sub[organ & (fp <= 0.0) & (f <= -2.5)] = 2
    labels = np.zeros(shp, np.uint8)
    labels[sl] = sub
    _add_specks(labels, labels > 0, sp, specks, rng, 1)
    return _image(labels, sp, origin_mm, KIDNEY_LABELS)


# --------------------------------------------------------------------------- block

def block_phantom(*, size_mm: tuple[float, float, float] = (100.0, 100.0, 30.0),
                  spacing_mm: float | tuple[float, float, float] = 2.0,
                  margin_voxels: int = 2) -> LabelImage:
    """A soft-tissue slab (default 10 x 10 x 3 cm) for exercises such as pattern cutting.

    Parameters
    ----------
    size_mm : (float, float, float)
        Slab size along x, y, z (mm); rounded to whole voxels.
    spacing_mm : float or (float, float, float)
        Voxel size (mm).
    margin_voxels : int
        Background voxels around the slab on every side.

    Returns
    -------
    LabelImage
        Label ``{1: "tissue"}``; the slab is centred on the world origin.

    Examples
    --------
    >>> img = block_phantom()
    >>> round(img.label_volume(1) * 1e6)   # cm^3
    300
    """
    sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    size = np.broadcast_to(np.asarray(size_mm, dtype=np.float64), (3,))
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0) or np.any(size <= 0):
        raise ImageError(f"block size and spacing must be positive (mm), got {size}, {sp}")
    n_in = np.maximum(1, np.round(size / sp).astype(int))
    m = int(margin_voxels)
    if m < 0:
        raise ImageError(f"margin_voxels must be >= 0, got {margin_voxels}")
    shp = tuple(int(v) for v in n_in + 2 * m)
    labels = np.zeros(shp, np.uint8)
    labels[m:m + n_in[0], m:m + n_in[1], m:m + n_in[2]] = 1
    local_first = -0.5 * (np.asarray(shp) - 1) * sp
    return _image(labels, sp, _BLOCK_CENTRE_MM + local_first, BLOCK_LABELS)
