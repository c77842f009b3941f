"""Meshes: the core types, extraction from labels, repair and tetrahedralization."""

from .labelimage import LabelImage
from .surface import TriSurface
from .tetmesh import TetMesh

__all__ = ["LabelImage", "TetMesh", "TriSurface"]
