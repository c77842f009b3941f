"""The planned cut's band in the viewer: drawn over what is still to cut, gone where the cut went.

The demo scenario plans a 6 cm incision with a 2 mm band and cuts along it in 25 steps. A band
anchored to the surface after the cut would snap to either lip of the open wound, one sample to
one lip and the next to the other, and draw a zig-zag across the wound.
"""

from __future__ import annotations

import numpy as np
import pytest

from organsim.scenario.demos import demo_scenario
from organsim.scenario.procedure import Procedure
from organsim.viewer.viewer import Viewer

pytestmark = pytest.mark.render


def _band_edges(poly) -> np.ndarray:
    """Lengths (m) of every edge of the drawn band's quads."""
    quads = np.asarray(poly.faces).reshape(-1, 5)[:, 1:]
    pts = np.asarray(poly.points)
    return np.linalg.norm(pts[quads] - pts[np.roll(quads, 1, axis=1)], axis=2).ravel()


@pytest.fixture(scope="module")
def frames():
    """The band as the viewer drew it before, halfway through and after the incision."""
    v = Viewer(Procedure(demo_scenario()), off_screen=True, window_size=(320, 240))
    got = {}
    try:
        for step in range(40):
            if step in (0, 13, 39):
                v.refresh()
                got[step] = (v.source.planned_band(), v.scene.band_poly.copy(),
                             v.scene.line_poly.copy())
            v.frame()
    finally:
        v.close()
    return got


def test_the_whole_band_is_drawn_before_the_cut(frames):
    (centre, _, _, shown), band, line = frames[0]
    assert shown.all()
    assert band.n_cells == line.n_cells == len(centre) - 1
    # 1 mm samples on the surface, the band 2 x 2 mm wide: no edge spans the organ
    assert _band_edges(band).max() < 6e-3


def test_halfway_the_band_covers_only_what_is_still_to_cut(frames):
    (centre, _, _, shown), band, line = frames[13]
    # the blade starts at the first planned point: the cut part leads, the rest follows
    assert not shown[0] and shown[-1]
    first = int(np.argmax(shown))
    assert shown[first:].all() and not shown[:first].any()
    assert 0.2 < shown.mean() < 0.8
    assert band.n_cells == line.n_cells == int(np.sum(shown[:-1] & shown[1:]))
    assert _band_edges(band).max() < 6e-3


def test_after_the_incision_no_band_is_drawn_across_the_wound(frames):
    (_, _, _, shown), band, line = frames[39]
    assert not shown.any()
    assert band.n_cells == 0 and line.n_cells == 0
