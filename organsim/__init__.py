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
import os
import tempfile
from pathlib import Path

__version__ = "0.1.0"

# pyvista imports pooch, which imports tqdm.auto: in Jupyter without ipywidgets that warns
# "IProgress not found" into the first cell that renders; organsim shows no such progress bar
import warnings as _warnings  # noqa: E402

_warnings.filterwarnings("ignore", message="IProgress not found")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".organsim-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def kernel_cache_dir(candidates: list[Path] | None = None) -> str | None:
    """Where numba caches organsim's compiled kernels; sets ``NUMBA_CACHE_DIR`` when it must.

    numba caches next to the sources when it can write there, else in the
    user's cache folder. On a read-only install with no writable home neither
    works and every kernel would fail; then a writable folder is chosen here
    (the user cache, else the temporary folder) before numba is imported.
    ``NUMBA_CACHE_DIR``, when set, always wins.

    Parameters
    ----------
    candidates : list of Path, optional
        Folders to try, in order (default: ``$XDG_CACHE_HOME/organsim/numba`` or
        ``~/.cache/organsim/numba``, then ``<tmp>/organsim-numba-<user>``).

    Returns
    -------
    str or None
        The folder set as ``NUMBA_CACHE_DIR``, or None when numba's default works.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    if candidates is None:
        if _writable(Path(__file__).resolve().parent / "__pycache__"):
            return None
        home = os.environ.get("XDG_CACHE_HOME") or str(Path("~").expanduser() / ".cache")
        user = os.environ.get("USER") or str(getattr(os, "getuid", lambda: "user")())
        candidates = [Path(home) / "organsim" / "numba",
                      Path(tempfile.gettempdir()) / f"organsim-numba-{user}"]
    for folder in candidates:
        if _writable(Path(folder)):
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
            return str(folder)
    return None


kernel_cache_dir()

from .errors import (  # noqa: F401, E402 - after the kernel cache is chosen, before numba loads
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
from .mesh import LabelImage, TetMesh, TriSurface  # noqa: F401, E402

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
    "sweep": "organsim.scenario.sweeps",
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
