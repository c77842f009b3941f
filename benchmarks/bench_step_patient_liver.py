"""step-patient-liver: real-time steps of a patient's own liver, meshed by organsim at its defaults.

Mesh: ``../shared/data/organs/msml_LiverSurface.stl`` (a CT-derived liver surface, mm;
CC BY-NC-SA, read in place, never copied into the repository; the benchmark is skipped
with a note where it is absent; ``ORGANSIM_ORGANS_DIR`` overrides the folder), meshed
in-process exactly as ``organsim mesh`` does (``mesh_surface`` at the default edge
length, 1/25 of the largest extent: ~8.3 mm, ~41k tets).

Problem: the nodes in the top 10 % of the superior-inferior (z) extent fixed (the dome
under the diaphragm, where the coronary and triangular ligaments hold the liver),
gravity -z, E = 100 kPa, nu = 0.45, rho = 1060 (as step-liver-10k), dt = 1/60 s, from
rest. Realtime integrator (one linearly implicit Newton step, warped reference
preconditioner, PCG rtol 1e-2, <= 20 iterations). First step: a fresh simulation's
first ``step()`` (it builds the pattern and the preconditioner). Accuracy: the
most-displaced node and the whole field after the run against backward Euler with
Newton tol 1e-9 over the same steps.
Targets: <= 16 ms corotational, <= 25 ms neo-Hookean, first step <= 1 s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks._femcore import load_average, timed_steps, warm_up_kernels
from organsim.fem.body import Body
from organsim.fem.materials import Corotational, NeoHookean
from organsim.fem.simulation import Simulation

ID = "step-patient-liver"
DT = 1.0 / 60.0
ORGANS = Path(os.environ.get("ORGANSIM_ORGANS_DIR",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data" / "organs"))
SOURCE = "msml_LiverSurface.stl"
TARGET_MS = {"corotational": 16.0, "neo_hookean": 25.0}
TARGET_FIRST_S = 1.0


def patient_liver():
    """The msml liver meshed as ``organsim mesh`` does (defaults): ``(mesh, fixed ids, seconds)``, or None."""
    from organsim import io
    from organsim.mesh.pipeline import mesh_surface
    from organsim.units import effective_units

    path = ORGANS / SOURCE
    if not path.exists():
        return None
    t0 = time.perf_counter()
    surf = io.read_any(path, units=effective_units(path, None))
    mesh, _ = mesh_surface(surf, source=SOURCE)
    mesh_s = time.perf_counter() - t0
    z = mesh.points[:, 2]
    fixed = np.flatnonzero(z > z.max() - 0.1 * (z.max() - z.min()))
    return mesh, fixed, mesh_s


def make(mesh, fixed, model, **kw) -> Simulation:
    mat = {"corotational": Corotational, "neo_hookean": NeoHookean}[model](1e5, 0.45)
    sim = Simulation(Body(mesh, mat, density=1060.0), dt=DT, **kw)
    sim.fix(fixed, name="dome")
    return sim


REALTIME = dict(integrator="realtime", realtime_cg=20, realtime_rtol=1e-2)


def run(quick: bool = False, preconditioner: str = "auto") -> dict:
    got = patient_liver()
    if got is None:
        return {"skipped": f"{ORGANS / SOURCE} is absent (set ORGANSIM_ORGANS_DIR)", "rows": []}
    mesh, fixed, mesh_s = got
    warm_up_kernels()
    load = load_average()
    n_warm, n_meas = (3, 10) if quick else (5, 60)
    rows = []
    for model in ("corotational", "neo_hookean"):
        ref = make(mesh, fixed, model, integrator="backward_euler", newton_tol=1e-9, max_newton=60)
        for _ in range(n_warm + n_meas):
            ref.step()
        u_ref = ref.displacements
        k = int(np.argmax(np.linalg.norm(u_ref, axis=1)))
        sim = make(mesh, fixed, model, preconditioner=preconditioner, **REALTIME)
        t0 = time.perf_counter()
        sim.step()
        first_s = time.perf_counter() - t0
        stats = timed_steps(sim, n_warm - 1, n_meas)
        u = sim.displacements
        rows.append({"model": model, "tets": mesh.n_tets, "nodes": mesh.n_points, "fixed": len(fixed),
                     "first_step_s": first_s, **stats,
                     "max_u_mm": float(np.linalg.norm(u[k]) * 1e3),
                     "ref_max_u_mm": float(np.linalg.norm(u_ref[k]) * 1e3),
                     "rel_err": float(np.linalg.norm(u[k] - u_ref[k]) / np.linalg.norm(u_ref[k])),
                     "field_rel_err": float(np.linalg.norm(u - u_ref) / np.linalg.norm(u_ref)),
                     "target_ms": TARGET_MS[model], "target_first_s": TARGET_FIRST_S})
    return {"rows": rows, "load_average_at_start": load, "preconditioner": preconditioner,
            "mesh": f"{SOURCE} meshed by mesh_surface at its default edge length ({mesh_s:.1f} s)",
            "threads": _threads(),
            "notes": "fixed: nodes in the top 10 % of the z extent; median of the timed steps after warm-up;"
                     " wall and CPU-process time (CPU time sums both cores when the kernels run in parallel);"
                     " shared machine. rel_err: most-displaced node vs backward Euler (tol 1e-9) after the"
                     " same steps; field_rel_err: whole displacement field, L2."}


def _threads() -> int:
    import numba
    return int(numba.get_num_threads())
