"""How large a mesh this machine steps in real time: a measured calibration, cached per machine.

One job: time organsim's real-time step here and say what it means for a mesh.
:func:`calibrate` times the realtime corotational step (the configuration of the
``step-patient-liver`` benchmark: E = 100 kPa, nu = 0.45, 1060 kg/m^3, gravity,
dt = 1/60 s, PCG rtol 1e-2, <= 20 iterations) on one organ-sized block (25 x 11 x 8 cm,
held along its base) meshed at two edge lengths (13k and 48k tets), fits
``ms = a * tets**b`` through the two medians, and caches the result in
:func:`organsim.kernel_cache_dir` (keyed by organsim's version, the CPU count, the
numba thread count, the solver and the blocks). :func:`realtime_estimate` turns that fit into the predicted
step time of a mesh, the largest mesh this machine runs at 60 and 30 Hz, and the
edge length that would give it. The numbers are a prediction from the measured fit
(stated as such), not a measurement on the mesh itself: timing the mesh's own first
step would cost its factorization (seconds) every time ``organsim mesh`` runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

__all__ = ["calibrate", "realtime_estimate", "format_estimate", "RATES_HZ"]

#: Frame rates the estimate reports (Hz).
RATES_HZ = (60.0, 30.0)
#: (nodes per axis, spacing m) of the two calibration meshes: the same 25 x 11 x 8 cm block.
_SHAPES = (((26, 12, 9), 0.01), ((40, 18, 13), 0.25 / 39))
_FILE = "realtime_calibration.json"
#: The step's solver, in the cache key (with the blocks): a calibration timed otherwise is timed again
#: (the supernodal Cholesky made the same steps about 1.5x faster than cholespy's; the scalar element
#: kernels, the two-half schedule and single-precision factors another 1.5x on the patient liver).
_SOLVER = ("supernodal cholesky, single-precision realtime factors, scalar element kernels,"
           " stiffness form by measured cost")


def _key() -> str:
    from .. import __version__
    from .parallel import threads
    blocks = ", ".join(f"{int(np.prod(np.subtract(shape, 1))) * 6} tets" for shape, _ in _SHAPES)
    return (f"organsim {__version__}; {os.cpu_count()} cpus; {threads()} numba threads; {_SOLVER};"
            f" blocks of {blocks}")


def _cache_path() -> Path | None:
    """The cache file: beside the compiled kernels when organsim chose their folder, else in the user's cache."""
    from .. import kernel_cache_dir
    d = kernel_cache_dir()
    base = Path(d) if d else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "organsim"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return base / _FILE


def _time_block(shape, spacing: float, n_warm: int, n_meas: int) -> tuple[int, float]:
    from ..mesh.generators import box_tet_mesh
    from .body import Body
    from .materials import Corotational
    from .simulation import Simulation

    mesh = box_tet_mesh(shape, spacing)
    sim = Simulation(Body(mesh, Corotational(1e5, 0.45), density=1060.0), dt=1 / 60, integrator="realtime",
                     realtime_cg=20, realtime_rtol=1e-2)
    # held along its base, as an organ at its ligaments. With the supernodal Cholesky, blocks of
    # 3k and 13k tets held along a side face predicted 48 ms for the 41k-tet patient liver, whose
    # step measured 27 ms (small meshes carry the step's fixed costs; a side-held block needs 2 CG
    # iterations a step, the liver 1); this block at 13k and 48k tets predicts 25 ms
    sim.fix(np.flatnonzero(mesh.points[:, 2] == 0.0), name="base")
    for _ in range(n_warm):
        sim.step()
    ts = []
    for _ in range(n_meas):
        t0 = time.perf_counter()
        sim.step()
        ts.append(time.perf_counter() - t0)
    return mesh.n_tets, 1e3 * float(np.median(ts))


