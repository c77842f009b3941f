"""organ-dyn: neo-Hookean backward-Euler steps on the shared peer meshes.

Problem (shared/data/bench/README.md): organ_10k / organ_100k ellipsoids, E = 100 kPa,
nu = 0.45, rho = 1000, lumped mass, gravity -z, clamped cap, from rest,
h = 1/60 s; median ms per step over 100 steps after 5 warm-up; probe |u| at t = 1 s
(step 60). Peers on this machine: mujoco 94 ms / 1,670 ms (probe 52.5 mm),
sfepy 49.1 mm, pbatoolkit 50.7 mm.

Rows: the realtime integrator with 1 (PCG rtol 1e-2) and 2 (rtol 1e-4) Newton
iterations per step, and the
accurate backward Euler (Newton tol 1e-6); on organ_100k only the 1-Newton realtime
row (the machine is shared; time-boxed). Accuracy: probe |u| at t = 1 s against our
own tightly converged backward-Euler run (Newton tol 1e-9 on 10k, 1e-7 on 100k).
"""

from __future__ import annotations

import numpy as np

from benchmarks._femcore import load_average, load_organ, make_sim, summarize, warm_up_kernels
from organsim.fem.materials import NeoHookean

import time

ID = "organ-dyn"
H = 1.0 / 60.0
MUJOCO_MS = {"organ_10k": 94.0, "organ_100k": 1670.0}
TARGET_MS = {"organ_10k": 16.0, "organ_100k": 250.0}


def _run(mesh, fixed, probe, n_warm, n_meas, probe_step, **kw):
    sim = make_sim(mesh, NeoHookean(1e5, 0.45), fixed=fixed, dt=H, **kw)
    wall, cpu, infos = [], [], []
    u_probe = float("nan")
    for k in range(1, n_warm + n_meas + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        info = sim.step()
        c1, w1 = time.process_time(), time.perf_counter()
        if k > n_warm:
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
            infos.append(info)
        if k == probe_step:
            u_probe = float(np.linalg.norm(sim.displacements[probe]))
    return summarize(wall, cpu, infos), u_probe


def run(quick: bool = False) -> dict:
    warm_up_kernels()
    load = load_average()
    rows = []
    names = ["organ_10k"] if quick else ["organ_10k", "organ_100k"]
    for name in names:
        mesh, fixed, probe = load_organ(name)
        probe_step = 60
        n_warm, n_meas = (5, 20) if quick else (5, 100)
        ref_tol = 1e-9 if name == "organ_10k" else 1e-7
        _, u_ref = _run(mesh, fixed, probe, 0, probe_step, probe_step, integrator="backward_euler",
                        newton_tol=ref_tol, max_newton=60)
        modes = [("realtime 1 Newton", dict(integrator="realtime", realtime_newton=1, realtime_cg=20,
                                            realtime_rtol=1e-2))]
        if name == "organ_10k":
            modes += [("realtime 2 Newton", dict(integrator="realtime", realtime_newton=2, realtime_cg=20,
                                                 realtime_rtol=1e-4)),
                      ("backward_euler tol 1e-6", dict(integrator="backward_euler", newton_tol=1e-6))]
        for label, kw in modes:
            nm = n_meas if not label.startswith("backward") else max(probe_step - n_warm, 20)
            stats, u_probe = _run(mesh, fixed, probe, n_warm, nm, probe_step, **kw)
            rows.append({"mesh": name, "tets": mesh.n_tets, "mode": label, **stats,
                         "probe_u_mm_t1": u_probe * 1e3, "ref_probe_u_mm_t1": u_ref * 1e3,
                         "probe_rel_err": abs(u_probe - u_ref) / u_ref, "ref_newton_tol": ref_tol,
                         "mujoco_ms": MUJOCO_MS[name], "speedup_vs_mujoco": MUJOCO_MS[name] / stats["median_ms"],
                         "cpu_speedup_vs_mujoco": MUJOCO_MS[name] / stats["median_cpu_ms"],
                         "target_ms": TARGET_MS[name]})
    return {"rows": rows, "load_average_at_start": load,
            "notes": "mujoco's figure is from shared/data/bench/README.md (same machine, not this run)."
                     " probe_rel_err vs our backward Euler with Newton tol 1e-9; wall and CPU-process time"
                     " per step; shared machine (see load average)."}
