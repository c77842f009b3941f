"""Training and planning metrics, and the composite score.

Validated virtual-reality trainers (LapSim, VBLaST, the FLS box trainer)
score an attempt by time, errors and economy of motion. organsim adds what
they cannot measure: the forces applied and the stress and damage caused in
the tissue. Every metric here is a plain function of recorded trajectories
(arrays), so it can be tested on synthetic data with known answers; the
:class:`MetricsRecorder` collects those trajectories while a procedure runs.

Units: inputs in SI (m, s, N, Pa, m^3); reported lengths in mm and volumes in
mL where the key says so.

The composite score
-------------------
A score from 0 to 100 is a weighted mean of up to six sub-scores in [0, 1]
(:data:`SCORE_WEIGHTS`); sub-scores whose metric does not apply (no cut in
the procedure, say) are left out and the weights of the rest renormalised.

========== ====== ==========================================================
part       weight sub-score
========== ====== ==========================================================
time       0.20   1 at or below the target time, falling linearly to 0 at
                  three times the target (FLS pattern cutting also subtracts
                  the time taken from a cut-off)
accuracy   0.35   1 - mean cut deviation / (3 x tolerance), minus the
                  fraction of the cut length outside the tolerance band
                  (FLS penalises the area cut outside the marked lines);
                  with a planned cut, time, accuracy and economy are each
                  multiplied by the fraction of the plan that was cut
force      0.20   1 - fraction of the time above the safe force, times
                  safe / peak force when the peak exceeds it
damage     0.15   1 - volume above the damage stress / 1 % of the organ
economy    0.10   planned instrument path / actual path (LapSim's economy
                  of motion: path length and number of movements)
task       0.35   an exposure (retraction) task: how far the target was
                  lifted / how far it had to be, at most 1
========== ====== ==========================================================

Proficiency: a score of at least :data:`PROFICIENCY_SCORE` (75) with no
sub-score under :data:`PROFICIENCY_FLOOR` (0.5), on
:data:`PROFICIENCY_CONSECUTIVE` (2) consecutive attempts, in the spirit of
proficiency-based curricula (FLS, LapSim) that require expert-level
performance on consecutive repetitions.

These weights and thresholds are **organsim's own defaults**, chosen so that
accuracy dominates a cutting exercise as in FLS pattern cutting and unsafe
force and tissue damage cost as much as slowness; they have not been
validated against expert and novice cohorts. Set your own with
``composite_score(..., weights=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SCORE_WEIGHTS", "PROFICIENCY_SCORE", "PROFICIENCY_FLOOR", "PROFICIENCY_CONSECUTIVE",
    "path_length", "count_movements", "time_above", "force_summary", "damaged_volume",
    "resample_polyline", "point_to_polyline_distance", "cut_deviation", "composite_score",
    "MetricsRecorder",
]

SCORE_WEIGHTS: dict[str, float] = {"time": 0.20, "accuracy": 0.35, "force": 0.20,
                                   "damage": 0.15, "economy": 0.10, "task": 0.35}
PROFICIENCY_SCORE = 75.0
PROFICIENCY_FLOOR = 0.5
PROFICIENCY_CONSECUTIVE = 2


# ---------------------------------------------------------------- motion
def path_length(positions: np.ndarray) -> float:
    """Length (m) of a trajectory.

    Parameters
    ----------
    positions : ndarray, shape (k, 3)
        Instrument tip positions (m) over time.

    Examples
    --------
    >>> path_length(np.array([[0, 0, 0], [3, 4, 0], [3, 4, 1.0]]))
    6.0
    """
    p = np.asarray(positions, dtype=float)
    if len(p) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


def count_movements(positions: np.ndarray, times: np.ndarray, *, speed_threshold: float = 0.005,
                    min_pause_s: float = 0.1) -> int:
    """Number of distinct movements: runs of speed above a threshold separated by pauses.

    Parameters
    ----------
    positions : ndarray, shape (k, 3)
        Tip positions (m).
    times : ndarray, shape (k,)
        Times (s), increasing.
    speed_threshold : float
        Speed (m/s) above which the instrument counts as moving (5 mm/s).
    min_pause_s : float
        A stop shorter than this does not split a movement.

    Examples
    --------
    >>> t = np.arange(0, 3.01, 0.1)
    >>> x = np.where(t < 1, t, np.where(t < 2, 1.0, t - 1.0)) * 0.01   # move, stop 1 s, move
    >>> count_movements(np.c_[x, 0 * x, 0 * x], t)
    2
    """
    p = np.asarray(positions, dtype=float)
    t = np.asarray(times, dtype=float)
    if len(p) < 2:
        return 0
    dt = np.diff(t)
    speed = np.linalg.norm(np.diff(p, axis=0), axis=1) / np.where(dt > 0, dt, np.inf)
    moving = speed > speed_threshold
    count = 0
    pause = np.inf
    for m, d in zip(moving, dt):  # k is the number of recorded frames, not elements
        if m:
            if pause >= min_pause_s:
                count += 1
            pause = 0.0
        else:
            pause += d
    return count


# ----------------------------------------------------------------- forces
def time_above(values: np.ndarray, times: np.ndarray, threshold: float) -> float:
    """Time (s) a sampled signal spends above a threshold.

    Each sample holds until the next one (the last sample holds for zero time).

    Examples
    --------
    >>> time_above(np.array([0.0, 5.0, 5.0, 0.0]), np.array([0.0, 1.0, 2.0, 3.0]), 4.0)
    2.0
    """
    v = np.asarray(values, dtype=float)
    t = np.asarray(times, dtype=float)
    if len(v) < 2:
        return 0.0
    return float(np.diff(t)[v[:-1] > threshold].sum())


def force_summary(forces: np.ndarray, times: np.ndarray, *, safe_force_n: float) -> dict:
    """Peak, time-averaged mean and time above the safe force of an instrument force.

    Parameters
    ----------
    forces : ndarray, shape (k, 3) or (k,)
        Force vectors (N) or magnitudes.
    times : ndarray, shape (k,)
    safe_force_n : float

    Returns
    -------
    dict
        ``peak_force_n``, ``mean_force_n`` (time-weighted), ``time_above_safe_force_s``.
    """
    f = np.asarray(forces, dtype=float)
    mag = np.linalg.norm(f, axis=1) if f.ndim == 2 else np.abs(f)
    t = np.asarray(times, dtype=float)
    if len(mag) == 0:
        return {"peak_force_n": 0.0, "mean_force_n": 0.0, "time_above_safe_force_s": 0.0}
    if len(mag) > 1 and t[-1] > t[0]:
        mean = float(np.sum(mag[:-1] * np.diff(t)) / (t[-1] - t[0]))
    else:
        mean = float(mag.mean())
    return {"peak_force_n": float(mag.max()), "mean_force_n": mean,
            "time_above_safe_force_s": time_above(mag, t, safe_force_n)}


def damaged_volume(von_mises: np.ndarray, volumes: np.ndarray, threshold_pa: float) -> float:
    """Volume (m^3) of the tets whose von Mises stress exceeds ``threshold_pa``.

    Parameters
    ----------
    von_mises : ndarray, shape (m,)
        Stress per tet (Pa); for damage over a run pass the running maximum per tet.
    volumes : ndarray, shape (m,)
        Tet volumes (m^3).
    """
    vm = np.asarray(von_mises, dtype=float)
    return float(np.asarray(volumes, dtype=float)[vm > threshold_pa].sum())


# ------------------------------------------------------------------ cutting
def resample_polyline(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points along a polyline at most ``spacing`` (m) apart, ends included.

    Returns
    -------
    ndarray, shape (q, 3)
    """
    p = np.asarray(points, dtype=float)
    if len(p) < 2:
        return p.copy()
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(np.ceil(s[-1] / spacing)) + 1)
    q = np.linspace(0.0, s[-1], n)
    return np.column_stack([np.interp(q, s, p[:, c]) for c in range(3)])


