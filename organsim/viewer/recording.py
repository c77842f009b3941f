"""Recordings of a procedure: MP4 or GIF, rendered off-screen.

GIFs are written with Pillow (installed with PyVista), so recording works with
organsim's core dependencies. MP4 (H.264) needs ffmpeg through the
``imageio-ffmpeg`` package (``pip install organsim[video]``); without it an
``.mp4`` request falls back to a GIF next to it, and the path actually written
is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import OrganSimError

__all__ = ["record", "ffmpeg_available", "video_path", "VideoWriter"]

log = logging.getLogger(__name__)


def ffmpeg_available() -> bool:
    """True if MP4 can be written (imageio-ffmpeg and its ffmpeg binary are present)."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
        return True
    except Exception:  # noqa: BLE001 - any failure means no ffmpeg
        return False


def video_path(path: str | Path) -> Path:
    """The file a recording to ``path`` will write (``.gif`` if ffmpeg is missing)."""
    p = Path(path)
    if p.suffix.lower() not in (".mp4", ".gif"):
        raise OrganSimError(f"cannot record to {p.name}: the video format is chosen by the "
                            "extension; use .mp4 or .gif")
    if p.suffix.lower() == ".mp4" and not ffmpeg_available():
        return p.with_suffix(".gif")
    return p


class VideoWriter:
    """Frames (h, w, 3) uint8 to an MP4 (ffmpeg) or a GIF (Pillow), atomically.

    Parameters
    ----------
    path : str or Path
        ``.mp4`` or ``.gif``; written to a temporary name and renamed on :meth:`close`.
    fps : int
        Playback frame rate.
    """

    def __init__(self, path: str | Path, *, fps: int = 25) -> None:
        self.path = Path(path)
        self.fps = int(fps)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._gen = None
        self._gif: list = []
        self.n_frames = 0

    def add(self, frame: np.ndarray) -> None:
        """Append one frame, shape (h, w, 3) uint8."""
        img = np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)
        if self.path.suffix.lower() == ".mp4":
            if self._gen is None:
                import imageio_ffmpeg

                h, w = img.shape[:2]
                self._gen = imageio_ffmpeg.write_frames(
                    str(self.tmp), (w, h), fps=self.fps, quality=6, macro_block_size=8,
                    pix_fmt_out="yuv420p", ffmpeg_log_level="error")
                self._gen.send(None)
            self._gen.send(img.tobytes())
        else:
            from PIL import Image

            self._gif.append(Image.fromarray(img).quantize(colors=192, method=Image.Quantize.FASTOCTREE))
        self.n_frames += 1

    def close(self) -> Path | None:
        """Finish the file; returns its path (None if no frame was added)."""
        if self.n_frames == 0:
            return None
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        if self._gif:
            first, rest = self._gif[0], self._gif[1:]
            first.save(self.tmp, save_all=True, append_images=rest, loop=0,
                       duration=max(20, int(round(1000 / self.fps))), optimize=False)
            self._gif = []
        self.tmp.replace(self.path)
        return self.path


def record(viewer, path: str | Path, *, n_frames: int, fps: int = 30,
           progress: bool = True, before_frame: Callable[[int], None] | None = None,
           stop: Callable[[], bool] | None = None) -> Path:
    """Advance a viewer ``n_frames`` times and write each frame to a video.

    Parameters
    ----------
    viewer : Viewer
        An off-screen viewer (``Viewer(..., off_screen=True)``).
    path : str or Path
        ``.mp4`` (H.264 through imageio-ffmpeg) or ``.gif``.
    n_frames : int
        Frames to render; the source advances once per frame.
    fps : int
        Playback frame rate of the file.
    progress : bool
        Show a progress bar.
    before_frame : callable, optional
        Called with the frame index before each frame (scripted interaction).
    stop : callable, optional
        Checked before each frame; returning True ends the recording early (the
        frames so far are kept).

    Returns
    -------
    Path
        The file written (a ``.gif`` if ``.mp4`` was asked for without ffmpeg).

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh           # doctest: +SKIP
    >>> v = Viewer(box_tet_mesh((4, 4, 4), 0.01), off_screen=True)   # doctest: +SKIP
    >>> record(v, "turn.gif", n_frames=10)                           # doctest: +SKIP
    """
    out = video_path(path)
    if out != Path(path):
        log.warning("ffmpeg is not available (pip install 'organsim[video]'); writing a GIF "
                    "instead: %s", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = VideoWriter(out, fps=fps)
    viewer._ensure_shown()
    frames = range(int(n_frames))
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc=f"recording {out.name}", unit="frame")
    try:
        for i in frames:
            if stop is not None and stop():
                break
            if before_frame is not None:
                before_frame(i)
            viewer.frame(render=True)  # pyvista's screenshot reads the buffer; it does not render
            writer.add(viewer.plotter.screenshot(None, return_img=True))
    finally:
        written = writer.close()
    if written is None:
        raise OrganSimError(f"no frame was recorded to {out}; the procedure stopped before the "
                            "first frame")
    return written
