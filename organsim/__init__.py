"""organsim: 3D organ surgical simulation in Python.

From a patient's segmentation to a cut, deforming, rendered organ::

    import organsim as osim
    mesh = osim.load_shipped("liver")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: F401
    ConvergenceError,
    ImageError,
    InputFileError,
    MaterialError,
    MeshError,
    OrganSimError,
    ScenarioError,
    SimulationError,
    UnitsError,
)
from .mesh import LabelImage, TetMesh, TriSurface  # noqa: F401

__all__ = [
    "__version__",
    "OrganSimError", "InputFileError", "ImageError", "MeshError", "UnitsError",
    "MaterialError", "ConvergenceError", "SimulationError", "ScenarioError",
    "LabelImage", "TetMesh", "TriSurface",
]
