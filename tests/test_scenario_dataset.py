"""`organsim dataset`: random loads solved to equilibrium, one HDF5 file that h5py reads back."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from organsim.cli import main
from organsim.scenario import dumps
from tests.test_scenario_runner import block, scenario


@pytest.fixture()
def block_scenario(tmp_path):
    mesh = tmp_path / "block.vtu"
    block().to_pyvista().save(str(mesh))
    s = scenario([])
    s.organ.shipped, s.organ.path, s.organ.units = None, str(mesh), "m"
    path = tmp_path / "block.toml"
    path.write_text(dumps(s))
    return path


def test_a_dataset_holds_every_sample_and_reproduces_from_its_seed(block_scenario, tmp_path, capsys):
    out = tmp_path / "ds.h5"
    assert main(["dataset", str(block_scenario), "-n", "3", "-o", str(out), "--no-progress"]) == 0
    assert "3 of 3 samples solved" in capsys.readouterr().out
    with h5py.File(out, "r") as h5:
        n, m = h5["rest/points"].shape[0], h5["rest/tets"].shape[0]
        s = h5["samples"]
        assert s["displacement"].shape == (3, n, 3) and s["von_mises"].shape == (3, m)
        assert s["ok"][:].all() and np.isfinite(s["displacement"][:]).all()
        assert s["displacement"].chunks == (1, n, 3)           # one sample per chunk
        # the grasped patch moved by the imposed pull; gravity kept its magnitude
        u = s["displacement"][:]
        for k in range(3):
            pull = s["pull"][k]
            assert np.linalg.norm(u[k], axis=1).max() >= 0.99 * np.linalg.norm(pull)
            assert np.linalg.norm(s["gravity"][k]) == pytest.approx(9.81)
        assert json.loads(h5.attrs["errors"]) == []
        assert "block.vtu" in h5.attrs["scenario"] and len(h5.attrs["scenario_sha256"]) == 64
        first = u.copy()
    again = tmp_path / "again.h5"
    assert main(["dataset", str(block_scenario), "-n", "2", "-o", str(again), "--no-progress"]) == 0
    with h5py.File(again, "r") as h5:
        np.testing.assert_array_equal(h5["samples/displacement"][:], first[:2])   # same seeds
    assert not list(tmp_path.glob(".*partial*"))


def test_bad_dataset_arguments_are_one_line_errors(block_scenario, tmp_path, capsys):
    assert main(["dataset", str(block_scenario), "-n", "0", "-o", str(tmp_path / "x.h5")]) != 0
    assert "--samples" in capsys.readouterr().err
    assert main(["dataset", str(block_scenario), "-n", "1", "-o", str(tmp_path / "x.zarr")]) != 0
    assert ".h5" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_the_factorization_says_nothing_on_the_terminal_when_it_falls_back(capfd):
    from organsim.fem.solvers import CholeskyFactor

    # an indefinite symmetric matrix: Cholesky refuses it (CHOLMOD used to print a warning), LU solves
    rows, cols, vals = np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([1.0, 2.0, 1.0])
    f = CholeskyFactor(2, rows, cols, vals)
    x = f.solve(np.array([1.0, 0.0]))
    np.testing.assert_allclose(np.array([[1.0, 2.0], [2.0, 1.0]]) @ x, [1.0, 0.0])
    out, err = capfd.readouterr()
    assert f.kind == "lu"
    assert out + err == ""
