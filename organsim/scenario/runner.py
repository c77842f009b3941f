"""Run a scenario to the end and write its results; score a live attempt the same way.

:func:`run` drives a :class:`~organsim.scenario.procedure.Procedure` (the one
engine scripted and live attempts share) through a scenario's duration and
writes::

    outdir/
      series.pvd, series/series_NNNNNN.vtu   time series (ParaView, meshio, pyvista)
      metrics.json                           metrics, score, timings, and what made them:
                                             organsim version, scenario and its hash,
                                             parameters and seed of a sweep run
      steps.csv                              per-step metrics (units in the header)
      forces.csv                             per-step instrument forces and tips (units in the header)
      report.html                            plots, score, rendered image
      final.png                              the final state, rendered off-screen
      <video>                                if recording was asked for

:func:`write_results` writes the same files (and the training-history entry)
for any procedure, a live attempt in the viewer included; a live attempt
also writes ``attempt.toml``, the scenario that replays it.
"""

from __future__ import annotations

import json
import logging
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import OrganSimError
from ..mesh.tetmesh import TetMesh
from .procedure import Procedure
from .schema import Scenario

__all__ = ["Results", "run", "write_results", "cut_face_bits", "scenario_hash", "write_time_series_csv"]

log = logging.getLogger(__name__)

_MM = 1e-3


# ------------------------------------------------------------------- run
@dataclass
class Results:
    """What :func:`run` wrote and measured."""

    outdir: Path
    metrics: dict
    score: dict
    metrics_path: Path
    series: Path | None = None
    report: Path | None = None
    video: Path | None = None
    image: Path | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    completed: bool = True
    attempt: Path | None = None


def _state_arrays(proc: Procedure, with_fields: bool) -> tuple[dict, dict]:
    """Arrays of one series frame: von Mises stress (Pa), Green-Lagrange strain (3x3, as 9
    components), the reaction force (N) that the fixations and instruments exert on the tissue
    at each node they hold, cut faces."""
    point_data, cell_data = {}, {}
    if with_fields:
        f = proc._get_fields()
        point_data["von_mises"] = f["nodal_von_mises"]
        point_data["green_lagrange"] = np.asarray(f["nodal_green_lagrange"]).reshape(-1, 9)
        point_data["reaction_force"] = proc.sim.reaction_field()
        cell_data["von_mises"] = f["von_mises"]
        cell_data["green_lagrange"] = np.asarray(f["green_lagrange"]).reshape(-1, 9)
    if proc.cut_face_mask is not None:
        cell_data["cut_faces"] = cut_face_bits(proc.mesh, proc.cut_face_mask)
    return point_data, cell_data


def _remove_leftovers(out: Path) -> None:
    """Temporaries that a killed earlier run into ``out`` left behind (never anyone's file)."""
    import contextlib

    for p in [*out.glob(".*.partial*"), *out.glob(".*.tmp")]:
        with contextlib.suppress(OSError):
            p.unlink()


def cut_face_bits(mesh: TetMesh, mask: np.ndarray) -> np.ndarray:
    """Per tet, a 4-bit mask of which local faces are cut faces (for replay), shape (m,) uint8."""
    from ..mesh.tetmesh import TET_FACES

    bits = np.zeros(mesh.n_tets, dtype=np.uint8)
    bf = mesh.boundary_faces[mask]
    owner = mesh.boundary_face_tets[mask]
    if len(bf) == 0:
        return bits
    local = mesh.tets[owner][:, TET_FACES]               # (k, 4, 3)
    key = np.sort(bf, axis=1)[:, None, :]
    which = np.all(np.sort(local, axis=2) == key, axis=2)  # (k, 4)
    lf = np.argmax(which, axis=1)
    np.bitwise_or.at(bits, owner, (1 << lf).astype(np.uint8))
    return bits


