"""Corrupt input must never crash a reader: a value or an organsim error, nothing else.

The mutation fuzz (``benchmarks/bench_fuzz_readers.py``, the ``fuzz-readers``
benchmark) runs here on a few hundred deterministic cases, each read in its
own child process so that a segmentation fault is seen as a failure instead
of killing the test run. The regression tests below are the crashes and
untyped errors it found, written out by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from organsim.errors import InputFileError, OrganSimError
from organsim.io import (
    read_any,
    read_image,
    read_mesh,
    read_surface,
    write_mesh,
)
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.surface import TriSurface

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_fuzz_readers import fuzz  # noqa: E402 - the repository root first


def _assert_clean(res: dict) -> None:
    bad = [k for k, v in res["seeds_ok"].items() if v is not True]
    assert not bad, f"unmutated seed files do not read: {bad}"
    problems = "\n".join(f"{p['outcome']} {p['seed']} case {p['case']} ({p['mutation']}):"
                         f" {p['detail']}" for p in res["problems"])
    assert res["totals"]["crash"] == res["totals"]["hang"] == res["totals"]["untyped"] == 0, \
        problems


@pytest.mark.slow
def test_fuzz_every_reader_no_crash_only_typed_errors():
    res = fuzz(420, seed=1, timeout=30)   # 10 cases for each of the 42 seed files
    _assert_clean(res)
    assert set(res["per_format"]) >= {"surface.vtk", "mesh.vtk", "image.vtk", "surface.stl",
                                      "mesh.vtu", "image.nii.gz", "dicom/IM_1.dcm"}
    assert res["totals"]["typed"] > 0 and res["totals"]["ok"] > 0


@pytest.mark.slow
def test_fuzz_legacy_vtk_no_crash():
    """The format that crashed: binary and ASCII, 5.1 and 4.2 layouts, all three datasets."""
    res = fuzz(300, seed=2, only=".vtk", timeout=30)
    assert len(res["per_format"]) == 10
    _assert_clean(res)


# ------------------------------------------------------------ legacy .vtk regressions
def _surface() -> TriSurface:
    mesh = box_tet_mesh((3, 3, 3), 0.01)
    return TriSurface(mesh.points, mesh.boundary_faces)


def _vtk51(obj, path: Path) -> Path:
    """``obj`` (TriSurface or TetMesh, metres) as a binary legacy VTK 5.1 file in mm, as VTK 9 writes it.

    organsim writes legacy VTK 4.2 (what meshio reads); files from other tools are 5.1, with
    OFFSETS/CONNECTIVITY cell arrays: the reader must take both.
    """
    grid = obj.to_pyvista()
    grid.points = np.asarray(grid.points) * 1e3
    grid.save(str(path), binary=True)
    assert b"OFFSETS" in path.read_bytes() or b"CELLS" in path.read_bytes()
    return path


def _binary_array_offset(blob: bytes, keyword: bytes) -> int:
    """Byte offset of the binary data after the line starting with ``keyword``."""
    m = re.search(re.escape(keyword) + rb"[^\n]*\n", blob)
    assert m, keyword
    return m.end()


def test_binary_polydata_with_vertex_id_out_of_range_is_a_typed_error(tmp_path):
    # a bit flip in the connectivity of a binary POLYDATA used to segfault VTK's filters
    path = _vtk51(_surface(), tmp_path / "s.vtk")
    blob = bytearray(path.read_bytes())
    at = _binary_array_offset(bytes(blob), b"CONNECTIVITY")
    blob[at:at + 4] = (1 << 30).to_bytes(4, "big")
    path.write_bytes(bytes(blob))
    with pytest.raises(InputFileError, match=r"refers to vertex 1073741824, but there are \d+"
                                             r" points"):
        read_surface(path, units="mm")
    with pytest.raises(InputFileError, match="corrupt legacy VTK file"):
        read_any(path, units="mm")


def test_binary_polydata_with_bad_offsets_is_a_typed_error(tmp_path):
    path = _vtk51(_surface(), tmp_path / "s.vtk")
    blob = bytearray(path.read_bytes())
    at = _binary_array_offset(bytes(blob), b"OFFSETS")
    blob[at + 8 * 3:at + 8 * 4] = (2 ** 40).to_bytes(8, "big")  # the 4th offset: huge
    path.write_bytes(bytes(blob))
    with pytest.raises(InputFileError, match="OFFSETS must rise from 0"):
        read_surface(path, units="mm")


@pytest.mark.parametrize("old, new, match", [
    (b"POINTS 27 double", b"POINTS 97 double", "unexpected .* after POINTS"),
    (b"POINTS 27 double", b"POINTS 2 double", "unexpected .* after POINTS"),
    (b"POINTS 27 double", b"POINTS 999 double", "bytes of binary data but only"),
    (b"CELLS 49 192", b"CELLS 49 1920", "bytes of binary data but only"),
    (b"CELL_TYPES 48", b"CELL_TYPES 47", "CELL_TYPES lists 47 types for 48 cells"),
    (b"CELL_DATA 48", b"CELL_DATA 480", "CELL_DATA 480 does not match the 48 cells"),
    (b"DATASET UNSTRUCTURED_GRID", b"DATASET STRUCTURED_GRID", "is not read by organsim"),
    (b"BINARY", b"BINORY", "must say ASCII or BINARY"),
])
def test_binary_unstructured_grid_with_tampered_header_is_a_typed_error(tmp_path, old, new,
                                                                        match):
    # tampered header numbers in a binary UNSTRUCTURED_GRID crashed VTK's legacy reader
    path = _vtk51(box_tet_mesh((3, 3, 3), 0.01), tmp_path / "m.vtk")
    blob = path.read_bytes()
    assert old in blob
    path.write_bytes(blob.replace(old, new, 1))
    with pytest.raises(InputFileError, match=match):
        read_mesh(path, units="mm")


def test_cell_type_that_does_not_match_its_point_count_is_a_typed_error(tmp_path):
    path = write_mesh(box_tet_mesh((3, 3, 3), 0.01), tmp_path / "m.vtk", units="mm")
    blob = bytearray(path.read_bytes())
    at = _binary_array_offset(bytes(blob), b"CELL_TYPES")
    blob[at:at + 4] = (12).to_bytes(4, "big")        # a tet's 4 points called a hexahedron
    path.write_bytes(bytes(blob))
    with pytest.raises(InputFileError, match=r"cell 0 \(VTK type 12\) has 4 points, 8 expected"):
        read_mesh(path, units="mm")
    blob[at:at + 4] = (99).to_bytes(4, "big")
    path.write_bytes(bytes(blob))
    with pytest.raises(InputFileError, match="VTK cell type 99, which organsim does not read"):
        read_mesh(path, units="mm")


def test_classic_layout_cell_count_past_the_declared_size_is_a_typed_error(tmp_path):
    text = ("# vtk DataFile Version 4.2\nt\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n"
            "0 0 0 10 0 0 0 10 0 0 0 10\nPOLYGONS 2 8\n3 0 1 2\n9 0 1 3\n")
    (tmp_path / "c.vtk").write_text(text)
    with pytest.raises(InputFileError, match="cell 1 declares 9 points, which does not fit"):
        read_surface(tmp_path / "c.vtk", units="mm")
    (tmp_path / "c.vtk").write_text(text.replace("9 0 1 3", "3 0 1 3"))
    assert read_surface(tmp_path / "c.vtk", units="mm").n_faces == 2


def test_ascii_legacy_file_cut_short_is_a_typed_error(tmp_path):
    text = ("# vtk DataFile Version 4.2\nt\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n"
            "0 0 0 10 0 0 0 10 0 0 0 10\nPOLYGONS 2 8\n3 0 1 2\n3 0 1 3\n"
            "CELL_DATA 2\nSCALARS face_label int 1\nLOOKUP_TABLE default\n1 2\n")
    p = tmp_path / "a.vtk"
    p.write_text(text)
    assert read_surface(p, units="mm").face_labels.tolist() == [1, 2]
    for cut, match in [(len(text) - 3, "declares 2 values but the file holds only 1"),
                       (text.index("10 0 0 0"), "declares 12 values"),
                       (text.index("POLYGONS") + 12, ("declares 8 values but the file holds"
                                                     " only 0")),
                       (text.index("POLYGONS") + 10, ("the file ends where the second POLYGONS"
                                                     " count was expected"))]:
        p.write_text(text[:cut])
        with pytest.raises(InputFileError, match=match):
            read_surface(p, units="mm")
    p.write_text(text.replace("1 2\n", "1 x\n"))
    with pytest.raises(InputFileError, match="is not a int32 number"):
        read_surface(p, units="mm")


# ------------------------------------------------------------ valid legacy files still read
def _legacy(dataset, path: Path, *, binary: bool, version: int | None) -> Path:
    from vtkmodules.vtkIOLegacy import vtkDataSetWriter

    w = vtkDataSetWriter()
    w.SetInputData(dataset)
    w.SetFileName(str(path))
    w.SetFileTypeToBinary() if binary else w.SetFileTypeToASCII()
    if version is not None:
        w.SetFileVersion(version)
    w.Write()
    return path


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("version", [None, 42])
def test_legacy_layouts_read_the_same_mesh_surface_and_image(tmp_path, binary, version):
    import pyvista as pv

    mesh = box_tet_mesh((3, 4, 3), 0.01)
    grid = mesh.to_pyvista()
    grid.field_data.clear()
    grid.field_data["note"] = np.array(["a b%c", "d"])  # a string array (VTK-escaped names)
    m = read_mesh(_legacy(grid, tmp_path / "m.vtk", binary=binary, version=version), units="m")
    np.testing.assert_array_equal(m.points, mesh.points)
    np.testing.assert_array_equal(m.tets, mesh.tets)
    np.testing.assert_array_equal(m.region_ids, mesh.region_ids)

    surf = _surface()
    poly = pv.PolyData.from_regular_faces(surf.points * 1e3, surf.faces)
    poly.cell_data["face_label"] = np.arange(surf.n_faces, dtype=np.int32) % 4
    s = read_surface(_legacy(poly, tmp_path / "s.vtk", binary=binary, version=version),
                     units="mm")
    np.testing.assert_allclose(s.points, surf.points)
    np.testing.assert_array_equal(s.faces, surf.faces)
    np.testing.assert_array_equal(s.face_labels, np.arange(surf.n_faces) % 4)

    img = pv.ImageData(dimensions=(4, 3, 5), spacing=(1.5, 1.0, 2.0), origin=(1, 2, 3))
    img.point_data["labels"] = (np.arange(60) % 3).astype(np.int16)
    img.field_data["label_names"] = np.array(["1:liver", "2:tumour core"])
    li = read_image(_legacy(img, tmp_path / "i.vtk", binary=binary, version=version))
    assert li.shape == (4, 3, 5)
    np.testing.assert_array_equal(li.labels.ravel(order="F"), np.arange(60) % 3)
    np.testing.assert_allclose(li.spacing, [1.5e-3, 1e-3, 2e-3])
    assert li.label_names == {1: "liver", 2: "tumour core"}


def test_legacy_uint8_image_stored_as_color_scalars_keeps_its_labels(tmp_path):
    import pyvista as pv

    img = pv.ImageData(dimensions=(4, 3, 5), spacing=(1.0, 1.0, 1.0))
    img.point_data["labels"] = (np.arange(60) % 7).astype(np.uint8)  # written as COLOR_SCALARS
    for binary in (True, False):
        li = read_image(_legacy(img, tmp_path / f"c{binary}.vtk", binary=binary, version=None))
        np.testing.assert_array_equal(li.labels.ravel(order="F"), np.arange(60) % 7)


# ------------------------------------------------------------ XML files: cells checked too
def test_vtp_with_vertex_ids_out_of_range_is_a_typed_error(tmp_path):
    import pyvista as pv
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

    poly = pv.PolyData.from_regular_faces(np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0.]]),
                                          np.array([[0, 1, 2]]))
    w = vtkXMLPolyDataWriter()
    w.SetInputData(poly)
    w.SetFileName(str(tmp_path / "bad.vtp"))
    w.SetDataModeToAscii()
    w.Write()
    text = (tmp_path / "bad.vtp").read_text()
    text, n = re.subn(r'(Name="connectivity"[^>]*>\s*)0 1 2', r"\g<1>0 1 500000", text)
    assert n == 1
    (tmp_path / "bad.vtp").write_text(text)
    with pytest.raises(InputFileError, match="refer to vertex ids up to 500000"):
        read_surface(tmp_path / "bad.vtp", units="mm")
    text = text.replace('NumberOfPolys="1"', 'NumberOfPolys="99999999999"')
    (tmp_path / "bad.vtp").write_text(text)  # VTK aborted (std::bad_alloc) on this one
    with pytest.raises(InputFileError, match="more than a file of"):
        read_surface(tmp_path / "bad.vtp", units="mm")


def test_vtu_with_negative_point_count_is_a_typed_error(tmp_path):
    path = write_mesh(box_tet_mesh((3, 3, 3), 0.01), tmp_path / "m.vtu", units="mm")
    text = path.read_bytes()
    assert b'NumberOfPoints="27"' in text
    path.write_bytes(text.replace(b'NumberOfPoints="27"', b'NumberOfPoints="-27"'))
    with pytest.raises(InputFileError, match='NumberOfPoints="-27" must be a non-negative'):
        read_mesh(path, units="mm")   # VTK's XML reader crashed on this one


def test_every_public_reader_error_is_an_organsim_error(tmp_path):
    """A file of random bytes under every extension: an OrganSimError, never anything else."""
    rng = np.random.default_rng(0)
    from organsim.io import SUPPORTED_EXTENSIONS

    for ext in SUPPORTED_EXTENSIONS:
        p = tmp_path / f"junk{ext}"
        head = b"# vtk DataFile Version 5.1\nx\nBINARY\n" if ext == ".vtk" else b""
        p.write_bytes(head + rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
        with pytest.raises(OrganSimError):
            read_any(p, units="mm")
