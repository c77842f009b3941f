"""From a scenario to a simulation: the organ mesh, its materials, fixations and gravity."""

from __future__ import annotations

import numpy as np

from ..errors import ScenarioError
from ..mesh.tetmesh import TetMesh
from .schema import Scenario, check_regions

__all__ = ["load_organ", "build_simulation"]

_MM = 1e-3


def load_organ(scenario: Scenario) -> TetMesh:
    """The scenario's organ mesh (rest configuration, metres)."""
    o = scenario.organ
    if o.shipped is not None:
        from ..mesh.shipped import load_shipped

        return load_shipped(o.shipped)
    from ..io import read_mesh
    from ..units import effective_units

    return read_mesh(o.path, units=effective_units(o.path, o.units))


def _material_for(scenario: Scenario, region: str):
    from ..fem import materials as mats
    from ..fem.tissues import tissue

    spec = scenario.materials.get(region, scenario.materials.get("default"))
    if spec is None:
        raise ScenarioError(f"materials: no material for region {region!r}; add "
                            f"[materials.{region}] or [materials.default]")
    preset = tissue(spec.tissue, model=spec.model, nu=spec.nu)
    material = preset.material
    if spec.E_pa is not None:
        cls = {"neo_hookean": mats.NeoHookean, "corotational": mats.Corotational,
               "linear": mats.LinearElastic, "stvk": mats.StVenantKirchhoff}.get(spec.model)
        if cls is None:
            raise ScenarioError(f"materials.{region}.E_pa: cannot override E for model "
                                f"{spec.model!r}; use neo_hookean, corotational, linear or stvk")
        material = cls(spec.E_pa, spec.nu)
    density = preset.density if spec.density is None else spec.density
    return material, density


def build_simulation(scenario: Scenario, mesh: TetMesh):
    """Body, materials, fixations and gravity of a scenario as a Simulation."""
    from ..fem import selection
    from ..fem.body import Body
    from ..fem.simulation import Simulation

    check_regions(scenario, set(mesh.region_names.values()))
    materials, density = {}, {}
    for rid, name in mesh.region_names.items():
        if not np.any(mesh.region_ids == rid):
            continue
        materials[name], density[name] = _material_for(scenario, name)
    body = Body(mesh, materials, density=density)
    sim = Simulation(body, gravity=scenario.gravity, dt=scenario.dt_s,
                     integrator=scenario.integrator,
                     damping=(scenario.damping_mass, scenario.damping_stiffness))
    for i, f in enumerate(scenario.fixations):
        if f.region is not None:
            nodes = selection.region(mesh, f.region)
        else:
            nodes = selection.box(mesh, np.asarray(f.box_min_mm) * _MM, np.asarray(f.box_max_mm) * _MM)
        sim.fix(nodes, name=f"fixation{i}")
    return sim
