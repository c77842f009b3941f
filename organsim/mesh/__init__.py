"""Meshes: the core types, extraction from labels, repair and tetrahedralization.

::

    from organsim.mesh import mesh_image, mesh_surface, load_shipped
    mesh, report = mesh_image(image)        # label volume -> quality tets, a region per label
    liver = load_shipped("liver")           # ~10k tets, parenchyma/tumour/vessel/ligament
"""

from .extract import extract_surface
from .labelimage import LabelImage
from .pipeline import MeshingReport, drop_small_components, mesh_image, mesh_surface, mesh_volume
from .repair import RepairReport, repair_surface
from .shipped import load_shipped, shipped_names
from .surface import TriSurface
from .tetmesh import TetMesh
from .tetrahedralize import quality_gate, tetrahedralize

__all__ = [
    "LabelImage", "TetMesh", "TriSurface",
    "extract_surface", "repair_surface", "RepairReport",
    "tetrahedralize", "quality_gate",
    "mesh_image", "mesh_surface", "mesh_volume", "MeshingReport", "drop_small_components",
    "load_shipped", "shipped_names",
]
