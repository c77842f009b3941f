"""Label-image readers and writers: geometry (LPS/RAS), formats, segment names, bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from organsim.errors import ImageError, InputFileError, UnitsError
from organsim.io.images import read_image, write_image
from organsim.mesh.labelimage import LabelImage
from tests.conftest import organ_file

nib = pytest.importorskip("nibabel")  # test-only dependency: writes NIfTI with a known RAS affine


def _rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


#: A non-trivial orthonormal direction: axis permutation with flips, then 30 degrees about z.
DIRECTION = _rot_z(30.0) @ np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
SPACING_MM = np.array([0.8, 1.25, 2.0])
ORIGIN_MM = np.array([-120.5, 33.0, 410.25])
SHAPE = (9, 7, 5)
VOXEL = (6, 2, 3)


def _volume() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[VOXEL] = 1
    lab[0, 0, 0] = 2
    return lab


def _sitk_image(lab: np.ndarray) -> sitk.Image:
    img = sitk.GetImageFromArray(lab.transpose(2, 1, 0).copy())
    img.SetSpacing(SPACING_MM.tolist())
    img.SetOrigin(ORIGIN_MM.tolist())
    img.SetDirection(DIRECTION.ravel().tolist())
    return img


def _expected_lps_m(ijk) -> np.ndarray:
    # computed by hand from the definition, not by any reader
    return (ORIGIN_MM + DIRECTION @ (SPACING_MM * np.asarray(ijk, float))) * 1e-3


# ------------------------------------------------------------- orientation
@pytest.mark.parametrize("ext", [".nrrd", ".mha"])
def test_lps_input_voxel_lands_at_known_world_point(tmp_path, ext):
    path = tmp_path / f"lps{ext}"
    sitk.WriteImage(_sitk_image(_volume()), str(path))
    img = read_image(path)
    assert img.shape == SHAPE
    np.testing.assert_array_equal(np.argwhere(img.labels == 1), [VOXEL])
    np.testing.assert_allclose(img.index_to_world([VOXEL])[0], _expected_lps_m(VOXEL), atol=1e-9)
    np.testing.assert_allclose(img.spacing, SPACING_MM * 1e-3)
    np.testing.assert_allclose(img.direction, DIRECTION, atol=1e-9)


def _ras_affine() -> np.ndarray:
    """An oblique RAS affine (mm) for a NIfTI written with nibabel."""
    rot = _rot_z(-20.0) @ np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])
    aff = np.eye(4)
    aff[:3, :3] = rot * SPACING_MM[None, :]
    aff[:3, 3] = [15.0, -240.0, 88.5]
    return aff


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_ras_nifti_voxel_lands_at_known_world_point(tmp_path, ext):
    aff = _ras_affine()
    nii = nib.Nifti1Image(_volume(), aff)
    nii.set_qform(aff, code=1)
    nii.set_sform(aff, code=1)
    path = tmp_path / f"ras{ext}"
    nib.save(nii, str(path))
    img = read_image(path)
    np.testing.assert_array_equal(np.argwhere(img.labels == 1), [VOXEL])
    ras = aff @ np.r_[VOXEL, 1.0]
    lps_m = np.array([-ras[0], -ras[1], ras[2]]) * 1e-3  # RAS -> LPS flips x and y
    np.testing.assert_allclose(img.index_to_world([VOXEL])[0], lps_m, atol=1e-9)


def test_same_labels_as_nifti_and_nrrd_land_at_same_world_points(tmp_path):
    """A NIfTI (RAS, by nibabel) and a NRRD (LPS, by ITK) of the same scan agree in organsim."""
    aff = _ras_affine()
    lab = np.zeros(SHAPE, np.uint8)
    lab[2:5, 1:4, 1:3] = 1
    lab[VOXEL] = 2
    nii = nib.Nifti1Image(lab, aff)
    nii.set_qform(aff, code=1)
    nii.set_sform(aff, code=1)
    nib.save(nii, str(tmp_path / "a.nii.gz"))
    flip = np.diag([-1.0, -1.0, 1.0])
    lps_dir = flip @ aff[:3, :3] / SPACING_MM[None, :]
    im = sitk.GetImageFromArray(lab.transpose(2, 1, 0).copy())
    im.SetSpacing(SPACING_MM.tolist())
    im.SetOrigin((flip @ aff[:3, 3]).tolist())
    im.SetDirection(lps_dir.ravel().tolist())
    sitk.WriteImage(im, str(tmp_path / "b.nrrd"))
    a, b = read_image(tmp_path / "a.nii.gz"), read_image(tmp_path / "b.nrrd")
    for label in (1, 2):
        pa = a.index_to_world(np.argwhere(a.labels == label))
        pb = b.index_to_world(np.argwhere(b.labels == label))
        np.testing.assert_allclose(np.sort(pa, axis=0), np.sort(pb, axis=0), atol=1e-9)
    # and our own writer keeps the world points through every format
    for ext in (".nii.gz", ".nrrd", ".mha", ".vti"):
        c = read_image(write_image(a, tmp_path / f"c{ext}"))
        np.testing.assert_array_equal(c.labels, a.labels)
        np.testing.assert_allclose(c.affine, a.affine, atol=1e-12)


# -------------------------------------------------------------- round trips
@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".vti"])
def test_write_read_roundtrip(tmp_path, ext):
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 4, size=(6, 5, 4)).astype(np.uint8)
    img = LabelImage(lab, spacing=SPACING_MM * 1e-3, origin=ORIGIN_MM * 1e-3, direction=DIRECTION,
                     label_names={1: "parenchyma", 2: "tumour", 3: "vessel"})
    out = write_image(img, tmp_path / f"x{ext}")
    back = read_image(out)
    np.testing.assert_array_equal(back.labels, lab)
    np.testing.assert_allclose(back.spacing, img.spacing, rtol=1e-6)
    np.testing.assert_allclose(back.origin, img.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, img.direction, atol=1e-6)
    if ext != ".nii" and ext != ".nii.gz":
        assert back.label_names == img.label_names
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp files left


def test_label_names_argument_overrides(tmp_path):
    img = LabelImage(np.ones((3, 3, 3), np.uint8), spacing=(1e-3,) * 3, origin=(0, 0, 0),
                     label_names={1: "liver"})
    out = write_image(img, tmp_path / "l.nrrd")
    assert read_image(out, label_names={1: "organ", 2: "tumour"}).label_names == {
        1: "organ", 2: "tumour"}


def test_slicer_seg_nrrd_names_and_values(tmp_path):
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[1:3] = 5
    lab[4:] = 7
    im = sitk.GetImageFromArray(lab.transpose(2, 1, 0).copy())
    for n, (value, name) in enumerate([(5, "Liver"), (7, "Tumor")]):
        im.SetMetaData(f"Segment{n}_Name", name)
        im.SetMetaData(f"Segment{n}_LabelValue", str(value))
        im.SetMetaData(f"Segment{n}_Layer", "0")
    sitk.WriteImage(im, str(tmp_path / "s.seg.nrrd"))
    img = read_image(tmp_path / "s.seg.nrrd")
    assert img.label_names == {5: "Liver", 7: "Tumor"}
    assert img.present_labels() == [5, 7]


def test_slicer_seg_nrrd_multi_layer(tmp_path):
    """Overlapping segments on two layers become one label volume with one id per segment."""
    layer0 = np.zeros((5, 5, 5), np.uint8)
    layer0[:3] = 1          # "Liver" on layer 0, value 1
    layer1 = np.zeros((5, 5, 5), np.uint8)
    layer1[2:4] = 1         # "Tumor" on layer 1, value 1 (overlaps the liver at i=2)
    vec = np.stack([layer0, layer1], axis=-1).transpose(2, 1, 0, 3).copy()
    im = sitk.GetImageFromArray(vec, isVector=True)
    for n, (layer, name) in enumerate([(0, "Liver"), (1, "Tumor")]):
        im.SetMetaData(f"Segment{n}_Name", name)
        im.SetMetaData(f"Segment{n}_LabelValue", "1")
        im.SetMetaData(f"Segment{n}_Layer", str(layer))
    sitk.WriteImage(im, str(tmp_path / "m.seg.nrrd"))
    img = read_image(tmp_path / "m.seg.nrrd")
    assert img.label_names == {1: "Liver", 2: "Tumor"}
    assert np.all(img.labels[:2] == 1) and np.all(img.labels[2:4] == 2) and np.all(img.labels[4] == 0)


def test_vti_with_cell_data_voxels(tmp_path):
    import pyvista as pv

    grid = pv.ImageData(dimensions=(5, 4, 3), spacing=(2.0, 1.0, 0.5), origin=(10.0, 0.0, 0.0))
    lab = np.arange(4 * 3 * 2).reshape((4, 3, 2), order="F") % 3
    grid.cell_data["labels"] = lab.ravel(order="F").astype(np.uint8)
    grid.save(tmp_path / "c.vti")
    img = read_image(tmp_path / "c.vti")
    np.testing.assert_array_equal(img.labels, lab)
    np.testing.assert_allclose(img.origin, np.array([11.0, 0.5, 0.25]) * 1e-3)  # voxel centres


# ------------------------------------------------------------------- DICOM
def _write_dicom_series(folder, lab: np.ndarray, *, uid="1.2.826.0.1.3680043.2.1125.42",
                        name=lambda z, n: f"IM_{z}.dcm"):
    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(lab.transpose(2, 1, 0).astype(np.uint16).copy())
    img.SetSpacing((0.7, 0.7, 2.5))
    img.SetOrigin((-100.0, -80.0, 50.0))
    d = np.eye(3)
    d[:, 2] = [0, 0, 1]
    img.SetDirection(d.ravel().tolist())
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    n = lab.shape[2]
    for z in range(n):
        sl = img[:, :, z]
        pos = img.TransformIndexToPhysicalPoint((0, 0, z))
        for tag, value in [("0008|0060", "CT"), ("0020|000d", uid + ".1"), ("0020|000e", uid),
                           ("0020|0032", "\\".join(f"{v:.6f}" for v in pos)),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(z + 1)),
                           ("0008|0018", f"{uid}.{z + 100}")]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / name(z, n)))
        writer.Execute(sl)


def test_dicom_series_sorted_by_position_not_name(tmp_path):
    lab = np.zeros((6, 5, 12), np.uint8)
    for z in range(12):
        lab[z % 6, z % 5, z] = 1 + z % 3
    # names run against the slice order, and "IM_10" sorts before "IM_2" by name
    _write_dicom_series(tmp_path / "ser", lab, name=lambda z, n: f"IM_{n - z}.dcm")
    img = read_image(tmp_path / "ser")
    np.testing.assert_array_equal(img.labels, lab)
    np.testing.assert_allclose(img.spacing, [0.7e-3, 0.7e-3, 2.5e-3], rtol=1e-6)
    np.testing.assert_allclose(img.index_to_world([[0, 0, 11]])[0],
                               np.array([-100.0, -80.0, 50.0 + 11 * 2.5]) * 1e-3, atol=1e-9)
    # one file of the series selects it too
    np.testing.assert_array_equal(read_image(tmp_path / "ser" / "IM_1.dcm").labels, lab)


def test_dicom_folder_with_two_series_asks_which(tmp_path):
    lab = np.ones((4, 4, 3), np.uint8)
    _write_dicom_series(tmp_path / "two", lab, uid="1.2.3.4.5", name=lambda z, n: f"a{z}.dcm")
    _write_dicom_series(tmp_path / "two", 2 * lab, uid="1.2.3.4.6", name=lambda z, n: f"b{z}.dcm")
    with pytest.raises(InputFileError, match="2 DICOM series"):
        read_image(tmp_path / "two")
    assert read_image(tmp_path / "two" / "b0.dcm").present_labels() == [2]


def test_empty_folder_is_not_a_dicom_series(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no DICOM series"):
        read_image(tmp_path / "empty")


# --------------------------------------------------------------- bad input
def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "e.nii.gz").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_image(tmp_path / "e.nii.gz")


@pytest.mark.parametrize("ext", [".nii.gz", ".nii", ".nrrd", ".mha", ".vti"])
def test_truncated_image(tmp_path, ext):
    """ITK reads a cut-off NIfTI as zeros without complaint; organsim must not."""
    lab = np.random.default_rng(0).integers(0, 3, size=(40, 40, 40)).astype(np.uint8)
    img = LabelImage(lab, spacing=(1e-3,) * 3, origin=(0, 0, 0))
    full = write_image(img, tmp_path / f"full{ext}").read_bytes()
    cut = tmp_path / f"half{ext}"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(InputFileError, match=r"half.*(truncated|corrupt)"):
        read_image(cut)


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".vti", ".dcm"])
def test_random_bytes_with_valid_extension(tmp_path, ext):
    path = tmp_path / f"junk{ext}"
    path.write_bytes(np.random.default_rng(7).bytes(3000))
    with pytest.raises(InputFileError, match="junk"):
        read_image(path)


def test_gzip_of_junk(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(InputFileError, match="junk"):
        read_image(path)


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG....")
    with pytest.raises(InputFileError, match=r"\.nii\.gz.*\.nrrd"):
        read_image(path)
    img = LabelImage(np.ones((2, 2, 2), np.uint8), spacing=(1e-3,) * 3, origin=(0, 0, 0))
    with pytest.raises(InputFileError, match="supported"):
        write_image(img, tmp_path / "x.png")
    with pytest.raises(InputFileError, match="does not exist"):
        write_image(img, tmp_path / "no_such_dir" / "x.nii")


def test_intensity_image_is_rejected(tmp_path):
    ct = sitk.GetImageFromArray(np.full((4, 4, 4), -1000, np.int16))
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    with pytest.raises(ImageError, match="intensity"):
        read_image(tmp_path / "ct.nrrd")
    prob = sitk.GetImageFromArray(np.full((4, 4, 4), 0.3, np.float32))
    sitk.WriteImage(prob, str(tmp_path / "p.mha"))
    with pytest.raises(ImageError, match="non-integer"):
        read_image(tmp_path / "p.mha")


def test_2d_image_is_rejected(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((8, 8), np.uint8)), str(tmp_path / "s.nrrd"))
    with pytest.raises(ImageError, match="2D"):
        read_image(tmp_path / "s.nrrd")


def test_implausible_spacing_is_a_units_error(tmp_path):
    im = sitk.GetImageFromArray(np.ones((10, 10, 10), np.uint8))
    im.SetSpacing((1000.0, 1000.0, 1000.0))  # metres written as if mm... 10 m across
    sitk.WriteImage(im, str(tmp_path / "big.nrrd"))
    with pytest.raises(UnitsError, match="millimetres"):
        read_image(tmp_path / "big.nrrd")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import organsim.io.images as images

    def boom(image, tmp, ext):
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(images, "_write_sitk", boom)
    img = LabelImage(np.ones((2, 2, 2), np.uint8), spacing=(1e-3,) * 3, origin=(0, 0, 0))
    with pytest.raises(InputFileError, match="disk full"):
        write_image(img, tmp_path / "x.nii.gz")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- real data
@pytest.mark.realdata
@pytest.mark.slow
def test_kits19_segmentation():
    img = read_image(organ_file("kits19_case_00002_segmentation.nii.gz"),
                     label_names={1: "kidney", 2: "tumour"})
    assert img.shape == (261, 512, 512)
    assert img.present_labels() == [1, 2]
    np.testing.assert_allclose(img.spacing * 1e3, [1.0, 0.939453125, 0.939453125])
    # axis 0 runs along the body axis (slices), the other two in the axial plane
    assert abs(img.direction[2, 0]) == pytest.approx(1.0)
    assert img.label_names == {1: "kidney", 2: "tumour"}


@pytest.mark.realdata
def test_kits19_world_points_agree_with_nibabel_ras_affine():
    """The real NIfTI (orientation IPL) lands where its own RAS affine says, in LPS."""
    path = organ_file("kits19_case_00002_segmentation.nii.gz")
    img = read_image(path)
    aff = nib.load(str(path)).affine
    assert nib.aff2axcodes(aff) == ("I", "P", "L")
    ijk = np.array([[0, 0, 0], [10, 200, 300], [260, 511, 17]])
    ras = (aff @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    np.testing.assert_allclose(img.index_to_world(ijk), ras * [-1, -1, 1] * 1e-3, atol=1e-9)
