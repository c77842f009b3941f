"""Surface readers and writers: every format, welding, units, bad input, real data."""

from __future__ import annotations

import base64
import gzip
import zlib

import numpy as np
import pytest

from organsim.errors import InputFileError, MeshError, UnitsError
from organsim.io.surfaces import SURFACE_WRITE_EXTENSIONS, read_surface, write_surface
from organsim.mesh.surface import TriSurface
from tests.conftest import organ_file


def _octahedron(scale_m: float = 0.05) -> TriSurface:
    """A closed, outward-oriented octahedron (6 vertices, 8 faces), in metres."""
    pts = scale_m * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                      [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return TriSurface(pts + [0.01, -0.02, 0.3], faces)


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("ext", SURFACE_WRITE_EXTENSIONS)
@pytest.mark.parametrize("units", ["m", "mm"])
def test_roundtrip(tmp_path, ext, units):
    surf = _octahedron()
    out = write_surface(surf, tmp_path / f"octa{ext}", units=units)
    back = read_surface(out, units=units)
    assert back.n_points == 6 and back.n_faces == 8  # STL/GLB are welded back to 6 vertices
    tol = 1e-7 if ext in (".stl", ".glb") else 1e-12  # float32 formats
    np.testing.assert_allclose(np.sort(back.points, axis=0), np.sort(surf.points, axis=0), atol=tol)
    assert back.signed_volume == pytest.approx(surf.signed_volume, rel=1e-5)
    assert back.is_watertight
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_vtp_keeps_face_labels(tmp_path):
    surf = _octahedron()
    lab = np.arange(8) % 2
    out = write_surface(TriSurface(surf.points, surf.faces, lab), tmp_path / "l.vtp")
    np.testing.assert_array_equal(read_surface(out, units="m").face_labels, lab)


def test_units_scale(tmp_path):
    out = write_surface(_octahedron(), tmp_path / "o.obj", units="mm")
    np.testing.assert_allclose(read_surface(out, units="mm").points, _octahedron().points)
    np.testing.assert_allclose(read_surface(out, units="cm").points, 10 * _octahedron().points)


# ----------------------------------------------------------- format details
def test_ascii_stl_is_welded(tmp_path):
    surf = _octahedron()
    lines = ["solid octa"]
    for f in surf.faces:
        lines += ["  facet normal 0 0 0", "    outer loop"]
        lines += [f"      vertex {x:.9e} {y:.9e} {z:.9e}" for x, y, z in surf.points[f] * 1e3]
        lines += ["    endloop", "  endfacet"]
    lines.append("endsolid octa")
    (tmp_path / "a.stl").write_text("\n".join(lines))
    back = read_surface(tmp_path / "a.stl", units="mm")
    assert (back.n_points, back.n_faces) == (6, 8)
    assert back.is_watertight


def test_binary_stl_whose_header_starts_with_solid(tmp_path):
    out = write_surface(_octahedron(), tmp_path / "b.stl")
    data = bytearray(out.read_bytes())
    data[:10] = b"solid fake"
    out.write_bytes(bytes(data))
    assert read_surface(out, units="m").n_faces == 8


def test_obj_polygons_negative_indices_and_slashes(tmp_path):
    (tmp_path / "q.obj").write_text(
        "# a cube, quads, mixed index styles\n"
        "v 0 0 0\nv 10 0 0\nv 10 10 0\nv 0 10 0\nv 0 0 10\nv 10 0 10\nv 10 10 10\nv 0 10 10\n"
        "vn 0 0 1\nvt 0 0\n"
        "f 1/1/1 4/1/1 3/1/1 2/1/1\nf 5//1 6//1 7//1 8//1\nf 1 2 6 5\n"
        "f -7 -6 -2 -3\nf 3 4 8 7\nf 4 1 5 8\n")
    s = read_surface(tmp_path / "q.obj", units="mm")
    assert (s.n_points, s.n_faces) == (8, 12)
    assert s.is_watertight
    assert s.signed_volume == pytest.approx(1e-6)


def test_off_with_polygons(tmp_path):
    (tmp_path / "p.off").write_text("OFF\n# square\n4 1 0\n0 0 0\n20 0 0\n20 20 0\n0 20 0\n"
                                    "4 0 1 2 3 255 0 0\n")
    s = read_surface(tmp_path / "p.off", units="mm")
    assert (s.n_points, s.n_faces) == (4, 2)
    assert s.area == pytest.approx(4e-4)


def _gifti_xml(points, faces, encoding):
    def data(arr):
        if encoding == "ASCII":
            return " ".join(map(str, arr.ravel()))
        blob = arr.tobytes()
        if encoding == "GZipBase64Binary":
            blob = zlib.compress(blob)
        return base64.b64encode(blob).decode()

    def da(intent, dtype, arr):
        return (f'<DataArray Intent="{intent}" DataType="{dtype}" ArrayIndexingOrder="RowMajorOrder"'
                f' Dimensionality="2" Dim0="{arr.shape[0]}" Dim1="3" Encoding="{encoding}"'
                f' Endian="LittleEndian" ExternalFileName="" ExternalFileOffset="">'
                f"<MetaData/><Data>{data(arr)}</Data></DataArray>")

    return ('<?xml version="1.0" encoding="UTF-8"?>\n<GIFTI Version="1.0" NumberOfDataArrays="2">'
            "<MetaData/><LabelTable/>"
            + da("NIFTI_INTENT_POINTSET", "NIFTI_TYPE_FLOAT32", points.astype("<f4"))
            + da("NIFTI_INTENT_TRIANGLE", "NIFTI_TYPE_INT32", faces.astype("<i4"))
            + "</GIFTI>")


@pytest.mark.parametrize("encoding", ["ASCII", "Base64Binary", "GZipBase64Binary"])
def test_gifti_is_read_and_converted_ras_to_lps(tmp_path, encoding):
    surf = _octahedron()
    ras_mm = surf.points * 1e3
    (tmp_path / "s.gii").write_text(_gifti_xml(ras_mm, surf.faces, encoding))
    (tmp_path / "s.gii.gz").write_bytes(gzip.compress((tmp_path / "s.gii").read_bytes()))
    for name in ("s.gii", "s.gii.gz"):
        s = read_surface(tmp_path / name, units="mm")
        np.testing.assert_allclose(s.points, surf.points * [-1, -1, 1], atol=1e-7)
        np.testing.assert_array_equal(s.faces, surf.faces)
        assert s.signed_volume == pytest.approx(surf.signed_volume, rel=1e-5)  # still outward


def test_trian(tmp_path):
    surf = _octahedron()
    rows = [str(surf.n_points)] + [" ".join(map(str, p * 1e3)) for p in surf.points]
    rows += [str(surf.n_faces)] + [" ".join(map(str, f)) + " -1 -1 -1" for f in surf.faces]
    (tmp_path / "h.trian").write_text("\n".join(rows) + "\n")
    s = read_surface(tmp_path / "h.trian", units="mm")
    np.testing.assert_allclose(s.points, surf.points)
    np.testing.assert_array_equal(s.faces, surf.faces)
    (tmp_path / "t.trian").write_text("\n".join(rows[:-3]) + "\n")
    with pytest.raises(InputFileError, match="truncated"):
        read_surface(tmp_path / "t.trian", units="mm")


def test_vtk_polygons_are_triangulated_and_lines_dropped(tmp_path):
    import pyvista as pv

    pts = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0], [5, 5, 8.0]])
    poly = pv.PolyData(pts, faces=[4, 0, 1, 2, 3, 3, 0, 1, 4], lines=[2, 0, 4])
    poly.save(tmp_path / "p.vtk")
    s = read_surface(tmp_path / "p.vtk", units="mm")
    assert s.n_faces == 3


