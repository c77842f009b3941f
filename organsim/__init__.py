"""organsim: 3D organ surgical simulation in Python.

From a patient's segmentation to a cut, deforming, rendered organ::

    import organsim as osim

    liver = osim.load_shipped("liver")                       # TetMesh, metres, regions
    body = osim.Body(liver, osim.tissue("liver").material, density=1060.0)
    sim = osim.Simulation(body, dt=1 / 60, integrator="realtime")
    sim.fix(osim.fem.selection.region(liver, "ligament"), name="ligament")
    sim.step()

The names below are the public API; each lives in a subpackage with one job:
``io`` (files), ``mesh`` (surfaces, tet meshes, meshing), ``fem`` (tissue
mechanics), ``surgery`` (instruments, cutting, resection), ``scenario``
(procedures, metrics, reports) and ``viewer`` (PyVista rendering). Heavy
subpackages are imported on first use.
"""

from __future__ import annotations

import importlib

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

#: Public name -> module that defines it (imported lazily).
_LAZY = {
    # files
    "read_any": "organsim.io", "read_image": "organsim.io", "read_surface": "organsim.io",
    "read_mesh": "organsim.io", "write_mesh": "organsim.io", "write_surface": "organsim.io",
    "write_image": "organsim.io", "SeriesWriter": "organsim.io", "read_series": "organsim.io",
    # meshing
    "extract_surface": "organsim.mesh", "repair_surface": "organsim.mesh",
    "tetrahedralize": "organsim.mesh", "mesh_image": "organsim.mesh",
    "mesh_surface": "organsim.mesh", "load_shipped": "organsim.mesh",
    "shipped_names": "organsim.mesh",
    # tissue mechanics
    "Body": "organsim.fem", "Simulation": "organsim.fem", "tissue": "organsim.fem",
    "TISSUES": "organsim.fem", "LinearElastic": "organsim.fem", "Corotational": "organsim.fem",
    "StVenantKirchhoff": "organsim.fem", "NeoHookean": "organsim.fem",
    "MooneyRivlin": "organsim.fem", "Recorder": "organsim.fem",
    # surgery
    "Cutter": "organsim.surgery", "cut": "organsim.surgery", "resect": "organsim.surgery",
    "Grasper": "organsim.surgery", "Probe": "organsim.surgery", "Retractor": "organsim.surgery",
    "Scalpel": "organsim.surgery", "Pose": "organsim.surgery", "Trajectory": "organsim.surgery",
    # procedures and viewing
    "Scenario": "organsim.scenario", "load_scenario": "organsim.scenario",
    "save_scenario": "organsim.scenario", "run": "organsim.scenario",
    "Viewer": "organsim.viewer",
}

_SUBPACKAGES = ("io", "mesh", "fem", "surgery", "scenario", "viewer", "phantoms", "units")

__all__ = [
    "__version__",
    "OrganSimError", "InputFileError", "ImageError", "MeshError", "UnitsError",
    "MaterialError", "ConvergenceError", "SimulationError", "ScenarioError",
    "LabelImage", "TetMesh", "TriSurface",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_SUBPACKAGES))
