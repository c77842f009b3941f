"""step-beam-19k: one implicit-Euler step of the 18,954-tet corotational beam.

Problem (shared/BENCHMARKS.md): box_tet_mesh((40, 10, 10), 0.01), E = 500 kPa,
nu = 0.45, rho = 1000, x = 0 end fixed, gravity -z, dt = 0.01 s, corotational.

Rows: the realtime integrator (one linearly implicit Newton step, PCG with the
warped reference Cholesky preconditioner, rtol 1e-2 or 1e-4, at most 20 CG iterations)
and the accurate backward-Euler integrator (Newton to 1e-6). Accuracy: the tip
deflection after the run against a tightly converged backward-Euler run
(Newton tol 1e-9) over the same steps. SOFA's published CPU figure: 33.6 ms.
"""

from __future__ import annotations

import numpy as np

from benchmarks._femcore import load_average, make_sim, timed_steps, warm_up_kernels
from organsim.fem.materials import Corotational
from organsim.mesh.generators import box_tet_mesh

ID = "step-beam-19k"
SHAPE = (40, 10, 10)
DT = 0.01
SOFA_MS = 33.6


def beam_rows(shape, dt, *, n_warm, n_meas, n_ref, sofa_ms, target_ms):
    mesh = box_tet_mesh(shape, 0.01)
    fixed = np.flatnonzero(mesh.points[:, 0] == 0)
    tip = np.flatnonzero(mesh.points[:, 0] == mesh.points[:, 0].max())
    mat = Corotational(5e5, 0.45)
    rows = []
    ref = make_sim(mesh, mat, fixed=fixed, dt=dt, integrator="backward_euler", newton_tol=1e-9, max_newton=60)
    ref_hist = [0.0]
    for _ in range(n_ref):
        ref.step()
        ref_hist.append(float(ref.displacements[tip, 2].mean()))
    for label, kw, nm in [
        ("realtime rtol 1e-2", dict(integrator="realtime", realtime_cg=20, realtime_rtol=1e-2), n_meas),
        ("realtime rtol 1e-4", dict(integrator="realtime", realtime_cg=20, realtime_rtol=1e-4), n_meas),
        ("backward_euler tol 1e-6", dict(integrator="backward_euler", newton_tol=1e-6), max(10, n_meas // 10)),
    ]:
        sim = make_sim(mesh, mat, fixed=fixed, dt=dt, **kw)
        stats = timed_steps(sim, n_warm, nm)
        k = n_warm + nm
        tip_z = float(sim.displacements[tip, 2].mean())
        rows.append({"mode": label, "tets": mesh.n_tets, **stats, "t_end_s": k * dt,
                     "tip_z_mm": tip_z * 1e3, "ref_tip_z_mm": ref_hist[k] * 1e3,
                     "tip_rel_err": abs(tip_z - ref_hist[k]) / max(abs(ref_hist[k]), 1e-12),
                     "vs_sofa": stats["median_ms"] / sofa_ms, "cpu_vs_sofa": stats["median_cpu_ms"] / sofa_ms,
                     "target_ms": target_ms})
    return rows


def run(quick: bool = False) -> dict:
    warm_up_kernels()
    load = load_average()
    if quick:
        rows = beam_rows((12, 4, 4), DT, n_warm=3, n_meas=10, n_ref=13, sofa_ms=SOFA_MS, target_ms=16)
    else:
        rows = beam_rows(SHAPE, DT, n_warm=10, n_meas=200, n_ref=210, sofa_ms=SOFA_MS, target_ms=16)
    return {"rows": rows, "load_average_at_start": load,
            "notes": "median of the timed steps after warm-up; wall and CPU-process time; the machine is shared"
                     " (see load average), CPU time is the better idle-core estimate. tip_rel_err: tip"
                     " deflection after the same number of steps vs backward Euler with Newton tol 1e-9."}
