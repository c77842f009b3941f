"""organsim.viewer: render organs, simulations and recorded runs with PyVista.

- :class:`Viewer`: live interactive window, or the same scene off-screen.
- :func:`record`: MP4/GIF of a procedure, off-screen.
- :func:`replay`: play back a recorded PVD series with a time slider.
"""

from .interaction import KEYS, TOOLS, Interaction
from .recording import ffmpeg_available, record
from .scene import CAMERA_PRESETS, CUT_FACE_COLOR, REGION_COLORS, Scene
from .sources import FrameSource, InstrumentView, SimulationSource, StaticSource
from .viewer import Viewer, as_source, has_display

__all__ = [
    "Viewer", "Scene", "Interaction", "record", "ffmpeg_available", "as_source", "has_display",
    "FrameSource", "InstrumentView", "SimulationSource", "StaticSource",
    "KEYS", "TOOLS", "CAMERA_PRESETS", "REGION_COLORS", "CUT_FACE_COLOR",
]
