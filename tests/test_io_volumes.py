"""Volume-mesh readers and writers: formats, regions, Gmsh v1, orientation, bad input, real data."""

from __future__ import annotations

import logging

import meshio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
import pyvista as pv

from organsim.errors import InputFileError, MeshError, UnitsError
from organsim.io.volumes import read_mesh, write_mesh
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh
from tests.conftest import organ_file


@pytest.fixture()
def two_region_mesh() -> TetMesh:
    m = box_tet_mesh((4, 3, 3), (0.03, 0.02, 0.02), origin=(0.01, -0.02, 0.1))
    centres = m.points[m.tets].mean(axis=1)
    rid = np.where(centres[:, 0] < 0.025, 1, 3)
    return TetMesh(m.points, m.tets, rid, {1: "parenchyma", 3: "tumour"})


def _same_mesh(a: TetMesh, b: TetMesh, *, names=True, atol=1e-12) -> None:
    np.testing.assert_allclose(b.points, a.points, atol=atol)
    np.testing.assert_array_equal(b.tets, a.tets)
    np.testing.assert_array_equal(b.region_ids, a.region_ids)
    if names:
        assert b.region_names == a.region_names


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("ext, version, names", [(".vtu", "4.1", True), (".vtk", "4.1", False),
                                                  (".msh", "4.1", True), (".msh", "2.2", True),
                                                  (".mesh", "4.1", False), (".xdmf", "4.1", False)])
def test_roundtrip(tmp_path, two_region_mesh, ext, version, names):
    out = write_mesh(two_region_mesh, tmp_path / f"m{ext}", msh_version=version)
    back = read_mesh(out, units="m")
    expected = two_region_mesh
    if ext == ".msh" and version == "4.1":  # v4.1 groups tets by region (stable within each)
        expected, _ = two_region_mesh.submesh(np.ones(two_region_mesh.n_tets, bool))
        order = np.argsort(expected.region_ids, kind="stable")
        expected = TetMesh(expected.points, expected.tets[order], expected.region_ids[order],
                           expected.region_names)
    _same_mesh(expected, back, names=names)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # one self-contained file
    if ext == ".msh":  # meshio reads our Gmsh files with physical groups, i.e. Gmsh's own meaning
        m = meshio.read(out)
        assert set(np.concatenate(m.cell_data["gmsh:physical"])) == {1, 3}
        assert {k: int(v[0]) for k, v in m.field_data.items()} == {"parenchyma": 1, "tumour": 3}


def test_roundtrip_in_millimetres(tmp_path, two_region_mesh):
    out = write_mesh(two_region_mesh, tmp_path / "mm.msh", units="mm")
    np.testing.assert_allclose(read_mesh(out, units="mm").points, two_region_mesh.points, atol=1e-15)
    assert np.abs(meshio.read(out).points).max() > 10  # stored in mm


# ----------------------------------------------------------------- Gmsh v1
GMSH_V1 = """$NOD
6
10 0 0 0
20 10 0 0
30 0 10 0
40 0 0 10
50 10 10 10
99 5 5 5
$ENDNOD
$ELM
5
1 4 7 1 4 10 20 30 40
2 4 0 5 4 20 30 40 50
3 2 0 2 3 10 20 30
4 1 0 3 2 10 20
5 15 0 4 1 99
$ENDELM
"""


def test_gmsh_v1_reader(tmp_path, caplog):
    path = tmp_path / "v1.msh"
    path.write_text(GMSH_V1)
    with caplog.at_level(logging.INFO, logger="organsim.io"):
        mesh = read_mesh(path, units="mm")
    assert (mesh.n_points, mesh.n_tets) == (5, 2)   # node 99 (a point element only) removed
    np.testing.assert_array_equal(mesh.region_ids, [7, 5])  # physical tag, else elementary
    assert np.all(mesh.volumes > 0)
    np.testing.assert_allclose(mesh.points[1], [0.01, 0, 0])
    assert "ignored non-tet cells" in caplog.text and "removed 1 nodes" in caplog.text


