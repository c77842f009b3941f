"""Run benchmarks and record their numbers.

Each benchmark is a module ``benchmarks/bench_<name>.py`` (dashes in the id
become underscores) exposing ``ID`` (e.g. ``"step-beam-19k"``) and
``run(quick: bool = False) -> dict``. The dict is printed as a table and
written, with the date and machine, to ``benchmarks/results/<ID>.json``, which
is committed so the history of every figure is in git.

Usage::

    python -m benchmarks                 # all
    python -m benchmarks step-beam-19k   # one or more by id
    python -m benchmarks --quick         # smaller sizes, for a smoke run
    python -m benchmarks fuzz-readers --n 20000   # size for benchmarks that take one
    python -m benchmarks --list
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import inspect
import json
import os
import platform
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def discover() -> dict[str, str]:
    """Map benchmark id -> module name."""
    found = {}
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.name.startswith("bench_"):
            mod = importlib.import_module(f"benchmarks.{info.name}")
            found[getattr(mod, "ID", info.name[6:].replace("_", "-"))] = f"benchmarks.{info.name}"
    return dict(sorted(found.items()))


def _print_table(bench_id: str, result: dict) -> None:
    print(f"\n== {bench_id}")
    rows = result.get("rows")
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        cols = list(dict.fromkeys(k for r in rows for k in r))
        fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
        widths = [max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols]
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        for r in rows:
            print("  ".join(fmt(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)))
    for k, v in result.items():
        if k != "rows":
            print(f"{k}: {v}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="benchmark ids (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--list", action="store_true", help="list benchmark ids and exit")
    parser.add_argument("--no-save", action="store_true", help="do not write results/*.json")
    parser.add_argument("--n", type=int, default=None,
                        help="number of cases, for benchmarks whose run() takes n (fuzz-readers)")
    args = parser.parse_args(argv)
    known = discover()
    if args.list:
        print("\n".join(known))
        return 0
    unknown = [i for i in args.ids if i not in known]
    if unknown:
        print(f"unknown benchmark id(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for bench_id in args.ids or list(known):
        mod = importlib.import_module(known[bench_id])
        takes_n = "n" in inspect.signature(mod.run).parameters
        if args.n is not None and not takes_n:
            print(f"{bench_id}: --n is ignored (its run() takes no n)", file=sys.stderr)
        result = mod.run(quick=args.quick, **({"n": args.n} if takes_n and args.n else {}))
        _print_table(bench_id, result)
        if not args.no_save and not args.quick:
            record = {
                "id": bench_id,
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version()},
                **result,
            }
            out = RESULTS / f"{bench_id}.json"
            tmp = out.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
            tmp.replace(out)
            print(f"recorded {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
