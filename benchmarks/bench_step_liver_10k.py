"""step-liver-10k: dynamic steps of the shipped liver (~10k tets), corotational and neo-Hookean.

The shipped liver (``organsim.mesh.shipped.load_shipped("liver")``), the
"ligament" region fixed, gravity -z, dt = 1/60 s, from rest. Material: E = 100 kPa,
nu = 0.45, rho = 1060 for all regions (the organ-dyn stiffness). With the liver
preset (E = 5.2 kPa) the organ hanging from its ligament band under full gravity
inverts elements next to the band within the first frames (the static sag would be
far beyond the preset's validity), so that setting is not a meaningful timing.
Realtime integrator (one linearly implicit Newton step, warped-Cholesky
PCG, rtol 1e-2, <= 20 CG iterations); accuracy: the largest displacement after
the run against backward Euler with Newton tol 1e-9 over the same steps.
Targets: <= 16 ms corotational, <= 33 ms neo-Hookean.
"""

from __future__ import annotations

import numpy as np

from benchmarks._femcore import load_average, timed_steps, warm_up_kernels
from organsim.fem import selection
from organsim.fem.body import Body
from organsim.fem.simulation import Simulation
from organsim.fem.materials import Corotational, NeoHookean
from organsim.mesh.shipped import load_shipped

ID = "step-liver-10k"
DT = 1.0 / 60.0


def _sim(mesh, model, **kw):
    mat = {"corotational": Corotational, "neo_hookean": NeoHookean}[model](1e5, 0.45)
    sim = Simulation(Body(mesh, mat, density=1060.0), dt=DT, **kw)
    sim.fix(selection.region(mesh, "ligament"), name="ligament")
    return sim


def run(quick: bool = False) -> dict:
    warm_up_kernels()
    load = load_average()
    mesh = load_shipped("liver")
    n_warm, n_meas = (3, 10) if quick else (10, 200)
    rows = []
    for model, target in (("corotational", 16.0), ("neo_hookean", 33.0)):
        ref = _sim(mesh, model, integrator="backward_euler", newton_tol=1e-9, max_newton=60)
        for _ in range(n_warm + n_meas):
            ref.step()
        u_ref = ref.displacements
        k = int(np.argmax(np.linalg.norm(u_ref, axis=1)))
        sim = _sim(mesh, model, integrator="realtime", realtime_cg=20, realtime_rtol=1e-2)
        stats = timed_steps(sim, n_warm, n_meas)
        u = sim.displacements
        rows.append({"model": model, "tets": mesh.n_tets, **stats,
                     "max_u_mm": float(np.linalg.norm(u[k]) * 1e3),
                     "ref_max_u_mm": float(np.linalg.norm(u_ref[k]) * 1e3),
                     "rel_err": float(np.linalg.norm(u[k] - u_ref[k]) / np.linalg.norm(u_ref[k])),
                     "field_rel_err": float(np.linalg.norm(u - u_ref) / np.linalg.norm(u_ref)),
                     "target_ms": target})
    return {"rows": rows, "load_average_at_start": load, "mesh": "meshes/liver.vtu (shipped)",
            "notes": "median of timed steps after warm-up; wall and CPU-process time; shared machine."
                     " rel_err: displacement of the most-displaced node vs backward Euler (tol 1e-9)"
                     " after the same steps; field_rel_err: whole displacement field, L2."}