def test_unstructured_grid_of_triangles_reads_as_surface_and_tets_do_not(tmp_path):
    import pyvista as pv

    surf = _octahedron()
    g = pv.UnstructuredGrid({pv.CellType.TRIANGLE: surf.faces}, surf.points * 1e3)
    g.save(tmp_path / "tri.vtk")
    assert read_surface(tmp_path / "tri.vtk", units="mm").n_faces == 8
    t = pv.UnstructuredGrid({pv.CellType.TETRA: np.array([[0, 1, 2, 4]])}, surf.points * 1e3)
    t.save(tmp_path / "tet.vtk")
    with pytest.raises(MeshError, match="read_mesh"):
        read_surface(tmp_path / "tet.vtk", units="mm")


def test_glb_scene_with_two_nodes(tmp_path):
    import trimesh

    a = _octahedron().to_trimesh()
    b = a.copy().apply_translation([0.2, 0, 0])
    scene = trimesh.Scene([a, b])
    (tmp_path / "s.glb").write_bytes(scene.export(file_type="glb"))
    s = read_surface(tmp_path / "s.glb", units="m")
    assert (s.n_points, s.n_faces) == (12, 16)


def test_gltf_with_external_buffer(tmp_path):
    import trimesh

    files = trimesh.Scene([_octahedron().to_trimesh()]).export(file_type="gltf")
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
    gltf = next(n for n in files if n.endswith(".gltf"))
    s = read_surface(tmp_path / gltf, units="m")
    assert (s.n_points, s.n_faces) == (6, 8) and s.is_watertight


