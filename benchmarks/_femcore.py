"""Shared helpers of the finite-element core benchmarks (step-beam-*, step-liver-10k,
organ-dyn, scale): problem set-up, timed stepping and summaries.

Each step is timed twice: wall clock (``time.perf_counter``) and the CPU time of
this process (``time.process_time``). The solver path is single-threaded, so on a
shared, loaded machine the CPU time is the better estimate of what the step costs
on an idle core; both are recorded, with the load average at the start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from organsim.fem.body import Body
from organsim.fem.simulation import Simulation
from organsim.mesh.tetmesh import TetMesh

# ../shared/data/bench beside the checkout; ORGANSIM_BENCH_DIR overrides it (a worktree elsewhere)
BENCH_DATA = Path(os.environ.get("ORGANSIM_BENCH_DIR",
                                 Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bench"))


def load_organ(name: str) -> tuple[TetMesh, np.ndarray, int]:
    """Peer benchmark mesh ``organ_10k``/``organ_100k``: (mesh, fixed node ids, probe node id)."""
    d = np.load(BENCH_DATA / f"{name}.npz")
    return TetMesh(d["X"], d["T"]), np.asarray(d["fixed"], dtype=np.int64), int(np.asarray(d["probe"]).ravel()[0])


def make_sim(mesh, material, *, density=1000.0, fixed, dt, **kw) -> Simulation:
    sim = Simulation(Body(mesh, material, density=density), dt=dt, **kw)
    sim.fix(fixed, name="fixed")
    return sim


def timed_steps(sim: Simulation, n_warm: int, n_meas: int, *, on_step=None) -> dict:
    """Run ``n_warm`` untimed and ``n_meas`` timed steps; return per-step stats."""
    for _ in range(n_warm):
        sim.step()
        if on_step:
            on_step(sim)
    wall, cpu, infos = [], [], []
    for _ in range(n_meas):
        w0, c0 = time.perf_counter(), time.process_time()
        info = sim.step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        infos.append(info)
        if on_step:
            on_step(sim)
    return summarize(wall, cpu, infos)


def summarize(wall, cpu, infos) -> dict:
    w = np.asarray(wall) * 1e3
    c = np.asarray(cpu) * 1e3
    return {
        "median_ms": float(np.median(w)),
        "p90_ms": float(np.percentile(w, 90)),
        "median_cpu_ms": float(np.median(c)),
        "steps": len(infos),
        "newton_per_step": float(np.mean([i.newton_iterations for i in infos])),
        "cg_per_step": float(np.mean([i.linear_iterations for i in infos])),
        "max_residual": float(max(i.residual for i in infos)),
        "converged_fraction": float(np.mean([i.converged for i in infos])),
        "substeps_max": int(max(i.substeps for i in infos)),
    }


def load_average() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:  # pragma: no cover
        return float("nan")


def warm_up_kernels() -> None:
    """Compile (or load from cache) the numba kernels outside any timed region."""
    from organsim.fem.materials import Corotational, NeoHookean
    from organsim.mesh.generators import box_tet_mesh
    mesh = box_tet_mesh((3, 2, 2), 0.01)
    for mat in (Corotational(1e4, 0.3), NeoHookean(1e4, 0.3)):
        for integ in ("realtime", "backward_euler"):
            sim = make_sim(mesh, mat, fixed=np.flatnonzero(mesh.points[:, 0] == 0), dt=0.01, integrator=integ)
            sim.step()
