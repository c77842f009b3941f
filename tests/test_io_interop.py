"""Every file type organsim writes reads back in meshio, pyvista and pandas: one round trip per writer.

Where a tool has no reader for a format, the test says which and why (meshio reads no label
images, and of the surface formats no GLB, VTP or legacy-VTK POLYDATA; pyvista has no OFF
reader, and its own XDMF reader needs time steps, so it reads XDMF through its meshio bridge);
everything else is read by the tool itself.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

meshio = pytest.importorskip("meshio")
pv = pytest.importorskip("pyvista")

from organsim.mesh.generators import box_tet_mesh  # noqa: E402
from organsim.mesh.labelimage import LabelImage  # noqa: E402
from organsim.mesh.surface import TriSurface  # noqa: E402
from organsim.mesh.tetmesh import TetMesh, decode_region_names  # noqa: E402

NAMES = {1: "parenchyma", 2: "tumour"}


def two_region_mesh() -> TetMesh:
    m = box_tet_mesh((4, 3, 3), 0.01)
    c = m.points[m.tets].mean(axis=1)
    return TetMesh(m.points, m.tets, np.where(c[:, 0] < 0.015, 1, 2), NAMES)


def closed_surface() -> TriSurface:
    m = box_tet_mesh((3, 3, 3), 0.01)
    bf = m.boundary_faces
    used = np.unique(bf)
    remap = np.full(m.n_points, -1)
    remap[used] = np.arange(len(used))
    return TriSurface(m.points[used], remap[bf])


def _pyvista_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pv.read(path)


# ------------------------------------------------------------- volume meshes
@pytest.mark.parametrize("ext", [".vtu", ".vtk", ".msh", ".mesh", ".xdmf"])
def test_volume_meshes_read_in_meshio_and_pyvista(tmp_path, ext):
    from organsim.io import write_mesh

    mesh = two_region_mesh()
    path = write_mesh(mesh, tmp_path / f"organ{ext}")
    m = meshio.read(path)
    assert len(m.points) == mesh.n_points
    tets = np.concatenate([b.data for b in m.cells if b.type == "tetra"])
    region = next(v for k, v in m.cell_data.items() if k in ("region", "gmsh:physical", "medit:ref"))
    region = np.concatenate([np.asarray(r).ravel() for r in region])
    # Gmsh 4.1 groups the tets by region: compare (region, tet) rows in any order
    got = sorted(map(tuple, np.column_stack([region, tets])))
    assert got == sorted(map(tuple, np.column_stack([mesh.region_ids, mesh.tets])))
    assert np.allclose(m.points, mesh.points)
    grid = pv.read_meshio(path) if ext == ".xdmf" else _pyvista_read(path)
    assert grid.n_cells == mesh.n_tets and grid.n_points == mesh.n_points
    if ext == ".vtu":  # the region names: meshio, pyvista (and ParaView) see the same field array
        assert decode_region_names(m.field_data) == NAMES
        assert decode_region_names(grid.field_data) == NAMES
        assert json.loads(bytes(m.field_data["region_names_json"]).decode()) == {"1": "parenchyma",
                                                                                 "2": "tumour"}


def test_the_shipped_meshes_read_in_meshio_with_their_region_names():
    from organsim.mesh.shipped import SHIPPED, load_shipped, shipped_path

    for name in SHIPPED:
        m = meshio.read(shipped_path(name))
        assert decode_region_names(m.field_data) == load_shipped(name).region_names
        assert sum(len(b.data) for b in m.cells) == load_shipped(name).n_tets


def test_older_files_with_a_string_array_of_names_still_read(tmp_path):
    from organsim.io import read_mesh

    grid = two_region_mesh().to_pyvista()
    grid.field_data.clear()
    grid.field_data["region_names"] = np.array(["1:parenchyma", "2:tumour"])
    grid.save(tmp_path / "old.vtu")
    assert read_mesh(tmp_path / "old.vtu", units="m").region_names == NAMES


# ------------------------------------------------------------------ surfaces
@pytest.mark.parametrize("ext", [".stl", ".obj", ".ply", ".off", ".vtp", ".vtk", ".glb"])
def test_surfaces_read_in_meshio_and_pyvista(tmp_path, ext):
    from organsim.io import write_surface

    surf = closed_surface()
    path = write_surface(surf, tmp_path / f"organ{ext}")
    # meshio has no GLB/GLTF and no VTP reader, and reads legacy .vtk unstructured grids only
    # (not POLYDATA); pyvista, ParaView and organsim read those three
    if ext not in (".glb", ".vtp", ".vtk"):
        m = meshio.read(path)
        tri = np.concatenate([b.data for b in m.cells if b.type == "triangle"])
        assert len(tri) == surf.n_faces
    if ext != ".off":  # pyvista has no OFF reader (meshio above, trimesh and organsim read it)
        data = _pyvista_read(path)
        if isinstance(data, pv.MultiBlock):  # GLB: a scene
            data = data.combine(merge_points=False).extract_surface(algorithm=None)
        assert data.n_cells == surf.n_faces


# --------------------------------------------------------------- label images
# .nrrd is left out: VTK's NRRD reader (pyvista's and ParaView's) reads a 6x5x4 NRRD volume
# with space directions as 5x4x1, raw or gzip, without an error; SimpleITK, 3D Slicer and
# organsim read it right. NIfTI, MetaImage and VTI carry the same labels to VTK.
@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".mha", ".vti"])
def test_label_images_read_in_pyvista(tmp_path, ext):
    from organsim.io import write_image

    labels = np.zeros((6, 5, 4), np.uint8)
    labels[1:4, 1:4, 1:3] = 1
    path = write_image(LabelImage(labels, spacing=(1e-3,) * 3, origin=(0, 0, 0)), tmp_path / f"seg{ext}")
    # meshio reads meshes only, no images: pyvista (VTK's readers, as ParaView uses) reads them
    img = _pyvista_read(path)
    assert tuple(img.dimensions) == labels.shape
    assert int(np.asarray(img.active_scalars).sum()) == int(labels.sum())


# ------------------------------------------------------- a run's result files
@pytest.mark.slow
def test_a_runs_results_read_in_meshio_pyvista_and_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    from organsim.io import write_mesh
    from organsim.scenario.runner import run
    from organsim.scenario.schema import Action, Fixation, Material, Organ, Output, Scenario

    organ = tmp_path / "block.vtu"
    m = box_tet_mesh((7, 7, 4), 0.01, origin=(-0.03, -0.03, -0.03))
    write_mesh(TetMesh(m.points, m.tets, np.ones(m.n_tets, int), {1: "tissue"}), organ)
    s = Scenario(name="interop", organ=Organ(shipped=None, path=str(organ), units="m"),
                 materials={"default": Material(tissue="liver", model="corotational")},
                 fixations=[Fixation(box_min_mm=(-31, -31, -31), box_max_mm=(31, 31, -29))],
                 duration_s=0.2, dt_s=0.02,
                 timeline=[Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 0.0), radius_mm=6.0),
                           Action(t=0.0, action="pull", path_mm=((0.0, 0.0, 6.0),), duration_s=0.2)],
                 output=Output(series=True, every=1, report=True))
    res = run(s, tmp_path / "out", progress=False, image=False, parameters={"x": 1}, seed=7)
    out = res.outdir

    # PVD: times exact to the step (no 0.12000000000000001), in ParaView's reader as written
    text = (out / "series.pvd").read_text()
    times = [float(t) for t in re.findall(r'timestep="([^"]+)"', text)]
    assert times == [round(0.02 * k, 10) for k in range(11)]
    assert "0000000" not in text.replace("000000.vtu", "")
    reader = pv.get_reader(out / "series.pvd")
    assert reader.time_values == times
    # every frame in meshio and pyvista: displacement, stress, strain, reaction forces, regions
    frame = sorted((out / "series").glob("*.vtu"))[-1]
    mm = meshio.read(frame)
    for name in ("displacement", "von_mises", "green_lagrange", "reaction_force"):
        assert name in mm.point_data
    assert mm.point_data["green_lagrange"].shape == (len(mm.points), 9)
    assert "region" in mm.cell_data and decode_region_names(mm.field_data) == {1: "tissue"}
    grid = _pyvista_read(frame)
    assert np.allclose(grid.point_data["reaction_force"], mm.point_data["reaction_force"])

    # the forces table: units in the header; the grasper's force is the reaction at its nodes
    forces = pd.read_csv(out / "forces.csv")
    assert {"time_s", "grasper_force_n", "grasper_fx_n", "grasper_tip_z_mm"} <= set(forces.columns)
    assert forces["time_s"].tolist() == times
    rest = mm.points - mm.point_data["displacement"]
    top = rest[:, 2] > -0.005                          # the grasped nodes (the holder is at the bottom)
    held = mm.point_data["reaction_force"][top].sum(axis=0)
    last = forces.iloc[-1]
    assert np.allclose(-held, [last["grasper_fx_n"], last["grasper_fy_n"], last["grasper_fz_n"]], rtol=1e-6)
    assert last["grasper_force_n"] > 0.01 and last["grasper_tip_z_mm"] == pytest.approx(6.0)
    steps = pd.read_csv(out / "steps.csv")
    assert list(steps.columns) == ["step", "time_s", "step_ms", "peak_stress_pa", "damaged_volume_ml"]
    assert len(steps) == 11 and steps["peak_stress_pa"].notna().sum() >= 2

    # metrics.json: what made it
    doc = json.loads((out / "metrics.json").read_text())
    flat = pd.json_normalize(doc)
    assert flat["organsim_version"][0] and len(flat["scenario_sha256"][0]) == 64
    assert doc["parameters"] == {"x": 1} and doc["seed"] == 7
    assert doc["scenario_definition"]["dt_s"] == 0.02 and doc["files"]["forces"] == "forces.csv"
