"""preconditioners: the realtime step's preconditioner candidates side by side, in one run.

Problems: the patient liver of step-patient-liver (41k tets, corotational; skipped where
``../shared/data/organs`` is absent) and the 101k-tet beam of step-beam-101k
(corotational, dt = 0.04 s). Candidates (each where its package is installed):

- ``cholesky``: the reference matrix ``M/h^2 + K_rest`` factored once by organsim's
  supernodal Cholesky (:mod:`organsim.fem.supernodal`: METIS nested dissection of the node
  graph, multifrontal, LAPACK dense kernels), rotated per step. Beside it, on the same
  matrix, the same factor kept in single precision (build and apply only) and, where
  cholespy is installed (no longer a dependency), CHOLMOD's simplicial factorization
  through cholespy, the default before (build and apply only);
- ``multigrid``: organsim's two-grid cycle (:mod:`organsim.fem.multigrid`: a lattice of 2.5 times the
  median edge laid over the mesh, trilinear interpolation, Galerkin coarse matrix factored,
  Chebyshev smoothing), rotated per step like the factor;
- ``amg``: pyamg smoothed aggregation, rigid-body modes as near-null space, one V-cycle;
- ``jacobi``: 3x3 block Jacobi (the floor).

Per candidate: build time of the preconditioner on the reference matrix, time of one
application (median of 10), a fresh simulation's first step (pattern + build + step),
then the median step and CG iterations per step over the timed steps, and the field
after them against the ``cholesky`` run's (same steps, same rtol 1e-2, <= 20 CG).
The candidates run one after another in this process: compare them as ratios.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from benchmarks._femcore import load_average, make_sim, timed_steps, warm_up_kernels
from organsim.fem.materials import Corotational
from organsim.fem.solvers import make_preconditioner
from organsim.fem.supernodal import SupernodalCholesky
from organsim.mesh.generators import box_tet_mesh

ID = "preconditioners"
CANDIDATES = {"cholesky": None, "multigrid": None, "amg": "pyamg", "jacobi": None}


def _problems(quick):
    from benchmarks.bench_step_patient_liver import patient_liver
    out = []
    got = None if quick else patient_liver()
    if got is not None:
        mesh, fixed, _ = got
        out.append(("patient liver", mesh, fixed, Corotational(1e5, 0.45), 1060.0, 1 / 60))
    shape = (16, 5, 5) if quick else (76, 16, 16)
    mesh = box_tet_mesh(shape, 0.01)
    out.append((f"beam {mesh.n_tets // 1000}k", mesh, np.flatnonzero(mesh.points[:, 0] == 0),
                Corotational(5e5, 0.45), 1000.0, 0.04))
    return out


def _apply_ms(prec, n):
    b = np.random.default_rng(0).standard_normal(n)
    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        prec(b)
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def _cholesky_alternatives(sub, data) -> dict:
    """Build and apply times of the single-precision factor and of cholespy on the same matrix."""
    out = {}
    t0 = time.perf_counter()
    f32 = SupernodalCholesky(sub.indptr, sub.indices, data, single=True)
    out["single_build_s"] = time.perf_counter() - t0
    out["single_apply_ms"] = _apply_ms(f32, 3 * sub.n)
    del f32
    if importlib.util.find_spec("cholespy") is not None:
        import cholespy
        r, c, v = sub.lower_coo(data)
        t0 = time.perf_counter()
        ch = cholespy.CholeskySolverD(3 * sub.n, r, c, v, cholespy.MatrixType.COO)
        out["cholespy_build_s"] = time.perf_counter() - t0
        b = np.random.default_rng(0).standard_normal(3 * sub.n)
        x = np.empty_like(b)
        ts = []
        for _ in range(10):
            t0 = time.perf_counter()
            ch.solve(b, x)
            ts.append(time.perf_counter() - t0)
        out["cholespy_apply_ms"] = 1e3 * float(np.median(ts))
    return out


def run(quick: bool = False) -> dict:
    warm_up_kernels()
    load = load_average()
    n_warm, n_meas = (2, 5) if quick else (5, 30)
    rows = []
    for name, mesh, fixed, mat, rho, dt in _problems(quick):
        u_chol = None
        for kind, package in CANDIDATES.items():
            if package is not None and importlib.util.find_spec(package) is None:
                rows.append({"problem": name, "preconditioner": kind, "skipped": f"{package} is not installed"})
                continue
            kw = dict(density=rho, fixed=fixed, dt=dt, integrator="realtime", realtime_cg=20, realtime_rtol=1e-2,
                      preconditioner=kind)
            sim = make_sim(mesh, mat, **kw)
            t0 = time.perf_counter()
            sim.step()
            first_s = time.perf_counter() - t0
            # the build alone, on the same reference matrix
            _, _, free = sim._constraint_state()
            data = sim._sub.gather(sim._rest_K(), 1.0, sim._Mb, 1.0 / dt ** 2)
            t0 = time.perf_counter()
            prec = make_preconditioner(kind, sim._sub, data, mesh.points[free])
            build_s = time.perf_counter() - t0
            apply_ms = _apply_ms(prec, 3 * len(free))
            extra = {}
            if kind == "multigrid":
                extra["coarse_nodes"] = prec.coarse_nodes
                extra["coarse_factor_nnz"] = prec.coarse.nnz
            if kind == "cholesky":
                extra["factor_nnz"] = prec._chol.nnz
                extra["supernodes"] = prec._chol.supernodes
                extra.update(_cholesky_alternatives(sim._sub, data))
            del prec
            stats = timed_steps(sim, n_warm - 1, n_meas)
            u = sim.displacements
            if kind == "cholesky":
                u_chol = u
            rows.append({"problem": name, "tets": mesh.n_tets, "dofs": 3 * len(free), "preconditioner": kind,
                         "build_s": build_s, "apply_ms": apply_ms, "first_step_s": first_s,
                         "median_ms": stats["median_ms"], "p90_ms": stats["p90_ms"],
                         "median_cpu_ms": stats["median_cpu_ms"], "cg_per_step": stats["cg_per_step"],
                         "converged_fraction": stats["converged_fraction"],
                         "field_rel_diff_vs_cholesky": (float(np.linalg.norm(u - u_chol) / np.linalg.norm(u_chol))
                                                        if u_chol is not None else None), **extra})
    return {"rows": rows, "load_average_at_start": load, "steps": n_meas,
            "notes": "candidates run one after another in one process (compare as ratios); build_s: the"
                     " preconditioner alone on the reference matrix; first_step_s: a fresh simulation's first"
                     " step (pattern, build, step); factor_nnz: stored doubles of the Cholesky factor; single_*: the"
                     " same factor kept in float32; cholespy_*: CHOLMOD simplicial via cholespy where"
                     " installed; shared 2-core machine (see load average)."}
