"""organsim.io: read and write label images, surfaces, volume meshes and result series.

World coordinates are LPS (DICOM patient convention), lengths in metres.
Images carry their own units (millimetres in every supported format); mesh
and surface formats carry none and are read with an explicit ``units=``.
Every writer is atomic: nothing half-written is ever left at an output path.
"""

from .images import read_image, write_image
from .surfaces import read_surface, write_surface
from .series import SeriesWriter, read_series

__all__ = ["read_image", "write_image", "read_surface", "write_surface", "SeriesWriter", "read_series"]
