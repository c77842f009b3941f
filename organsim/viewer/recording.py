"""Recordings of a procedure: MP4 (ffmpeg) or GIF, rendered off-screen.

Video needs the optional ``video`` extra (``pip install organsim[video]``:
imageio and imageio-ffmpeg). Without ffmpeg an ``.mp4`` request falls back to
a GIF next to it, and the path actually written is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..errors import OrganSimError

__all__ = ["record", "ffmpeg_available", "video_path"]

log = logging.getLogger(__name__)


def ffmpeg_available() -> bool:
    """True if imageio can write MP4 through ffmpeg."""
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
    """
    try:
        import imageio  # noqa: F401
    except ImportError as exc:
        raise OrganSimError("recording video needs imageio: pip install 'organsim[video]'") from exc
    out = video_path(path)
    if out != Path(path):
        log.warning("ffmpeg is not available; writing a GIF instead: %s", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    pl = viewer.plotter
    viewer._ensure_shown()
    if out.suffix.lower() == ".mp4":
        pl.open_movie(str(tmp), framerate=int(fps), quality=6)
    else:
        pl.open_gif(str(tmp), fps=int(fps), palettesize=128)
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
            viewer.frame(render=True)
            pl.write_frame()
    finally:
        mw = getattr(pl, "mwriter", None)
        if mw is not None:
            mw.close()
            pl.mwriter = None
    tmp.replace(out)
    return out
