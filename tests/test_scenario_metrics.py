"""Each metric on synthetic trajectories with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organsim.scenario.metrics import (
    MetricsRecorder, composite_score, count_movements, cut_deviation, damaged_volume,
    force_summary, path_length, point_to_polyline_distance, time_above,
)
from organsim.viewer.sources import InstrumentView


def test_path_length_of_a_circle():
    th = np.linspace(0, 2 * np.pi, 2001)
    r = 0.03
    p = np.c_[r * np.cos(th), r * np.sin(th), np.zeros_like(th)]
    assert path_length(p) == pytest.approx(2 * np.pi * r, rel=1e-5)
    assert path_length(p[:1]) == 0.0


def test_count_movements_three_strokes_with_pauses():
    t = np.arange(0.0, 6.0001, 0.02)
    x = np.zeros_like(t)
    # strokes on [0.5, 1), [2, 2.5), [4, 5): 1 cm/s; still in between
    v = ((t >= 0.5) & (t < 1)) | ((t >= 2) & (t < 2.5)) | ((t >= 4) & (t < 5))
    x[1:] = np.cumsum(v[:-1] * 0.01 * 0.02)
    p = np.c_[x, 0 * x, 0 * x]
    assert count_movements(p, t) == 3
    # a stop shorter than min_pause_s does not split a movement
    assert count_movements(p, t, min_pause_s=2.0) == 1
    # slower than the threshold: no movement at all
    assert count_movements(p * 0.1, t) == 0


def test_time_above_and_force_summary():
    t = np.linspace(0.0, 10.0, 1001)
    f = np.where((t >= 2.0) & (t < 5.0), 4.0, 1.0)  # 4 N for 3 s, 1 N otherwise
    assert time_above(f, t, 3.0) == pytest.approx(3.0, abs=0.011)
    s = force_summary(np.c_[0 * f, 0 * f, f], t, safe_force_n=3.0)
    assert s["peak_force_n"] == 4.0
    assert s["mean_force_n"] == pytest.approx((3 * 4 + 7 * 1) / 10, abs=0.01)
    assert s["time_above_safe_force_s"] == pytest.approx(3.0, abs=0.011)


def test_damaged_volume():
    vm = np.array([1e3, 5e4, 2e4, 6e4])
    vol = np.array([1.0, 2.0, 3.0, 4.0]) * 1e-6
    assert damaged_volume(vm, vol, 3e4) == pytest.approx(6e-6)


def test_cut_deviation_parallel_offset_and_hausdorff():
    plan = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]])
    cut = plan + [0.0, 0.003, 0.0]
    d = cut_deviation(cut, plan, tolerance=0.002)
    assert d["mean_deviation_mm"] == pytest.approx(3.0)
    assert d["hausdorff_mm"] == pytest.approx(3.0)
    assert d["fraction_outside"] == pytest.approx(1.0)
    assert d["length_outside_mm"] == pytest.approx(50.0)
    # stopping halfway: on the line (mean 0) but half the plan never cut -> Hausdorff 25 mm
    half = np.array([[0.0, 0.0, 0.0], [0.025, 0.0, 0.0]])
    d = cut_deviation(half, plan)
    assert d["mean_deviation_mm"] == pytest.approx(0.0, abs=1e-9)
    assert d["hausdorff_mm"] == pytest.approx(25.0)
    assert d["fraction_outside"] == 0.0


def test_cut_deviation_of_a_wavy_circle():
    th = np.linspace(0, 2 * np.pi, 721)
    R, a = 0.025, 0.001
    plan = np.c_[R * np.cos(th), R * np.sin(th), 0 * th]
    r = R + a * np.sin(8 * th)  # +-1 mm wave around the marked circle
    cut = np.c_[r * np.cos(th), r * np.sin(th), 0 * th]
    d = cut_deviation(cut, plan, tolerance=0.002, spacing=2e-4)
    # mean |a sin| = 2a/pi, max = a
    assert d["mean_deviation_mm"] == pytest.approx(2 / np.pi, rel=0.02)
    assert d["hausdorff_mm"] == pytest.approx(1.0, rel=0.01)
    assert d["fraction_outside"] == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(*[st.floats(-0.1, 0.1)] * 3), min_size=2, max_size=6),
       st.tuples(*[st.floats(-0.1, 0.1)] * 3))
def test_point_to_polyline_distance_matches_dense_sampling(poly, x):
    poly = np.array(poly)
    x = np.array([x])
    from organsim.scenario.metrics import resample_polyline

    dense = resample_polyline(poly, 1e-4)
    brute = np.linalg.norm(dense - x, axis=1).min()
    assert point_to_polyline_distance(x, poly)[0] == pytest.approx(brute, abs=1.1e-4)
    assert point_to_polyline_distance(x, poly)[0] <= brute + 1e-12


def test_composite_score_known_values():
    base = dict(target_time_s=10.0, safe_force_n=3.0, cut_tolerance_mm=2.0, planned_path_m=0.1)
    perfect = {"procedure_time_s": 10.0, "mean_deviation_mm": 0.0, "fraction_outside": 0.0,
               "time_above_safe_force_s": 0.0, "peak_force_n": 1.0,
               "damaged_volume_fraction": 0.0, "path_length_m": 0.1}
    r = composite_score(perfect, **base)
    assert r["score"] == 100.0 and r["proficient_attempt"]
    # twice the target time: time part 0.5, everything else perfect
    r = composite_score({**perfect, "procedure_time_s": 20.0}, **base)
    assert r["parts"]["time"] == 0.5
    assert r["score"] == pytest.approx(100 * (1 - 0.2 * 0.5))
    # 3 mm mean deviation with tolerance 2 mm -> 1 - 3/6 = 0.5; half the cut outside -> 0
    r = composite_score({**perfect, "mean_deviation_mm": 3.0, "fraction_outside": 0.5}, **base)
    assert r["parts"]["accuracy"] == 0.0 and not r["proficient_attempt"]
    # force: above 3 N for 2 of 10 s with a 6 N peak -> (1 - 0.2) * 3/6 = 0.4
    r = composite_score({**perfect, "time_above_safe_force_s": 2.0, "peak_force_n": 6.0}, **base)
    assert r["parts"]["force"] == pytest.approx(0.4)
    # parts that do not apply are left out and the weights renormalised
    r = composite_score({"procedure_time_s": 10.0, "damaged_volume_fraction": 0.005},
                        target_time_s=10.0, safe_force_n=3.0)
    assert set(r["parts"]) == {"time", "damage"}
    assert r["score"] == pytest.approx(100 * (0.2 * 1 + 0.15 * 0.5) / 0.35)


def test_recorder_summary_from_a_synthetic_run():
    rec = MetricsRecorder(safe_force_n=2.0, damage_stress_pa=1e4)
    vol = np.full(10, 1e-6)
    for k in range(101):
        t = 0.01 * k
        tip = np.array([0.1 * t, 0.0, 0.0])  # 10 cm/s for 1 s -> 10 cm
        force = np.array([0.0, 0.0, 3.0 if t >= 0.5 else 1.0])
        vm = np.full(10, 5e3)
        vm[:3] = 2e4 if k == 50 else 5e3  # a transient peak damages 3 tets for good
        rec.record(t, instruments=[InstrumentView("grasper", "grasper", tip, force=force, active=True)],
                   tet_von_mises=vm, tet_volumes=vol)
    rec.add_cut(np.array([[0.0, 0.001, 0.0], [0.05, 0.001, 0.0]]))
    rec.initial_volume_m3, rec.final_volume_m3, rec.resected_volume_m3 = 1e-5, 8e-6, 2e-6
    m = rec.summary(planned_cut=np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]]))
    assert m["procedure_time_s"] == pytest.approx(1.0)
    assert m["path_length_m"] == pytest.approx(0.1)
    assert m["movements"] == 1
    assert m["peak_force_n"] == 3.0
    assert m["time_above_safe_force_s"] == pytest.approx(0.5, abs=1e-9)
    assert m["peak_stress_pa"] == 2e4
    assert m["damaged_volume_ml"] == pytest.approx(3.0)
    assert m["damaged_volume_fraction"] == pytest.approx(0.3)
    assert m["mean_deviation_mm"] == pytest.approx(1.0)
    assert m["remaining_fraction"] == pytest.approx(0.8)
    assert m["resected_volume_ml"] == pytest.approx(2.0)
    import json

    json.dumps(m)  # JSON-ready


def test_an_incomplete_pattern_scores_only_the_part_that_was_cut():
    from organsim.scenario.metrics import composite_score, cut_deviation

    plan = np.array([[0.0, 0, 0], [0.1, 0, 0]])
    half = np.array([[0.0, 0, 0], [0.05, 0, 0]])
    full_m = {"procedure_time_s": 10.0, **cut_deviation(plan, plan)}
    half_m = {"procedure_time_s": 5.0, **cut_deviation(half, plan)}
    assert full_m["planned_covered_fraction"] == 1.0
    assert abs(half_m["planned_covered_fraction"] - 0.5) < 0.02
    full = composite_score(full_m, target_time_s=10.0, safe_force_n=3.0)
    half_s = composite_score(half_m, target_time_s=10.0, safe_force_n=3.0)
    # half the pattern, twice as fast, exactly on the line: half the credit, not full marks
    assert full["score"] == 100.0
    assert abs(half_s["score"] - 50.0) < 2.0 and not half_s["proficient_attempt"]