def scenario_hash(scenario: Scenario) -> str:
    """SHA-256 (hex) of the scenario's canonical JSON form: equal scenarios, equal hashes.

    Examples
    --------
    >>> from organsim.scenario.schema import Scenario
    >>> scenario_hash(Scenario(name="a")) == scenario_hash(Scenario(name="a"))
    True
    >>> scenario_hash(Scenario(name="a")) == scenario_hash(Scenario(name="a", dt_s=0.01))
    False
    """
    import hashlib

    from .schema import scenario_to_dict

    text = json.dumps(scenario_to_dict(scenario), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_csv(path: Path, header: list[str], rows) -> Path:
    """A CSV table, written atomically; floats in full precision, missing values empty."""
    import csv

    from ..io.atomic import atomic_output

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for r in rows:
                w.writerow(["" if v is None or (isinstance(v, float) and not np.isfinite(v)) else v
                            for v in r])
    return path


def write_time_series_csv(proc: Procedure, outdir: str | Path) -> tuple[Path, Path]:
    """Write ``steps.csv`` (per-step metrics) and ``forces.csv`` (instrument forces and tips).

    Every column's unit is in its name (``time_s``, ``peak_stress_pa``, ``grasper_fx_n``,
    ``grasper_tip_x_mm`` ...), so ``pandas.read_csv`` gives a ready table. Stress and damage
    are computed every few steps (``Procedure.fields_every``): other rows leave them empty.

    Returns
    -------
    (Path, Path)
        ``steps.csv`` and ``forces.csv``.
    """
    from ..io.series import exact_time
    from .metrics import NO_FORCE_KINDS

    out = Path(outdir)
    rec = proc.recorder
    times = [exact_time(t) for t in rec.times]
    step_ms = [None, *proc.step_ms]  # the first record is the state before the first step
    stress = {exact_time(t): (p, d) for t, p, d in zip(rec.stress_times, rec.peak_stress_pa, rec.damaged_m3)}
    rows = []
    for i, t in enumerate(times):
        p, d = stress.get(t, (None, None))
        rows.append([i, t, step_ms[i] if i < len(step_ms) else None, p,
                     None if d is None else d * 1e6])
    steps = _write_csv(out / "steps.csv", ["step", "time_s", "step_ms", "peak_stress_pa",
                                           "damaged_volume_ml"], rows)
    header = ["time_s"]
    cols = []
    for name, tr in rec.tracks.items():
        idx = {exact_time(t): j for j, t in enumerate(tr.times)}
        if tr.kind not in NO_FORCE_KINDS:
            header += [f"{name}_force_n", f"{name}_fx_n", f"{name}_fy_n", f"{name}_fz_n"]
        header += [f"{name}_tip_x_mm", f"{name}_tip_y_mm", f"{name}_tip_z_mm"]
        cols.append((tr, idx))
    frows = []
    for t in times:
        r = [t]
        for tr, idx in cols:
            j = idx.get(t)
            if tr.kind not in NO_FORCE_KINDS:
                f = None if j is None else np.asarray(tr.forces[j], float)
                r += [None] * 4 if f is None else [float(np.linalg.norm(f)), *map(float, f)]
            tip = None if j is None else np.asarray(tr.tips[j], float) / _MM
            r += [None] * 3 if tip is None else [float(c) for c in tip]
        frows.append(r)
    forces = _write_csv(out / "forces.csv", header, frows)
    return steps, forces


def run(scenario: Scenario, outdir: str | Path, *, record: str | Path | None = None,
        progress: bool = True, trainee: str | None = None, history_path: str | Path | None = None,
        image: bool = True, window_size: tuple[int, int] = (800, 600),
        parameters: dict | None = None, seed: int | None = None) -> Results:
    """Run a scenario to the end and write its results.

    Parameters
    ----------
    scenario : Scenario
    outdir : str or Path
        Output folder (created).
    record : str or Path, optional
        Also record a video (.mp4 or .gif) of the procedure, off-screen; a
        relative name goes inside ``outdir``. ``scenario.output.video`` is used
        when not given.
    progress : bool
        Show a progress bar.
    trainee : str, optional
        Record this attempt in the training history under this name; the report
        then shows the learning curve.
    history_path : str or Path, optional
        Training history database (default ``~/.organsim/history.sqlite``).
    image : bool
        Render the final state (for the report) off-screen.
    window_size : (int, int)
        Pixels of the rendered image and video.
    parameters : dict, optional
        The parameters this run was made with (a sweep's), recorded in ``metrics.json``.
    seed : int, optional
        Seeds numpy's and Python's random generators before the run, and is recorded in
        ``metrics.json`` (organsim's simulations are deterministic; this covers any
        randomness a user's code adds).

    Returns
    -------
    Results
    """
    from ..io.series import SeriesWriter

    if seed is not None:
        import random

        random.seed(int(seed))
        np.random.seed(int(seed) % 2**32)

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    t_start = _time.perf_counter()
    proc = Procedure(scenario)
    o = scenario.output
    series_path = out / "series.pvd" if o.series else None
    writer = SeriesWriter(series_path) if series_path else None
    video = record if record is not None else o.video
    video_path = None
    viewer = None
    notes = list(proc.notes)

    def write_frame() -> None:
        if writer is not None and proc.step_count % o.every == 0:
            pd, cd = _state_arrays(proc, with_fields=True)
            writer.write(proc.time, proc.mesh, points=proc.positions, point_data=pd, cell_data=cd)

    n = scenario.n_steps
    failure: list[OrganSimError] = []
    advance = proc.advance

    def step_once() -> None:
        """One step; a step the solver cannot complete ends the run (results so far are kept)."""
        if failure:
            return
        try:
            advance()
            write_frame()
        except OrganSimError as exc:
            failure.append(exc)
            log.error("the run stopped at t = %.3f s: %s", proc.time, exc)

    try:
        write_frame()
        if video is not None:
            from ..viewer.recording import record as record_video
            from ..viewer.viewer import Viewer

            vp = Path(video)
            vp = vp if vp.is_absolute() else out / vp
            viewer = Viewer(proc, off_screen=True, window_size=window_size)
            viewer.scene.camera_preset(o.camera)
            viewer.show_fps = False  # the recording's render rate is not the simulation's

            proc.advance = step_once  # the viewer advances the procedure frame by frame
            try:
                video_path = record_video(viewer, vp, n_frames=n, fps=o.fps, progress=progress,
                                          stop=lambda: bool(failure))
            finally:
                del proc.advance  # back to the method
        else:
            steps = range(n)
            if progress:
                from tqdm import tqdm

                steps = tqdm(steps, desc=f"{scenario.name}", unit="step")
            for _ in steps:
                step_once()
                if failure:
                    break
    finally:
        if writer is not None:
            writer.close()
    return write_results(proc, out, wall_s=_time.perf_counter() - t_start,
                         failure=failure[0] if failure else None, notes=notes, viewer=viewer,
                         trainee=trainee, history_path=history_path, image=image,
                         window_size=window_size, series_path=series_path, video_path=video_path,
                         parameters=parameters, seed=seed)


def write_results(proc: Procedure, outdir: str | Path, *, wall_s: float = 0.0,
                  failure: OrganSimError | None = None, notes: list[str] | None = None,
                  viewer=None, trainee: str | None = None, history_path: str | Path | None = None,
                  image: bool = True, window_size: tuple[int, int] = (800, 600),
                  series_path: Path | None = None, video_path: Path | None = None,
                  attempt: Scenario | None = None, parameters: dict | None = None,
                  seed: int | None = None) -> Results:
    """Score a procedure and write ``metrics.json``, ``steps.csv``, ``forces.csv``,
    ``report.html``, ``final.png``.

    The same for a scripted run (:func:`run`) and a live attempt in the viewer.

    Parameters
    ----------
    proc : Procedure
        The procedure, at the end of the attempt.
    outdir : str or Path
        Output folder (created).
    wall_s : float
        Wall-clock time the attempt took (s).
    failure : OrganSimError, optional
        Why the simulation stopped early; the attempt is then not scored.
    notes : list of str, optional
    viewer : Viewer, optional
        An off-screen viewer already showing the procedure (reused for the image).
    trainee : str, optional
        Add the attempt to this trainee's history; the report shows the learning curve.
    history_path : str or Path, optional
        Training history database (default ``~/.organsim/history.sqlite``).
    image : bool
        Render the final state off-screen (``final.png``, shown in the report).
    window_size : (int, int)
    series_path, video_path : Path, optional
        Files already written (listed in ``metrics.json``).
    attempt : Scenario, optional
        The scenario that replays the attempt: written as ``attempt.toml``.
    parameters : dict, optional
        Parameters of a sweep run (dotted scenario keys -> values), recorded.
    seed : int, optional
        The run's random seed, recorded.

    Returns
    -------
    Results
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    scenario = proc.scenario
    notes = list(notes or [])
    metrics, score = proc.summary()
    notes += [n_ for n_ in proc.notes if n_ not in notes]
    if failure:
        notes.insert(0, f"the run stopped early at t = {proc.time:.3f} s of {scenario.duration_s:g} s: "
                        f"{failure}")
        metrics["completed"] = False
        # an attempt that did not finish is not scored
        score = {**score, "score": 0.0, "proficient_attempt": False, "incomplete": True}
    timings = {
        "wall_s": wall_s,
        "steps": proc.step_count,
        "median_step_ms": float(np.median(proc.step_ms)) if proc.step_ms else None,
        "median_cut_increment_ms": float(np.median(proc.cut_ms)) if proc.cut_ms else None,
        "final_tets": proc.mesh.n_tets,
        "settle_steps": proc.settle_steps,
        "settle_wall_s": proc.settle_wall_s,
        "settle_sag_mm": proc.settle_sag_m / _MM,
    }
    image_path = None
    png = None
    if image:
        try:
            from ..viewer.viewer import Viewer

            v = viewer or Viewer(proc, off_screen=True, window_size=window_size)
            v.scene.camera_preset(scenario.output.camera)
            v.show_fps = False
            v.scene.set_stress_view(False)
            image_path = out / "final.png"
            v.screenshot(image_path)
            png = image_path.read_bytes()
        except Exception as exc:  # noqa: BLE001 - rendering is optional for a headless run
            notes.append(f"no rendered image: {type(exc).__name__}: {exc}")
            log.warning("could not render the final image: %s", exc)
    if viewer is not None:
        viewer.close()
    curve = None
    if trainee and failure:
        notes.append("this attempt is not recorded in the training history: the simulation "
                     "stopped, not the trainee")
    elif trainee:
        from .history import TrainingHistory, default_history_path

        h = TrainingHistory(history_path or default_history_path())
        h.add(trainee, scenario.name, score=score["score"], metrics=metrics,
              proficient=score["proficient_attempt"])
        curve = h.learning_curve(trainee, scenario.name)
        reached = h.proficiency_reached(trainee, scenario.name)
        if reached:
            notes.append(f"proficiency reached at attempt {reached}")
        h.close()
    from .. import __version__
    from .schema import scenario_to_dict

    steps_csv, forces_csv = write_time_series_csv(proc, out)
    doc = {"scenario": scenario.name, "description": scenario.description,
           "organsim_version": __version__,
           "scenario_sha256": scenario_hash(scenario),
           "parameters": dict(parameters or {}), "seed": seed,
           "score": score, "metrics": metrics, "timings": timings, "notes": notes,
           "files": {"series": series_path.name if series_path else None,
                     "video": video_path.name if video_path else None,
                     "image": image_path.name if image_path else None,
                     "steps": steps_csv.name, "forces": forces_csv.name},
           "scenario_definition": scenario_to_dict(scenario)}
    mpath = out / "metrics.json"
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=float), encoding="utf-8")
    tmp.replace(mpath)
    report = None
    attempt_path = None
    if attempt is not None:
        from .loader import save_scenario

        attempt_path = out / "attempt.toml"
        save_scenario(attempt, attempt_path)
    if scenario.output.report:
        from .report import write_report

        t, forces = proc.recorder.force_series()
        report = write_report(out / "report.html", title=f"organsim: {scenario.name}",
                              metrics=metrics, score=score, force_times=t, forces=forces,
                              safe_force_n=scenario.scoring.safe_force_n, curve=curve,
                              image_png=png, notes=notes)
    return Results(outdir=out, metrics=metrics, score=score, metrics_path=mpath, series=series_path,
                   report=report, video=video_path, image=image_path, notes=notes, timings=timings,
                   completed=not failure, attempt=attempt_path)
