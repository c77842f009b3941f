"""The pattern-cutting exercise: cut along a marked circle, scored, over several attempts.

In the spirit of the pattern-cutting task of laparoscopic skills curricula
(FLS): a soft-tissue pad held at its four edges carries a marked circle
(25 mm radius); the trainee cuts along it. Each attempt is scored by the
deviation of the cut from the circle (mean and Hausdorff, mm; length cut
outside a 2 mm band) and by time, plus force and tissue damage, and stored in
a training history (SQLite). The report of the last attempt shows the
learning curve.

Here the "trainee" is scripted: each attempt is faster and steadier than the
one before (the cut wanders off the line by less). Replace the paths with
recorded ones (or cut interactively with ``organsim view
examples/scenarios/pattern_cutting.toml``) to score a real attempt.

    python examples/05_pattern_cutting.py            # 4 attempts
    python examples/05_pattern_cutting.py --quick    # 2 short attempts (tests)

Writes ``OUT/attempt_N/`` (series, metrics.json, report.html) and
``OUT/history.sqlite``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def attempt_path(wobble_mm: float, n: int, seed: int) -> tuple[tuple[float, float, float], ...]:
    """A trainee's cut around the 25 mm circle, wandering off it by up to ``wobble_mm``."""
    rng = np.random.default_rng(seed)
    th = np.linspace(0.0, 2.0 * np.pi, n + 1)
    phase = rng.uniform(0, 2 * np.pi, 2)
    r = 25.0 + wobble_mm * (0.6 * np.sin(3 * th + phase[0]) + 0.4 * np.sin(5 * th + phase[1]))
    return tuple((float(ri * np.cos(t)), float(ri * np.sin(t)), 15.0) for ri, t in zip(r, th))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--outdir", default="pattern_cutting", help="output folder")
    ap.add_argument("--trainee", default="student", help="trainee name in the history")
    ap.add_argument("--quick", action="store_true", help="2 short, coarse attempts (for tests)")
    args = ap.parse_args(argv)

    from organsim.scenario import load_scenario
    from organsim.scenario.history import TrainingHistory
    from organsim.scenario.runner import run

    base = load_scenario(HERE / "scenarios" / "pattern_cutting.toml")
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "history.sqlite"
    # (cut time s, wobble mm) of each attempt: faster and steadier with practice
    plan = [(1.6, 2.5), (1.2, 1.0)] if args.quick else [(3.2, 3.0), (2.6, 2.0), (2.2, 1.0), (2.0, 0.5)]
    n_points = 16 if args.quick else 48
    for k, (cut_time, wobble) in enumerate(plan, start=1):
        s = copy.deepcopy(base)
        s.name = "pattern cutting"
        cut = s.timeline[0]
        cut.path_mm = attempt_path(wobble, n_points, seed=k)
        cut.duration_s = cut_time
        s.dt_s = 0.08 if args.quick else 0.04
        s.duration_s = round(cut_time + 2 * s.dt_s, 6)
        s.output.every = 100 if args.quick else 5
        res = run(s, out / f"attempt_{k}", progress=not args.quick, trainee=args.trainee,
                  history_path=db, image=not args.quick or k == len(plan))
        m = res.metrics
        print(f"attempt {k}: score {res.score['score']:5.1f}  time {m['procedure_time_s']:.1f} s  "
              f"deviation mean {m.get('mean_deviation_mm', float('nan')):.2f} mm, "
              f"Hausdorff {m.get('hausdorff_mm', float('nan')):.2f} mm, "
              f"outside band {100 * m.get('fraction_outside', 0):.0f} %")
    h = TrainingHistory(db)
    n, scores = h.learning_curve(args.trainee, "pattern cutting")
    reached = h.proficiency_reached(args.trainee, "pattern cutting")
    print(f"learning curve of {args.trainee}: {', '.join(f'{x:.0f}' for x in scores)}"
          + (f"; proficiency reached at attempt {reached}" if reached else "; proficiency not reached yet"))
    print(f"report: {res.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
