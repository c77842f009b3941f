"""peers: organsim against a peer simulator installable from PyPI, measured in the same run.

Peer: MuJoCo (``pip install mujoco``; NOT a project dependency: this benchmark is
skipped with a note where it is absent). Its volumetric flex (``flexcomp
type="direct" dim="3"`` with ``<elasticity young poisson>``, a linear-FEM / StVK-like
model) is integrated with ``integrator="discrete"`` (MuJoCo 4 no longer integrates
flex elasticity implicitly under ``implicit``/``implicitfast``), pinned vertices
held, the lumped masses ``rho V / 4`` per vertex set on the vertex bodies, no
contacts.

Problems (../shared/BENCHMARKS.md):

* ``organ-dyn``: ``../shared/data/bench/organ_10k.npz``; E = 100 kPa, nu = 0.45,
  1000 kg/m^3, gravity -z, h = 1/60 s, from rest; ms per step (median after 5
  warm-up steps) and the probe's |u| at t = 1 s (converged answer 49-51 mm; a
  linear static solve gives 51.1 mm).
* ``step-beam-19k``: ``box_tet_mesh((40, 10, 10), 0.01)``, E = 500 kPa, nu = 0.45,
  1000 kg/m^3, x = 0 end fixed, gravity -z, dt = 0.01 s; ms per step and the tip
  sag after 0.5 s.

organsim runs neo-Hookean (organ-dyn) and corotational (beam) twice: with
backward Euler to a tight Newton tolerance (the converged reference) and in its
real-time mode (one linearly implicit Newton step per frame, preconditioned CG
to 1e-2). Accuracy of every run, organsim's and the peer's, is its probe/tip
displacement at the end time relative to that converged reference. The machine is shared (2 cores) and its
speed drifts within seconds, so the ratio is measured in *lockstep*: organsim's real-time step and MuJoCo's
step in turns, each timed on its own (5 trials, median ratio), quiet and with another process spinning on
one of the two cores (busy). Each is also run alone, one after the other, as before.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks._femcore import BENCH_DATA as BENCH_DIR  # ORGANSIM_BENCH_DIR overrides it

ID = "peers"


def _organ(quick):
    d = np.load(BENCH_DIR / "organ_10k.npz")
    return d["X"], d["T"], d["fixed"], int(d["probe"])


def _beam(quick):
    from organsim.mesh.generators import box_tet_mesh

    m = box_tet_mesh((20, 5, 5) if quick else (40, 10, 10), 0.01)
    fixed = np.flatnonzero(m.points[:, 0] == 0)
    tip = int(np.argmax(m.points[:, 0] + 1e-3 * m.points[:, 2]))
    return m.points, m.tets, fixed, tip


def make_organsim(X, T, fixed, *, E, nu, rho, h, material, integrator="backward_euler"):
    """An organsim simulation of the problem, ready to step."""
    from organsim.fem.body import Body
    from organsim.fem.materials import Corotational, NeoHookean
    from organsim.fem.simulation import Simulation
    from organsim.mesh.tetmesh import TetMesh

    mesh = TetMesh(X, T)
    mat = NeoHookean(E, nu) if material == "neo_hookean" else Corotational(E, nu)
    sim = Simulation(Body(mesh, mat, density=rho), gravity=(0, 0, -9.81), dt=h,
                     integrator=integrator)
    sim.fix(fixed, name="clamp")
    return sim


def run_organsim(X, T, fixed, probe, *, n_steps, **problem):
    """Step organsim ``n_steps`` times alone: (wall time of each step in s, probe |u| in m)."""
    sim = make_organsim(X, T, fixed, **problem)
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        sim.step()
        times.append(time.perf_counter() - t0)
    return times, float(np.linalg.norm(sim.displacements[probe]))


def make_mujoco(X, T, fixed, probe, *, E, nu, rho, h):
    """MuJoCo's model of the problem: (step function, probe |u| function in m, version)."""
    import mujoco

    from organsim.fem.loads import lumped_mass

    pts = " ".join(f"{v:.9g}" for v in X.ravel())
    els = " ".join(str(int(v)) for v in T.ravel())
    pins = " ".join(str(int(v)) for v in fixed)
    xml = f"""<mujoco>
  <option timestep="{h:.9g}" gravity="0 0 -9.81" integrator="discrete"/>
  <worldbody>
    <flexcomp name="organ" type="direct" dim="3" radius="0.0005" mass="1" point="{pts}" element="{els}">
      <contact selfcollide="none" contype="0" conaffinity="0"/>
      <edge equality="false"/>
      <elasticity young="{E:.9g}" poisson="{nu:.9g}" damping="0"/>
      <pin id="{pins}"/>
    </flexcomp>
  </worldbody>
</mujoco>"""
    m = mujoco.MjModel.from_xml_string(xml)
    d = mujoco.MjData(m)
    masses = lumped_mass(X, T, rho)
    vb = np.asarray(m.flex_vertbodyid)
    free = vb > 0
    m.body_mass[vb[free]] = masses[free]
    mujoco.mj_setConst(m, d)
    x0 = np.array(d.flexvert_xpos[probe])
    return (lambda: mujoco.mj_step(m, d),
            lambda: float(np.linalg.norm(np.asarray(d.flexvert_xpos[probe]) - x0)), mujoco.__version__)


