"""``organsim dataset``: many deformations of one organ under random loads, in one HDF5 file."""

from __future__ import annotations

import argparse
import time

__all__ = ["register", "cmd_dataset"]


def register(subparsers) -> None:
    """Add the ``dataset`` subcommand."""
    p = subparsers.add_parser(
        "dataset", help="random grasp-and-pull deformations of one organ, in one HDF5 file",
        description="For each sample, grasp a random point of the scenario's organ, pull it a random "
                    "distance (up to --max-pull-mm) in a random direction, turn gravity to a random "
                    "direction, and solve for equilibrium; write the rest mesh once and each sample's "
                    "displacement, von Mises stress and load parameters to OUTPUT.h5 (one sample per "
                    "chunk, for a learning pipeline). The layout is documented in "
                    "organsim.scenario.dataset.")
    p.add_argument("scenario", help="scenario file (.toml): organ, materials, fixations, gravity")
    p.add_argument("-n", "--samples", type=int, required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help="the .h5 file to write")
    p.add_argument("--seed", type=int, default=0, help="base seed (sample k uses seed + k)")
    p.add_argument("--max-pull-mm", type=float, default=20.0, help="largest pull (mm, default 20)")
    p.add_argument("--radius-mm", type=float, default=8.0, help="grasp radius (mm, default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dataset)


def cmd_dataset(args: argparse.Namespace) -> int:
    import h5py

    from ..errors import OrganSimError
    from ..scenario.dataset import make_dataset
    from ..scenario.loader import load_scenario

    if args.samples < 1:
        raise OrganSimError(f"--samples must be at least 1, got {args.samples}")
    scenario = load_scenario(args.scenario)
    t0 = time.perf_counter()
    path = make_dataset(scenario, args.samples, args.output, seed=args.seed,
                        max_pull=args.max_pull_mm * 1e-3, radius=args.radius_mm * 1e-3,
                        progress=not args.no_progress)
    with h5py.File(path, "r") as h5:
        ok = int(h5["samples/ok"][:].sum())
        n, m = h5["rest/points"].shape[0], h5["rest/tets"].shape[0]
    wall = time.perf_counter() - t0
    print(f"wrote {path}: {ok} of {args.samples} samples solved ({n} nodes, {m} tets), "
          f"{wall:.1f} s ({wall / args.samples:.2f} s per sample)")
    return 0 if ok == args.samples else 1