def test_gmsh_v1_truncated_and_corrupt(tmp_path):
    (tmp_path / "t.msh").write_text(GMSH_V1[: GMSH_V1.index("2 4 0 5")])
    with pytest.raises(InputFileError, match="truncated"):
        read_mesh(tmp_path / "t.msh", units="mm")
    (tmp_path / "c.msh").write_text(GMSH_V1.replace("20 30 40 50", "20 30 40 77"))
    with pytest.raises(InputFileError, match="node 77"):
        read_mesh(tmp_path / "c.msh", units="mm")


def test_gmsh_v2_by_meshio_with_physical_names(tmp_path, two_region_mesh):
    m = two_region_mesh
    tri = m.boundary_faces
    mm = meshio.Mesh(m.points * 1e3, [("triangle", tri), ("tetra", m.tets)],
                     cell_data={"gmsh:physical": [np.full(len(tri), 9), m.region_ids],
                                "gmsh:geometrical": [np.full(len(tri), 9), m.region_ids]},
                     field_data={"skin": np.array([9, 2]), "parenchyma": np.array([1, 3]),
                                 "tumour": np.array([3, 3])})
    meshio.write(tmp_path / "v2.msh", mm, file_format="gmsh22", binary=True)
    back = read_mesh(tmp_path / "v2.msh", units="mm")
    _same_mesh(m, back, atol=1e-15)


# ------------------------------------------------------- cells and regions
def test_negative_tets_are_reoriented(tmp_path, two_region_mesh, caplog):
    tets = two_region_mesh.tets.copy()
    tets[::3] = tets[::3][:, [1, 0, 2, 3]]
    g = pv.UnstructuredGrid({pv.CellType.TETRA: tets}, two_region_mesh.points)
    g.save(tmp_path / "neg.vtu")
    with caplog.at_level(logging.WARNING, logger="organsim.io"):
        back = read_mesh(tmp_path / "neg.vtu", units="m")
    assert np.all(back.volumes > 0)
    assert back.volume == pytest.approx(two_region_mesh.volume)
    assert f"reoriented {len(tets[::3])} of {len(tets)}" in caplog.text


def test_tetra10_read_as_linear(tmp_path):
    pts = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10.0]])
    edges = [(0, 1), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3)]  # VTK's tetra10 mid-edge order
    mids = np.array([(pts[a] + pts[b]) / 2 for a, b in edges])
    g = pv.UnstructuredGrid({pv.CellType.QUADRATIC_TETRA: np.arange(10)[None]},
                            np.vstack([pts, mids]))
    g.save(tmp_path / "q.vtu")
    m = read_mesh(tmp_path / "q.vtu", units="mm")
    assert (m.n_points, m.n_tets) == (4, 1)
    assert m.volume == pytest.approx(1e-6 / 6)


@pytest.mark.parametrize("array", ["gmsh:physical", "medit:ref", "CellEntityIds", "region"])
def test_region_arrays_recognised(tmp_path, two_region_mesh, array):
    g = pv.UnstructuredGrid({pv.CellType.TETRA: two_region_mesh.tets}, two_region_mesh.points)
    g.cell_data[array] = two_region_mesh.region_ids.astype(np.float64 if array == "medit:ref" else np.int32)
    g.save(tmp_path / "r.vtu")
    np.testing.assert_array_equal(read_mesh(tmp_path / "r.vtu", units="m").region_ids,
                                  two_region_mesh.region_ids)


def test_mixed_cells_keep_only_tets(tmp_path, two_region_mesh):
    m = two_region_mesh
    g = pv.UnstructuredGrid({pv.CellType.TETRA: m.tets, pv.CellType.TRIANGLE: m.boundary_faces},
                            m.points)
    g.save(tmp_path / "mix.vtk")
    assert read_mesh(tmp_path / "mix.vtk", units="m").n_tets == m.n_tets


