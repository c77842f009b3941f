"""Synthetic organ phantoms: determinism, sizes, label layout, grid independence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from organsim.errors import ImageError
from organsim.phantoms import (BLOCK_LABELS, KIDNEY_LABELS, LIVER_LABELS, block_phantom,
                               kidney_phantom, liver_phantom)


@pytest.fixture(scope="module")
def liver():
    return liver_phantom()


def _extent_mm(img, labels):
    idx = np.argwhere(np.isin(img.labels, labels))
    w = img.index_to_world(idx) * 1e3
    return w.max(axis=0) - w.min(axis=0), w.mean(axis=0)


def test_liver_labels_and_size(liver):
    assert liver.label_names == LIVER_LABELS
    assert liver.present_labels() == [1, 2, 3, 4]
    vol_l = liver.label_volume([1, 2, 3, 4]) * 1e3  # litres
    assert 1.2 <= vol_l <= 1.8
    ext, centre = _extent_mm(liver, [1, 2, 3, 4])
    assert 150 <= ext[0] <= 200          # left-right width
    assert 100 <= ext[1] <= 160 and 100 <= ext[2] <= 160
    # Liver in the patient's right upper quadrant: x (towards Left) negative.
    assert centre[0] < -30
    # Tumour: one roughly spherical lesion of 2-3 cm diameter.
    t_ext, t_centre = _extent_mm(liver, [2])
    assert np.all((20 <= t_ext) & (t_ext <= 32))
    assert t_centre[0] < centre[0]  # in the right lobe (towards patient right)
    assert ndimage.label(liver.labels == 2)[1] == 1


def test_liver_inner_regions_stay_inside(liver):
    lab = liver.labels
    bg = lab == 0
    for inner in (2, 3):
        touching = ndimage.binary_dilation(lab == inner) & bg
        assert not touching.any(), f"label {inner} touches the background"
    # Vessels and tumour are separated by parenchyma.
    assert not (ndimage.binary_dilation(lab == 3) & (lab == 2)).any()
    # The whole organ is one connected piece.
    assert ndimage.label(lab > 0)[1] == 1


def test_liver_vessels_survive_meshing_resolution(liver):
    # Radius >= 4 mm: every vessel voxel set has a core >= 3 mm from its boundary.
    depth = ndimage.distance_transform_edt(liver.labels == 3, sampling=liver.spacing * 1e3)
    lab, n = ndimage.label(liver.labels == 3)
    for c in range(1, n + 1):
        assert depth[lab == c].max() >= 3.0


def test_liver_ligament_is_thin_superior_posterior_band(liver):
    lab = liver.labels
    lig = lab == 4
    assert ndimage.label(lig)[1] == 1
    # On the surface: every ligament voxel is within a few mm of the background.
    dist_bg = ndimage.distance_transform_edt(lab > 0, sampling=liver.spacing * 1e3)
    assert dist_bg[lig].max() <= 6.0
    _, lig_c = _extent_mm(liver, [4])
    _, c = _extent_mm(liver, [1, 2, 3, 4])
    assert lig_c[2] > c[2] + 20  # superior
    assert lig_c[1] > c[1]       # posterior (y towards Posterior in LPS)
    area_cm2 = lig.sum() * liver.voxel_volume / 4e-3 * 1e4  # volume / thickness
    assert area_cm2 > 20


def test_liver_deterministic_and_seeded():
    a = liver_phantom(shape=64, spacing_mm=3.2, seed=3)
    b = liver_phantom(shape=64, spacing_mm=3.2, seed=3)
    c = liver_phantom(shape=64, spacing_mm=3.2, seed=4)
    assert np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_liver_size_independent_of_grid(liver):
    fine = liver_phantom(shape=(200, 160, 160), spacing_mm=1.1)
    v0, v1 = liver.label_volume([1, 2, 3, 4]), fine.label_volume([1, 2, 3, 4])
    assert abs(v1 / v0 - 1) < 0.02
    e0, c0 = _extent_mm(liver, [1, 2, 3, 4])
    e1, c1 = _extent_mm(fine, [1, 2, 3, 4])
    assert np.all(np.abs(e0 - e1) < 4.0)
    assert np.all(np.abs(c0 - c1) < 2.0)


def test_liver_too_small_grid_raises():
    with pytest.raises(ImageError, match="does not fit"):
        liver_phantom(shape=64, spacing_mm=1.0)


def test_specks_are_small_and_outside():
    img = liver_phantom(shape=64, spacing_mm=3.2, specks=12, seed=1)
    lab, n = ndimage.label(img.labels > 0)
    sizes = np.bincount(lab.ravel())[1:]
    assert n >= 10  # a few specks may merge
    assert np.sort(sizes)[-2] <= 8
    clean = liver_phantom(shape=64, spacing_mm=3.2, seed=1)
    assert np.array_equal(img.labels[clean.labels > 0], clean.labels[clean.labels > 0])


def test_kidney_phantom():
    img = kidney_phantom()
    assert img.label_names == KIDNEY_LABELS
    assert img.present_labels() == [1, 2]
    ext = np.sort(_extent_mm(img, [1, 2])[0])
    assert 30 <= ext[0] <= 50 and 50 <= ext[1] <= 70 and 100 <= ext[2] <= 120
    assert not (ndimage.binary_dilation(img.labels == 2) & (img.labels == 0)).any()
    assert 100e-6 < img.label_volume([1, 2]) < 200e-6


def test_block_phantom():
    img = block_phantom(size_mm=(100, 100, 30), spacing_mm=2.0)
    assert img.label_names == BLOCK_LABELS
    assert img.label_volume(1) == pytest.approx(100 * 100 * 30 * 1e-9)
    ext, centre = _extent_mm(img, [1])
    assert np.allclose(ext + 2.0, [100, 100, 30])
    assert np.allclose(centre, 0, atol=1e-9)
