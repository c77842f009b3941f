"""`organsim mesh` says how large a mesh this machine runs in real time (a measured, cached calibration)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from organsim.cli import main
from organsim.fem import calibration
from organsim.mesh import TriSurface


@pytest.fixture()
def sphere_stl(tmp_path):
    pv = pytest.importorskip("pyvista")
    from organsim.io import write_surface

    s = TriSurface.from_pyvista(pv.Sphere(radius=0.03, theta_resolution=24, phi_resolution=24))
    return write_surface(s, tmp_path / "sphere.stl", units="mm")


@pytest.fixture()
def cache_file(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "realtime_calibration.json"
    path.parent.mkdir()
    monkeypatch.setattr(calibration, "_cache_path", lambda: path)
    return path


def _check_consistent(est: dict, edge_m: float) -> None:
    c = est["calibration"]
    a, b = c["a"], c["b"]
    assert b >= 1.0 and a > 0
    # the two measured points lie on the fit (it passes through the larger, the exponent is their slope
    # unless noise made it below 1)
    assert c["median_ms"][1] == pytest.approx(a * c["tets"][1] ** b, rel=1e-9)
    assert est["predicted_ms"] == pytest.approx(a * est["tets"] ** b, rel=1e-9)
    for hz in ("60", "30"):
        r = est[hz]
        assert r["budget_ms"] == pytest.approx(1e3 / float(hz))
        assert r["runs"] == (est["predicted_ms"] <= r["budget_ms"])
        assert a * r["max_tets"] ** b <= r["budget_ms"] * (1 + 1e-9) < a * (r["max_tets"] + 1) ** b
        assert r["runs"] == (est["tets"] <= r["max_tets"])
        assert r["edge_mm"] == pytest.approx(1e3 * edge_m * (est["tets"] / r["max_tets"]) ** (1 / 3), rel=1e-9)
    assert est["60"]["max_tets"] <= est["30"]["max_tets"]


def test_mesh_prints_the_realtime_line_with_consistent_numbers(sphere_stl, tmp_path, cache_file, capsys):
    out = tmp_path / "s.vtu"
    rep = tmp_path / "r.json"
    assert main(["mesh", str(sphere_stl), "-o", str(out), "--edge-length", "6", "--report-json", str(rep)]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("real time on this machine"))
    d = json.loads(rep.read_text())
    est = d["realtime_estimate"]
    _check_consistent(est, d["edge_length_m"])
    assert f"{est['tets']:,} tets" in line and "calibration measured here" in line
    for hz in ("60", "30"):
        r = est[hz]
        assert f"{hz} Hz {'yes' if r['runs'] else 'no'} (up to ~{r['max_tets']:,} tets" in line
        assert f"{r['edge_mm']:.3g} mm" in line
    assert not est["calibration"]["cached"] and cache_file.exists()
    # the second run reads the calibration from the cache (no timing), and says so
    assert main(["mesh", str(sphere_stl), "-o", str(out), "--edge-length", "6", "--report-json", str(rep)]) == 0
    line2 = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("real time on this machine"))
    assert "cached" in line2 and json.loads(rep.read_text())["realtime_estimate"]["calibration"]["cached"]


def test_no_estimate_flag_and_recalibrate(sphere_stl, tmp_path, cache_file, capsys):
    out = tmp_path / "s.vtu"
    assert main(["mesh", str(sphere_stl), "-o", str(out), "--edge-length", "8", "--no-realtime-estimate"]) == 0
    assert "real time on this machine" not in capsys.readouterr().out
    assert not cache_file.exists()
    cache_file.write_text(json.dumps({"key": calibration._key(), "tets": [1, 2], "median_ms": [1.0, 2.0],
                                      "a": 1.0, "b": 1.0, "load_average": 0.0, "date": "long-ago"}))
    assert main(["mesh", str(sphere_stl), "-o", str(out), "--edge-length", "8", "--recalibrate"]) == 0
    assert "long-ago" not in capsys.readouterr().out
    assert json.loads(cache_file.read_text())["date"] != "long-ago"


def test_estimate_from_a_given_calibration():
    calib = {"tets": [1000, 10000], "median_ms": [1.0, 10.0], "a": 1e-3, "b": 1.0, "date": "d",
             "load_average": 0.1, "cached": True}
    est = calibration.realtime_estimate(20000, 0.008, calib)
    assert est["predicted_ms"] == pytest.approx(20.0)
    assert est["60"]["runs"] is False and est["30"]["runs"] is True
    assert est["60"]["max_tets"] == 16666 and est["30"]["max_tets"] == 33333
    assert est["60"]["edge_mm"] == pytest.approx(8.0 * (20000 / 16666) ** (1 / 3))
    line = calibration.format_estimate(est)
    assert "60 Hz no (up to ~16,666 tets, edge >= 8.5 mm)" in line and "30 Hz yes" in line
    assert np.isfinite(est["predicted_ms"]) and os.path.basename(__file__) == "test_cli_realtime.py"