def calibrate(*, force: bool = False, cache: bool = True, n_meas: int = 8) -> dict:
    """The measured step-time fit of this machine, from the cache or timed now (about 2 s).

    Parameters
    ----------
    force : bool
        Time it again even if a cached calibration exists.
    cache : bool
        Read and write the cache file (``realtime_calibration.json`` in
        :func:`organsim.kernel_cache_dir`).
    n_meas : int
        Timed steps per block (after 3 untimed ones).

    Returns
    -------
    dict
        ``tets`` (2,), ``median_ms`` (2,) measured; ``a``, ``b`` of ``ms = a tets**b``;
        ``date``, ``load_average`` (1 min, at the calibration), ``key``, ``cached`` (bool: read
        from the cache), ``busy`` (bool: the load average exceeded 3/4 of the CPUs: other
        work shared the cores, and the times are longer than on an idle machine).
    """
    path = _cache_path() if cache else None
    key = _key()
    if path is not None and path.exists() and not force:
        try:
            got = json.loads(path.read_text())
            if got.get("key") == key:
                return {**got, "cached": True}
        except (OSError, ValueError):
            pass  # an unreadable cache: calibrate again below
    try:
        load = float(os.getloadavg()[0])
    except OSError:  # pragma: no cover - no load average on this platform
        load = float("nan")
    from .stiffness_form import StiffnessFormChooser

    # warm-up: the compiled kernels, then the trials of both stiffness forms (Simulation(matrix_free="auto"))
    n_warm = 3 + StiffnessFormChooser().steps_to_decide
    pts = [_time_block(shape, spacing, n_warm, n_meas) for shape, spacing in _SHAPES]
    (n0, t0), (n1, t1) = pts
    b = float(np.log(t1 / t0) / np.log(n1 / n0))
    b = max(b, 1.0)   # the cost never grows slower than the mesh (noise can make the slope smaller)
    a = float(t1 / n1 ** b)
    out = {"tets": [n0, n1], "median_ms": [t0, t1], "a": a, "b": b, "key": key, "load_average": load,
           "date": time.strftime("%Y-%m-%d %H:%M", time.localtime()), "cached": False}
    out["busy"] = bool(np.isfinite(load) and load > 0.75 * (os.cpu_count() or 1))
    if path is not None:
        try:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps({k: v for k, v in out.items() if k != "cached"}))
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache folder: the calibration is simply not kept
    return out


def realtime_estimate(n_tets: int, edge_length_m: float | None, calib: dict) -> dict:
    """What the calibration ``calib`` predicts for a mesh of ``n_tets`` tets and mean edge ``edge_length_m`` (m).

    Returns
    -------
    dict
        ``predicted_ms`` (one realtime corotational step of this mesh) and per rate in
        :data:`RATES_HZ` (keys ``"60"``, ``"30"``): ``budget_ms``, ``runs`` (bool),
        ``max_tets`` (the largest mesh the fit allows within the budget) and
        ``edge_mm`` (the edge length giving about that many tets on the same organ:
        tets scale as ``edge**-3``; None without ``edge_length_m``).
    """
    a, b = float(calib["a"]), float(calib["b"])
    pred = a * float(n_tets) ** b
    keys = ("tets", "median_ms", "a", "b", "date", "load_average", "cached", "busy")
    out = {"tets": int(n_tets), "predicted_ms": pred, "calibration": {k: calib.get(k) for k in keys}}
    for hz in RATES_HZ:
        budget = 1e3 / hz
        max_tets = int((budget / a) ** (1.0 / b))
        edge = None
        if edge_length_m is not None and max_tets > 0:
            edge = 1e3 * edge_length_m * (n_tets / max_tets) ** (1.0 / 3.0)
        out[f"{hz:g}"] = {"budget_ms": budget, "runs": bool(pred <= budget), "max_tets": max_tets, "edge_mm": edge}
    return out


def format_estimate(est: dict) -> str:
    """One line for ``organsim mesh``: the prediction, whether it runs at 60/30 Hz, and the edge that would."""
    c = est["calibration"]
    parts = []
    for hz in RATES_HZ:
        r = est[f"{hz:g}"]
        s = f"{hz:g} Hz {'yes' if r['runs'] else 'no'} (up to ~{r['max_tets']:,} tets"
        if r["edge_mm"] is not None:
            s += f", edge >= {r['edge_mm']:.3g} mm" if not r["runs"] else f", edge {r['edge_mm']:.3g} mm"
        parts.append(s + ")")
    (n0, n1), (t0, t1) = c["tets"], c["median_ms"]
    return (f"real time on this machine: ~{est['predicted_ms']:.0f} ms per corotational step predicted for"
            f" {est['tets']:,} tets; {'; '.join(parts)}. Predicted from a calibration measured here"
            f" ({t0:.1f} ms at {n0:,} tets, {t1:.1f} ms at {n1:,}, load {c['load_average']:.1f},"
            f" {c['date']}{', cached' if c['cached'] else ''}{', machine busy then' if c.get('busy') else ''};"
            f" organsim mesh --recalibrate times it again)")
