"""Surgical interaction: topological cutting, resection, instruments and contact.

* :mod:`organsim.surgery.cutting` - progressive cutting by a swept blade
  (:class:`Cutter`, :func:`cut`, :class:`CutResult`, cut-face tags);
* :mod:`organsim.surgery.resection` - removal of a region with a margin (:func:`resect`);
* :mod:`organsim.surgery.instruments` - grasper, probe, retractor, scalpel, poses and
  :func:`~organsim.surgery.instruments.step`;
* :mod:`organsim.surgery.contact` - rigid tool shapes and active-set contact.
"""

from .contact import Box, Capsule, ContactSet, Sphere
from .cutting import (CutResult, Cutter, blade_poses_along, cut, face_keys, surface_points_below,
                      surface_with_cut_tags, swept_triangles, validate_mesh)
from .instruments import Grasper, Instrument, Pose, Probe, Retractor, Scalpel, ToolForces, Trajectory, step
from .resection import ResectionResult, resect

__all__ = [
    "Box", "Capsule", "ContactSet", "Sphere",
    "CutResult", "Cutter", "blade_poses_along", "cut", "face_keys", "surface_points_below",
    "surface_with_cut_tags", "swept_triangles", "validate_mesh",
    "Grasper", "Instrument", "Pose", "Probe", "Retractor", "Scalpel", "ToolForces", "Trajectory", "step",
    "ResectionResult", "resect",
]