# --------------------------------------------------------------- bad input
def test_surface_files_say_use_read_surface(tmp_path, two_region_mesh):
    m = two_region_mesh
    pv.UnstructuredGrid({pv.CellType.TRIANGLE: m.boundary_faces}, m.points).save(tmp_path / "s.vtu")
    pv.PolyData.from_regular_faces(m.points, m.boundary_faces).save(tmp_path / "p.vtk")
    meshio.write(tmp_path / "s.msh", meshio.Mesh(m.points, [("triangle", m.boundary_faces)]),
                 file_format="gmsh22")
    for name in ("s.vtu", "p.vtk", "s.msh"):
        with pytest.raises(MeshError, match="read_surface.*organsim mesh"):
            read_mesh(tmp_path / name, units="m")


def test_hexahedra_only(tmp_path):
    g = pv.ImageData(dimensions=(3, 3, 3), spacing=(10, 10, 10)).cast_to_unstructured_grid()
    g.save(tmp_path / "hex.vtu")
    with pytest.raises(MeshError, match="no tetrahedra.*(hexahedron|voxel)"):
        read_mesh(tmp_path / "hex.vtu", units="mm")


def test_missing_empty_unknown(tmp_path, two_region_mesh):
    with pytest.raises(InputFileError, match="not found"):
        read_mesh(tmp_path / "x.vtu", units="mm")
    (tmp_path / "e.msh").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_mesh(tmp_path / "e.msh", units="mm")
    (tmp_path / "x.inp").write_text("*NODE")
    with pytest.raises(InputFileError, match=r"supported: \.vtu, \.vtk, \.msh"):
        read_mesh(tmp_path / "x.inp", units="mm")
    with pytest.raises(InputFileError, match="supported"):
        write_mesh(two_region_mesh, tmp_path / "x.inp")


@pytest.mark.parametrize("ext, version", [(".vtu", "4.1"), (".vtk", "4.1"), (".msh", "4.1"),
                                          (".msh", "2.2"), (".mesh", "4.1"), (".xdmf", "4.1")])
def test_truncated(tmp_path, two_region_mesh, ext, version):
    full = write_mesh(two_region_mesh, tmp_path / f"full{ext}", msh_version=version).read_bytes()
    cut = tmp_path / f"half{ext}"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(InputFileError, match="half"):
        read_mesh(cut, units="m")


@pytest.mark.parametrize("ext", [".vtu", ".vtk", ".msh", ".mesh", ".xdmf"])
def test_random_bytes(tmp_path, ext):
    path = tmp_path / f"junk{ext}"
    path.write_bytes(np.random.default_rng(5).bytes(5000))
    with pytest.raises(InputFileError, match="junk"):
        read_mesh(path, units="mm")


@pytest.mark.parametrize("ext", [".vtu", ".msh"])
def test_nan_coordinates(tmp_path, two_region_mesh, ext):
    pts = two_region_mesh.points.copy()
    pts[5, 1] = np.nan
    pts[7, 0] = np.inf
    meshio.write(tmp_path / f"nan{ext}", meshio.Mesh(pts, [("tetra", two_region_mesh.tets)]),
                 **({"file_format": "gmsh22", "binary": False} if ext == ".msh" else {}))
    with pytest.raises(MeshError, match=r"nan\.(vtu|msh): 2 of .* NaN or infinite"):
        read_mesh(tmp_path / f"nan{ext}", units="m")


def test_implausible_size(tmp_path, two_region_mesh):
    out = write_mesh(two_region_mesh, tmp_path / "m.vtu", units="mm")
    with pytest.raises(UnitsError, match=r"m\.vtu.*--units mm"):
        read_mesh(out, units="m")  # 30 m across: a units mistake


def test_failed_write_leaves_nothing(tmp_path, two_region_mesh, monkeypatch):
    import organsim.io.volumes as volumes

    def boom(mesh, pts, tmp, ext, version):
        tmp.write_text("$MeshFormat\n4.1 0 8\n")
        raise MemoryError("out of memory half-way")

    monkeypatch.setattr(volumes, "_write", boom)
    with pytest.raises(InputFileError, match="half-way"):
        write_mesh(two_region_mesh, tmp_path / "x.msh")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- real data
