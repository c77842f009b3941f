"""Parameter sweeps: many runs of one scenario on Dask, one table of results.

A sweep takes a scenario and a set of parameter values, runs the scenario once
per parameter set on a Dask cluster (a local one by default, or any scheduler
address), and writes::

    outdir/
      sweep.json                  the base scenario, the parameter sets, organsim's version
      summary.parquet, summary.csv  one row per run: parameters -> every metric
      runs/<run id>/              each run's own results (as ``organsim run`` writes them)
        run.json                  this run's row: parameters, seed, status, error, metrics
        metrics.json, series.pvd, steps.csv, forces.csv, ...

A parameter is a dotted path into the scenario as :func:`~organsim.scenario.schema.scenario_to_dict`
writes it, with list indices: ``dt_s``, ``materials.default.E_pa``,
``materials.parenchyma.nu``, ``timeline[1].path_mm``, ``organ.path`` (a mesh of another
edge length). A key ending in ``+`` adds its value to the scenario's own: an offset
(``timeline[0].at_mm+ = [0, 0, 5]`` moves a grasp 5 mm up; on a path every way point moves).
Every parameter set is validated like a scenario file, so an error names the key.

A run's id is a hash of the base scenario and its parameters: a sweep restarted into
the same folder skips the runs already there (finished, or stopped early by the
solver) and runs the rest. A run that raises is recorded with its error (``status``
``failed``) and does not stop the others; a worker that dies mid-run has its run
rescheduled by Dask on another worker. Each run is written to a hidden folder first and
renamed into ``runs/`` once complete, so ``runs/`` never holds a half-written run.

Examples
--------
>>> grid = {"materials.default.E_pa": [2000.0, 4000.0], "dt_s": [0.02, 0.04]}
>>> [sorted(p.items()) for p in parameter_sets(grid)][:2]
[[('dt_s', 0.02), ('materials.default.E_pa', 2000.0)], [('dt_s', 0.04), ('materials.default.E_pa', 2000.0)]]
>>> parse_vary("materials.default.E_pa=2e3,4e3")
('materials.default.E_pa', [2000.0, 4000.0])
>>> parse_vary("timeline[0].at_mm+=[0, 0, 5],[0, 0, 10]")
('timeline[0].at_mm+', [[0, 0, 5], [0, 0, 10]])
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import socket
import sys
import time as _time
import traceback
import uuid
from pathlib import Path
from typing import Any

from ..errors import OrganSimError, ScenarioError
from .schema import Scenario, scenario_from_dict, scenario_to_dict

__all__ = ["sweep", "parameter_sets", "parse_vary", "apply_parameters", "run_id",
           "SWEEP_INSTALL_HINT", "require_sweep_dependencies"]

log = logging.getLogger(__name__)

#: What to install for sweeps.
SWEEP_INSTALL_HINT = 'pip install "organsim[sweep]"'

#: Statuses of a run: finished; stopped early by the solver (results kept); raised.
DONE_STATUSES = ("ok", "incomplete")


def require_sweep_dependencies() -> None:
    """Raise a one-line :class:`OrganSimError` naming the install command if Dask or pandas is missing."""
    missing = []
    for mod in ("dask.distributed", "pandas", "pyarrow"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod.split(".")[0])
    if missing:
        raise OrganSimError(f"sweeps need {', '.join(missing)}, which are not installed: "
                            f"{SWEEP_INSTALL_HINT}")


# ------------------------------------------------------------- parameters
def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_value(text: str) -> Any:
    """A value as TOML reads it (numbers, booleans, quoted strings, lists); else the bare text.

    Examples
    --------
    >>> parse_value("2e3"), parse_value("true"), parse_value("[1, 2, 3]"), parse_value("neo_hookean")
    (2000.0, True, [1, 2, 3], 'neo_hookean')
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_vary(spec: str) -> tuple[str, list]:
    """``KEY=V1,V2,...`` -> (key, values). Values are TOML (lists stay whole).

    Raises
    ------
    ScenarioError
        If there is no ``=``, no key or no value.
    """
    key, sep, values = str(spec).partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise ScenarioError(f"{spec!r}: expected KEY=VALUE[,VALUE...], e.g. materials.default.E_pa=2000,4000")
    _parse_key(key.rstrip("+"))
    vals = [parse_value(v) for v in _split_top(values)]
    if any(v == "" for v in vals):
        raise ScenarioError(f"{spec!r}: an empty value; separate values with single commas")
    return key, vals


