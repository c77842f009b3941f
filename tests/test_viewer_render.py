"""Render tests: off-screen screenshots of fixed scenes against cached PNGs.

Baselines live in ``tests/render_baselines/``; regenerate them (after checking
the new images by eye) with ``ORGANSIM_UPDATE_BASELINES=1 pytest tests/test_viewer_render.py``.
The scene uses a stand-in liver built in code (an ellipsoid of tets with
tumour, vessel and ligament regions) so the baseline does not change when the
shipped meshes are regenerated.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh

pytestmark = pytest.mark.render

BASELINES = Path(__file__).parent / "render_baselines"
SIZE = (400, 300)
#: Mean absolute difference per channel (0-255) tolerated against the baseline:
#: software and hardware OpenGL differ by a few levels at edges and in shading.
TOLERANCE = 6.0


def standin_liver(h: float = 0.008) -> TetMesh:
    """A liver-sized ellipsoid (22 x 15 x 12 cm) of tets with tumour, vessel and ligament regions."""
    box = box_tet_mesh((int(0.24 / h) + 1, int(0.17 / h) + 1, int(0.13 / h) + 1), h,
                       origin=(-0.12, -0.085, -0.065))
    c = box.points[box.tets].mean(axis=1)
    r = (c[:, 0] / 0.11) ** 2 + (c[:, 1] / 0.075) ** 2 + (c[:, 2] / 0.06) ** 2
    sub, _ = box.submesh(r < 1.0)
    c = sub.points[sub.tets].mean(axis=1)
    rid = np.ones(sub.n_tets, dtype=np.int32)
    rid[np.linalg.norm(c - [0.03, -0.01, 0.0], axis=1) < 0.025] = 2
    rid[np.hypot(c[:, 1] - 0.02, c[:, 2] + 0.01) < 0.008] = 3
    rid[(c[:, 2] > 0.045) & (np.abs(c[:, 0]) < 0.03)] = 4
    return TetMesh(sub.points, sub.tets, rid,
                   {1: "parenchyma", 2: "tumour", 3: "vessel", 4: "ligament"})


def compare(img: np.ndarray, name: str) -> float:
    """Mean absolute difference against the baseline ``name``; writes it when asked to."""
    from PIL import Image

    path = BASELINES / name
    if os.environ.get("ORGANSIM_UPDATE_BASELINES") == "1" or not path.exists():
        if os.environ.get("ORGANSIM_UPDATE_BASELINES") != "1":
            pytest.fail(f"missing render baseline {path}; create it with ORGANSIM_UPDATE_BASELINES=1")
        BASELINES.mkdir(exist_ok=True)
        Image.fromarray(img).save(path)
    ref = np.asarray(Image.open(path).convert("RGB"))
    assert ref.shape == img.shape, f"baseline {name} is {ref.shape}, render is {img.shape}"
    return float(np.abs(ref.astype(float) - img.astype(float)).mean())


def colour_fraction(img: np.ndarray, rgb, tol: float = 60.0) -> float:
    """Fraction of pixels within ``tol`` (Euclidean, 0-255) of a colour."""
    d = np.linalg.norm(img.astype(float) - np.asarray(rgb, float), axis=2)
    return float((d < tol).mean())


@pytest.fixture(scope="module")
def liver():
    return standin_liver()


def _scene_source(liver):
    from organsim.viewer.sources import InstrumentView, StaticSource

    # faces on the anterior-inferior side tagged as cut faces, a grasper and a scalpel
    bf = liver.boundary_faces
    centre = liver.points[bf].mean(axis=1)
    cut = (centre[:, 1] < -0.04) & (np.abs(centre[:, 0] + 0.02) < 0.02)
    src = StaticSource(liver, cut_face_mask=cut,
                       point_fields={"von_mises": 2e3 + 8e4 * np.clip(liver.points[:, 2] + 0.06, 0, None)})
    src.instruments = lambda: [
        InstrumentView("grasper", "grasper", np.array([0.06, -0.06, 0.03]),
                       np.array([0.3, -0.6, 0.7]), np.array([0.0, 0.0, 1.25]), True),
        InstrumentView("scalpel", "scalpel", np.array([-0.04, -0.07, 0.0]),
                       np.array([-0.2, -0.7, 0.6]), np.zeros(3), False),
    ]
    return src


def test_render_regions_cut_faces_and_instruments(liver, tmp_path):
    from organsim.viewer import CUT_FACE_COLOR, REGION_COLORS, Viewer

    v = Viewer(_scene_source(liver), off_screen=True, window_size=SIZE)
    img = v.screenshot(tmp_path / "regions.png")
    v.close()
    assert img.shape == (SIZE[1], SIZE[0], 3)
    # the organ is there, in liver brown, and the cut faces in their own colour
    assert colour_fraction(img, REGION_COLORS["parenchyma"]) > 0.05
    assert colour_fraction(img, CUT_FACE_COLOR, tol=50) > 0.002
    assert colour_fraction(img, REGION_COLORS["ligament"], tol=40) > 0.002
    assert compare(img, "regions.png") < TOLERANCE


def test_render_stress_view_with_scalar_bar(liver, tmp_path):
    from organsim.viewer import REGION_COLORS, Viewer

    v = Viewer(_scene_source(liver), off_screen=True, window_size=SIZE)
    before = v.screenshot()
    v.interaction.on_key("t")
    img = v.screenshot(tmp_path / "stress.png")
    v.close()
    assert v.scene.show_stress
    # the liver-brown region colours are replaced by the colour map
    assert colour_fraction(img, REGION_COLORS["parenchyma"], tol=30) < 0.5 * colour_fraction(
        before, REGION_COLORS["parenchyma"], tol=30)
    assert np.abs(img.astype(float) - before.astype(float)).mean() > 2.0
    assert compare(img, "stress.png") < TOLERANCE


def test_camera_presets_change_the_view(liver):
    from organsim.viewer import CAMERA_PRESETS, Viewer

    v = Viewer(liver, off_screen=True, window_size=(160, 120), show_panel=False)
    imgs = {}
    for name in ("anterior", "superior"):
        v.scene.camera_preset(name)
        imgs[name] = v.screenshot()
        d = np.array(v.plotter.camera.position) - np.array(v.plotter.camera.focal_point)
        assert np.dot(d / np.linalg.norm(d), CAMERA_PRESETS[name][0]) > 0.999
    v.close()
    assert np.abs(imgs["anterior"].astype(float) - imgs["superior"].astype(float)).mean() > 1.0


def test_frame_updates_positions_in_place_without_new_actors(liver):
    from organsim.viewer import Viewer
    from organsim.viewer.sources import StaticSource

    src = StaticSource(liver)
    v = Viewer(src, off_screen=True, window_size=(160, 120))
    v.frame()
    n_actors = len(v.plotter.renderer.actors)
    poly = v.scene.surface
    src.positions = liver.points + np.array([0.0, 0.0, 0.01])
    v.frame()
    v.frame()
    assert len(v.plotter.renderer.actors) == n_actors
    assert v.scene.surface is poly
    np.testing.assert_allclose(np.asarray(poly.points), src.positions[v.scene.surface_nodes])
    v.close()
