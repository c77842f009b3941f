"""organsim.io: read and write label images, surfaces, volume meshes and result series.

World coordinates are LPS (DICOM patient convention), lengths in metres.
Images carry their own units (millimetres in every supported format); mesh
and surface formats carry none and are read with an explicit ``units=``.
Every writer is atomic: nothing half-written is ever left at an output path.

Examples
--------
>>> import organsim.io as oio
>>> mesh = oio.read_mesh("liver.msh", units="mm")            # doctest: +SKIP
>>> oio.write_mesh(mesh, "liver.vtu")                         # doctest: +SKIP
>>> anything = oio.read_any("segmentation.nii.gz", units="mm")  # doctest: +SKIP
"""

from .atomic import atomic_output
from .dispatch import SUPPORTED_EXTENSIONS, read_any
from .images import read_image, write_image
from .series import SeriesWriter, read_series
from .surfaces import read_surface, write_surface
from .volumes import read_mesh, write_mesh

__all__ = [
    "read_image", "write_image",
    "read_surface", "write_surface",
    "read_mesh", "write_mesh",
    "read_any", "SUPPORTED_EXTENSIONS",
    "SeriesWriter", "read_series",
    "atomic_output",
]
