"""stiffness-forms: the real-time step with matrix-free, assembled and "auto" stiffness products.

``Simulation(matrix_free=True | False | "auto")`` (see :mod:`organsim.fem.stiffness_form`): the
three simulations of one problem are stepped in turns (the order alternates), each step timed on
its own, so that the shared machine's drift hits all three alike; median step time of each after
the first 10 steps (the "auto" one's trials), per trial, and the form "auto" ran on each step.

Problems: the 10k organ of ``peers`` (neo-Hookean, swinging from rest: about 4.7 CG iterations a
step), the 19k beam of ``step-beam-19k`` (corotational, 1.8 a step) and the patient liver of
``step-patient-liver`` (corotational, about 1 a step; skipped where the organ data is absent).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

ID = "stiffness-forms"
MODES = (True, False, "auto")


def _lockstep(make, n_steps: int, trials: int) -> dict:
    med = {m: [] for m in MODES}
    forms = []
    for _ in range(trials):
        sims = {}
        for mode in MODES:
            sims[mode] = make()
            sims[mode].matrix_free = mode
        times = {m: [] for m in MODES}
        ran = []
        for k in range(n_steps):
            for mode in (MODES if k % 2 == 0 else MODES[::-1]):
                t0 = time.perf_counter()
                sims[mode].step()
                times[mode].append(time.perf_counter() - t0)
            ran.append("m" if sims["auto"].stiffness_form == "matrix-free" else "a")
        for mode in MODES:
            med[mode].append(1e3 * statistics.median(times[mode][10:]))
        forms.append("".join(ran))
        u = [sims[m].displacements for m in MODES]
    spread = max(float(np.linalg.norm(v - u[0]) / max(np.linalg.norm(u[0]), 1e-30)) for v in u[1:])
    return {"matrix_free_ms": med[True], "assembled_ms": med[False], "auto_ms": med["auto"],
            "matrix_free_median_ms": statistics.median(med[True]),
            "assembled_median_ms": statistics.median(med[False]),
            "auto_median_ms": statistics.median(med["auto"]),
            "auto_forms": forms, "max_rel_difference": spread}


def run(quick: bool = False) -> dict:
    from benchmarks.bench_peers import _beam, _organ, make_organsim
    from benchmarks.bench_step_patient_liver import REALTIME, make, patient_liver

    trials = 1 if quick else 3
    rows = []
    X, T, fixed, _ = _organ(quick)
    organ = dict(E=100e3, nu=0.45, rho=1000.0, h=1 / 60, material="neo_hookean")
    rows.append({"problem": "organ_10k neo-Hookean (peers)", "tets": len(T),
                 **_lockstep(lambda: make_organsim(X, T, fixed, integrator="realtime", **organ),
                             20 if quick else 60, trials)})
    Xb, Tb, fixed_b, _ = _beam(quick)
    beam = dict(E=500e3, nu=0.45, rho=1000.0, h=0.01, material="corotational")
    rows.append({"problem": "beam-19k corotational (peers)", "tets": len(Tb),
                 **_lockstep(lambda: make_organsim(Xb, Tb, fixed_b, integrator="realtime", **beam),
                             20 if quick else 50, trials)})
    notes = ["three simulations per problem stepped in turns; medians after the first 10 steps;"
             " auto_forms: m matrix-free, a assembled, per step; shared 2-core machine"]
    got = None if quick else patient_liver()
    if got is not None:
        mesh, fixed_l, _ = got
        rows.append({"problem": "patient liver corotational (step-patient-liver)", "tets": mesh.n_tets,
                     **_lockstep(lambda: make(mesh, fixed_l, "corotational", **REALTIME), 40, 2)})
    elif not quick:
        notes.append("patient liver: the organ data is absent, skipped")
    return {"rows": rows, "notes": notes}
