"""Label images: NIfTI, NRRD (and 3D Slicer ``.seg.nrrd``), MetaImage, DICOM series, VTK image.

Coordinate convention
---------------------
organsim's world frame is **LPS** (x to the patient's Left, y Posterior,
z Superior), in metres; image files store millimetres.

* NIfTI stores its affine in **RAS**; SimpleITK (ITK) converts it to LPS
  when reading (it negates the first two rows of the affine), and back
  when writing. ``tests/test_io_images.py`` checks this against an affine
  written with nibabel.
* NRRD, MetaImage and DICOM are read by SimpleITK in LPS, as stored
  (a NRRD ``space`` of RAS is converted by ITK too).
* A VTK image (``.vti``) has no anatomical convention of its own. organsim
  takes it to be **LPS in millimetres**, like ITK: ``.vti`` volumes are made
  almost always by converting ITK/SimpleITK images (ITK's ``vtk_image_from_image``,
  pyvista ``wrap`` of a SimpleITK array) or by organsim's own
  :func:`write_image`, all of which keep ITK's physical space unchanged.
  A ``.vti`` exported from a RAS tool (e.g. a 3D Slicer scene saved in RAS)
  must be flipped in x and y by the user.

The label array is indexed ``labels[i, j, k]`` with ``i`` the fastest axis
on disk (SimpleITK's ``GetArrayFromImage`` gives ``[k, j, i]``; it is
transposed on read).
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ImageError, InputFileError, OrganSimError, UnitsError
from ..mesh.labelimage import LabelImage
from ._common import capture_vtk_messages, check_input_file, read_head, silence_native_stderr
from .atomic import atomic_output, full_suffix

__all__ = ["read_image", "write_image", "IMAGE_READ_EXTENSIONS", "IMAGE_WRITE_EXTENSIONS"]

log = logging.getLogger("organsim.io")

#: Extensions read by :func:`read_image` (a folder is read as a DICOM series).
IMAGE_READ_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".nhdr", ".mha", ".mhd",
                         ".dcm", ".vti", ".vtk")
#: Extensions written by :func:`write_image`.
IMAGE_WRITE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".vti")

_SITK_EXTENSIONS = {".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".nhdr", ".mha", ".mhd"}
_MM = 1e-3
#: An image (the whole field of view) larger than this is taken as a units mistake (m).
_MAX_IMAGE_EXTENT_M = 3.0
#: ... and smaller than this (m).
_MIN_IMAGE_EXTENT_M = 1e-3


# ====================================================================== read
def read_image(path: str | os.PathLike, *, label_names: dict[int, str] | None = None
               ) -> LabelImage:
    """Read a segmentation label volume, placed in world (LPS, m) coordinates.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``, ``.nii.gz``, ``.nrrd``, ``.seg.nrrd``, ``.nhdr``, ``.mha``,
        ``.mhd``, ``.vti``, legacy ``.vtk`` (STRUCTURED_POINTS); a folder
        holding one DICOM series; or one ``.dcm``
        file, which selects its series among the files of its folder.
        Spacing and origin in the file are millimetres.
    label_names : dict[int, str], optional
        Names of the labels, e.g. ``{1: "kidney", 2: "tumour"}``; they take
        precedence over names stored in the file (``.seg.nrrd`` segments).

    Returns
    -------
    LabelImage
        ``labels[i, j, k]`` with spacing and origin in metres and the
        direction cosines in LPS.

    Raises
    ------
    InputFileError
        Missing, empty, truncated or corrupt file, or an unknown extension.
    ImageError
        Not a 3D integer label volume (e.g. an intensity CT).
    UnitsError
        The image is implausibly large or small for millimetre spacing.

    Examples
    --------
    >>> img = read_image("case_00002/segmentation.nii.gz",
    ...                  label_names={1: "kidney", 2: "tumour"})  # doctest: +SKIP
    >>> img.shape, img.spacing * 1e3                               # doctest: +SKIP
    ((261, 512, 512), array([1.      , 0.939453, 0.939453]))
    """
    p = check_input_file(path, allow_dir=True)
    ext = full_suffix(p)
    try:
        with _quiet_itk():
            image = _read_any_image(p, ext)
    except OrganSimError:
        raise
    except Exception as exc:  # noqa: BLE001 - library errors become ours
        raise InputFileError(f"{p}: cannot read this label image ({_short(exc)}); the file"
                             " may be truncated or corrupt: export it again") from exc
    if label_names:
        names = dict(image.label_names)
        names.update({int(k): str(v) for k, v in label_names.items()})
        image = LabelImage(image.labels, image.spacing, image.origin, image.direction, names)
    return image


def _read_any_image(p: Path, ext: str) -> LabelImage:
    if p.is_dir():
        return _read_dicom_series(p, None)
    if ext == ".dcm" or (ext == "" and read_head(p, 132)[128:132] == b"DICM"):
        return _read_dicom_series(p.parent, p)
    if ext in _SITK_EXTENSIONS:
        return _read_sitk_file(p)
    if ext == ".vti":
        return _read_vti(p)
    if ext == ".vtk":  # legacy STRUCTURED_POINTS
        from .surfaces import read_vtk_dataset

        return image_from_vtk(read_vtk_dataset(p, ".vtk"), p)
    raise InputFileError(f"{p}: unknown label-image extension {ext or '(none)'!r}; supported:"
                         f" {', '.join(IMAGE_READ_EXTENSIONS)} or a DICOM series folder")


@contextlib.contextmanager
def _quiet_itk() -> Iterator[None]:
    """Keep ITK's warnings off stderr (failures are raised as organsim errors)."""
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def _short(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    # ITK messages carry a C++ file/line prefix that helps nobody
    text = re.sub(r"^.*?(Exception thrown in .*?: )", "", text)
    return text if len(text) <= limit else text[:limit] + "..."


def _finish(path: Path, labels: np.ndarray, spacing_mm, origin_mm, direction,
            names: dict[int, str]) -> LabelImage:
    """Check a volume read from ``path`` and build the LabelImage in metres."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise InputFileError(f"{path}: the image holds no voxels; export it again")
    if np.issubdtype(labels.dtype, np.floating) and not np.all(np.isfinite(labels)):
        raise ImageError(f"{path}: the image has NaN or infinite voxels; a label image holds"
                         " integer labels (0 = background): export the segmentation, not a"
                         " probability or intensity map")
    if labels.dtype.kind in "iuf" and labels.min() < 0:
        raise ImageError(f"{path}: the image has negative values (min {labels.min()}); a label"
                         " image holds labels >= 0. Is this an intensity image (CT in HU)"
                         " rather than a segmentation?")
    spacing = np.asarray(spacing_mm, dtype=np.float64) * _MM
    origin = np.asarray(origin_mm, dtype=np.float64) * _MM
    extent = float(np.max(spacing * np.asarray(labels.shape)))
    if extent > _MAX_IMAGE_EXTENT_M or extent < _MIN_IMAGE_EXTENT_M:
        raise UnitsError(
            f"{path}: the image is {extent:.3g} m across ({labels.shape} voxels of"
            f" {tuple(np.round(spacing / _MM, 6))} mm), implausible for a medical image; its"
            " spacing is probably not in millimetres: fix the spacing in the file header")
    try:
        return LabelImage(labels, spacing, origin, np.asarray(direction, dtype=np.float64),
                          names)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from exc


# --------------------------------------------------------------- SimpleITK
def _read_sitk_file(path: Path) -> LabelImage:
    import SimpleITK as sitk

    if full_suffix(path) in (".nii", ".nii.gz"):
        _check_nifti_complete(path)
    try:
        with silence_native_stderr():
            img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputFileError(f"{path}: cannot read this image ({_short(exc)}); the file may be"
                             " truncated or corrupt, or not of the format its extension says:"
                             " export it again") from exc
    return _from_sitk(img, path)


def _check_nifti_complete(path: Path) -> None:
    """Raise if a NIfTI file holds fewer voxel bytes than its header promises.

    ITK's NIfTI reader fills a truncated file with zeros without complaint,
    so the size is checked here (for ``.nii.gz`` by streaming through the
    whole gzip member, which also catches a cut-off compressed stream).
    """
    opener = gzip.open if full_suffix(path) == ".nii.gz" else open
    try:
        with opener(path, "rb") as fh:
            hdr = fh.read(540)
            total = len(hdr)
            while chunk := fh.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputFileError(f"{path}: the file is truncated or corrupt ({_short(exc)}); it was"
                             " probably not copied or written completely: export it again") from exc
    expected = _nifti_expected_size(hdr)
    if expected is not None and total < expected:
        raise InputFileError(f"{path}: the file is truncated: its header promises {expected}"
                             f" bytes of image data but it holds {total}; export it again")


def _nifti_expected_size(hdr: bytes) -> int | None:
    """Header + voxel bytes a NIfTI-1/2 header announces (None if not a NIfTI header)."""
    if len(hdr) < 348:
        return None
    for endian in "<>":
        size = struct.unpack(endian + "i", hdr[:4])[0]
        if size == 348:
            dims = struct.unpack(endian + "8h", hdr[40:56])
            bitpix = struct.unpack(endian + "h", hdr[72:74])[0]
            offset = int(struct.unpack(endian + "f", hdr[108:112])[0])
            break
        if size == 540 and len(hdr) >= 540:
            bitpix = struct.unpack(endian + "h", hdr[14:16])[0]
            dims = struct.unpack(endian + "8q", hdr[16:80])
            offset = int(struct.unpack(endian + "q", hdr[168:176])[0])
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    n = int(np.prod([max(int(d), 1) for d in dims[1:ndim + 1]], dtype=np.float64))
    return max(offset, 352 if size == 348 else 544) + n * bitpix // 8


def _from_sitk(img, path: Path) -> LabelImage:
    import SimpleITK as sitk

    dim = img.GetDimension()
    if dim == 4:
        size = img.GetSize()
        if size[3] != 1:
            raise ImageError(f"{path}: a 4D image ({size}) is not a label volume; expected a 3D"
                             " segmentation (one label per voxel)")
        img = sitk.Extract(img, size[:3] + (0,), (0, 0, 0, 0))
        dim = 3
    if dim != 3:
        raise ImageError(f"{path}: a {dim}D image of size {img.GetSize()} is not a 3D label"
                         " volume; export the segmentation as a 3D volume")
    keys = set(img.GetMetaDataKeys())
    segments = _segments_from_metadata(img, keys)
    arr = sitk.GetArrayFromImage(img)  # (k, j, i) or (k, j, i, c)
    if arr.ndim == 4:
        labels, names = _merge_layers(arr.transpose(2, 1, 0, 3), segments, path)
    else:
        labels = arr.transpose(2, 1, 0)
        names = {value: name for (layer, value), name in segments.items() if layer == 0}
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    return _finish(path, labels, img.GetSpacing(), img.GetOrigin(), direction, names)


def _segments_from_metadata(img, keys: set[str]) -> dict[tuple[int, int], str]:
    """3D Slicer segment names: {(layer, label value): name}."""
    out: dict[tuple[int, int], str] = {}
    indices = sorted({int(m.group(1)) for k in keys if (m := re.match(r"Segment(\d+)_Name$", k))})
    for n in indices:
        name = img.GetMetaData(f"Segment{n}_Name").strip()
        value_key, layer_key = f"Segment{n}_LabelValue", f"Segment{n}_Layer"
        value = int(img.GetMetaData(value_key)) if value_key in keys else 1
        # before label values existed, Slicer stored one binary segment per layer
        layer = int(img.GetMetaData(layer_key)) if layer_key in keys else (
            0 if value_key in keys else n)
        out[(layer, value)] = name
    return out


def _merge_layers(layers: np.ndarray, segments: dict[tuple[int, int], str], path: Path
                  ) -> tuple[np.ndarray, dict[int, str]]:
    """Flatten a multi-layer segmentation (i, j, k, layer) into one label volume.

    Each segment gets its own label id (1, 2, ... in segment order); where
    segments overlap, the later one wins and a warning says how many voxels.
    """
    n_layers = layers.shape[3]
    if not segments:
        raise ImageError(f"{path}: the image has {n_layers} components per voxel and no"
                         " segment names; expected a 3D label volume or a 3D Slicer .seg.nrrd")
    labels = np.zeros(layers.shape[:3], dtype=np.int32)
    names: dict[int, str] = {}
    overlap = 0
    for new_id, ((layer, value), name) in enumerate(segments.items(), start=1):
        if layer >= n_layers:
            raise InputFileError(f"{path}: segment {name!r} is on layer {layer} but the file has"
                                 f" {n_layers} layers; the header is inconsistent")
        mask = layers[..., layer] == value
        overlap += int(np.count_nonzero(mask & (labels != 0)))
        labels[mask] = new_id
        names[new_id] = name
    if overlap:
        log.warning("%s: %d voxels belong to more than one segment; each keeps the last"
                    " segment listed", path, overlap)
    return labels, names


# ------------------------------------------------------------------- DICOM
def _read_dicom_series(folder: Path, one_file: Path | None) -> LabelImage:
    import SimpleITK as sitk

    if one_file is not None:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(one_file))
        try:
            with silence_native_stderr():
                reader.ReadImageInformation()
        except RuntimeError as exc:
            raise InputFileError(f"{one_file}: not a readable DICOM file ({_short(exc)}); give a"
                                 " slice of a DICOM series or the folder holding them") from exc
        uid = reader.GetMetaData("0020|000e").strip() if reader.HasMetaDataKey("0020|000e") else ""
    with silence_native_stderr():
        series_ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not series_ids:
        raise InputFileError(f"{folder}: no DICOM series found in this folder; give the folder"
                             " that holds the .dcm slices of one segmentation")
    if one_file is not None:
        if uid not in series_ids:
            raise InputFileError(f"{one_file}: its series {uid!r} was not found in {folder}")
        series_id = uid
    elif len(series_ids) > 1:
        raise InputFileError(
            f"{folder}: holds {len(series_ids)} DICOM series ({', '.join(series_ids)}); give the"
            " path of one .dcm file of the series you want, or a folder with one series only")
    else:
        series_id = series_ids[0]
    with silence_native_stderr():
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id))
    files = _sort_slices(files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()
    with silence_native_stderr():
        img = reader.Execute()
    return _from_sitk(img, folder)


def _sort_slices(files: list[str], folder: Path) -> list[str]:
    """Order slice files by their position along the slice normal (not by file name)."""
    import SimpleITK as sitk

    if len(files) < 2:  # one multi-frame file, or a single 2D slice (rejected later)
        return files
    positions, normal = [], None
    for f in files:
        r = sitk.ImageFileReader()
        r.SetFileName(f)
        r.ReadImageInformation()
        if not (r.HasMetaDataKey("0020|0032") and r.HasMetaDataKey("0020|0037")):
            raise InputFileError(f"{f}: this DICOM slice has no ImagePositionPatient /"
                                 " ImageOrientationPatient; cannot place it in the volume")
        ipp = np.array([float(v) for v in r.GetMetaData("0020|0032").split("\\")])
        if normal is None:
            iop = np.array([float(v) for v in r.GetMetaData("0020|0037").split("\\")])
            normal = np.cross(iop[:3], iop[3:])
        positions.append(float(ipp @ normal))
    order = np.argsort(positions, kind="stable")
    gaps = np.diff(np.asarray(positions)[order])
    if np.any(gaps < 1e-6):
        raise ImageError(f"{folder}: two DICOM slices share the same position; the folder may"
                         " mix two series or hold duplicates")
    return [files[i] for i in order]


# --------------------------------------------------------------------- VTI
def _read_vti(path: Path) -> LabelImage:
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    from .legacy_vtk import check_vtk_xml_counts

    check_vtk_xml_counts(path)  # VTK allocates what the header announces, before reading
    with capture_vtk_messages() as msgs:
        reader = vtkXMLImageDataReader()
        reader.SetFileName(str(path))
        reader.Update()
        data = reader.GetOutput()
    if msgs.has_error or data is None or data.GetNumberOfPoints() == 0:
        raise InputFileError(f"{path}: cannot read this VTK image"
                             f" ({msgs.summary() or 'no voxels'}); the file may be truncated or"
                             " corrupt: export it again")
    return image_from_vtk(data, path)


def image_from_vtk(data, path: Path) -> LabelImage:
    """A LabelImage from a ``vtkImageData`` (taken as LPS, millimetres)."""
    import pyvista as pv

    if not isinstance(pv.wrap(data), pv.ImageData):
        raise ImageError(f"{path}: holds a {type(pv.wrap(data)).__name__}, not an image;"
                         " read surfaces with read_surface and meshes with read_mesh")
    img = pv.wrap(data)
    dims = np.array(img.dimensions)
    spacing = np.array(img.spacing, dtype=np.float64)
    origin = np.array(img.origin, dtype=np.float64)
    direction = np.array(img.direction_matrix, dtype=np.float64)
    if img.point_data.keys():
        name = _pick_array(img.point_data)
        arr, shape = np.asarray(img.point_data[name]), dims
    elif img.cell_data.keys():
        # voxels stored as cells: their centres are half a voxel in from the points
        name = _pick_array(img.cell_data)
        arr, shape = np.asarray(img.cell_data[name]), np.maximum(dims - 1, 1)
        origin = origin + direction @ (0.5 * spacing * (dims > 1))
    else:
        raise ImageError(f"{path}: the VTK image holds no data array; expected one label"
                         " array (point or cell data)")
    if arr.ndim != 1 and not (arr.ndim == 2 and arr.shape[1] == 1):
        raise ImageError(f"{path}: array {name!r} has {arr.shape[1]} components per voxel;"
                         " expected one label per voxel")
    labels = arr.reshape(tuple(shape), order="F")
    names = {}
    if "label_names" in img.field_data:
        for entry in np.asarray(img.field_data["label_names"]).ravel():
            k, _, v = str(entry).partition(":")
            if k.strip().isdigit():
                names[int(k)] = v
    return _finish(path, labels, spacing, origin, direction, names)


def _pick_array(arrays) -> str:
    keys = list(arrays.keys())
    for preferred in ("labels", "label", "segmentation", "Labels", "ImageScalars", "scalars"):
        if preferred in keys:
            return preferred
    active = getattr(arrays, "active_scalars_name", None)
    return active if active in keys else keys[0]


# ===================================================================== write
def write_image(image: LabelImage, path: str | os.PathLike) -> Path:
    """Write a label image (atomically), in millimetres.

    Parameters
    ----------
    image : LabelImage
    path : str or os.PathLike
        ``.nii``/``.nii.gz`` (stored in RAS as NIfTI requires; label names
        are not kept), ``.nrrd``/``.seg.nrrd`` (label names kept as 3D Slicer
        segments), ``.mha`` (label names kept in the header) or ``.vti``
        (LPS, label names kept as field data).

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> img = LabelImage(np.ones((3, 3, 3), np.uint8), spacing=(1e-3,) * 3, origin=(0, 0, 0),
    ...                  label_names={1: "liver"})
    >>> out = write_image(img, pathlib.Path(tempfile.mkdtemp()) / "liver.seg.nrrd")
    >>> read_image(out).label_names
    {1: 'liver'}
    """
    final = Path(path)
    ext = full_suffix(final)
    if ext not in IMAGE_WRITE_EXTENSIONS:
        raise InputFileError(f"{final}: cannot write a label image as {ext or '(no extension)'!r};"
                             f" supported: {', '.join(IMAGE_WRITE_EXTENSIONS)}")
    with atomic_output(final) as tmp:
        try:
            if ext == ".vti":
                _write_vti(image, tmp)
            else:
                _write_sitk(image, tmp, ext)
        except OrganSimError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputFileError(f"{final}: cannot write the image ({_short(exc)})") from exc
    return final


def _label_array(image: LabelImage) -> np.ndarray:
    lab = image.labels
    if lab.dtype.kind in "iu":
        hi, lo = int(lab.max(initial=0)), int(lab.min(initial=0))
        for dt in (np.uint8, np.uint16, np.int32):
            info = np.iinfo(dt)
            if info.min <= lo and hi <= info.max:
                return lab.astype(dt, copy=False)
    return lab.astype(np.int64)


def _write_sitk(image: LabelImage, tmp: Path, ext: str) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(_label_array(image).transpose(2, 1, 0)))
    img.SetSpacing(tuple(float(s) for s in image.spacing / _MM))
    img.SetOrigin(tuple(float(o) for o in image.origin / _MM))
    img.SetDirection(tuple(float(d) for d in image.direction.ravel()))
    if ext in (".nii", ".nii.gz") and image.label_names:
        log.info("NIfTI has no place for label names; %s are not stored (use .seg.nrrd,"
                 " .nrrd, .mha or .vti to keep them)", image.label_names)
    if ext in (".nrrd", ".seg.nrrd", ".mha"):
        for n, (value, name) in enumerate(sorted(image.label_names.items())):
            img.SetMetaData(f"Segment{n}_Name", name)
            img.SetMetaData(f"Segment{n}_ID", f"Segment_{value}")
            img.SetMetaData(f"Segment{n}_LabelValue", str(value))
            img.SetMetaData(f"Segment{n}_Layer", "0")
    sitk.WriteImage(img, str(tmp), useCompression=True)


def _write_vti(image: LabelImage, tmp: Path) -> None:
    import pyvista as pv

    grid = pv.ImageData(dimensions=image.shape, spacing=tuple(image.spacing / _MM),
                        origin=tuple(image.origin / _MM))
    grid.direction_matrix = image.direction
    grid.point_data["labels"] = _label_array(image).ravel(order="F")
    if image.label_names:
        grid.field_data["label_names"] = np.array(
            [f"{k}:{v}" for k, v in sorted(image.label_names.items())])
    with capture_vtk_messages() as msgs:
        grid.save(str(tmp), binary=True)
    if msgs.has_error:
        raise InputFileError(f"VTK could not write the image: {msgs.summary()}")