# --------------------------------------------------------------- bad input
def test_missing_empty_unknown(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_surface(tmp_path / "x.stl", units="mm")
    (tmp_path / "e.obj").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_surface(tmp_path / "e.obj", units="mm")
    (tmp_path / "x.3ds").write_bytes(b"abc")
    with pytest.raises(InputFileError, match=r"supported: \.stl, \.obj"):
        read_surface(tmp_path / "x.3ds", units="mm")
    with pytest.raises(UnitsError, match="unknown length unit"):
        read_surface(tmp_path / "e.obj", units="furlong")
    with pytest.raises(InputFileError, match="supported"):
        write_surface(_octahedron(), tmp_path / "x.gii")


@pytest.mark.parametrize("ext", [".stl", ".obj", ".ply", ".vtp", ".vtk", ".glb"])
def test_truncated(tmp_path, ext):
    import pyvista as pv

    big = TriSurface.from_pyvista(pv.Sphere(radius=0.05, theta_resolution=30, phi_resolution=30))
    full = write_surface(big, tmp_path / f"full{ext}", units="mm").read_bytes()
    cut = tmp_path / f"half{ext}"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(InputFileError, match="half"):
        read_surface(cut, units="mm")


@pytest.mark.parametrize("ext", [".stl", ".obj", ".ply", ".off", ".vtp", ".vtk", ".glb", ".gltf",
                                 ".gii", ".gii.gz", ".trian"])
def test_random_bytes(tmp_path, ext):
    path = tmp_path / f"junk{ext}"
    path.write_bytes(np.random.default_rng(3).bytes(4000))
    with pytest.raises(InputFileError, match="junk"):
        read_surface(path, units="mm")


def test_obj_cut_mid_line_is_truncated(tmp_path):
    full = write_surface(_octahedron(), tmp_path / "full.obj").read_text()
    for end in (full.index("f ") + 5, full.index("f ") + 6):  # inside the first face line
        (tmp_path / "cut.obj").write_text(full[:end])
        with pytest.raises(InputFileError, match="truncated"):
            read_surface(tmp_path / "cut.obj", units="m")


def test_binary_ply_cut_inside_faces_is_truncated(tmp_path):
    full = write_surface(_octahedron(), tmp_path / "full.ply").read_bytes()
    for cut in (13, 20, 26):  # one face is 13 bytes: meshio alone returns fewer faces, silently
        (tmp_path / "cut.ply").write_bytes(full[:-cut])
        with pytest.raises(InputFileError, match="truncated"):
            read_surface(tmp_path / "cut.ply", units="m")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_nan_and_inf_coordinates(tmp_path, bad):
    (tmp_path / "n.obj").write_text(f"v 0 0 0\nv 10 0 0\nv 0 {bad} 0\nv 0 0 10\nf 1 2 3\nf 1 2 4\n")
    with pytest.raises(MeshError, match=r"n\.obj.*NaN or infinite"):
        read_surface(tmp_path / "n.obj", units="mm")


def test_implausible_size_suggests_units(tmp_path):
    out = write_surface(_octahedron(), tmp_path / "o.stl", units="mm")  # 100 mm across
    with pytest.raises(UnitsError, match=r"o\.stl.*--units"):
        read_surface(out, units="m")  # read as 100 m: a units mistake
    with pytest.raises(UnitsError, match="implausible"):
        read_surface(out, units="um")  # read as 0.1 mm: too small for an organ


def test_no_triangles(tmp_path):
    (tmp_path / "pts.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(InputFileError, match="no triangles"):
        read_surface(tmp_path / "pts.obj", units="mm")
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    with pytest.raises(InputFileError, match="do not exist"):
        read_surface(tmp_path / "bad.obj", units="mm")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import organsim.io.surfaces as surfaces

    def boom(surface, pts, faces, tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setitem(surfaces._WRITERS, ".stl", boom)
    with pytest.raises(InputFileError, match="disk full"):
        write_surface(_octahedron(), tmp_path / "x.stl")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    import organsim.io.surfaces as surfaces

    out = write_surface(_octahedron(), tmp_path / "x.obj")
    before = out.read_bytes()

    def boom(surface, pts, faces, tmp):
        tmp.write_text("v 0 0")
        raise KeyboardInterrupt  # even an interrupt mid-write leaves the old file intact

    monkeypatch.setitem(surfaces._WRITERS, ".obj", boom)
    with pytest.raises(KeyboardInterrupt):
        write_surface(_octahedron(0.02), out)
    assert out.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------- real data
# Units: the SOFA files state none and are not millimetres ("scene units"); the liver files
# (6.5 units across) are read as cm, the heart (39 units) as mm; MSML and nilearn files are mm;
# sofa_skull.vtp is in metres.
REAL_SURFACES = [
    ("msml_LiverSurface.stl", "mm", 24998, 49992, True),
    ("sofa_liver-smooth.obj", "cm", 2194, 4384, True),
    ("sofa_coeur1.trian", "mm", 7778, 15552, True),
    ("converted/sofa_coeur1.obj", "mm", 7778, 15552, True),
    ("msml_MitralValve_P0067_fineMesh.vtp", "mm", 4950, 9408, False),
    ("nilearn_fsaverage5_pial_left.gii.gz", "mm", 10242, 20480, True),
    ("converted/nilearn_fsaverage5_pial_left.ply", "mm", 10242, 20480, True),
    ("sofa_skull.vtp", "m", 3305, 6617, False),
    ("sofa_liver_surface.vtk", "mm", 5008, 10000, True),
]


@pytest.mark.realdata
@pytest.mark.parametrize("name, units, n_points, n_faces, closed", REAL_SURFACES)
def test_real_surfaces(name, units, n_points, n_faces, closed):
    s = read_surface(organ_file(name), units=units)
    assert (s.n_points, s.n_faces) == (n_points, n_faces)
    assert s.is_watertight == closed


@pytest.mark.realdata
def test_real_liver_stl_volume():
    s = read_surface(organ_file("msml_LiverSurface.stl"), units="mm")
    assert s.signed_volume * 1e6 == pytest.approx(1912, rel=1e-3)  # mL, SOURCES.md


@pytest.mark.realdata
def test_real_gifti_matches_its_ply_conversion_up_to_ras_to_lps():
    gii = read_surface(organ_file("nilearn_fsaverage5_pial_left.gii.gz"), units="mm")
    ply = read_surface(organ_file("converted/nilearn_fsaverage5_pial_left.ply"), units="mm")
    np.testing.assert_allclose(gii.points, ply.points * [-1, -1, 1], atol=1e-9)
    np.testing.assert_array_equal(gii.faces, ply.faces)
    assert gii.signed_volume * 1e6 == pytest.approx(500, rel=1e-2)
