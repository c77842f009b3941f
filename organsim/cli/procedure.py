"""``organsim run``, ``organsim view`` and ``organsim demo``."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..errors import OrganSimError

__all__ = ["register"]

log = logging.getLogger(__name__)

MESH_EXTENSIONS = (".vtu", ".vtk", ".msh", ".mesh", ".xdmf", ".xmf")


def register(subparsers) -> None:
    """Add the run, view and demo subcommands."""
    p = subparsers.add_parser(
        "run", help="run a scenario (TOML): series, metrics, report",
        description="Run a procedure scenario to the end. Writes OUTDIR/series.pvd (open it in "
                    "ParaView or with 'organsim view OUTDIR'), OUTDIR/metrics.json and "
                    "OUTDIR/report.html.")
    p.add_argument("scenario", help="scenario file (.toml); see examples/scenarios/")
    p.add_argument("-o", "--outdir", required=True, help="output folder (created)")
    p.add_argument("--record", metavar="VIDEO", help="also record a video (.mp4 or .gif), off-screen")
    p.add_argument("--trainee", help="record this attempt in the training history under this name")
    p.add_argument("--history", metavar="DB", help="training history database "
                   "(default ~/.organsim/history.sqlite)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser(
        "view", help="view a mesh, a recorded run (PVD or output folder) or run a scenario live",
        description="Open the viewer. A mesh file (VTU, MSH, MEDIT, XDMF) is shown as is; a .pvd "
                    "series or an 'organsim run' output folder plays back with a time slider; a "
                    "scenario (.toml) runs live and can be grasped and cut with the mouse (press h "
                    "in the window for the keys). Without a display, use --screenshot.")
    p.add_argument("path", help="mesh file, .pvd, output folder, scenario .toml, or an exercise "
                   "(pattern-cutting, retraction)")
    p.add_argument("--units", default=None,
                   help="length unit of a mesh file without one (default mm; VTU from organsim is m)")
    p.add_argument("--screenshot", metavar="PNG", help="render off-screen to this PNG and exit")
    p.add_argument("--time", type=float, help="time (s) of the series frame to show first")
    p.add_argument("--camera", default=None, help="camera preset (anterior, posterior, "
                   "superior, inferior, right, left, surgeon, demo); default: the scenario's")
    p.add_argument("--trainee", help="a live attempt: record it in this trainee's training history")
    p.add_argument("--history", metavar="DB", help="training history database "
                   "(default ~/.organsim/history.sqlite)")
    p.add_argument("-o", "--outdir", help="where a live attempt's results go (metrics.json, "
                   "report.html, attempt.toml; default ./organsim-attempts/<scenario>-<time>)")
    p.set_defaults(func=cmd_view)

    p = subparsers.add_parser(
        "warmup", help="compile organsim's numeric kernels now (first use only)",
        description="Compile (and cache) the numeric kernels a live session needs, so that the "
                    "first window opens quickly and the first cut does not pause. The first run "
                    "on a machine takes a minute or two; later runs load the cache in seconds.")
    p.set_defaults(func=cmd_warmup)

    p = subparsers.add_parser(
        "demo", help="the shipped liver: held, incised and retracted",
        description="Run the demo procedure on the shipped liver: fixed by its ligament, a scalpel "
                    "makes a 6 cm incision and a grasper retracts it open. With a display it "
                    "opens the interactive viewer; without one it records a video and writes the "
                    "results, and prints where.")
    p.add_argument("-o", "--outdir", default="organsim-demo", help="output folder (default ./organsim-demo)")
    p.add_argument("--no-window", action="store_true", help="record a video even if a display exists")
    p.add_argument("--gif", action="store_true", help="record a GIF instead of an MP4")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)


# ------------------------------------------------------------------- run
def _print_results(res, wall: float) -> None:
    m, s = res.metrics, res.score
    if s.get("incomplete"):
        print("not scored: the run did not complete (see the note below)")
    else:
        print(f"score {s['score']:.1f}/100" + ("  (proficient attempt)" if s["proficient_attempt"] else ""))
    parts = ", ".join(f"{k} {v * 100:.0f}%" for k, v in s["parts"].items())
    if parts:
        print(f"  parts: {parts}")
    keys = [("procedure_time_s", "time", "s"), ("peak_force_n", "peak force", "N"),
            ("peak_stress_pa", "peak stress", "Pa"), ("damaged_volume_ml", "damaged volume", "mL"),
            ("cut_length_mm", "cut length", "mm"), ("mean_deviation_mm", "cut deviation (mean)", "mm"),
            ("hausdorff_mm", "cut deviation (Hausdorff)", "mm"),
            ("resected_volume_ml", "resected", "mL"), ("remaining_fraction", "remaining fraction", "")]
    if not m.get("resected_volume_ml"):
        keys = [k for k in keys if k[0] not in ("resected_volume_ml", "remaining_fraction")]
    keys.append(("detached_fragments", "pieces cut free", ""))
    for k, label, unit in keys:
        if k in m:
            v = m[k]
            text = f"{v:.2f}" if unit == "mm" else f"{v:.4g}"
            print(f"  {label}: {text} {unit}".rstrip())
    t = res.timings
    if t.get("median_step_ms") is not None:
        print(f"  {t['steps']} steps, median {t['median_step_ms']:.0f} ms/step; wall {wall:.1f} s")
    print("wrote:")
    for label, path in (("series (ParaView)", res.series), ("metrics", res.metrics_path),
                        ("report", res.report), ("video", res.video), ("image", res.image),
                        ("attempt (replay with organsim run)", res.attempt)):
        if path is not None:
            print(f"  {label}: {path}")
    for n in res.notes:
        print(f"note: {n}")


def cmd_run(args: argparse.Namespace) -> int:
    from ..scenario.loader import load_scenario
    from ..scenario.runner import run

    scenario = load_scenario(args.scenario)
    if args.record is not None:
        from ..viewer.recording import video_path

        video_path(args.record)  # check the extension before running
    t0 = time.perf_counter()
    res = run(scenario, args.outdir, record=args.record, progress=not args.no_progress,
              trainee=args.trainee, history_path=args.history)
    _print_results(res, time.perf_counter() - t0)
    return 0 if res.completed else 1


# ------------------------------------------------------------------ view
def cmd_view(args: argparse.Namespace) -> int:
    from ..scenario.exercises import EXERCISES
    from ..viewer.viewer import Viewer, has_display

    path = Path(args.path)
    is_exercise = not path.exists() and args.path.strip().lower().replace("_", "-") in EXERCISES
    if not path.exists() and not is_exercise:
        raise OrganSimError(f"{path}: no such file or folder; give a mesh file, a .pvd series, "
                            "an 'organsim run' output folder, a scenario .toml or an exercise "
                            f"({', '.join(sorted(EXERCISES))})")
    if args.screenshot is None and not has_display():
        raise OrganSimError("no display to open a window on; render to a file with "
                            "--screenshot out.png (or run under xvfb-run)")
    camera = args.camera or "surgeon"
    if is_exercise or path.suffix.lower() == ".toml":
        return _live_attempt(args)
    if path.is_dir() or path.suffix.lower() == ".pvd":
        from ..viewer.replay import replay

        replay(path, screenshot=args.screenshot, time=args.time, camera=camera)
    else:
        from ..io import read_any
        from ..mesh.tetmesh import TetMesh

        units = args.units or ("m" if path.suffix.lower() == ".vtu" else "mm")
        obj = read_any(path, units=units)
        if not isinstance(obj, TetMesh):
            raise OrganSimError(f"{path}: holds a {type(obj).__name__}, not a volume mesh; "
                                "mesh it first with 'organsim mesh'")
        v = Viewer(obj, off_screen=args.screenshot is not None)
        v.scene.camera_preset(camera)
        if args.screenshot is not None:
            v.screenshot(args.screenshot)
            v.close()
        else:
            v.show()
    if args.screenshot is not None:
        print(f"wrote {args.screenshot}")
    return 0


def _live_attempt(args: argparse.Namespace) -> int:
    """A scenario or exercise in the live window; scored, recorded and saved for replay at the end."""
    import datetime as _dt
    import re

    from ..scenario.exercises import resolve_scenario
    from ..scenario.procedure import Procedure
    from ..scenario.runner import write_results
    from ..viewer.viewer import Viewer
    from ..warmup import warm_up

    scenario = resolve_scenario(args.path)
    if args.screenshot is None:
        warm_up(progress=True)  # before the window opens: never compile in the middle of a drag
    t0 = time.perf_counter()
    proc = Procedure(scenario, open_ended=True)
    v = Viewer(proc, off_screen=args.screenshot is not None, title=f"organsim: {scenario.name}")
    v.scene.camera_preset(args.camera or scenario.output.camera)
    if args.screenshot is not None:
        v.screenshot(args.screenshot)
        v.close()
        print(f"wrote {args.screenshot}")
        return 0
    print(f"organsim view: {scenario.name}. {scenario.description}".strip())
    print("keys: i tool (grasp / cut / camera), space pause, x restart, e end and score, h help")
    v.show()
    wall = time.perf_counter() - t0
    if proc.step_count == 0:
        print("the attempt did not start (no step was taken): nothing recorded")
        v.close()
        return 0
    if args.outdir:
        out = Path(args.outdir)
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", scenario.name.lower()).strip("-") or "attempt"
        out = Path("organsim-attempts") / f"{slug}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    who = f" by {args.trainee}" if args.trainee else ""
    attempt = proc.attempt_scenario(description=f"Replay of a live attempt{who} at {scenario.name!r} "
                                    f"({proc.time:.1f} s). {scenario.description}")
    res = write_results(proc, out, wall_s=wall, trainee=args.trainee, history_path=args.history,
                        attempt=attempt)
    v.close()
    _print_results(res, wall)
    print(f"replay it: organsim run {res.attempt} -o {out / 'replay'}")
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    from ..warmup import warm_up

    took = warm_up(progress=True, force=True)
    print(f"numeric kernels ready ({took:.1f} s)")
    return 0


# ------------------------------------------------------------------ demo
def cmd_demo(args: argparse.Namespace) -> int:
    from ..scenario.demos import demo_scenario
    from ..viewer.viewer import has_display

    scenario = demo_scenario()
    if has_display() and not args.no_window:
        from ..scenario.procedure import Procedure
        from ..viewer.viewer import Viewer

        print("organsim demo: the liver is held by its ligament; a scalpel incises the right lobe "
              "and a grasper retracts the incision open. Then it is yours: drag the tissue to pull "
              "it, press i for the cut tool, t for stress, space to pause, x to restart, h for help.")
        v = Viewer(Procedure(scenario, open_ended=True), title="organsim demo", target_fps=25)
        v.show()
        return 0
    from ..scenario.runner import run
    from ..viewer.recording import ffmpeg_available

    out = Path(args.outdir)
    name = "demo.gif" if (args.gif or not ffmpeg_available()) else "demo.mp4"
    print(f"organsim demo: no display, recording {out / name} off-screen "
          f"({scenario.n_steps} steps of the shipped liver: held, incised, retracted)")
    t0 = time.perf_counter()
    res = run(scenario, out, record=name, progress=not args.no_progress)
    _print_results(res, time.perf_counter() - t0)
    return 0 if res.completed else 1
