"""``organsim warmup`` compiles what a live session on a patient-sized organ runs.

A window or a lab session calls :func:`organsim.warmup.warm_up` before its first frame, so
that no frame waits for numba's compiler. The warm-up works on small meshes; a large organ
takes paths a small one does not (single-precision factors of a million entries and more,
solves on two threads, the parallel element schedule's dissection, the two-grid cycle), and
every kernel signature those need must be compiled by the warm-up already: a missing one
had made the first step on the 41k-tet patient liver take 7.8 s instead of 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from organsim.fem.body import Body
from organsim.fem.simulation import Simulation
from organsim.fem.tissues import tissue
from organsim.mesh.generators import box_tet_mesh
from organsim.surgery.cutting import Cutter, blade_poses_along, surface_points_below
from organsim.warmup import warm_up

pytestmark = pytest.mark.slow


def _compiled() -> dict[str, set[str]]:
    """Every organsim kernel's compiled signatures in this process."""
    import sys

    out = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("organsim"):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, CPUDispatcher):
                out[f"{obj.py_func.__module__}.{obj.__name__}"] = {str(s) for s in obj.signatures}
    return out


@pytest.mark.parametrize("shape, preconditioner", [((22, 22, 14), "auto"),   # a 1M+-entry factor, in single
                                                   ((14, 14, 10), "multigrid")])
def test_a_large_organ_cut_live_compiles_nothing_after_the_warm_up(shape, preconditioner):
    warm_up(force=True)
    before = _compiled()
    mesh = box_tet_mesh(shape, 0.005)
    t = tissue("liver")
    sim = Simulation(Body(mesh, t.material, density=t.density), dt=1 / 60, integrator="realtime",
                     preconditioner=preconditioner)
    top = mesh.points[:, 2] >= mesh.points[:, 2].max() - 1e-9
    sim.fix(np.flatnonzero(top), name="top")
    for _ in range(3):
        sim.step()
    sim.refresh_preconditioner()     # a factorization of the deformed state, rotated from then on
    lo, hi = mesh.points.min(axis=0), mesh.points.max(axis=0)
    c = (lo + hi) / 2
    xy = np.array([lo[0] + 0.01, c[1]]) + np.outer(np.linspace(0, 1, 6) * 0.02, [1.0, 0.0])
    poses = blade_poses_along(surface_points_below(mesh, xy, positions=sim.positions), depth=0.01)
    cutter = Cutter(sim.mesh)
    changed = 0
    for pose in poses:
        res = cutter.advance(pose, positions=sim.positions)
        if res.changed:
            changed += 1
            sim.change_topology(res.mesh, res.transfer, res.tet_parent)
            cutter.mesh = sim.mesh
        assert sim.step().converged
    assert changed >= 2
    after = _compiled()
    new = {k: sorted(v - before.get(k, set())) for k, v in after.items() if v - before.get(k, set())}
    assert not new, f"compiled after the warm-up: {new}"
