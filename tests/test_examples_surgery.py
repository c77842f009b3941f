"""The surgery examples run (quick mode) and write series that read back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name.replace(".py", ""), EXAMPLES / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_incision_retraction_example(tmp_path, capsys):
    from organsim.io.series import read_series

    assert _load("03_incision_retraction.py").main(["--quick", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mesh valid: True" in out
    frames = read_series(tmp_path / "incision.pvd")
    assert len(frames) > 5
    n_cells = [g.n_cells for _, g in frames]
    assert n_cells[-1] > n_cells[0]                    # the cut added tets
    assert "cut_face" in frames[-1][1].cell_data and frames[-1][1].cell_data["cut_face"].sum() > 0


@pytest.mark.slow
def test_tumour_resection_example(tmp_path, capsys):
    from organsim.io.series import read_series

    assert _load("04_tumour_resection.py").main(["--quick", "-o", str(tmp_path), "--margin-mm", "8"]) == 0
    out = capsys.readouterr().out
    assert "remaining fraction" in out and "mesh valid: True" in out
    frames = read_series(tmp_path / "resection.pvd")
    assert len(frames) == 4
    assert frames[-1][1].n_cells != frames[0][1].n_cells
    assert (tmp_path / "specimen.vtu").exists()
