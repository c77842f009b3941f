"""Off-screen recordings: GIF with the core dependencies, MP4 where ffmpeg is installed."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.mesh.generators import box_tet_mesh

pytestmark = pytest.mark.render


def _moving_viewer():
    from organsim.viewer import Viewer
    from organsim.viewer.sources import StaticSource

    m = box_tet_mesh((5, 5, 5), 0.01)
    src = StaticSource(m)
    k = [0]

    def advance():
        k[0] += 1
        src.positions = m.points + [0.004 * k[0], 0.0, 0.0]

    src.advance = advance
    return Viewer(src, off_screen=True, window_size=(200, 160)), k


def test_gif_recording_has_one_frame_per_step_and_shows_motion(tmp_path):
    from PIL import Image

    from organsim.viewer import record

    v, k = _moving_viewer()
    out = record(v, tmp_path / "a.gif", n_frames=6, fps=10, progress=False)
    v.close()
    assert out == tmp_path / "a.gif" and k[0] == 6
    gif = Image.open(out)
    assert gif.n_frames == 6
    gif.seek(0)
    first = np.asarray(gif.convert("RGB"), dtype=float)
    gif.seek(5)
    last = np.asarray(gif.convert("RGB"), dtype=float)
    assert np.abs(first - last).mean() > 1.0  # the block moved
    assert not list(tmp_path.glob(".*partial*"))  # nothing half-written left


def test_mp4_recording_or_gif_fallback(tmp_path):
    from organsim.viewer import ffmpeg_available, record

    v, _ = _moving_viewer()
    out = record(v, tmp_path / "b.mp4", n_frames=5, fps=10, progress=False)
    v.close()
    if ffmpeg_available():
        import imageio_ffmpeg

        assert out.suffix == ".mp4"
        reader = imageio_ffmpeg.read_frames(str(out))
        meta = next(reader)
        assert tuple(meta["size"]) == (200, 160)
        assert sum(1 for _ in reader) == 5
    else:
        assert out.suffix == ".gif" and out.exists()


def test_unsupported_video_extension_is_refused(tmp_path):
    from organsim.errors import OrganSimError
    from organsim.viewer.recording import video_path

    with pytest.raises(OrganSimError, match=r"use \.mp4 or \.gif"):
        video_path(tmp_path / "a.avi")
