"""A deformable body: a rest mesh with a material and a density per region."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

import numpy as np

from ..errors import MaterialError
from ..mesh.tetmesh import TetMesh
from .materials import Material

__all__ = ["Body"]


def _region_id(mesh: TetMesh, key) -> int:
    if isinstance(key, (int, np.integer)):
        if int(key) not in mesh.region_names:
            raise MaterialError(f"region id {key} is not in the mesh (regions: {mesh.region_names});"
                                " key materials by an existing region name or id")
        return int(key)
    for rid, name in mesh.region_names.items():
        if name == key:
            return rid
    raise MaterialError(f"region {key!r} is not in the mesh (regions: {sorted(mesh.region_names.values())});"
                        " key materials by an existing region name or id")


class Body:
    """A deformable body: rest mesh, material(s) and density.

    Parameters
    ----------
    mesh : TetMesh
        Rest configuration (m).
    materials : Material or dict
        One material for the whole mesh, or ``{region name or id: Material}``
        covering every region of the mesh.
    density : float or dict
        kg/m^3, for the whole mesh or per region (same keys as ``materials``).

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> from organsim.fem.materials import NeoHookean
    >>> body = Body(box_tet_mesh((3, 3, 3), 0.01), NeoHookean(3e3, 0.45), density=1060.0)
    >>> round(body.mass, 6)
    0.00848
    """

    def __init__(self, mesh: TetMesh, materials: Material | Mapping, *, density: float | Mapping):
        if not isinstance(mesh, TetMesh):
            raise MaterialError(f"Body needs a TetMesh, got {type(mesh).__name__}")
        self.mesh = mesh
        self.materials = materials
        self.density = density
        rids = mesh.region_ids
        self._mat_per_region: dict[int, Material] = {}
        if isinstance(materials, Material):
            for rid in mesh.region_names:
                self._mat_per_region[rid] = materials
        elif isinstance(materials, Mapping):
            for key, mat in materials.items():
                if not isinstance(mat, Material):
                    raise MaterialError(f"material for region {key!r} is a {type(mat).__name__},"
                                        " expected a Material such as NeoHookean(E, nu)")
                self._mat_per_region[_region_id(mesh, key)] = mat
        else:
            raise MaterialError(f"materials must be a Material or a dict region -> Material,"
                                f" got {type(materials).__name__}")
        present = set(mesh.present_region_ids.tolist())
        missing = present - set(self._mat_per_region)
        if missing:
            names = [mesh.region_names.get(r, r) for r in sorted(missing)]
            raise MaterialError(f"no material given for region(s) {names}; give one Material for the"
                                " whole mesh or one per region")
        dens = np.empty(mesh.n_tets)
        self._density_per_region: dict[int, float] = {}
        if isinstance(density, Mapping):
            per = {_region_id(mesh, k): float(v) for k, v in density.items()}
            self._density_per_region = per
            miss = present - set(per)
            if miss:
                raise MaterialError(f"no density given for region(s) {sorted(miss)}")
            ids = np.array(sorted(per), dtype=np.int64)
            vals = np.array([per[r] for r in ids.tolist()])
            dens[:] = vals[np.searchsorted(ids, rids)]
        else:
            dens[:] = float(density)
        if not np.all(np.isfinite(dens)) or np.any(dens < 0):
            raise MaterialError("density must be finite and >= 0 kg/m^3 (soft tissue: about 1000-1100)")
        dens.setflags(write=False)
        self.density_per_tet = dens

    @cached_property
    def mass(self) -> float:
        """Total mass (kg)."""
        return float(self.density_per_tet @ np.abs(self.mesh.volumes))

    def material_groups(self) -> list[tuple[np.ndarray, Material]]:
        """Partition of the tets by material: list of (tet ids, Material)."""
        groups: dict[int, tuple[list, Material]] = {}
        rids = self.mesh.region_ids
        for rid, mat in self._mat_per_region.items():
            key = id(mat)
            groups.setdefault(key, ([], mat))[0].append(rid)
        out = []
        if len(groups) == 1:  # one material everywhere (the usual case): no search
            (_, mat), = groups.values()
            return [(np.arange(len(rids)), mat)] if len(rids) else []
        for rid_list, mat in groups.values():
            elems = np.flatnonzero(np.isin(rids, rid_list))
            if len(elems):
                out.append((elems, mat))
        return out

    def with_mesh(self, mesh: TetMesh) -> Body:
        """The same materials and densities on another mesh with the same region ids (after a cut)."""
        mats = {rid: m for rid, m in self._mat_per_region.items() if rid in mesh.region_names}
        if isinstance(self.density, Mapping):
            dens = {rid: d for rid, d in self._density_per_region.items() if rid in mesh.region_names}
        else:
            dens = self.density
        return Body(mesh, mats, density=dens)