def parameter_sets(grid: dict[str, list] | list[dict], zipped: dict[str, list] | None = None) -> list[dict]:
    """The runs of a sweep: every combination of ``grid``'s values (or ``grid`` itself if it is
    a list of parameter dicts), each combined with every entry of ``zipped`` (lists of equal
    length, taken together).

    Raises
    ------
    ScenarioError
        If ``zipped``'s lists differ in length, or a key has no values.
    """
    if isinstance(grid, dict):
        for k, v in grid.items():
            if not isinstance(v, (list, tuple)) or len(v) == 0:
                raise ScenarioError(f"{k}: expected a non-empty list of values, got {v!r}")
        keys = list(grid)  # the last key varies fastest
        sets = [dict(zip(keys, combo)) for combo in itertools.product(*(list(grid[k]) for k in keys))]
    else:
        sets = [dict(p) for p in grid]
    if zipped:
        lengths = {k: len(v) for k, v in zipped.items()}
        if len(set(lengths.values())) > 1:
            raise ScenarioError("values taken together (--list) must be as many for every key, got "
                                + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        n = next(iter(lengths.values()))
        rows = [{k: zipped[k][i] for k in zipped} for i in range(n)]
        sets = [{**a, **b} for a in (sets or [{}]) for b in rows]
    return sets


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parse_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    for m in _TOKEN.finditer(key):
        if m.start() != pos and key[pos:m.start()] != ".":
            break
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts or pos != len(key) or isinstance(parts[0], int):
        raise ScenarioError(f"{key!r}: not a scenario key; write a dotted path with list indices, "
                            "e.g. materials.default.E_pa, dt_s or timeline[1].path_mm")
    return parts


def _add(base: Any, offset: Any, key: str) -> Any:
    """``base + offset``: numbers, points plus a vector, paths plus a vector per way point."""
    num = (int, float)
    if isinstance(base, num) and not isinstance(base, bool) and isinstance(offset, num):
        return base + offset
    if isinstance(base, list) and isinstance(offset, list):
        if base and all(isinstance(p, list) for p in base):
            return [_add(p, offset, key) for p in base]
        if len(base) == len(offset) and all(isinstance(c, num) for c in base + offset):
            return [a + b for a, b in zip(base, offset)]
    raise ScenarioError(f"{key}+: cannot add {offset!r} to {base!r}; an offset adds a number to a "
                        "number, or a vector [dx, dy, dz] to a point or to every point of a path")


def _set(doc: dict, key: str, value: Any) -> None:
    offset = key.endswith("+")
    path = _parse_key(key.rstrip("+"))
    node: Any = doc
    walked = ""
    for i, part in enumerate(path):
        last = i == len(path) - 1
        here = f"{walked}[{part}]" if isinstance(part, int) else (f"{walked}.{part}" if walked else part)
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ScenarioError(f"{here}: {walked} is not a list")
            if part >= len(node):
                raise ScenarioError(f"{here}: index out of range; {walked} has {len(node)} entries")
        elif not isinstance(node, dict):
            raise ScenarioError(f"{here}: {walked} is not a table")
        if last:
            if offset:
                if isinstance(part, str) and part not in node:
                    raise ScenarioError(f"{here}+: the scenario has no value here to offset")
                node[part] = _add(node[part], value, here)
            else:
                node[part] = copy.deepcopy(value)
            return
        if isinstance(part, str) and part not in node:
            # a region without its own material starts from the default one
            if walked == "materials" and "default" in node:
                node[part] = copy.deepcopy(node["default"])
            else:
                node[part] = {}
        node = node[part]
        walked = here


def apply_parameters(scenario: Scenario | dict, params: dict[str, Any]) -> Scenario:
    """The scenario with ``params`` (dotted key -> value) set, validated.

    A material key of a region the scenario does not list (``materials.tumour.E_pa``)
    starts that region from the ``default`` material.

    Raises
    ------
    ScenarioError
        Naming the parameter and what is wrong with it.

    Examples
    --------
    >>> s = apply_parameters(Scenario(), {"materials.default.E_pa": 4000.0, "dt_s": 0.01})
    >>> s.materials["default"].E_pa, s.dt_s
    (4000.0, 0.01)
    >>> apply_parameters(Scenario(), {"dt_s": "fast"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    organsim.errors.ScenarioError: parameter dt_s = 'fast': dt_s: expected a number, got a string 'fast'; ...
    """
    doc = copy.deepcopy(scenario if isinstance(scenario, dict) else scenario_to_dict(scenario))
    for key, value in params.items():
        try:
            _set(doc, key, value)
        except ScenarioError as exc:
            raise ScenarioError(f"parameter {key} = {value!r}: {exc}") from None
    try:
        return scenario_from_dict(doc)
    except ScenarioError as exc:
        msg = str(exc)
        where = msg.split(":", 1)[0]
        bad = next((k for k in params if where == k.rstrip("+") or where.startswith(k.rstrip("+") + ".")
                    or where.startswith(k.rstrip("+") + "[") or k.rstrip("+").startswith(where)), None)
        prefix = f"parameter {bad} = {params[bad]!r}: " if bad else "a parameter set: "
        raise ScenarioError(prefix + msg) from None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def run_id(base: Scenario | dict, params: dict) -> str:
    """The id (12 hex digits) of one run: a hash of the base scenario and the parameters.

    Examples
    --------
    >>> run_id(Scenario(), {"dt_s": 0.01}) == run_id(Scenario(), {"dt_s": 0.01})
    True
    >>> run_id(Scenario(), {"dt_s": 0.01}) == run_id(Scenario(), {"dt_s": 0.02})
    False
    """
    doc = base if isinstance(base, dict) else scenario_to_dict(base)
    return hashlib.sha256((_canonical(doc) + "|" + _canonical(params)).encode()).hexdigest()[:12]


def _seed_for(rid: str, base_seed: int) -> int:
    return int(hashlib.sha256(f"{base_seed}:{rid}".encode()).hexdigest()[:8], 16)


# ----------------------------------------------------------- one run
def _flatten(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value, default=float)
    elif value is None or isinstance(value, (bool, int, float, str)):
        out[prefix] = value
    else:
        out[prefix] = float(value)


def run_one(scenario_doc: dict, params: dict, runs_dir: str, rid: str, seed: int,
            image: bool = False) -> dict:
    """Run one parameter set into ``runs_dir/rid`` and return its row (what ``run.json`` holds).

    This is the task a Dask worker executes. It never raises for a failing run: the
    error goes in the row (``status`` ``failed``, ``error``) and in ``error.txt``. The
    results are written to a hidden folder and renamed into place at the end, so a
    worker killed mid-run leaves no half-written run behind (the sweep reruns it).
    """
    from .. import __version__
    from .runner import run

    runs = Path(runs_dir)
    final = runs / rid
    done = _read_row(final)
    if done is not None and done.get("status") in DONE_STATUSES:
        return done  # a retry of a run that had finished (its worker died afterwards)
    tmp = runs / f".{rid}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    row: dict[str, Any] = {"run_id": rid, "status": "failed", "error": None, "seed": seed,
                           "parameters": params, "organsim_version": __version__,
                           "worker": f"{socket.gethostname()}:{os.getpid()}"}
    t0 = _time.perf_counter()
    try:
        scenario = scenario_from_dict(scenario_doc)
        res = run(scenario, tmp, progress=False, image=image, parameters=params, seed=seed)
        doc = json.loads(res.metrics_path.read_text(encoding="utf-8"))
        row["status"] = "ok" if res.completed else "incomplete"
        if not res.completed:
            row["error"] = res.notes[0] if res.notes else "the run stopped early"
        row["scenario_sha256"] = doc.get("scenario_sha256")
        row["metrics"] = doc["metrics"]
        row["score"] = doc["score"]
        row["timings"] = doc["timings"]
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        first = str(exc).splitlines()[0] if str(exc) else ""
        row["error"] = f"{type(exc).__name__}: {first}"
        (tmp / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    row["wall_s"] = _time.perf_counter() - t0
    (tmp / "run.json").write_text(json.dumps(row, indent=2, default=float), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)  # an earlier failed attempt
    os.replace(tmp, final)
    row["outdir"] = str(final)
    return row


def _read_row(folder: Path) -> dict | None:
    try:
        row = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    row["outdir"] = str(folder)
    return row


def _table_row(row: dict, param_keys: list[str]) -> dict:
    out: dict[str, Any] = {"run_id": row.get("run_id"), "status": row.get("status"),
                           "error": row.get("error")}
    params = row.get("parameters") or {}
    for k in param_keys:
        v = params.get(k)
        out[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    out["seed"] = row.get("seed")
    flat: dict = {}
    _flatten("", row.get("metrics") or {}, flat)
    score = row.get("score") or {}
    _flatten("score", {k: v for k, v in score.items() if k != "score"}, flat)
    out.update(flat)
    out["score"] = score.get("score")
    for k in ("wall_s", "median_step_ms", "steps"):
        v = (row.get("timings") or {}).get(k) if k != "wall_s" else row.get("wall_s")
        out[k if k == "wall_s" else f"timings.{k}"] = v
    out["outdir"] = row.get("outdir")
    return out


def _frame(rows: list[dict], param_keys: list[str]):
    import pandas as pd

    return pd.DataFrame([_table_row(r, param_keys) for r in rows])


def _write_tables(df, outdir: Path) -> tuple[Path, Path]:
    """summary.parquet and summary.csv, atomically (columns Parquet cannot type become text)."""
    import pandas as pd

    from ..io.atomic import atomic_output

    pq = outdir / "summary.parquet"
    csv = outdir / "summary.csv"
    safe = df.copy()
    for col in safe.columns:
        if safe[col].dtype == object:
            kinds = {type(v) for v in safe[col] if v is not None and not (isinstance(v, float) and pd.isna(v))}
            if len(kinds) > 1 and not kinds <= {int, float}:
                safe[col] = safe[col].map(lambda v: None if v is None else str(v))
    with atomic_output(pq) as tmp:
        safe.to_parquet(tmp, index=False)
    with atomic_output(csv) as tmp:
        df.to_csv(tmp, index=False)
    return pq, csv


# ---------------------------------------------------------------- sweep
def _make_client(client, scheduler: str | None, workers: int | None):
    """(client, things to close): the given client, one on ``scheduler``, or a LocalCluster."""
    from dask.distributed import Client, LocalCluster

    if client is not None:
        return client, []
    if scheduler:
        try:
            c = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise OrganSimError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); "
                                "start one with 'dask scheduler' and workers with "
                                "'dask worker ADDRESS', or leave --scheduler out for a local cluster") from None
        return c, [c]
    n = int(workers or max(1, os.cpu_count() or 1))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           scheduler_kwargs={"dashboard": False})
    c = Client(cluster)
    return c, [c, cluster]


