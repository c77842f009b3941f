"""The FEM example runs and writes a series ParaView opens."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from organsim.io.series import read_series

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "02_liver_gravity.py"


@pytest.mark.slow
def test_liver_gravity_example_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("example_02", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--quick", "--out", str(tmp_path / "liver_gravity.pvd")])
    frames = read_series(out)
    assert len(frames) == 4
    last = frames[-1][1]
    u = np.asarray(last.point_data["displacement"])
    assert np.all(np.isfinite(u)) and u[:, 2].min() < 0  # sags under gravity
    for name in ("velocity", "von_mises", "green_lagrange", "cauchy"):
        assert name in last.point_data
    assert "region" in last.cell_data and "von_mises" in last.cell_data
    assert (tmp_path / "liver_gravity").is_dir()
