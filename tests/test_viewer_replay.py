"""Replay of a recorded series: frames, seeking, topology changes and cut faces survive the files."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.mesh.generators import box_tet_mesh

pytestmark = pytest.mark.render


def test_cut_face_bits_round_trip():
    from organsim.scenario.runner import cut_face_bits
    from organsim.viewer.replay import _cut_mask_from_bits

    m = box_tet_mesh((5, 4, 3), 0.01)
    rng = np.random.default_rng(0)
    mask = rng.random(len(m.boundary_faces)) < 0.3
    np.testing.assert_array_equal(_cut_mask_from_bits(m, cut_face_bits(m, mask)), mask)


def test_series_source_seeks_and_follows_topology(tmp_path):
    from organsim.io import SeriesWriter, read_series
    from organsim.scenario.runner import cut_face_bits
    from organsim.viewer import Viewer
    from organsim.viewer.replay import SeriesSource, find_series, replay

    a = box_tet_mesh((4, 4, 4), 0.01)
    b = box_tet_mesh((5, 4, 4), 0.01)  # "after a cut": more nodes and tets
    mask = np.zeros(len(b.boundary_faces), bool)
    mask[:7] = True
    with SeriesWriter(tmp_path / "series.pvd") as w:
        for k in range(3):
            w.write(0.1 * k, a, points=a.points + [0, 0, -0.001 * k],
                    point_data={"von_mises": np.full(a.n_points, 100.0 * k)})
        w.write(0.3, b, points=b.points, cell_data={"cut_faces": cut_face_bits(b, mask)},
                point_data={"von_mises": np.zeros(b.n_points)})
    assert find_series(tmp_path) == tmp_path / "series.pvd"
    src = SeriesSource(read_series(tmp_path / "series.pvd"))
    src.seek(0.15)
    assert src.index == 1 and src.time == pytest.approx(0.1)
    np.testing.assert_allclose(src.mesh.points, a.points, atol=1e-12)  # rest = points - displacement
    np.testing.assert_allclose(src.positions[:, 2], a.points[:, 2] - 0.001, atol=1e-12)
    assert src.nodal_field("von_mises")[0] == 100.0
    v0 = src.topology_version
    src.seek(1.0)
    assert src.index == 3 and src.topology_version == v0 + 1
    np.testing.assert_array_equal(src.cut_face_mask, mask)
    # the viewer draws every frame of it, cut faces included
    v = Viewer(src, off_screen=True, window_size=(200, 150))
    v.paused = True
    v.frame()
    assert int(np.asarray(v.scene.surface.cell_data["cut"]).sum()) == 7
    v.close()
    png = tmp_path / "r.png"
    replay(tmp_path, screenshot=png, time=0.0)
    assert png.stat().st_size > 1000


def test_missing_series_is_a_clear_error(tmp_path):
    from organsim.errors import InputFileError
    from organsim.viewer.replay import find_series

    with pytest.raises(InputFileError, match="no .pvd series"):
        find_series(tmp_path)