# sofa_liver.msh is in unstated "scene units" (6.5 across): read as cm. The MSML mesh is in mm.
@pytest.mark.realdata
def test_real_sofa_liver_gmsh_v1():
    mesh = read_mesh(organ_file("sofa_liver.msh"), units="cm")
    assert (mesh.n_points, mesh.n_tets) == (181, 596)
    assert mesh.quality()["n_inverted"] == 0
    assert len(mesh.boundary_faces) == 276
    assert len(mesh.boundary_nodes) == 140
    extent = (mesh.points.max(0) - mesh.points.min(0)) * 100
    np.testing.assert_allclose(extent, [6.48, 4.94, 4.42], atol=0.01)


@pytest.mark.realdata
def test_real_sofa_liver_v1_equals_its_vtu_conversion():
    a = read_mesh(organ_file("sofa_liver.msh"), units="cm")
    b = read_mesh(organ_file("converted/sofa_liver_tet.vtu"), units="cm")
    np.testing.assert_allclose(a.points, b.points, rtol=1e-6)
    np.testing.assert_array_equal(a.tets, b.tets)


@pytest.mark.realdata
def test_real_msml_liver_vtk():
    mesh = read_mesh(organ_file("msml_Liver5Low_tet.vtk"), units="mm")
    assert (mesh.n_points, mesh.n_tets) == (2049, 7446)
    assert mesh.quality()["n_inverted"] == 0
    assert len(mesh.boundary_faces) == 3354
    assert mesh.volume * 1e6 == pytest.approx(2048, rel=1e-3)  # mL, SOURCES.md


def test_xdmf_with_hdf5_heavy_data(tmp_path, two_region_mesh):
    """XDMF as most tools write it: the arrays in a companion .h5 file."""
    m = two_region_mesh
    meshio.write(tmp_path / "h.xdmf", meshio.Mesh(m.points, [("tetra", m.tets)],
                                                  cell_data={"region": [m.region_ids]}))
    assert (tmp_path / "h.h5").is_file()
    _same_mesh(m, read_mesh(tmp_path / "h.xdmf", units="m"), names=False)


@pytest.mark.parametrize("binary", [True, False])
def test_gmsh41_written_by_meshio(tmp_path, two_region_mesh, binary):
    m = two_region_mesh
    meshio.write(tmp_path / "g.msh", meshio.Mesh(m.points * 1e3, [("tetra", m.tets)]),
                 file_format="gmsh", binary=binary)
    back = read_mesh(tmp_path / "g.msh", units="mm")
    np.testing.assert_allclose(back.points, m.points, atol=1e-15)
    np.testing.assert_array_equal(back.tets, m.tets)
    assert set(back.region_ids.tolist()) == {1}  # no physical groups: one region


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ext=st.sampled_from([".vtu", ".vtk", ".msh", ".mesh", ".xdmf"]),
       seed=st.integers(0, 2**31 - 1),
       units=st.sampled_from(["m", "cm", "mm"]))
def test_roundtrip_property(tmp_path, ext, seed, units):
    """Any mesh (jittered nodes, random regions 1..5) comes back identical, for every writer."""
    rng = np.random.default_rng(seed)
    base = box_tet_mesh((3, 3, 2), (0.02, 0.03, 0.01))
    pts = base.points + rng.normal(scale=2e-4, size=base.points.shape)
    rid = rng.integers(1, 6, size=base.n_tets)
    mesh = TetMesh(pts, base.tets, rid)
    back = read_mesh(write_mesh(mesh, tmp_path / f"p{ext}", units=units, msh_version="2.2"),
                     units=units)
    np.testing.assert_allclose(back.points, mesh.points, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(back.tets, mesh.tets)
    np.testing.assert_array_equal(back.region_ids, mesh.region_ids)
