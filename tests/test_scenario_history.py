"""Training history (SQLite learning curve) and the HTML report."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.errors import OrganSimError
from organsim.scenario.history import TrainingHistory
from organsim.scenario.report import write_report


def test_history_persists_and_finds_proficiency(tmp_path):
    db = tmp_path / "h.sqlite"
    h = TrainingHistory(db)
    for s, p in [(40, False), (78, True), (60, False), (80, True), (85, True), (90, True)]:
        h.add("ana", "pattern", score=s, metrics={"score": s}, proficient=p)
    h.add("ben", "pattern", score=10, metrics={})
    h.close()
    h = TrainingHistory(db)  # reopened from disk
    n, scores = h.learning_curve("ana", "pattern")
    assert n == [1, 2, 3, 4, 5, 6] and scores == [40, 78, 60, 80, 85, 90]
    assert h.proficiency_reached("ana", "pattern") == 5  # 4 and 5 are the first two in a row
    assert h.proficiency_reached("ben", "pattern") is None
    assert h.attempts("ana", "pattern")[0].metrics == {"score": 40}
    assert h.trainees() == ["ana", "ben"]


def test_history_rejects_a_file_that_is_not_a_database(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OrganSimError, match="not a usable training history"):
        TrainingHistory(bad)


def test_report_has_plots_metrics_and_image(tmp_path):
    t = np.linspace(0, 2, 50)
    p = write_report(tmp_path / "r.html", title="Pattern cutting <1>",
                     metrics={"procedure_time_s": 2.0, "peak_force_n": 3.5, "mean_deviation_mm": 1.2},
                     score={"score": 71.5, "parts": {"time": 1.0, "accuracy": 0.6},
                            "weights": {"time": 0.36, "accuracy": 0.64}, "proficient_attempt": False},
                     force_times=t, forces={"scalpel": np.sin(t) ** 2}, safe_force_n=3.0,
                     curve=([1, 2, 3], [40.0, 55.0, 71.5]), image_png=b"\x89PNG fake",
                     notes=["series: run.pvd"])
    text = p.read_text()
    assert "Pattern cutting &lt;1&gt;" in text
    assert "71.5" in text and "not yet at proficiency level" in text
    assert text.count("data:image/png;base64,") == 3  # force, learning curve, image
    assert "mean deviation from the planned cut" in text and "1.2" in text