def _load_base(scenario) -> Scenario:
    if isinstance(scenario, (str, os.PathLike)):
        from .loader import load_scenario

        return load_scenario(scenario)
    if isinstance(scenario, dict):
        return scenario_from_dict(scenario)
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"expected a Scenario, a scenario dict or a .toml path, got {type(scenario).__name__}")
    s = copy.deepcopy(scenario)
    if s.organ.path is not None and not Path(s.organ.path).is_absolute():
        s.organ.path = str(Path(s.organ.path).resolve())  # workers run elsewhere
    return s


def sweep(scenario, grid: dict[str, list] | list[dict], *, client=None, outdir: str | os.PathLike | None = None,
          zipped: dict[str, list] | None = None, scheduler: str | None = None, workers: int | None = None,
          seed: int = 0, image: bool = False, retries: int = 1, progress: bool = False,
          on_result=None):
    """Run a scenario once per parameter set on Dask; a DataFrame of parameters and metrics.

    Parameters
    ----------
    scenario : Scenario, dict or path
        The base scenario (a ``.toml`` path is loaded as ``organsim run`` does).
    grid : dict of key -> list of values, or list of dicts
        Every combination of the values (a dict), or the parameter sets themselves (a
        list). Keys are dotted scenario paths (see the module docstring).
    client : dask.distributed.Client, optional
        Where to run. Without it, ``scheduler`` (an address such as
        ``tcp://10.0.0.5:8786``) is used, else a LocalCluster of ``workers`` processes on
        this machine (default: one per core), closed at the end. Workers elsewhere must
        see ``outdir`` and the organ mesh at the same paths (a shared file system).
    outdir : str or Path, optional
        Where the runs and the summary go (default: a new temporary folder). A folder
        of an earlier sweep of the same scenario keeps its finished runs: only what is
        missing (or failed) runs again.
    zipped : dict of key -> list, optional
        Values taken together rather than combined (all lists of one length).
    seed : int
        Base random seed; each run's seed is derived from it and the run's id, and recorded.
    image : bool
        Render each run's final state (``final.png``; needs off-screen rendering on the workers).
    retries : int
        How many times Dask resubmits a task that raised (a run's own errors are caught and
        recorded, so this covers the unexpected); a task whose worker died is rescheduled
        by Dask anyway (up to ``distributed.scheduler.allowed-failures`` times).
    progress : bool
        Show a progress bar of runs done and failed.
    on_result : callable, optional
        Called with each finished run's row (a dict) as it arrives.

    Returns
    -------
    pandas.DataFrame
        One row per parameter set, in the order given: ``run_id``, ``status`` (ok,
        incomplete, failed), ``error``, the parameters, ``seed``, every metric (nested ones
        as dotted names), ``score.*`` and ``score``, ``wall_s``, ``outdir``. ``df.attrs``
        holds ``outdir``, ``skipped`` (runs already done) and ``wall_s``.

    Raises
    ------
    ScenarioError
        If a parameter set is not a valid scenario (before anything runs), naming the key.
    OrganSimError
        If Dask or pandas is missing, or the scheduler cannot be reached.
    """
    require_sweep_dependencies()
    import tempfile

    from .. import __version__
    from ..io.atomic import atomic_output
    from .runner import scenario_hash

    t_start = _time.perf_counter()
    base = _load_base(scenario)
    base_doc = scenario_to_dict(base)
    sets = parameter_sets(grid, zipped)
    if not sets:
        raise ScenarioError("the sweep has no parameter sets; give at least one value per key")
    param_keys = list(dict.fromkeys(k for p in sets for k in p))
    docs, ids = [], []
    for p in sets:
        docs.append(scenario_to_dict(apply_parameters(base_doc, p)))  # validate all before running any
        ids.append(run_id(base_doc, p))
    if len(set(ids)) != len(ids):
        dup = next(p for p, i in zip(sets, ids) if ids.count(i) > 1)
        raise ScenarioError(f"the parameter set {dup} is given more than once")
    out = Path(outdir) if outdir is not None else Path(tempfile.mkdtemp(prefix="organsim-sweep-"))
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for stale in runs.glob(".*.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a worker killed in an earlier sweep
    meta = {"organsim_version": __version__, "scenario_sha256": scenario_hash(base),
            "scenario": base_doc, "parameter_sets": [{"run_id": i, "parameters": p} for i, p in zip(ids, sets)],
            "seed": seed}
    with atomic_output(out / "sweep.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")

    rows: dict[str, dict] = {}
    todo = []
    for i, (p, doc, rid) in enumerate(zip(sets, docs, ids)):
        row = _read_row(runs / rid)
        if row is not None and row.get("status") in DONE_STATUSES:
            rows[rid] = row
        else:
            todo.append((i, p, doc, rid))
    skipped = len(rows)
    if todo:
        from dask.distributed import as_completed

        c, owned = _make_client(client, scheduler, workers)
        bar = None
        try:
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(todo), desc="sweep", unit="run")
            futures = {}
            for _i, p, doc, rid in todo:
                f = c.submit(run_one, doc, p, str(runs.resolve()), rid, _seed_for(rid, seed), image,
                             key=f"organsim-run-{rid}-{uuid.uuid4().hex[:6]}", pure=False, retries=retries)
                futures[f] = (p, rid)
            failed = 0
            for f in as_completed(list(futures)):
                p, rid = futures[f]
                try:
                    row = f.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated deaths
                    row = {"run_id": rid, "status": "failed", "parameters": p, "seed": _seed_for(rid, seed),
                           "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
                rows[rid] = row
                failed += row.get("status") == "failed"
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(failed=failed)
                if on_result is not None:
                    on_result(row)
        finally:
            if bar is not None:
                bar.close()
            for thing in owned:
                thing.close()
    for stale in runs.glob(".*.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    ordered = [rows[rid] for rid in ids]
    df = _frame(ordered, param_keys)
    _write_tables(df, out)
    df.attrs.update({"outdir": str(out), "skipped": skipped, "wall_s": _time.perf_counter() - t_start})
    return df