def point_to_polyline_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance (m) from each point to the nearest point of a polyline.

    Parameters
    ----------
    points : ndarray, shape (k, 3)
    polyline : ndarray, shape (p, 3)
        At least one point; one point is a point, two or more are segments.

    Returns
    -------
    ndarray, shape (k,)
    """
    x = np.asarray(points, dtype=float)
    L = np.asarray(polyline, dtype=float)
    if len(L) == 1:
        return np.linalg.norm(x - L[0], axis=1)
    a, b = L[:-1], L[1:]
    ab = b - a
    denom = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("kij,ij->ki", x[:, None, :] - a[None], ab) / np.where(denom > 0, denom, 1.0)
    t = np.clip(t, 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(x[:, None, :] - closest, axis=2).min(axis=1)


def cut_deviation(actual: np.ndarray, planned: np.ndarray, *, tolerance: float = 0.002,
                  spacing: float = 5e-4) -> dict:
    """How far an executed cut strayed from the planned one.

    Parameters
    ----------
    actual : ndarray, shape (k, 3)
        The blade's path on the tissue (m).
    planned : ndarray, shape (p, 3)
        The planned cut line (m).
    tolerance : float
        Deviation (m) still counted as on the line.
    spacing : float
        Resampling step (m) of both paths.

    Returns
    -------
    dict
        ``mean_deviation_mm`` (mean distance of the cut from the plan),
        ``hausdorff_mm`` (symmetric Hausdorff distance: also catches parts of the
        plan that were never cut), ``length_outside_mm`` and
        ``fraction_outside`` (of the cut's length beyond ``tolerance``),
        ``area_outside_mm2`` (the area between the cut and the band's edge where
        the cut strays outside it: FLS pattern cutting's error measure),
        ``planned_covered_fraction`` (of the planned line's length, the part
        the cut passed within ``tolerance`` of: 1 for a complete pattern), and
        ``planned_length_mm``, ``cut_length_mm``.

    Examples
    --------
    >>> plan = np.array([[0, 0, 0], [0.05, 0, 0]])
    >>> cut = plan + [0, 0.001, 0]           # 1 mm parallel offset
    >>> round(cut_deviation(cut, plan)["mean_deviation_mm"], 6)
    1.0
    """
    a = resample_polyline(actual, spacing)
    p = resample_polyline(planned, spacing)
    if len(a) == 0 or len(p) == 0:
        return {"mean_deviation_mm": float("nan"), "hausdorff_mm": float("nan"),
                "length_outside_mm": 0.0, "fraction_outside": 0.0, "area_outside_mm2": 0.0,
                "planned_covered_fraction": 0.0,
                "planned_length_mm": path_length(planned) * 1e3, "cut_length_mm": 0.0}
    d_ap = point_to_polyline_distance(a, np.asarray(planned, float))
    d_pa = point_to_polyline_distance(p, np.asarray(actual, float))
    seg = np.linalg.norm(np.diff(a, axis=0), axis=1) if len(a) > 1 else np.zeros(0)
    # each resampled segment is "outside" when its midpoint-average deviation is
    mid_out = 0.5 * (d_ap[:-1] + d_ap[1:]) > tolerance if len(a) > 1 else np.zeros(0, bool)
    cut_len = float(seg.sum())
    out_len = float(seg[mid_out].sum())
    beyond = np.maximum(d_ap - tolerance, 0.0)
    area_out = float(np.sum(0.5 * (beyond[:-1] + beyond[1:]) * seg)) if len(a) > 1 else 0.0
    # mean along the length (trapezoid), so uneven sampling does not bias it
    mean = float(np.sum(0.5 * (d_ap[:-1] + d_ap[1:]) * seg) / cut_len) if cut_len > 0 else float(d_ap.mean())
    return {
        "mean_deviation_mm": mean * 1e3,
        "hausdorff_mm": float(max(d_ap.max(), d_pa.max())) * 1e3,
        "length_outside_mm": out_len * 1e3,
        "area_outside_mm2": area_out * 1e6,
        "planned_covered_fraction": float(np.mean(d_pa <= tolerance)) if len(d_pa) else 0.0,
        "fraction_outside": out_len / cut_len if cut_len > 0 else 0.0,
        "planned_length_mm": path_length(planned) * 1e3,
        "cut_length_mm": cut_len * 1e3,
    }


# ------------------------------------------------------------------ score
def composite_score(metrics: dict, *, target_time_s: float, safe_force_n: float,
                    cut_tolerance_mm: float = 2.0, planned_path_m: float | None = None,
                    weights: dict[str, float] | None = None) -> dict:
    """The composite score (0-100) and its parts from a metrics dict.

    Parameters
    ----------
    metrics : dict
        As produced by :meth:`MetricsRecorder.summary` (keys used:
        ``procedure_time_s``, ``mean_deviation_mm``, ``fraction_outside``,
        ``time_above_safe_force_s``, ``peak_force_n``, ``damaged_volume_fraction``,
        ``path_length_m``); missing keys leave their part out.
    target_time_s : float
        Expert time (s).
    safe_force_n : float
    cut_tolerance_mm : float
    planned_path_m : float, optional
        Minimal instrument path (m) for the economy part.
    weights : dict, optional
        Replaces :data:`SCORE_WEIGHTS`.

    Returns
    -------
    dict
        ``score`` (0-100), ``parts`` (sub-score per part in [0, 1]), ``weights``
        used, ``proficient_attempt`` (this attempt meets the proficiency level).

    Examples
    --------
    >>> r = composite_score({"procedure_time_s": 10.0}, target_time_s=10.0, safe_force_n=3.0)
    >>> r["score"], r["parts"]
    (100.0, {'time': 1.0})
    """
    w = dict(SCORE_WEIGHTS if weights is None else weights)
    parts: dict[str, float] = {}
    T = metrics.get("procedure_time_s")
    if T is not None and target_time_s > 0:
        parts["time"] = float(np.clip(1.0 - (T - target_time_s) / (2.0 * target_time_s), 0.0, 1.0))
    dev = metrics.get("mean_deviation_mm")
    if dev is not None and np.isfinite(dev):
        frac = float(metrics.get("fraction_outside", 0.0))
        parts["accuracy"] = float(np.clip(1.0 - dev / (3.0 * cut_tolerance_mm) - frac, 0.0, 1.0))
    if "time_above_safe_force_s" in metrics and T:
        s = 1.0 - metrics["time_above_safe_force_s"] / T
        peak = float(metrics.get("peak_force_n", 0.0))
        if peak > safe_force_n > 0:
            s *= safe_force_n / peak
        parts["force"] = float(np.clip(s, 0.0, 1.0))
    if "damaged_volume_fraction" in metrics:
        parts["damage"] = float(np.clip(1.0 - metrics["damaged_volume_fraction"] / 0.01, 0.0, 1.0))
    lift, need = metrics.get("target_lift_mm"), metrics.get("target_lift_required_mm")
    if lift is not None and need:
        parts["task"] = float(np.clip(lift / need, 0.0, 1.0))
    L = metrics.get("path_length_m")
    if planned_path_m is not None and planned_path_m > 0 and L is not None:
        parts["economy"] = float(np.clip(planned_path_m / max(L, 1e-12), 0.0, 1.0))
    cov = metrics.get("planned_covered_fraction")
    if cov is not None:
        # an incomplete pattern is not a fast, accurate, economical one (FLS fails it): time,
        # accuracy and economy count for the part of the plan that was cut
        for k in ("time", "accuracy", "economy"):
            if k in parts:
                parts[k] = float(parts[k] * np.clip(cov, 0.0, 1.0))
    used = {k: w[k] for k in parts if w.get(k, 0) > 0}
    total = sum(used.values())
    score = 100.0 * sum(parts[k] * used[k] for k in used) / total if total > 0 else 0.0
    score = round(score, 6)
    prof = score >= PROFICIENCY_SCORE and all(v >= PROFICIENCY_FLOOR for v in parts.values())
    return {"score": score, "parts": parts, "weights": {k: v / total for k, v in used.items()} if total else {},
            "proficient_attempt": bool(prof)}


# --------------------------------------------------------------- recording
#: Instrument kinds whose force on the tissue is not modelled (the blade's cutting force):
#: they count for path length and movements, not for force metrics.
NO_FORCE_KINDS = ("scalpel",)


@dataclass
class _Track:
    kind: str = ""
    times: list = field(default_factory=list)
    tips: list = field(default_factory=list)
    forces: list = field(default_factory=list)


class MetricsRecorder:
    """Collects what the metrics need while a procedure runs.

    Call :meth:`record` once per step; :meth:`add_cut` for each executed cut
    segment; :meth:`summary` at the end.

    Parameters
    ----------
    safe_force_n : float
    damage_stress_pa : float
    """

    def __init__(self, *, safe_force_n: float, damage_stress_pa: float) -> None:
        self.safe_force_n = float(safe_force_n)
        self.damage_stress_pa = float(damage_stress_pa)
        self.times: list[float] = []
        self.tracks: dict[str, _Track] = {}
        self.peak_stress_pa: list[float] = []
        self.damaged_m3: list[float] = []
        #: times (s) of the entries of ``peak_stress_pa`` and ``damaged_m3`` (fields are not
        #: computed every step)
        self.stress_times: list[float] = []
        self.cut_paths: list[np.ndarray] = []
        self._max_vm: np.ndarray | None = None
        self._volumes: np.ndarray | None = None
        self.initial_volume_m3: float | None = None
        self.final_volume_m3: float | None = None
        self.resected_volume_m3 = 0.0

    def record(self, time: float, *, instruments: list | None = None,
               tet_von_mises: np.ndarray | None = None, tet_volumes: np.ndarray | None = None) -> None:
        """Record one step.

        Parameters
        ----------
        time : float
        instruments : list of InstrumentView
            Each with ``name``, ``tip`` (3,) m, ``force`` (3,) N, ``active``.
        tet_von_mises : ndarray, shape (m,), optional
            von Mises stress per tet (Pa) this step.
        tet_volumes : ndarray, shape (m,), optional
            Rest volume per tet (m^3); needed with ``tet_von_mises``.
        """
        self.times.append(float(time))
        for v in instruments or []:
            tr = self.tracks.setdefault(v.name, _Track(kind=v.kind))
            tr.times.append(float(time))
            tr.tips.append(np.asarray(v.tip, float).copy())
            tr.forces.append(np.asarray(v.force, float).copy() if v.active else np.zeros(3))
        if tet_von_mises is not None and tet_volumes is not None:
            vm = np.asarray(tet_von_mises, float)
            self.stress_times.append(float(time))
            self.peak_stress_pa.append(float(vm.max()) if vm.size else 0.0)
            if self._max_vm is None or len(self._max_vm) != len(vm):
                # a topology change restarts the per-tet running maximum on the new mesh
                self._max_vm = vm.copy()
            else:
                np.maximum(self._max_vm, vm, out=self._max_vm)
            self._volumes = np.asarray(tet_volumes, float)
            self.damaged_m3.append(damaged_volume(self._max_vm, self._volumes, self.damage_stress_pa))

    def add_cut(self, points: np.ndarray) -> None:
        """An executed blade path on the tissue (m), shape (k, 3)."""
        self.cut_paths.append(np.asarray(points, float).copy())

    def force_series(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Times (s) and the force magnitude (N) of each instrument over the run."""
        t = np.asarray(self.times)
        out = {}
        for name, tr in self.tracks.items():
            if tr.kind in NO_FORCE_KINDS:
                continue
            f = np.zeros(len(t))
            idx = np.searchsorted(t, np.asarray(tr.times))
            f[idx] = np.linalg.norm(np.asarray(tr.forces), axis=1)
            out[name] = f
        return t, out

    def summary(self, *, planned_cut: np.ndarray | None = None,
                cut_tolerance_mm: float = 2.0) -> dict:
        """All metrics of the run as a JSON-ready dict (see the module docstring)."""
        t = np.asarray(self.times)
        m: dict = {"procedure_time_s": float(t[-1] - t[0]) if len(t) > 1 else 0.0}
        total_len = 0.0
        total_moves = 0
        inst = {}
        for name, tr in self.tracks.items():
            tips = np.asarray(tr.tips)
            tt = np.asarray(tr.times)
            L = path_length(tips)
            n = count_movements(tips, tt)
            inst[name] = {"kind": tr.kind, "path_length_m": L, "movements": n}
            if tr.kind not in NO_FORCE_KINDS:
                inst[name].update(force_summary(np.asarray(tr.forces), tt,
                                                safe_force_n=self.safe_force_n))
            total_len += L
            total_moves += n
        m["instruments"] = inst
        m["path_length_m"] = total_len
        m["movements"] = total_moves
        _, fser = self.force_series()
        if fser:
            combined = np.max(np.vstack(list(fser.values())), axis=0)
            fs = force_summary(combined, t, safe_force_n=self.safe_force_n)
            m.update(fs)
        m["safe_force_n"] = self.safe_force_n
        if self.peak_stress_pa:
            m["peak_stress_pa"] = float(max(self.peak_stress_pa))
            m["damage_stress_pa"] = self.damage_stress_pa
            m["damaged_volume_ml"] = self.damaged_m3[-1] * 1e6
            vol = float(self._volumes.sum()) if self._volumes is not None else 0.0
            m["damaged_volume_fraction"] = self.damaged_m3[-1] / vol if vol > 0 else 0.0
        if self.cut_paths:
            cut = np.vstack(self.cut_paths)
            m["cut_length_mm"] = sum(path_length(c) for c in self.cut_paths) * 1e3
            if planned_cut is not None and len(planned_cut) >= 2:
                dev = cut_deviation(cut, planned_cut, tolerance=cut_tolerance_mm * 1e-3)
                m.update({k: v for k, v in dev.items() if k != "cut_length_mm"})
        if self.initial_volume_m3 is not None:
            m["initial_volume_ml"] = self.initial_volume_m3 * 1e6
        if self.final_volume_m3 is not None:
            m["remaining_volume_ml"] = self.final_volume_m3 * 1e6
            m["resected_volume_ml"] = self.resected_volume_m3 * 1e6
            if self.initial_volume_m3:
                m["remaining_fraction"] = self.final_volume_m3 / self.initial_volume_m3
        return m