def run_lockstep(X, T, fixed, probe, *, n_steps, material, **problem):
    """organsim's real-time mode and MuJoCo stepped in turns, each step timed on its own.

    A shared machine's speed drifts within seconds (1.6x within the hour here); stepping
    the two in turns (which goes first alternates) puts both under the same load, so
    their ratio is not a measure of the drift. Returns the step times of each (s) and
    their probe displacements |u| (m).
    """
    sim = make_organsim(X, T, fixed, material=material, integrator="realtime", **problem)
    step_m, probe_m, _ = make_mujoco(X, T, fixed, probe, **problem)
    t_o, t_m = [], []
    for k in range(n_steps):
        for which in ((0, 1) if k % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            sim.step() if which == 0 else step_m()
            (t_o if which == 0 else t_m).append(time.perf_counter() - t0)
    return t_o, t_m, float(np.linalg.norm(sim.displacements[probe])), probe_m()


class _BusyCore:
    """One other process spinning on a core while the block runs (a user's laptop is rarely idle)."""

    def __enter__(self):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def _lockstep_ratios(X, T, fixed, probe, trials, par, n_steps, material):
    """Median of each trial's organsim/MuJoCo median step ratio, and the trials' medians (ms)."""
    ratios, t_org, t_peer = [], [], []
    for _ in range(trials):
        t_o, t_m, u_o, u_m = run_lockstep(X, T, fixed, probe, n_steps=n_steps, material=material, **par)
        t_org.append(1e3 * statistics.median(t_o[5:] or t_o))
        t_peer.append(1e3 * statistics.median(t_m[5:] or t_m))
        ratios.append(t_org[-1] / t_peer[-1])
    return ratios, t_org, t_peer, u_o, u_m


def run(quick: bool = False) -> dict:
    rows = []
    notes = []
    problems = [
        ("organ-dyn (organ_10k)", _organ, dict(E=100e3, nu=0.45, rho=1000.0, h=1 / 60), 60,
         "neo_hookean"),
        ("step-beam-19k", _beam, dict(E=500e3, nu=0.45, rho=1000.0, h=0.01), 50, "corotational"),
    ]
    try:
        import mujoco  # noqa: F401
        have_mujoco = True
    except ImportError:
        have_mujoco = False
        notes.append("mujoco is not installed (pip install mujoco): peer column empty")
    trials = 1 if quick else 5
    for name, make, par, n_steps, material in problems:
        if quick:
            n_steps = 8
        X, T, fixed, probe = make(quick)
        t_ref, u_ref = run_organsim(X, T, fixed, probe, n_steps=n_steps, material=material, **par)
        t_rt, u_rt = run_organsim(X, T, fixed, probe, n_steps=n_steps, material=material,
                                  integrator="realtime", **par)
        row = {"problem": name, "tets": len(T), "steps": n_steps,
               "end_time_s": n_steps * par["h"], "organsim_model": material,
               "reference_probe_mm": 1e3 * u_ref,
               "organsim_backward_euler_ms": 1e3 * statistics.median(t_ref[5:] or t_ref),
               "organsim_realtime_alone_ms": 1e3 * statistics.median(t_rt[5:] or t_rt),
               "organsim_realtime_probe_mm": 1e3 * u_rt,
               "organsim_realtime_err_pct": 100 * abs(u_rt - u_ref) / max(abs(u_ref), 1e-30)}
        if have_mujoco:
            try:
                step_m, probe_m, ver = make_mujoco(X, T, fixed, probe, **par)
                t_m = []
                for _ in range(n_steps):
                    t0 = time.perf_counter()
                    step_m()
                    t_m.append(time.perf_counter() - t0)
                u_m = probe_m()
                row.update({"peer": f"mujoco {ver} flex (discrete integrator)",
                            "peer_alone_ms": 1e3 * statistics.median(t_m[5:] or t_m),
                            "peer_probe_mm": 1e3 * u_m,
                            "peer_err_pct": 100 * abs(u_m - u_ref) / max(abs(u_ref), 1e-30)})
                row["ratio_realtime_over_peer_alone"] = row["organsim_realtime_alone_ms"] / row["peer_alone_ms"]
                row["ratio_backward_euler_over_peer"] = (row["organsim_backward_euler_ms"]
                                                         / row["peer_alone_ms"])
                for label, load in (("quiet", None), ("busy", _BusyCore)):
                    if load is None:
                        ratios, t_o, t_p, u_lo, u_lm = _lockstep_ratios(X, T, fixed, probe, trials, par, n_steps,
                                                                        material)
                    else:
                        with load():
                            ratios, t_o, t_p, u_lo, u_lm = _lockstep_ratios(X, T, fixed, probe, trials, par,
                                                                            n_steps, material)
                    row.update({f"lockstep_{label}_organsim_ms": t_o, f"lockstep_{label}_peer_ms": t_p,
                                f"lockstep_{label}_ratios": ratios,
                                f"lockstep_{label}_ratio": statistics.median(ratios),
                                f"lockstep_{label}_speedup": 1.0 / statistics.median(ratios)})
                    if abs(u_lo - u_rt) > 1e-9 * max(abs(u_rt), 1e-30) + 1e-12:
                        row[f"lockstep_{label}_note"] = "organsim's lockstep run moved differently from its solo run"
                row["ratio_realtime_over_peer"] = row["lockstep_quiet_ratio"]
            except Exception as exc:  # a peer that cannot run is reported, not hidden
                row["peer"] = f"mujoco failed: {type(exc).__name__}: {exc}"[:300]
        rows.append(row)
    return {"rows": rows,
            "notes": notes or ["medians after 5 warm-up steps; shared 2-core machine. lockstep: organsim's"
                               " real-time step and MuJoCo's stepped in turns (which goes first alternates),"
                               f" {trials} trials, median of the trials' ratios; busy: the same with another"
                               " process spinning on one of the two cores. alone: each run by itself,"
                               " one after the other (the drift between them is in that ratio)"],
            "sfepy_pbatoolkit": "not run (time); the bench README lists their numbers on this machine"}
