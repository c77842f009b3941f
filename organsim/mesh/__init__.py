"""Meshes: the core types, extraction from labels, repair and tetrahedralization."""

from .labelimage import LabelImage
from .pipeline import MeshingReport, mesh_image, mesh_surface, mesh_volume
from .shipped import load_shipped, shipped_names
from .surface import TriSurface
from .tetmesh import TetMesh
from .tetrahedralize import quality_gate, tetrahedralize

__all__ = ["LabelImage", "TetMesh", "TriSurface", "tetrahedralize", "quality_gate",
           "mesh_image", "mesh_surface", "mesh_volume", "MeshingReport", "load_shipped",
           "shipped_names"]

try:  # the surface engineer's modules (extraction and repair)
    from .extract import extract_surface  # noqa: F401
    from .repair import RepairReport, repair_surface  # noqa: F401

    __all__ += ["extract_surface", "repair_surface", "RepairReport"]
except ModuleNotFoundError as _exc:  # pragma: no cover - until they land
    if _exc.name not in (f"{__name__}.extract", f"{__name__}.repair"):
        raise
