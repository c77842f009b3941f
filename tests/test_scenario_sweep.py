"""Parameter sweeps on a Dask LocalCluster of two workers, on a small block of tissue."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("dask.distributed")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
meshio = pytest.importorskip("meshio")

from organsim.errors import ScenarioError  # noqa: E402
from organsim.mesh.generators import box_tet_mesh  # noqa: E402
from organsim.mesh.tetmesh import TetMesh  # noqa: E402
from organsim.scenario.schema import Action, Fixation, Material, Organ, Output, Scenario  # noqa: E402
from organsim.scenario.sweeps import apply_parameters, parameter_sets, parse_vary, sweep  # noqa: E402


def small_block() -> TetMesh:
    """A 4 x 4 x 2 cm slab, its top at z = 0 (240 tets)."""
    m = box_tet_mesh((5, 5, 3), 0.01, origin=(-0.02, -0.02, -0.02))
    return TetMesh(m.points, m.tets, np.ones(m.n_tets, dtype=np.int32), {1: "tissue"})


def base_scenario(mesh_path, duration=0.12) -> Scenario:
    return Scenario(name="sweep block", organ=Organ(shipped=None, path=str(mesh_path), units="m"),
                    materials={"default": Material(tissue="liver", model="corotational", E_pa=4000.0)},
                    fixations=[Fixation(box_min_mm=(-21, -21, -21), box_max_mm=(21, 21, -19))],
                    duration_s=duration, dt_s=0.04,
                    timeline=[Action(t=0.0, action="grasp", at_mm=(0.0, 0.0, 0.0), radius_mm=6.0),
                              Action(t=0.0, action="pull", path_mm=((0.0, 0.0, 5.0),),
                                     duration_s=duration)],
                    output=Output(series=True, every=1, report=False))


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, scheduler_kwargs={"dashboard": False})
    client = Client(lc)
    yield lc, client
    client.close()
    lc.close()


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory):
    from organsim.io import write_mesh

    path = tmp_path_factory.mktemp("organ") / "block.vtu"
    write_mesh(small_block(), path)
    return path


# ---------------------------------------------------------------- parameters
def test_keys_values_and_grids():
    assert parse_vary("dt_s=0.02, 0.04") == ("dt_s", [0.02, 0.04])
    assert parse_vary('materials.default.model="neo_hookean",corotational')[1] == ["neo_hookean", "corotational"]
    assert parse_vary("timeline[1].path_mm=[[0, 0, 5]],[[0, 0, 9]]")[1] == [[[0, 0, 5]], [[0, 0, 9]]]
    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        parse_vary("dt_s")
    with pytest.raises(ScenarioError, match="not a scenario key"):
        parse_vary("[0].x=1")
    sets = parameter_sets({"a": [1, 2], "b": [3, 4, 5]})
    assert len(sets) == 6 and sets[0] == {"a": 1, "b": 3} and sets[1] == {"a": 1, "b": 4}
    zipped = parameter_sets({"a": [1, 2]}, zipped={"b": [3, 4], "c": [5, 6]})
    assert zipped == [{"a": 1, "b": 3, "c": 5}, {"a": 1, "b": 4, "c": 6},
                      {"a": 2, "b": 3, "c": 5}, {"a": 2, "b": 4, "c": 6}]
    with pytest.raises(ScenarioError, match="as many"):
        parameter_sets({}, zipped={"b": [3, 4], "c": [5]})


def test_parameters_are_validated_and_errors_name_the_key(mesh_file):
    s = base_scenario(mesh_file)
    t = apply_parameters(s, {"materials.tissue.nu": 0.4, "timeline[0].at_mm+": [0, 0, -2],
                             "timeline[1].path_mm+": [1, 0, 0], "dt_s": 0.02})
    assert t.materials["tissue"].nu == 0.4 and t.materials["tissue"].E_pa == 4000.0  # from default
    assert t.timeline[0].at_mm == (0.0, 0.0, -2.0) and t.timeline[1].path_mm == ((1.0, 0.0, 5.0),)
    assert t.dt_s == 0.02 and s.dt_s == 0.04  # the base is not changed
    with pytest.raises(ScenarioError, match=r"parameter materials.default.E_pa = -5.0: materials.default.E_pa: "
                                            r"-5.0 is out of range"):
        apply_parameters(s, {"materials.default.E_pa": -5.0})
    with pytest.raises(ScenarioError, match=r"parameter timeline\[7\].t .*index out of range"):
        apply_parameters(s, {"timeline[7].t": 0.1})
    with pytest.raises(ScenarioError, match=r"parameter materials.default.stiffness = 3.*unknown key"):
        apply_parameters(s, {"materials.default.stiffness": 3})


# --------------------------------------------------------------------- sweeps
@pytest.mark.slow
def test_a_six_run_sweep_on_two_workers_restarts_only_what_is_missing(cluster, mesh_file, tmp_path):
    lc, client = cluster
    s = base_scenario(mesh_file)
    grid = {"materials.default.E_pa": [2000.0, 4000.0, 8000.0], "dt_s": [0.02, 0.04]}
    out = tmp_path / "sweep"
    df = sweep(s, grid, client=client, outdir=out)
    assert len(df) == 6 and list(df["status"]) == ["ok"] * 6, df[["status", "error"]]
    assert df.attrs["skipped"] == 0
    assert {"run_id", "materials.default.E_pa", "dt_s", "seed", "peak_force_n", "score", "wall_s"} <= set(df.columns)
    # a stiffer block needs more force for the same 5 mm pull
    for dt in (0.02, 0.04):
        f = df[df["dt_s"] == dt].sort_values("materials.default.E_pa")["peak_force_n"].to_numpy()
        assert np.all(np.diff(f) > 0), f
    # the tables: the same rows in Parquet and CSV
    pq = pd.read_parquet(out / "summary.parquet")
    csv = pd.read_csv(out / "summary.csv")
    assert list(pq["run_id"]) == list(df["run_id"]) == list(csv["run_id"])
    assert np.allclose(pq["peak_force_n"], csv["peak_force_n"])
    # each run's own folder: metrics that say what made them, a series meshio reads
    workers = set()
    for _, row in df.iterrows():
        run = json.loads((out / "runs" / row["run_id"] / "run.json").read_text())
        workers.add(run["worker"])
        doc = json.loads((out / "runs" / row["run_id"] / "metrics.json").read_text())
        assert doc["parameters"] == {"materials.default.E_pa": row["materials.default.E_pa"], "dt_s": row["dt_s"]}
        assert doc["seed"] == row["seed"] and len(doc["scenario_sha256"]) == 64 and doc["organsim_version"]
        assert doc["scenario_definition"]["dt_s"] == row["dt_s"]
        frame = sorted((out / "runs" / row["run_id"] / "series").glob("*.vtu"))[-1]
        assert "reaction_force" in meshio.read(frame).point_data
    assert len(workers) == 2  # both workers ran
    assert not list((out / "runs").glob(".*"))  # nothing half-written left

    # restarted with one more stiffness: only its two runs run
    seen = []
    grid["materials.default.E_pa"].append(16000.0)
    df2 = sweep(s, grid, client=client, outdir=out, on_result=seen.append)
    assert len(df2) == 8 and df2.attrs["skipped"] == 6 and len(seen) == 2
    assert {r["parameters"]["materials.default.E_pa"] for r in seen} == {16000.0}
    assert list(df2["run_id"][:2]) == list(df["run_id"][:2])
    # reproducible: the same parameters again, elsewhere, give the same results and seed
    again = sweep(s, [{"materials.default.E_pa": 2000.0, "dt_s": 0.02}], client=client, outdir=tmp_path / "again")
    first = df[(df["materials.default.E_pa"] == 2000.0) & (df["dt_s"] == 0.02)].iloc[0]
    assert again["seed"][0] == first["seed"] and again["run_id"][0] == first["run_id"]
    assert again["peak_force_n"][0] == first["peak_force_n"]
    assert again["path_length_m"][0] == first["path_length_m"]


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_others_finish(cluster, mesh_file, tmp_path):
    lc, client = cluster
    s = base_scenario(mesh_file, duration=0.08)
    # E cannot be overridden for Mooney-Rivlin: valid as a file, fails when the run builds it
    df = sweep(s, {"materials.default.model": ["corotational", "mooney_rivlin"]}, client=client,
               outdir=tmp_path / "sw")
    ok, bad = df.iloc[0], df.iloc[1]
    assert ok["status"] == "ok" and bad["status"] == "failed"
    assert "ScenarioError" in bad["error"] and "mooney_rivlin" in bad["error"]
    assert (tmp_path / "sw" / "runs" / bad["run_id"] / "error.txt").is_file()
    assert pd.read_csv(tmp_path / "sw" / "summary.csv")["status"].tolist() == ["ok", "failed"]


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_has_its_run_rescheduled(cluster, mesh_file, tmp_path):
    lc, client = cluster
    s = base_scenario(mesh_file, duration=0.4)
    s.dt_s = 0.01  # 40 steps a run: long enough to be caught in the middle
    out = tmp_path / "killed"
    killed = []

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if list((out / "runs").glob(".*.partial-*")):  # a run is under way
                busy = [w for w, keys in client.processing().items() if keys]
                pids = client.run(os.getpid)
                if busy:
                    pid = pids[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.05)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    df = sweep(s, {"materials.default.E_pa": [2000.0, 3000.0, 4000.0, 5000.0]}, client=client, outdir=out)
    th.join(5)
    assert killed, "no worker was killed: the sweep finished before the killer saw a run"
    assert list(df["status"]) == ["ok"] * 4, df[["status", "error"]]
    for rid in df["run_id"]:
        doc = json.loads((out / "runs" / rid / "metrics.json").read_text())
        assert doc["metrics"]["procedure_time_s"] == pytest.approx(0.4)
        frames = sorted((out / "runs" / rid / "series").glob("*.vtu"))
        assert len(frames) == 41 and meshio.read(frames[-1]).points.shape[1] == 3
    assert not list((out / "runs").glob(".*"))
    client.wait_for_workers(2, timeout=60)  # the nanny brought the worker back
    assert killed[0] not in client.run(os.getpid).values()


@pytest.mark.slow
def test_the_command_runs_on_a_scheduler_address(cluster, mesh_file, tmp_path, capsys):
    from organsim.cli import main
    from organsim.scenario.loader import save_scenario

    lc, client = cluster
    toml = save_scenario(base_scenario(mesh_file, duration=0.08), tmp_path / "s.toml")
    out = tmp_path / "cli"
    rc = main(["sweep", str(toml), "--vary", "materials.default.E_pa=2000,4000", "-o", str(out),
               "--scheduler", lc.scheduler_address, "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "2 runs: 2 ok" in text and "summary.parquet" in text
    assert len(pd.read_parquet(out / "summary.parquet")) == 2
    rc = main(["sweep", str(toml), "--vary", "dt_s=fast", "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "parameter dt_s = 'fast'" in err and "--vary" in err
    rc = main(["sweep", str(toml), "--vary", "dt_s", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "--vary 'dt_s': expected KEY=VALUE" in err


def test_without_dask_the_command_says_what_to_install(monkeypatch, tmp_path, capsys):
    import builtins

    from organsim.cli import main

    real = builtins.__import__

    def no_dask(name, *a, **kw):
        if name.startswith("dask"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    rc = main(["sweep", str(tmp_path / "s.toml"), "--vary", "dt_s=0.01", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip().endswith('pip install "organsim[sweep]"') and err.count("\n") == 1
