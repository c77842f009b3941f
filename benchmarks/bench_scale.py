"""scale: per-step cost and memory as the mesh grows.

Problem family: a soft block (box_tet_mesh with a 4:3:2 aspect, 1 cm-ish spacing
scaled so the block is 0.2 x 0.15 x 0.1 m), one end clamped, gravity, neo-Hookean
E = 100 kPa, nu = 0.45, rho = 1000, dt = 1/60 s, realtime integrator (one Newton
step, PCG rtol 1e-2, the preconditioner "auto" picks: a warped Cholesky factor up to
30k free DOFs, the warped two-grid cycle above; the other one beside it from 10k tets on).
BENCHMARKS.md names the liver phantom; a block is used instead so that every size is generated in a second with the same
shape (the phantom pipeline's meshing time would dominate), and the sizes are exact.

Records per size: median wall and CPU ms per step (20 steps after 5 warm-up),
the preconditioner set-up time, peak traced (numpy) memory per tet during set-up
and stepping, and the growth of the process's resident set. The fitted exponent
is the slope of log(CPU ms/step) against log(tets).
"""

from __future__ import annotations

import resource
import time
import tracemalloc

import numpy as np

from benchmarks._femcore import load_average, timed_steps, warm_up_kernels
from organsim.fem.body import Body
from organsim.fem.materials import NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh

ID = "scale"
SHAPES = [(8, 6, 5), (17, 12, 10), (36, 26, 20), (60, 44, 30), (76, 56, 41)]
#: The other preconditioner beside "auto"'s choice at the sizes from 10k tets on (the Cholesky
#: factor where "auto" takes the two-grid cycle, and the other way round).
COMPARE_FROM = 1


def _one(shape, n_meas, preconditioner="auto"):
    mesh = box_tet_mesh(shape, (0.2 / (shape[0] - 1), 0.15 / (shape[1] - 1), 0.1 / (shape[2] - 1)))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    sim = Simulation(Body(mesh, NeoHookean(1e5, 0.45), density=1000.0), dt=1 / 60, integrator="realtime",
                     realtime_rtol=1e-2, realtime_cg=20, preconditioner=preconditioner)
    sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="clamp")
    sim.step()  # builds the pattern and the reference factorization
    setup_s = time.perf_counter() - t0
    stats = timed_steps(sim, 4, n_meas)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"tets": mesh.n_tets, "nodes": mesh.n_points, "setting": preconditioner, "setup_s": setup_s, **stats,
            "preconditioner": sim.preconditioner_kind, "precision": sim.preconditioner_precision,
            "peak_traced_bytes_per_tet": peak / mesh.n_tets,
            "rss_growth_bytes_per_tet": max(rss1 - rss0, 0) * 1024 / mesh.n_tets}


def run(quick: bool = False) -> dict:
    warm_up_kernels()
    load = load_average()
    shapes = SHAPES[:2] if quick else SHAPES
    rows, other = [], []
    for i, s in enumerate(shapes):
        n_meas = 10 if quick else (20 if i < 3 else 5)
        rows.append(_one(s, n_meas))
        if i >= COMPARE_FROM:
            other.append(_one(s, n_meas, "multigrid" if rows[-1]["preconditioner"] == "cholesky" else "cholesky"))
    t = np.log([r["tets"] for r in rows])
    c = np.log([r["median_cpu_ms"] for r in rows])
    w = np.log([r["median_ms"] for r in rows])
    k = min(3, len(rows))
    return {"rows": rows, "other_preconditioner_rows": other, "exponent_cpu": float(np.polyfit(t, c, 1)[0]),
            "exponent_wall": float(np.polyfit(t, w, 1)[0]),
            "exponent_wall_to_100k": float(np.polyfit(t[:k], w[:k], 1)[0]),
            "exponent_cpu_last_two": float((c[-1] - c[-2]) / (t[-1] - t[-2])),
            "load_average_at_start": load,
            "notes": "rows: the default ('auto': a Cholesky factor up to cholesky_max_dofs, 30k free DOFs, the"
                     " two-grid cycle of organsim.fem.multigrid above: the blocks from 100k tets on), 20 timed steps"
                     " (5 at 441k and 1M); other_preconditioner_rows: the same block with the other of the two, in"
                     " the same run; setup_s includes the factorization; CPU time sums the"
                     " threads (both cores when the kernels run in parallel), so the exponent is fitted on"
                     " wall time too; rss growth is only meaningful for sizes larger than any before in the"
                     " same process; peak traced memory counts numpy's allocations, the Cholesky factors"
                     " and their workspaces included (organsim's own, numpy arrays)."}
