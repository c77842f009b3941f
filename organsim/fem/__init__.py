"""organsim.fem: verified soft-tissue finite elements.

Materials (:mod:`.materials`), P1 kinematics and assembly (:mod:`.kinematics`,
:mod:`.assembly`), the deformable :class:`Body`, the :class:`Simulation`
(:mod:`.simulation`) with its integrators (:mod:`.integrators`), preconditioning
(:mod:`.preconditioning`), transfer across topology changes
(:mod:`.topology_transfer`) and linear solvers (:mod:`.solvers`), tissue presets
(:mod:`.tissues`), node and face selectors (:mod:`.selection`), surface loads
(:mod:`.loads`) and strain/stress fields (:mod:`.fields`).

Examples
--------
>>> import numpy as np
>>> from organsim.mesh.generators import box_tet_mesh
>>> from organsim import fem
>>> mesh = box_tet_mesh((6, 3, 3), 0.01)
>>> sim = fem.Simulation(fem.Body(mesh, fem.NeoHookean(1e5, 0.4), density=1000.0))
>>> sim.fix(fem.selection.box(mesh, (-1, -1, -1), (1e-6, 1, 1)), name="wall")
>>> sim.solve_static().converged
True
"""

from __future__ import annotations

from . import fields, loads, p2, recorder, selection, tissues  # noqa: F401
from .assembly import Assembler
from .body import Body
from .kinematics import deformation_gradients, polar_rotation, shape_gradients
from .p2 import P2Result, P2Space, solve_linear_p2, solve_static_p2
from .recorder import Recorder
from .materials import (
    Corotational,
    LinearElastic,
    Material,
    MooneyRivlin,
    NeoHookean,
    StVenantKirchhoff,
    lame_parameters,
)
from .simulation import Simulation, StaticInfo, StepInfo
from .tissues import TISSUES, TissuePreset, tissue

__all__ = [
    "Material", "LinearElastic", "Corotational", "StVenantKirchhoff", "NeoHookean", "MooneyRivlin",
    "lame_parameters", "shape_gradients", "deformation_gradients", "polar_rotation", "Assembler",
    "Body", "Simulation", "StepInfo", "StaticInfo", "TISSUES", "TissuePreset", "tissue",
    "P2Result", "P2Space", "solve_linear_p2", "solve_static_p2", "Recorder",
    "fields", "loads", "p2", "recorder", "selection", "tissues",
]
