"""Result series: VTU frames plus a PVD index that ParaView/VTK opens."""

from __future__ import annotations

import numpy as np
import pytest
import pyvista as pv

from organsim.errors import InputFileError, MeshError, SimulationError
from organsim.io.series import SeriesWriter, read_series
from organsim.mesh.generators import box_tet_mesh


@pytest.fixture()
def mesh():
    return box_tet_mesh((3, 2, 2), (0.03, 0.02, 0.02))


def test_series_roundtrip_with_fields(tmp_path, mesh):
    pvd = tmp_path / "out" / "beam.pvd"
    rng = np.random.default_rng(0)
    frames = []
    with SeriesWriter(pvd) as sw:
        for k in range(3):
            pts = mesh.points + rng.normal(scale=1e-4, size=mesh.points.shape)
            vm = rng.random(mesh.n_tets)
            sig = rng.random((mesh.n_tets, 3, 3))
            sw.write(0.5 * k, mesh, points=pts, point_data={"speed": rng.random(mesh.n_points)},
                     cell_data={"von_mises": vm, "cauchy": sig})
            frames.append((pts, vm, sig))
            # the index is valid after every frame, not only at close
            assert len(read_series(pvd)) == k + 1
    assert (tmp_path / "out" / "beam" / "beam_000002.vtu").is_file()
    series = read_series(pvd)
    assert [t for t, _ in series] == [0.0, 0.5, 1.0]
    for (_, grid), (pts, vm, sig) in zip(series, frames):
        np.testing.assert_allclose(grid.points, pts)
        np.testing.assert_allclose(grid.point_data["displacement"], pts - mesh.points)
        np.testing.assert_allclose(grid.cell_data["von_mises"], vm)
        np.testing.assert_allclose(grid.cell_data["cauchy"], sig.reshape(-1, 9))
        np.testing.assert_array_equal(grid.cell_data["region"], mesh.region_ids)
        assert grid.n_cells == mesh.n_tets


def test_vtk_pvd_reader_opens_series(tmp_path, mesh):
    pvd = tmp_path / "run.pvd"
    with SeriesWriter(pvd) as sw:
        for k in range(4):
            sw.write(0.1 * k, mesh, points=mesh.points + [0, 0, -1e-3 * k])
    reader = pv.get_reader(str(pvd))
    assert isinstance(reader, pv.PVDReader)
    np.testing.assert_allclose(reader.time_values, [0.0, 0.1, 0.2, 0.3])
    reader.set_active_time_value(reader.time_values[-1])
    block = reader.read()
    grid = block[0]
    np.testing.assert_allclose(grid.points[:, 2], mesh.points[:, 2] - 3e-3)


def test_series_topology_may_change(tmp_path, mesh):
    pvd = tmp_path / "cut.pvd"
    small, _ = mesh.submesh(np.arange(mesh.n_tets) < mesh.n_tets // 2)
    with SeriesWriter(pvd) as sw:
        sw.write(0.0, mesh)
        sw.write(0.1, small)
    (_, g0), (_, g1) = read_series(pvd)
    assert g0.n_cells == mesh.n_tets and g1.n_cells == small.n_tets


def test_series_rejects_bad_frames(tmp_path, mesh):
    with SeriesWriter(tmp_path / "s.pvd") as sw:
        sw.write(1.0, mesh)
        with pytest.raises(SimulationError, match="earlier"):
            sw.write(0.5, mesh)
        with pytest.raises(SimulationError, match="finite"):
            sw.write(float("nan"), mesh)
        with pytest.raises(MeshError, match="shape"):
            sw.write(2.0, mesh, points=mesh.points[:-1])
        with pytest.raises(MeshError, match="rows"):
            sw.write(2.0, mesh, cell_data={"x": np.zeros(3)})
        assert sw.n_frames == 1
    with pytest.raises(SimulationError, match="closed"):
        sw.write(3.0, mesh)
    with pytest.raises(InputFileError, match=".pvd"):
        SeriesWriter(tmp_path / "s.vtu")


def test_stale_frames_of_earlier_run_removed(tmp_path, mesh):
    pvd = tmp_path / "s.pvd"
    with SeriesWriter(pvd) as sw:
        for k in range(3):
            sw.write(k, mesh)
    with SeriesWriter(pvd) as sw:
        sw.write(0.0, mesh)
        # until the new series is complete the old frames stay: the index never lists a missing file
        assert len(list((tmp_path / "s").iterdir())) == 4
    (only,) = (tmp_path / "s").iterdir()
    assert only.name in pvd.read_text()
    assert len(read_series(pvd)) == 1


def test_read_series_errors(tmp_path, mesh):
    with pytest.raises(InputFileError, match="not found"):
        read_series(tmp_path / "nope.pvd")
    pvd = tmp_path / "s.pvd"
    with SeriesWriter(pvd) as sw:
        sw.write(0.0, mesh)
    (tmp_path / "s" / "s_000000.vtu").unlink()
    with pytest.raises(InputFileError, match="not found"):
        read_series(pvd)
    bad = tmp_path / "bad.pvd"
    bad.write_text("<VTKFile><Coll")
    with pytest.raises(InputFileError, match="not a valid"):
        read_series(bad)


def test_empty_series_is_valid(tmp_path):
    pvd = tmp_path / "e.pvd"
    SeriesWriter(pvd).close()
    assert read_series(pvd) == []


def test_failed_frame_leaves_series_intact(tmp_path, mesh, monkeypatch):
    """A frame that fails half-way leaves no partial file, and the index still opens."""
    import pyvista

    pvd = tmp_path / "s.pvd"
    sw = SeriesWriter(pvd)
    sw.write(0.0, mesh)
    before = pvd.read_text()

    def boom(self, filename, *args, **kwargs):
        with open(filename, "wb") as fh:
            fh.write(b"<VTKFile half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pyvista.UnstructuredGrid, "save", boom)
    with pytest.raises(InputFileError, match="No space left"):
        sw.write(0.1, mesh)
    monkeypatch.undo()
    assert pvd.read_text() == before
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["s_000000.vtu"]
    assert len(read_series(pvd)) == 1
    sw.write(0.2, mesh)  # the run can go on
    assert [t for t, _ in read_series(pvd)] == [0.0, 0.2]
