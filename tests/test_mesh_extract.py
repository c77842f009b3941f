"""Label-to-surface extraction: world placement, closure, volume, multi-label boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from organsim.errors import ImageError, MeshError
from organsim.mesh.extract import (extract_label_boundaries, extract_surface, make_well_composed,
                                   sample_labels)
from organsim.mesh.labelimage import LabelImage
from organsim.phantoms import block_phantom, kidney_phantom, liver_phantom


def _rotation(seed: int, flip: bool) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q if np.linalg.det(q) > 0 else -q
    if flip:
        q = q @ np.diag([1.0, -1.0, 1.0])  # a left-handed axis order (det -1)
    return q


@pytest.fixture(scope="module")
def liver():
    return liver_phantom()


@pytest.mark.parametrize("flip", [False, True])
def test_known_voxel_lands_at_its_world_place(flip):
    lab = np.zeros((6, 7, 8), np.uint8)
    lab[2, 3, 4] = 1
    direction = _rotation(1, flip)
    img = LabelImage(lab, spacing=(1e-3, 2e-3, 3e-3), origin=(0.01, -0.2, 0.3), direction=direction)
    s = extract_surface(img, 1, smoothing=0)
    assert s.is_watertight and s.is_edge_manifold
    # The staircase surface is the voxel's box: corners at index 2+-0.5, 3+-0.5, 4+-0.5.
    ijk = img.world_to_index(s.points)
    assert np.allclose(np.sort(np.unique(np.round(ijk, 9)[:, 0])), [1.5, 2.5])
    assert np.allclose(np.sort(np.unique(np.round(ijk, 9)[:, 1])), [2.5, 3.5])
    assert np.allclose(np.sort(np.unique(np.round(ijk, 9)[:, 2])), [3.5, 4.5])
    assert s.signed_volume == pytest.approx(img.voxel_volume, rel=1e-9)
    centre = s.points.mean(axis=0)
    assert np.allclose(centre, img.index_to_world([[2, 3, 4]])[0], atol=1e-12)


@pytest.mark.parametrize("flip", [False, True])
def test_smoothed_blob_centre_and_outward_with_direction(flip):
    lab = np.zeros((20, 20, 20), np.uint8)
    i, j, k = np.indices(lab.shape)
    lab[(i - 9) ** 2 + (j - 10) ** 2 + (k - 11) ** 2 <= 36] = 1
    img = LabelImage(lab, spacing=(1e-3, 1.5e-3, 0.8e-3), origin=(0.1, 0.0, -0.05),
                     direction=_rotation(7, flip))
    s = extract_surface(img, 1)
    assert s.is_watertight and s.is_edge_manifold
    assert s.signed_volume > 0
    assert s.signed_volume == pytest.approx(img.label_volume(1), rel=0.01)
    # The area-weighted centroid of the surface is the blob's centre.
    p = s.points[s.faces]
    a = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    c = (p.mean(axis=1) * a[:, None]).sum(0) / a.sum()
    assert np.linalg.norm(c - img.index_to_world([[9, 10, 11]])[0]) < 0.3e-3


def test_organ_touching_border_is_closed():
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[:, :4, :] = 1  # touches four faces of the image
    img = LabelImage(lab, spacing=(1e-3,) * 3, origin=(0, 0, 0))
    for method in ("surface_nets", "marching_cubes"):
        s = extract_surface(img, 1, method=method)
        assert s.is_watertight and s.is_edge_manifold and s.signed_volume > 0, method
        assert s.signed_volume == pytest.approx(img.label_volume(1), rel=0.02)


@pytest.mark.parametrize("method", ["surface_nets", "marching_cubes"])
def test_liver_outer_surface(liver, method):
    s = extract_surface(liver, method=method)
    assert s.is_watertight and s.is_edge_manifold
    vox = liver.label_volume([1, 2, 3, 4])
    assert abs(s.signed_volume / vox - 1) < 0.01
    # Faces keep the label inside them: the ligament shows on the outer surface.
    assert set(np.unique(s.face_labels)) == {1, 4}


def test_volume_without_correction_is_still_close(liver):
    s = extract_surface(liver, preserve_volume=False)
    assert abs(s.signed_volume / liver.label_volume([1, 2, 3, 4]) - 1) < 0.02


def test_single_label_and_subset(liver):
    s = extract_surface(liver, 2)  # the tumour alone
    assert s.is_watertight and s.signed_volume > 0
    assert s.signed_volume == pytest.approx(liver.label_volume(2), rel=0.02)
    assert set(np.unique(s.face_labels)) == {2}


def test_staircase_encloses_voxel_volume_exactly():
    img = kidney_phantom()
    s = extract_surface(img, smoothing=0, fix_topology=False)
    assert s.signed_volume == pytest.approx(img.label_volume([1, 2]), rel=1e-9)


def _edge_contact():
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[1:3, 1:3, 1:5] = 1
    lab[3:5, 3:5, 1:5] = 1  # touches the first box only along an edge
    return lab


def _corner_contact():
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    lab[3:5, 3:5, 3:5] = 1  # touches the first box only at a corner
    return lab


@pytest.mark.parametrize("make", [_edge_contact, _corner_contact])
def test_pinched_voxels_give_a_closed_manifold(make):
    img = LabelImage(make(), spacing=(1e-3,) * 3, origin=(0, 0, 0))
    s = extract_surface(img, 1)
    assert s.is_watertight and s.is_edge_manifold and s.signed_volume > 0


def _critical(m: np.ndarray) -> bool:
    """True if ``m`` has an edge- or corner-only contact (slow reference check)."""
    m = np.pad(m, 1)
    for i in range(m.shape[0] - 1):
        for j in range(m.shape[1] - 1):
            for k in range(m.shape[2] - 1):
                c = m[i:i + 2, j:j + 2, k:k + 2]
                for v in (c, ~c):
                    for sq in (v[0], v[1], v[:, 0], v[:, 1], v[:, :, 0], v[:, :, 1]):
                        if (sq[0, 0] and sq[1, 1] and not sq[0, 1] and not sq[1, 0]) or \
                                (sq[0, 1] and sq[1, 0] and not sq[0, 0] and not sq[1, 1]):
                            return True
                    for a in range(2):
                        for b in range(2):
                            if v[a, b, 0] and v[1 - a, 1 - b, 1] and v.sum() == 2:
                                return True
    return False


@settings(max_examples=25, deadline=None)
@given(arrays(bool, (5, 5, 5)))
def test_make_well_composed_property(mask):
    out, n = make_well_composed(mask)
    assert np.all(out[mask])
    assert n == int(out.sum() - mask.sum())
    assert not _critical(out)


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(arrays(bool, (6, 6, 6), elements=st.booleans()))
def test_random_masks_extract_closed(mask):
    if not mask.any():
        return
    img = LabelImage(mask.astype(np.uint8), spacing=(1e-3,) * 3, origin=(0, 0, 0))
    s = extract_surface(img, 1)
    assert s.is_watertight and s.is_edge_manifold
    assert s.signed_volume > 0


def test_no_voxel_of_label_raises(liver):
    with pytest.raises(ImageError, match="no voxel of label"):
        extract_surface(liver, 9)
    empty = LabelImage(np.zeros((4, 4, 4), np.uint8), spacing=(1e-3,) * 3, origin=(0, 0, 0))
    with pytest.raises(ImageError, match="empty"):
        extract_surface(empty)
    with pytest.raises(MeshError, match="unknown extraction method"):
        extract_surface(liver, method="dual_contouring")


@pytest.mark.slow
def test_label_boundaries_regions_closed_and_oriented(liver):
    lb = extract_label_boundaries(liver)
    pairs = {tuple(p) for p in lb.regions.tolist()}
    assert {(1, 0), (4, 0), (2, 1), (3, 1), (4, 1)} <= pairs
    assert np.all(lb.regions[:, 0] > lb.regions[:, 1])
    for r in (1, 2, 3, 4):
        rs = lb.region_surface(r)
        assert rs.is_watertight and rs.is_edge_manifold, r
        assert rs.signed_volume == pytest.approx(liver.label_volume(r), rel=0.02), r
    outer = lb.outer_surface()
    assert outer.is_watertight and outer.signed_volume > 0
    # Normals point from the 'inside' region into the 'outside' one: probe the image.
    s = lb.surface
    c = s.points[s.faces].mean(axis=1)
    h = float(liver.spacing.min())
    front = sample_labels(liver, c + 0.5 * h * s.face_normals)
    back = sample_labels(liver, c - 0.5 * h * s.face_normals)
    assert np.mean(front == lb.regions[:, 1]) > 0.9
    assert np.mean(back == lb.regions[:, 0]) > 0.7
    assert lb.label_names[2] == "tumour"


def test_sample_labels(liver):
    idx = np.argwhere(liver.labels == 2)[:50]
    assert np.all(sample_labels(liver, liver.index_to_world(idx)) == 2)
    assert sample_labels(block_phantom(), [[5.0, 5.0, 5.0]]).tolist() == [0]


@pytest.mark.realdata
@pytest.mark.slow
def test_real_kits19_label_volume_extracts_closed():
    """KiTS19 case 2 (kidneys + tumour, NIfTI, non-axial direction) -> closed surfaces."""
    from tests.conftest import organ_file
    from organsim.io import read_image
    from organsim.mesh.repair import find_self_intersections, repair_surface

    img = read_image(organ_file("kits19_case_00002_segmentation.nii.gz"))
    whole = extract_surface(img)
    assert whole.is_watertight and whole.is_edge_manifold
    assert whole.signed_volume == pytest.approx(img.label_volume([1, 2]), rel=0.01)
    assert len(find_self_intersections(whole)) == 0
    # Segmentation specks go; both kidneys stay.
    out, rep = repair_surface(whole)
    assert rep.components_removed > 0 and rep.components_out == 2
    assert out.is_watertight and out.signed_volume > 0.99 * whole.signed_volume
    tumour = extract_surface(img, 2)
    assert tumour.is_watertight
    assert tumour.signed_volume == pytest.approx(img.label_volume(2), rel=0.01)
    # The surface lies where the voxels are: vertices map back inside the label's bbox.
    idx = np.argwhere(img.labels == 2)
    ijk = img.world_to_index(tumour.points)
    assert np.all(ijk >= idx.min(axis=0) - 1.0) and np.all(ijk <= idx.max(axis=0) + 1.0)


@pytest.mark.parametrize("flip", [False, True])
def test_label_boundaries_with_direction(flip):
    base = liver_phantom(shape=(96, 80, 80), spacing_mm=2.2)
    img = LabelImage(base.labels, spacing=base.spacing, origin=base.origin,
                     direction=_rotation(3, flip), label_names=base.label_names)
    lb = extract_label_boundaries(img)
    for r in img.present_labels():
        rs = lb.region_surface(r)
        assert rs.is_watertight and rs.signed_volume > 0, r
        assert rs.signed_volume == pytest.approx(img.label_volume(r), rel=0.05), r
    outer = extract_surface(img)
    assert outer.signed_volume == pytest.approx(lb.outer_surface().signed_volume, rel=1e-3)
