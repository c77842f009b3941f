"""``organsim sweep``: a scenario over a grid of parameters, on Dask."""

from __future__ import annotations

import argparse
import time

from ..errors import OrganSimError, ScenarioError

__all__ = ["register", "cmd_sweep"]

#: Metrics shown in the printed table (when the runs have them).
_SHOWN = ("score", "peak_force_n", "peak_stress_pa", "damaged_volume_ml", "cut_length_mm", "wall_s")


def register(subparsers) -> None:
    """Add the ``sweep`` subcommand."""
    p = subparsers.add_parser(
        "sweep", help="run a scenario over a grid of parameters (Dask), one table of results",
        description="Run a scenario once per parameter set on a Dask cluster (a local one by "
                    "default, or --scheduler ADDRESS) and write OUTDIR/summary.parquet and "
                    "OUTDIR/summary.csv (parameters -> every metric) and each run's results in "
                    "OUTDIR/runs/<id>/. KEY is a dotted scenario path with list indices "
                    "(materials.default.E_pa, dt_s, timeline[1].path_mm, organ.path); KEY+= adds "
                    "an offset (timeline[0].at_mm+=[0,0,5]). Values are TOML: numbers, "
                    "\"strings\", [lists]. Rerun the same command to finish an interrupted "
                    "sweep: runs already done are skipped. Needs: " + 'pip install "organsim[sweep]"')
    p.add_argument("scenario", help="scenario file (.toml)")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a parameter and its values; repeat it for a grid (every combination)")
    p.add_argument("--list", dest="zipped", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="values taken together with the other --list keys (same count each), "
                        "combined with the --vary grid")
    p.add_argument("-o", "--outdir", required=True, help="output folder (created; reused on restart)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler (e.g. tcp://10.0.0.5:8786); its workers must see "
                        "OUTDIR and the organ mesh at the same paths. Default: a local cluster")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--seed", type=int, default=0, help="base random seed (each run's is derived and recorded)")
    p.add_argument("--image", action="store_true", help="render each run's final state (final.png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)


def _parse(flag: str, specs: list[str]) -> dict[str, list]:
    from ..scenario.sweeps import parse_vary

    out: dict[str, list] = {}
    for spec in specs:
        try:
            key, values = parse_vary(spec)
        except ScenarioError as exc:
            raise ScenarioError(f"{flag} {exc}") from None
        if key in out:
            raise ScenarioError(f"{flag} {key}: given twice; list all its values in one {flag}")
        out[key] = values
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..scenario.sweeps import require_sweep_dependencies, sweep

    require_sweep_dependencies()
    if not getattr(args, "verbose", False):
        import logging

        # Dask logs every scheduler and worker start at INFO: keep the terminal to the results
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if not args.vary and not args.zipped:
        raise OrganSimError("nothing to vary: give at least one --vary KEY=V1,V2,... "
                            "(e.g. --vary materials.default.E_pa=2000,4000,8000)")
    if args.workers is not None and args.workers < 1:
        raise OrganSimError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise OrganSimError("--workers sets the size of the local cluster; with --scheduler the "
                            "cluster's own workers run the sweep: give one or the other")
    grid = _parse("--vary", args.vary)
    zipped = _parse("--list", args.zipped)
    both = set(grid) & set(zipped)
    if both:
        raise ScenarioError(f"--list {sorted(both)[0]}: also given with --vary; give each key once")
    from ..scenario.loader import load_scenario

    scenario = load_scenario(args.scenario)
    t0 = time.perf_counter()
    try:
        df = sweep(scenario, grid if grid else [{}], zipped=zipped or None, outdir=args.outdir,
                   scheduler=args.scheduler, workers=args.workers, seed=args.seed, image=args.image,
                   progress=not args.no_progress)
    except ScenarioError as exc:
        raise ScenarioError(f"--vary/--list {exc}") from None
    wall = time.perf_counter() - t0
    n = len(df)
    counts = df["status"].value_counts().to_dict()
    skipped = df.attrs.get("skipped", 0)
    print(f"{n} runs: {counts.get('ok', 0)} ok, {counts.get('incomplete', 0)} stopped early, "
          f"{counts.get('failed', 0)} failed ({skipped} already done, skipped); wall {wall:.1f} s")
    keys = [k for k in list(grid) + list(zipped) if k in df.columns]
    shown = keys + ["status"] + [c for c in _SHOWN if c in df.columns and df[c].notna().any()]
    with _pandas_display():
        print(df[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for _, row in df[df["status"] == "failed"].iterrows():
        print(f"failed: {row['run_id']}: {row['error']}")
    out = df.attrs["outdir"]
    print("wrote:")
    print(f"  summary: {out}/summary.parquet, {out}/summary.csv")
    print(f"  runs: {out}/runs/<run id>/ (metrics.json, series.pvd, steps.csv, forces.csv)")
    return 1 if counts.get("failed", 0) else 0


def _pandas_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 20)
