"""The procedure engine: one simulation, its instruments, and every action on them.

:class:`Procedure` owns the :class:`~organsim.fem.simulation.Simulation`,
the instruments, the progressive :class:`~organsim.surgery.cutting.Cutter`
and the :class:`~organsim.scenario.metrics.MetricsRecorder`. Everything that
acts on the tissue goes through it, in one of three ways that all end in the
same code:

- a scenario's timeline (TOML): :meth:`Procedure.advance` starts each action
  when its time comes;
- the Python API: :meth:`Procedure.grasp`, :meth:`~Procedure.pull`,
  :meth:`~Procedure.release`, :meth:`~Procedure.cut`,
  :meth:`~Procedure.retract`, :meth:`~Procedure.probe`,
  :meth:`~Procedure.resect` start an action now;
- the mouse (the viewer): :meth:`~Procedure.grasp_begin`/``grasp_move``/
  ``grasp_end`` and :meth:`~Procedure.cut_begin`/``cut_move``/``cut_end``
  build a grasp, a pull and a cut stroke while the user drags.

Every action applied is appended to :attr:`Procedure.action_log` with its
time, and :meth:`Procedure.attempt_scenario` turns the log into a scenario
whose timeline replays the attempt step for step (``organsim run`` on it
gives the same metrics). A topology change (a cut increment, a resection) is
one :class:`~organsim.mesh.topology.TopologyChange` value, carried to every
part in one place (:meth:`Procedure._apply_change`): the simulation, the
held node sets of the instruments, the anchors, the cut faces.

Settling under gravity
----------------------
With gravity on and ``settle_s > 0``, :meth:`Procedure.reset` first lets the
organ sag under its weight, held by its fixations, until it is at rest (no
instrument acts and nothing is recorded); the procedure's clock starts at 0
from that equilibrium. Tets already above the damage stress at rest (the
stiff vessels and the tissue at the fixations' edges carry the organ's
weight) are left out of the peak-stress and damage metrics, which score what
the procedure does; their volume is reported as ``loaded_at_rest_ml``.

How instruments act
-------------------
Instrument points (``at_mm``, cut ``path_mm``) are anchored to the tissue:
each is projected onto the organ's rest surface and follows that material
point as the organ deforms (:mod:`organsim.scenario.anchors`). Pull paths
are positions in space the grasper's hand moves to.

- *grasp*: the surface nodes within ``radius_mm`` of the point are held
  (a prescribed-position constraint named after the instrument).
- *pull*: the held nodes move rigidly through ``path_mm`` (at constant speed
  over ``duration_s``, or reaching each point at its ``times_s``).
- *release*: the constraint is removed.
- *retract*: a hooked retractor engages the surface patch of ``width_mm`` at
  the point and draws it along ``direction`` by ``distance_mm`` over
  ``duration_s``, then holds it until released (a hook can pull as well as
  push, so it holds what it engaged).
- *probe*: a blunt probe (a capsule of 4 mm radius,
  :class:`~organsim.surgery.contact.Capsule`) is pressed into the surface at
  the point along ``direction`` (default: the inward normal) by ``depth_mm``
  over ``duration_s`` and held there until released. It acts by frictionless
  contact (:class:`~organsim.surgery.contact.ContactSet`, the contact layer of
  :class:`~organsim.surgery.instruments.Probe`): the tissue it touches slides
  over it and lets go where it would be pulled.
- *cut*: a scalpel blade (a segment from 2 mm above the surface to
  ``depth_mm`` below it, along the inward normal unless ``direction`` is
  given) moves along the marked path; each step the cutter splits what it
  swept and the simulation continues on the new mesh. The stroke ends (the
  blade is withdrawn and the crack front rounded) at ``duration_s``.
- *resect*: the region plus a ``margin_mm`` margin is removed.

The reported instrument force is the sum of the constraint's reaction forces
with the opposite sign: what the tissue pulls the instrument with.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
import logging
import time as _time
from dataclasses import dataclass, field, replace

import numpy as np

from ..mesh.tetmesh import TetMesh
from ..surgery.hold import Hold
from ..viewer.sources import InstrumentView
from .anchors import SurfaceAnchors, eval_anchor, path_at_time
from .build import build_simulation, load_organ
from .metrics import MetricsRecorder, composite_score, path_length, point_to_polyline_distance
from .schema import DEFAULT_INSTRUMENT, Action, Scenario

__all__ = ["BAND_CUT_GAP_M", "HAND_GRASPER", "HAND_SCALPEL", "SETTLED_SPEED", "Procedure", "fragments"]

log = logging.getLogger(__name__)

_MM = 1e-3
#: Least distance (m, at rest) from a planned-cut sample to a face a cut made at which the
#: sample counts as cut (the band's half-width when wider): the viewer stops drawing it there.
BAND_CUT_GAP_M = 1e-3
#: Node speed (m/s) below which the organ counts as at rest when it settles under gravity.
SETTLED_SPEED = 1e-3
#: Gap (m) above the surface where the blade's back starts.
BLADE_LIFT = 0.002
#: How far (m) from the organ's surface a scenario's instrument point may lie.
REACH = 0.015
#: Radius (m) of the probe's capsule.
PROBE_RADIUS = 0.004
#: Instrument names of the mouse's grasper and scalpel (live attempts).
HAND_GRASPER = "hand grasper"
HAND_SCALPEL = "hand scalpel"


def fragments(mesh: TetMesh) -> list[float]:
    """Volumes (m^3) of the mesh's face-connected pieces, largest first."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    rows = np.repeat(np.arange(mesh.n_tets), 4)
    a = sp.csr_matrix((np.ones(rows.size), (rows, mesh.tets.ravel())),
                      shape=(mesh.n_tets, mesh.n_points))
    n, lab = connected_components(a @ a.T, directed=False)
    vols = np.bincount(lab, weights=mesh.volumes, minlength=n)
    return sorted(vols.tolist(), reverse=True)


@dataclass
class _Motion:
    """A timed path of an instrument: points reached at times after ``t0``."""

    t0: float
    points: list                        # [(3,) m]
    times: list                         # [s after t0], non-decreasing
    duration: float                     # s after t0 when the motion (a cut stroke) ends
    closed: bool = True                 # False while a live drag still extends it
    # a live drag: what the log will hold for each point (mm tuples; None for an unlogged
    # start) and how a replay turns a logged point back into the one it moves to
    sources: list | None = None
    convert: Callable | None = None

    def at(self, t: float) -> np.ndarray:
        return path_at_time(np.asarray(self.points), np.asarray(self.times), t - self.t0)

    def done(self, t: float) -> bool:
        return self.closed and t - self.t0 >= self.duration - 1e-12

    def extend(self, source: tuple, rel: float, held_until: float) -> None:
        """Reach the logged point ``source`` (mm) at ``rel`` s after ``t0``; the path held
        still since its last point until ``held_until`` (s after ``t0``: the time the last
        step moved the instrument to).

        The live drag moves to ``convert(source)``, exactly the point a replay of the log
        computes, and holds until exactly the time that step's replay queries, so that the
        attempt and its replay take the same steps to the last bit.
        """
        if self.times and abs(self.times[-1] - rel) < 1e-12:
            self.sources[-1] = source
            self.points[-1] = self.convert(source)
            return
        if self.times and self.times[-1] < held_until - 1e-12:
            last = self.sources[-1] if self.sources[-1] is not None else _mm_point(self.points[-1])
            self.sources.append(last)
            self.points.append(self.convert(last))
            self.times.append(held_until)
        self.sources.append(source)
        self.points.append(self.convert(source))
        self.times.append(rel)


def _uniform_times(points: np.ndarray, duration: float) -> list[float]:
    """Times reaching each point of a polyline at constant speed over ``duration``."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= 0:
        return list(np.linspace(0.0, duration, len(points)))
    return list(duration * cum / cum[-1])


@dataclass
class _Tool:
    """One instrument's state."""

    name: str
    kind: str
    tip: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    axis: np.ndarray = field(default_factory=lambda: np.array([0.0, -0.6, 0.8]))
    hold: Hold | None = None                # the tissue it holds (grasper, hooked retractor)
    motion: _Motion | None = None           # where the held nodes go
    cut: dict | None = None                 # active cut stroke
    contact: object | None = None           # a probe's ContactSet (surgery.contact)
    rotation: np.ndarray | None = None      # the probe's orientation (local +z: towards the handle)
    visible: bool = False

    @property
    def held(self) -> np.ndarray | None:
        """Node ids held (None when holding nothing)."""
        return None if self.hold is None else self.hold.nodes

    @property
    def active(self) -> bool:
        return (self.held is not None or self.cut is not None
                or (self.contact is not None and len(self.contact.active) > 0))


class Procedure:
    """A procedure in progress: the engine every attempt (scripted or live) runs on.

    Also a viewer frame source (:mod:`organsim.viewer.sources`), so the same
    procedure runs headless, in the interactive viewer, or into a video.

    Parameters
    ----------
    scenario : Scenario
    fields_every : int
        Compute stress fields (for damage metrics and the stress view) every n steps.
    mesh : TetMesh, optional
        The organ, if already loaded.
    open_ended : bool
        Keep stepping after the scenario's duration (interactive use: the user
        goes on grasping and cutting once the scripted timeline is over).

    Examples
    --------
    >>> from organsim.scenario import Scenario, Organ, Fixation
    >>> proc = Procedure(Scenario(organ=Organ(shipped="block"), gravity=(0, 0, 0), dt_s=0.02,
    ...                           fixations=[Fixation(box_min_mm=(-51, -51, -16),
    ...                                               box_max_mm=(-45, 51, 16))]))
    >>> proc.grasp([0.05, 0.0, 0.015])
    True
    >>> proc.pull([[0.05, 0.0, 0.025]], duration=0.1)
    >>> for _ in range(5):
    ...     proc.advance()
    >>> bool(np.linalg.norm(proc.instruments()[0].force) > 0)
    True
    >>> [a.action for a in proc.action_log]
    ['grasp', 'pull']
    """

    def __init__(self, scenario: Scenario, *, fields_every: int = 5, mesh: TetMesh | None = None,
                 open_ended: bool = False) -> None:
        self.scenario = scenario
        self.open_ended = bool(open_ended)
        self.fields_every = max(1, int(fields_every))
        self._organ = load_organ(scenario) if mesh is None else mesh
        self.notes: list[str] = []
        self.topology_version = 0
        self._check_reach()
        self._planned_rest = self._project_planned_cut()
        if any(a.action == "cut" for a in scenario.timeline):
            # the compiled cutting kernels load now, not in the frame of the first cut
            from ..surgery.cutting import warm_up

            warm_up()
        self.reset()

    def _check_reach(self) -> None:
        """Every instrument point of the timeline must lie on the tissue (within :data:`REACH`).

        Raises
        ------
        ScenarioError
            Naming the key, the point and its distance from the organ's surface.
        """
        from ..errors import ScenarioError

        surf = SurfaceAnchors(self._organ)
        for i, a in enumerate(self.scenario.timeline):
            points = [("at_mm", a.at_mm)] if a.at_mm is not None else []
            if a.action == "cut":
                points += [(f"path_mm[{k}]", p) for k, p in enumerate(a.path_mm)]
            for key, p in points:
                q = np.asarray(p, dtype=float) * _MM
                d = float(np.linalg.norm(surf.on_rest_surface(q) - q))
                if d > REACH:
                    raise ScenarioError(
                        f"timeline[{i}].{key}: {list(p)} mm is {d / _MM:.0f} mm from the organ's surface;"
                        f" a {a.action} must start on the tissue (within {REACH / _MM:.0f} mm): move the"
                        " point onto the organ (organsim info MESH shows its bounds)")

    # ---------------------------------------------------------------- state
    def reset(self) -> None:
        """Start the procedure again from the rest state (the action log is cleared)."""
        from ..surgery.cutting import Cutter

        s = self.scenario
        self.sim = build_simulation(s, self._organ)
        self._t_origin = 0.0
        self._settle()
        self._rest_loaded = self._loaded_at_rest()
        self.cutter = Cutter(self._organ)
        self._surface = SurfaceAnchors(self._organ)
        self.topology_version += 1
        self.cut_face_mask: np.ndarray | None = None
        self.tools: dict[str, _Tool] = {}
        self._next_action = 0
        self.step_count = 0
        self._last_t_end = -np.inf   # the time the last step moved the instruments to (s)
        self._stiffened_ml = 0.0     # volume the simulation has stiffened so far (Simulation.stiffened_tets)
        self.step_ms: list[float] = []
        self.cut_ms: list[float] = []
        self._fields: dict | None = None
        self._fields_step = -1
        self.recorder = MetricsRecorder(safe_force_n=s.scoring.safe_force_n,
                                        damage_stress_pa=s.scoring.damage_stress_pa)
        self.recorder.initial_volume_m3 = self._organ.volume
        self.resections: list[dict] = []
        self._cut_trace_rest: list[list[np.ndarray]] = []
        #: every action applied so far, in order, with its start time (s)
        self.action_log: list[Action] = []
        self._live: dict[str, Action] = {}   # instrument -> its open live pull / cut action
        self._band_cache: tuple | None = None
        self._band_rest: np.ndarray | None = None
        self._expose_anchor = None
        self.expose_lift_m = 0.0
        self.expose_time_s: float | None = None
        self.last_message = ""
        self._record()

    @property
    def mesh(self) -> TetMesh:
        """The current rest mesh (replaced after each cut increment)."""
        return self.sim.mesh

    @property
    def positions(self) -> np.ndarray:
        """Current node positions (m), shape (n, 3)."""
        return self.sim.positions

    @property
    def time(self) -> float:
        """Procedure time (s): 0 when the timeline starts, after any settling."""
        return float(self.sim.time) - self._t_origin

    @property
    def dt(self) -> float:
        """Time step (s)."""
        return float(self.scenario.dt_s)

    @property
    def finished(self) -> bool:
        """The scenario's duration is over."""
        return self.time >= self.scenario.duration_s - 0.5 * self.scenario.dt_s

    def _loaded_at_rest(self) -> np.ndarray | None:
        """Tets (m,) bool that carry the organ's weight above the damage stress once settled."""
        if self.settle_steps == 0:
            return None
        vm = np.asarray(self.sim.fields()["von_mises"])
        loaded = vm > self.scenario.scoring.damage_stress_pa
        return loaded if loaded.any() else None

    def _settle(self) -> None:
        """Let the organ come to rest under gravity before ``t = 0`` (``scenario.settle_s``).

        Steps the simulation with no instrument acting until no node moves faster
        than :data:`SETTLED_SPEED` or ``settle_s`` of simulated time has passed; the
        procedure's clock then starts at 0. Sets ``settle_steps``, ``settle_wall_s``
        and ``settle_sag_m`` (largest downward displacement, m).

        Raises
        ------
        ConvergenceError
            If the organ cannot be brought to rest (an element inverts): the
            fixations do not hold it against gravity.
        """
        from ..errors import ConvergenceError

        s = self.scenario
        self.settle_steps = 0
        self.settle_wall_s = 0.0
        self.settle_sag_m = 0.0
        g = np.asarray(s.gravity, dtype=np.float64)
        if s.settle_s <= 0.0 or not np.any(g):
            return
        t0 = _time.perf_counter()
        n_max = max(1, int(round(s.settle_s / s.dt_s)))
        advice = (" Hold it with more fixations (e.g. a box over its attachment), give stiff"
                  " structures (vessels) their own material, or set settle_s = 0")
        for k in range(n_max):
            try:
                info = self.sim.step()
            except ConvergenceError as exc:
                raise ConvergenceError(f"the organ could not settle under gravity (step {k + 1} of the"
                                       f" settling): {exc}; {self._most_crushed()}.{advice}") from exc
            self.settle_steps = k + 1
            if k >= 2 and float(np.abs(self.sim.velocities).max()) < SETTLED_SPEED:
                break
        if not info.min_jacobian > 0:
            # linear and corotational tissue can be crushed inside out without the step failing
            raise ConvergenceError(f"the organ could not settle under gravity: after {self.settle_steps} steps"
                                   f" elements are crushed inside out (min det F = {info.min_jacobian:.3g});"
                                   f" {self._most_crushed()}." + advice)
        if self.sim.integrator == "realtime":
            # the solver's preconditioner was factored for the unloaded organ: refit it to
            # the settled, loaded state (a few CG iterations per step instead of ten or more)
            self.sim.refresh_preconditioner()
        down = g / np.linalg.norm(g)
        self.settle_sag_m = float(max(0.0, (self.sim.displacements @ down).max()))
        self.settle_wall_s = _time.perf_counter() - t0
        self._t_origin = float(self.sim.time)
        log.info("settled under gravity in %d steps (%.2f s simulated, %.2f s wall): largest sag %.1f mm",
                 self.settle_steps, self._t_origin, self.settle_wall_s, self.settle_sag_m / _MM)

    def _most_crushed(self) -> str:
        """Where the organ is compressed most: region, position (mm) and volume ratio of that tet."""
        from ..mesh.tetmesh import tet_volumes

        m = self.sim.mesh
        ratio = tet_volumes(self.sim.positions, m.tets) / m.volumes
        e = int(np.argmin(ratio))
        c = m.points[m.tets[e]].mean(axis=0) / _MM
        name = m.region_names.get(int(m.region_ids[e]), str(m.region_ids[e]))
        return (f"the most compressed element is in region {name!r} at ({c[0]:.0f}, {c[1]:.0f}, {c[2]:.0f})"
                f" mm, at {100 * ratio[e]:.0f}% of its volume (materials.{name}: a stiffer material, or a"
                " fixation nearer it, holds it)")

    # --------------------------------------------------------------- frames
    def advance(self) -> None:
        """Apply the timeline due now, move the instruments, cut, and step once."""
        if self.finished and not self.open_ended:
            return
        t_end = self.time + self.dt
        tl = self.scenario.timeline
        while self._next_action < len(tl) and tl[self._next_action].t <= self.time + 1e-9:
            self.apply(tl[self._next_action])
            self._next_action += 1
        self._last_t_end = t_end
        for tool in list(self.tools.values()):
            self._move(tool, t_end)
        t0 = _time.perf_counter()
        self.sim.step()
        self.step_ms.append((_time.perf_counter() - t0) * 1e3)
        self.step_count += 1
        stiff = self.sim.stiffened_tets
        ml = float(self.mesh.volumes[stiff].sum()) * 1e6 if len(stiff) else 0.0
        if ml > self._stiffened_ml * (1 + 1e-9):   # a step crushed a few tets: say so on the panel and in the report
            self._stiffened_ml = ml                  # (by volume: a cut splitting stiffened tets changes their count)
            self.last_message = f"{len(stiff)} crushed tets stiffened ({ml:.2g} mL) to go on"
            self.notes.append(f"t = {self.time:.2f} s: a step turned tissue inside out; {len(stiff)} tets there"
                              f" ({ml:.2g} mL) were made stiffer to go on, and their stresses are not the tissue's")
        for tool in self.tools.values():
            if tool.contact is not None:
                tool.contact.settle(self.sim, self._pose(tool))
        self._record()

    def _record(self) -> None:
        views = self.instruments()
        vm = vol = None
        if self.step_count % self.fields_every == 0:
            f = self._get_fields()
            vm, vol = f["von_mises"], self.mesh.volumes
            if self._rest_loaded is not None:
                vm = np.where(self._rest_loaded, 0.0, vm)
        self.recorder.record(self.time, instruments=views, tet_von_mises=vm, tet_volumes=vol)
        self._track_exposure()

    def _get_fields(self, max_age: int = 0) -> dict:
        """Strain/stress fields, recomputed when older than ``max_age`` steps (or after a cut)."""
        if self._fields is None or self.step_count - self._fields_step > max_age:
            self._fields = self.sim.fields()
            self._fields_step = self.step_count
        return self._fields

    def fields(self) -> dict:
        """Strain and stress fields of the current state (see ``Simulation.fields``)."""
        return self._get_fields()

    def nodal_field(self, name: str) -> np.ndarray | None:
        """A nodal field for the viewer's stress view (refreshed every few steps)."""
        f = self._get_fields(max_age=3)
        key = {"von_mises": "nodal_von_mises"}.get(name, name)
        v = f.get(key)
        return None if v is None else np.asarray(v)

    def instruments(self) -> list[InstrumentView]:
        """The instruments as the viewer draws them (computed once per step: reactions cost an
        assembly)."""
        key = (self.step_count, self.topology_version, id(self.sim),
               tuple((t.name, t.visible, t.held is not None, tuple(np.round(t.tip, 9)))
                     for t in self.tools.values()))
        cached = getattr(self, "_views", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        out = []
        for t in self.tools.values():
            if not t.visible or not np.all(np.isfinite(t.tip)):
                continue
            out.append(InstrumentView(t.name, t.kind, t.tip.copy(), t.axis.copy(),
                                      self._force(t), t.active))
        self._views = (key, out)
        return out

    def _force(self, tool: _Tool) -> np.ndarray:
        if tool.hold is not None:
            return tool.hold.force(self.sim)
        if tool.contact is None or tool.name not in self.sim.constraint_names:
            return np.zeros(3)
        return -np.asarray(self.sim.reaction(tool.name)).sum(axis=0)

    # ------------------------------------------------------------ the HUD
    def live_deviation_mm(self) -> float | None:
        """Distance (mm) of the scalpel's current point from the planned cut, while cutting."""
        planned = self.planned_cut_rest()
        if planned is None or len(planned) < 2:
            return None
        if not any(t.cut is not None for t in self.tools.values()) or not self._cut_trace_rest:
            return None
        trace = self._cut_trace_rest[-1]
        if not trace:
            return None
        return float(point_to_polyline_distance(np.asarray(trace[-1:]), planned)[0]) / _MM

    def panel_lines(self) -> list[str]:
        """Lines of the viewer's panel: step time, forces against the safe force, deviation."""
        lines = []
        if self.step_ms:
            lines.append(f"step {self.step_ms[-1]:.0f} ms")
        s = self.scenario.scoring
        for v in self.instruments():
            f = float(np.linalg.norm(v.force))
            if v.kind != "scalpel" and f > s.safe_force_n:
                lines.append(f"!! {v.name}: {f:.1f} N above the safe {s.safe_force_n:g} N")
        dev = self.live_deviation_mm()
        if dev is not None:
            tag = "on the line" if dev <= s.cut_tolerance_mm else "OUTSIDE the band"
            lines.append(f"deviation {dev:.1f} mm ({tag}, band {s.cut_tolerance_mm:g} mm)")
        rec = self.recorder
        if rec.peak_stress_pa:
            lines.append(f"peak stress {max(rec.peak_stress_pa) / 1e3:.1f} kPa")
        cut = sum(path_length(np.asarray(tr)) for tr in self._cut_trace_rest if len(tr) >= 2)
        if cut > 0:
            lines.append(f"cut {cut * 1e3:.0f} mm")
        if s.expose_at_mm is not None:
            done = "exposed" if self.expose_time_s is not None else "to expose"
            lines.append(f"target lifted {self.expose_lift_m / _MM:.0f} of {s.expose_lift_mm:g} mm"
                         f" ({done})")
        if self.last_message:
            lines.append(self.last_message)
        return lines

    def planned_band(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The planned cut and its tolerance band on the current (deformed) surface.

        The line is sampled every millimetre. Where a cut has already gone along it, inside
        the band (a cut face within ``cut_tolerance_mm``, or at least ``BAND_CUT_GAP_M``, of
        the planned point, at rest), the sample is not shown: the wound shows that part, and
        a band stretched across the open wound would zig-zag between its two lips. Where a
        cut strayed outside the band, the band stays.

        Returns
        -------
        (centre, left, right, shown) : ndarrays, shapes (k, 3), (k, 3), (k, 3), (k,), or None
            Points (m) of the planned line and of the band's two edges, ``cut_tolerance_mm``
            to either side along the surface, and which samples are still uncut (bool);
            None when the scenario plans no cut.
        """
        if self._band_cache is None or self._band_cache[0] != self.topology_version:
            planned = self.planned_cut_rest()
            if planned is None or len(planned) < 2:
                return None
            from .metrics import resample_polyline

            if self._band_rest is None:
                # every millimetre, on the rest surface (a straight chord between two planned
                # points runs under a curved surface)
                organ = SurfaceAnchors(self._organ)
                self._band_rest = np.array([organ.on_rest_surface(p)
                                            for p in resample_polyline(planned, 1e-3)])
            dense = self._band_rest
            shown = np.ones(len(dense), dtype=bool)
            surface = self._surface
            cut = self.cut_face_mask
            if cut is not None and cut.any() and not cut.all():
                # anchor to the outer surface only, and hide what the cut faces reach
                wound = SurfaceAnchors(surface.mesh, face_mask=cut)
                gap = np.array([np.linalg.norm(wound.on_rest_surface(p) - p) for p in dense])
                reach = max(self.scenario.scoring.cut_tolerance_mm * _MM, BAND_CUT_GAP_M)
                shown = gap > reach
                surface = SurfaceAnchors(surface.mesh, face_mask=~cut)
            anchors = [surface.anchor(p) for p in dense]
            nodes = np.array([n for n, _ in anchors])
            w = np.array([w for _, w in anchors])
            self._band_cache = (self.topology_version, nodes, w, shown)
        _, nodes, w, shown = self._band_cache
        x = self.positions
        tri = x[nodes]                                    # (k, 3, 3)
        centre = np.einsum("kj,kjc->kc", w, tri)
        nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-30)
        tan = np.gradient(centre, axis=0)
        side = np.cross(nrm, tan)
        side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-30)
        tol = self.scenario.scoring.cut_tolerance_mm * _MM
        lift = 3e-4 * nrm                                 # just above the surface
        return centre + lift, centre + tol * side + lift, centre - tol * side + lift, shown.copy()

    def _track_exposure(self) -> None:
        """How far the exposure target has been lifted from where it lay at ``t = 0`` (m)."""
        s = self.scenario.scoring
        if s.expose_at_mm is None:
            return
        anchor = self._expose_anchor
        if anchor is None or anchor[0] != self.topology_version:
            rest = (self._surface.on_rest_surface(np.asarray(s.expose_at_mm) * _MM) if anchor is None
                    else anchor[3])
            nodes, w = self._surface.anchor(rest)
            start = w @ self.positions[nodes] if anchor is None else anchor[4]
            self._expose_anchor = anchor = (self.topology_version, nodes, w, rest, start)
        _, nodes, w, _, start = anchor
        g = np.asarray(self.scenario.gravity, dtype=float)
        d = np.asarray(s.expose_direction if s.expose_direction is not None else
                       (-g if np.any(g) else (0.0, 0.0, 1.0)), dtype=float)
        lift = float((w @ self.positions[nodes] - start) @ (d / np.linalg.norm(d)))
        self.expose_lift_m = max(self.expose_lift_m, lift)
        if self.expose_time_s is None and lift >= s.expose_lift_mm * _MM:
            self.expose_time_s = self.time

    # ------------------------------------------------------------ actions
    def apply(self, action: Action) -> bool:
        """Start ``action`` now (its ``t`` is taken as the current time) and log it.

        Returns
        -------
        bool
            False when the action found nothing to act on (a grasp out of reach,
            a pull with nothing held); it is then not logged.
        """
        a = replace(action, t=self.time)
        ok = self._start(a)
        if ok:
            self.action_log.append(a)
        return ok

    def grasp(self, at, *, radius: float = 0.006, instrument: str = "grasper") -> bool:
        """Grasp the tissue at ``at`` (m, projected onto the rest surface); False if out of reach."""
        return self.apply(Action(t=0.0, action="grasp", instrument=instrument,
                                 at_mm=_mm_point(at), radius_mm=radius / _MM))

    def pull(self, path, *, duration: float, instrument: str = "grasper", times=None) -> None:
        """Move the grasped tissue through ``path`` (m, shape (k, 3)) over ``duration`` (s)."""
        pts = np.atleast_2d(np.asarray(path, dtype=float))
        self.apply(Action(t=0.0, action="pull", instrument=instrument,
                          path_mm=tuple(_mm_point(p) for p in pts), duration_s=float(duration),
                          times_s=None if times is None else tuple(float(x) for x in times)))

    def release(self, instrument: str = "grasper") -> None:
        """Let go with an instrument (ends its cut stroke, if any)."""
        self.apply(Action(t=0.0, action="release", instrument=instrument))

    def cut(self, path, *, depth: float, duration: float, instrument: str = "scalpel",
            direction=None) -> None:
        """Cut along ``path`` (m, shape (k >= 2, 3), on the rest surface) to ``depth`` (m)."""
        pts = np.asarray(path, dtype=float)
        self.apply(Action(t=0.0, action="cut", instrument=instrument,
                          path_mm=tuple(_mm_point(p) for p in pts), depth_mm=depth / _MM,
                          duration_s=float(duration),
                          direction=None if direction is None else tuple(float(c) for c in direction)))

    def retract(self, at, *, direction, distance: float, duration: float, width: float = 0.02,
                instrument: str = "retractor") -> bool:
        """Hook the surface at ``at`` (m) and draw it ``distance`` (m) along ``direction``."""
        return self.apply(Action(t=0.0, action="retract", instrument=instrument, at_mm=_mm_point(at),
                                 direction=tuple(float(c) for c in direction),
                                 distance_mm=distance / _MM, duration_s=float(duration),
                                 width_mm=width / _MM))

    def probe(self, at, *, depth: float, duration: float, direction=None,
              instrument: str = "probe") -> bool:
        """Press the surface at ``at`` (m) in by ``depth`` (m) (inward normal unless ``direction``)."""
        return self.apply(Action(t=0.0, action="probe", instrument=instrument, at_mm=_mm_point(at),
                                 depth_mm=depth / _MM, duration_s=float(duration),
                                 direction=None if direction is None else tuple(float(c) for c in direction)))

    def resect(self, region: str, *, margin: float) -> None:
        """Remove ``region`` with a ``margin`` (m) around it."""
        self.apply(Action(t=0.0, action="resect", region=region, margin_mm=margin / _MM))

    # -------------------------------------------------- live (the mouse)
    def grasp_begin(self, point: np.ndarray, *, radius: float = 0.006) -> bool:
        """Grasp the tissue at ``point`` (m, on the deformed surface) with the hand grasper."""
        if HAND_GRASPER in self._live or (HAND_GRASPER in self.tools and self.tools[HAND_GRASPER].held is not None):
            self.grasp_end()
        rest = self._surface.rest_point(np.asarray(point, float), self.positions)
        if not self.grasp(rest, radius=radius, instrument=HAND_GRASPER):
            return False
        tool = self.tools[HAND_GRASPER]
        tool.axis = np.array([0.0, -0.6, 0.8])
        # the drag that follows is one pull, extended as the mouse moves
        pull = Action(t=self.time, action="pull", instrument=HAND_GRASPER, path_mm=(), times_s=(),
                      duration_s=0.0)
        self.action_log.append(pull)
        self._live[HAND_GRASPER] = pull
        tool.motion = _Motion(self.time, [tool.tip.copy()], [0.0], 0.0, closed=False, sources=[None],
                              convert=_from_mm)
        return True

    def grasp_move(self, target: np.ndarray) -> None:
        """Move the hand grasper towards ``target`` (m): reached at the end of the next step."""
        tool = self.tools.get(HAND_GRASPER)
        if tool is None or tool.held is None or tool.motion is None or tool.motion.closed:
            return
        m = tool.motion
        m.extend(_mm_point(target), self.time + self.dt - m.t0, self._last_t_end - m.t0)

    def grasp_end(self) -> None:
        """Let go with the hand grasper."""
        pull = self._live.pop(HAND_GRASPER, None)
        tool = self.tools.get(HAND_GRASPER)
        if pull is not None:
            m = tool.motion if tool is not None else None
            if m is None or len(m.points) < 2:
                self.action_log.remove(pull)
            else:
                pull.path_mm = tuple(m.sources[1:])
                pull.times_s = tuple(float(x) for x in m.times[1:])
                pull.duration_s = float(m.times[-1])
        if tool is not None and tool.held is not None:
            self.release(HAND_GRASPER)

    def cut_begin(self, point: np.ndarray, *, depth: float = 0.015) -> bool:
        """Put the hand scalpel's blade into the tissue at ``point`` (m, deformed surface)."""
        if HAND_SCALPEL in self._live:
            self.cut_end()
        rest = self._surface.rest_point(np.asarray(point, float), self.positions)
        a = Action(t=self.time, action="cut", instrument=HAND_SCALPEL, path_mm=(_mm_point(rest),),
                   times_s=(0.0,), depth_mm=float(depth) / _MM, duration_s=0.0)
        self._start(a, live=True)
        m = self.tools[HAND_SCALPEL].cut["motion"]
        m.sources = list(a.path_mm)
        # as a replay's _start projects the whole stroke: onto the surface the stroke began on
        # (the stroke's own cuts replace self._surface on the way)
        surface = self._surface
        m.convert = lambda mm: surface.on_rest_surface(_from_mm(mm))
        self.action_log.append(a)
        self._live[HAND_SCALPEL] = a
        return True

    def cut_move(self, point: np.ndarray) -> None:
        """Move the hand scalpel to ``point`` (m, deformed surface): reached at the end of the next step."""
        tool = self.tools.get(HAND_SCALPEL)
        if tool is None or tool.cut is None or tool.cut["motion"].closed:
            return
        rest = self._surface.rest_point(np.asarray(point, float), self.positions)
        m = tool.cut["motion"]
        m.extend(_mm_point(rest), self.time + self.dt - m.t0, self._last_t_end - m.t0)

    def cut_end(self) -> None:
        """Withdraw the hand scalpel at the end of the next step (the stroke is complete)."""
        a = self._live.pop(HAND_SCALPEL, None)
        tool = self.tools.get(HAND_SCALPEL)
        if a is None or tool is None or tool.cut is None:
            return
        m = tool.cut["motion"]
        m.duration = self.time + self.dt - m.t0
        m.closed = True
        pts = m.sources if len(m.sources) >= 2 else [m.sources[0], m.sources[0]]
        times = m.times if len(m.times) >= 2 else [m.times[0], m.times[0]]
        a.path_mm = tuple(pts)
        a.times_s = tuple(float(x) for x in times)
        a.duration_s = float(m.duration)

    # ------------------------------------------------- action internals
    def _tool(self, action: Action) -> _Tool:
        name = action.instrument_name
        kind = DEFAULT_INSTRUMENT.get(action.action, "grasper")
        if name not in self.tools:
            self.tools[name] = _Tool(name=name, kind=kind)
        tool = self.tools[name]
        if action.action in ("grasp", "retract", "probe", "cut"):
            tool.kind = kind
        return tool

    def _surface_point(self, p_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nodes, w = self._surface.anchor(p_rest)
        return eval_anchor(nodes, w, self.positions)

    def _hold(self, tool: _Tool, centre: np.ndarray, radius: float) -> bool:
        tool.hold = Hold.take(self.sim, tool.name, centre, radius)
        if tool.hold is None:
            self.last_message = f"{tool.name}: no tissue within reach"
            log.warning("%s: nothing to hold near %s mm", tool.name, np.round(centre / _MM, 1))
            return False
        tool.tip = tool.hold.anchor.copy()
        return True

    def _let_go(self, tool: _Tool) -> None:
        if tool.name in self.sim.constraint_names:
            self.sim.release(tool.name)
        tool.hold = None
        tool.motion = None
        tool.contact = None

    @staticmethod
    def _pose(tool: _Tool):
        from ..surgery.instruments import Pose

        return Pose(tool.tip, tool.rotation)

    def _start(self, a: Action, *, live: bool = False) -> bool:
        if a.action == "resect":
            self._resect(a)
            return True
        tool = self._tool(a)
        tool.visible = True
        if a.action == "grasp":
            if tool.held is not None:
                self._let_go(tool)
            pos, nrm = self._surface_point(np.asarray(a.at_mm) * _MM)
            tool.axis = nrm
            ok = self._hold(tool, pos, (a.radius_mm or 6.0) * _MM)
            tool.visible = ok
            return ok
        if a.action == "pull":
            if tool.held is None:
                self.last_message = f"{tool.name}: pull without a grasp ignored"
                log.warning("t=%g: %s pulls but holds nothing; grasp first", a.t, tool.name)
                return False
            way = np.vstack([tool.tip, np.asarray(a.path_mm) * _MM])
            times = [0.0, *a.times_s] if a.times_s is not None else _uniform_times(way, a.duration_s)
            tool.motion = _Motion(self.time, list(way), times, a.duration_s)
            return True
        if a.action == "release":
            if tool.cut is not None:
                tool.cut = None
                self._end_stroke()
            self._let_go(tool)
            tool.visible = False
            return True
        if a.action in ("retract", "probe"):
            if tool.held is not None or tool.contact is not None:
                self._let_go(tool)
            pos, nrm = self._surface_point(np.asarray(a.at_mm) * _MM)
            d = -nrm if a.direction is None else np.asarray(a.direction, float)
            d = d / np.linalg.norm(d)
            if a.action == "probe":
                from ..surgery.contact import Capsule, ContactSet

                tool.axis = -d
                tool.rotation = _frame_with_z(-d)
                tool.contact = ContactSet(Capsule(PROBE_RADIUS, 0.05), name=tool.name)
                # the capsule's end touches the surface, then goes in by depth_mm
                start = pos - PROBE_RADIUS * d
                tool.tip = start.copy()
                way = np.vstack([start, start + a.depth_mm * _MM * d])
                tool.motion = _Motion(self.time, list(way), [0.0, a.duration_s], a.duration_s)
                return True
            width = a.width_mm or 20.0
            dist = a.distance_mm * _MM
            tool.axis = nrm
            if not self._hold(tool, pos, 0.5 * width * _MM):
                return False
            way = np.vstack([pos, pos + dist * d])
            tool.motion = _Motion(self.time, list(way), [0.0, a.duration_s], a.duration_s)
            return True
        # cut
        rest_pts = np.array([self._surface.on_rest_surface(np.asarray(p) * _MM) for p in a.path_mm])
        times = list(a.times_s) if a.times_s is not None else _uniform_times(rest_pts, a.duration_s)
        d = None if a.direction is None else np.asarray(a.direction, float) / np.linalg.norm(a.direction)
        tool.cut = {"motion": _Motion(self.time, list(rest_pts), times, a.duration_s, closed=not live),
                    "depth": a.depth_mm * _MM, "direction": d}
        self._cut_trace_rest.append([])
        self.cutter.lift()
        self._blade(tool, self.time)
        return True

    def _move(self, tool: _Tool, t: float) -> None:
        if tool.contact is not None:
            if tool.motion is not None:
                tool.tip = tool.motion.at(t)
                if tool.motion.done(t):
                    tool.motion = None
            tool.contact.update(self.sim, self._pose(tool))
            return
        if tool.motion is not None and tool.held is not None:
            target = tool.motion.at(t)
            tool.tip = target
            tool.hold.move_to(self.sim, target)
            if tool.motion.done(t):
                tool.motion = None
        if tool.cut is not None:
            self._blade(tool, t)
            if tool.cut["motion"].done(t):
                tool.cut = None
                tool.visible = False  # the scalpel is withdrawn after its stroke
                self._end_stroke()

    def _blade(self, tool: _Tool, t: float) -> None:
        """Move the scalpel to where its stroke is at time ``t`` and cut what it swept."""
        c = tool.cut
        p_rest = c["motion"].at(t)
        pos, nrm = self._surface_point(p_rest)
        down = -nrm if c["direction"] is None else c["direction"]
        blade = np.vstack([pos - BLADE_LIFT * down, pos + c["depth"] * down])
        tool.tip = pos
        tool.axis = -down
        self._cut_trace_rest[-1].append(p_rest)
        t0 = _time.perf_counter()
        r = self.cutter.advance(blade, positions=self.positions)
        if r.changed:
            self._apply_change(r)
            self.cut_ms.append((_time.perf_counter() - t0) * 1e3)

    def _end_stroke(self) -> None:
        """Take the scalpel out: round the stroke's crack front onto nearby vertices (Cutter.finish)."""
        t0 = _time.perf_counter()
        r = self.cutter.finish(positions=self.positions)
        if r.changed:
            self._apply_change(r)
            self.cut_ms.append((_time.perf_counter() - t0) * 1e3)

    def _apply_change(self, change) -> None:
        """Carry one topology change to every part: simulation, held nodes, anchors, cut faces.

        Parameters
        ----------
        change : TopologyChange
            From the cutter or a resection.
        """
        for tool in self.tools.values():
            if tool.hold is not None:
                tool.hold = tool.hold.carried(change)
            if tool.contact is not None:
                tool.contact.remap(change)
        self.sim.change_topology(change.mesh, change.transfer, change.tet_parent)
        if self._rest_loaded is not None:
            self._rest_loaded = (None if change.tet_parent is None
                                 else change.carry_tet_values(self._rest_loaded))
        self._surface = SurfaceAnchors(change.mesh)
        self.cut_face_mask = change.cut_face_mask
        self.topology_version += 1
        self._fields = None

    def _resect(self, a: Action) -> None:
        """Remove a region with a margin (``surgery.resection.resect``), measured in the current shape."""
        from ..surgery.cutting import Cutter
        from ..surgery.resection import resect

        res = resect(self.mesh, a.region, margin_m=a.margin_mm * _MM, positions=self.positions)
        self.recorder.resected_volume_m3 += float(res.removed_volume_m3)
        self.resections.append({"region": a.region, **res.summary()})
        self.last_message = f"resected {res.removed_volume_m3 * 1e6:.1f} mL"
        self._apply_change(res)
        self.cutter = Cutter(res.mesh)

    # --------------------------------------------------------------- results
    def planned_cut_rest(self) -> np.ndarray | None:
        """The planned cut (m, rest surface) used for the deviation metrics, shape (k, 3).

        Computed once: the organ's rest surface and the scenario do not change (the live
        deviation shown every frame reads it).
        """
        return self._planned_rest

    def _project_planned_cut(self) -> np.ndarray | None:
        s = self.scenario
        if s.scoring.planned_cut_mm is not None:
            pts = s.scoring.planned_cut_mm
        else:
            pts = [p for a in s.timeline if a.action == "cut" and a.instrument_name != HAND_SCALPEL
                   for p in a.path_mm]
            if not pts:
                return None
        surf = SurfaceAnchors(self._organ)
        return np.array([surf.on_rest_surface(np.asarray(p) * _MM) for p in pts])

    def summary(self) -> tuple[dict, dict]:
        """Metrics and composite score of the procedure so far."""
        rec = self.recorder
        rec.cut_paths = [np.array(tr) for tr in self._cut_trace_rest if len(tr) >= 2]
        rec.final_volume_m3 = self.mesh.volume
        planned = self.planned_cut_rest()
        m = rec.summary(planned_cut=planned, cut_tolerance_mm=self.scenario.scoring.cut_tolerance_mm)
        if self.resections:
            m["resections"] = self.resections
        if self._rest_loaded is not None:
            # left out of peak stress and damage: stressed by the organ's own weight at rest
            m["loaded_at_rest_ml"] = float(self.mesh.volumes[self._rest_loaded].sum()) * 1e6
        frag = fragments(self.mesh)
        if len(frag) > 1:
            # pieces of tissue cut free of the organ (they fall under gravity)
            m["detached_fragments"] = len(frag) - 1
            m["detached_volume_ml"] = float(sum(frag[1:])) * 1e6
        s = self.scenario
        if s.scoring.expose_at_mm is not None:
            m["target_lift_mm"] = self.expose_lift_m / _MM
            m["target_lift_required_mm"] = s.scoring.expose_lift_mm
            m["target_exposed"] = self.expose_time_s is not None
            if self.expose_time_s is not None:
                m["time_to_expose_s"] = self.expose_time_s
        target = s.scoring.target_time_s or s.duration_s
        score = composite_score(m, target_time_s=target, safe_force_n=s.scoring.safe_force_n,
                                cut_tolerance_mm=s.scoring.cut_tolerance_mm,
                                planned_path_m=self._planned_path_length())
        return m, score

    def _planned_path_length(self) -> float | None:
        """Shortest instrument travel the plan asks for (m): the economy-of-motion reference."""
        total = 0.0
        planned = self.scenario.scoring.planned_cut_mm
        if planned is not None:
            total += path_length(np.asarray(planned) * _MM)
        if self.scenario.scoring.expose_at_mm is not None:
            total += self.scenario.scoring.expose_lift_mm * _MM
        for a in self.scenario.timeline:
            if a.instrument_name in (HAND_GRASPER, HAND_SCALPEL):
                continue  # a replayed live attempt: the trainee's own moves are not the plan
            if a.action == "pull":
                total += path_length(np.asarray(a.path_mm) * _MM)
            elif a.action == "retract":
                total += a.distance_mm * _MM
            elif a.action == "probe":
                total += a.depth_mm * _MM
            elif a.action == "cut" and planned is None:
                total += path_length(np.asarray(a.path_mm) * _MM)
        return total or None

    def attempt_scenario(self, *, description: str | None = None) -> Scenario:
        """The attempt so far as a scenario whose timeline replays it step for step.

        The timeline is :attr:`action_log` (scripted and live actions, in the order
        they were applied); the duration is the time reached. ``organsim run`` on
        it reproduces the attempt's metrics.
        """
        if HAND_SCALPEL in self._live:
            self.cut_end()
        if HAND_GRASPER in self._live:
            # the drag so far is the pull; the grasper keeps holding in the replay
            pull = self._live[HAND_GRASPER]
            m = self.tools[HAND_GRASPER].motion
            if m is not None and len(m.points) >= 2:
                pull.path_mm = tuple(_mm_point(p) for p in m.points[1:])
                pull.times_s = tuple(float(x) for x in m.times[1:])
                pull.duration_s = float(m.times[-1])
        s = copy.deepcopy(self.scenario)
        s.timeline = [copy.deepcopy(a) for a in self.action_log
                      if not (a.action == "pull" and not a.path_mm)]
        end = max(self.time, self.dt)
        s.duration_s = float(end)
        for a in s.timeline:
            if a.duration_s is not None and a.action in ("pull", "cut") and a.duration_s <= 0:
                a.duration_s = self.dt
        if s.scoring.target_time_s is None:
            s.scoring.target_time_s = self.scenario.duration_s
        if description is not None:
            s.description = description
        return s


def _frame_with_z(z: np.ndarray) -> np.ndarray:
    """A rotation matrix (3, 3) whose third column (local +z in world) is the unit vector ``z``."""
    z = np.asarray(z, float) / np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


def _from_mm(mm) -> np.ndarray:
    """A logged point (mm) as a replay reads it (m)."""
    return np.asarray(mm, dtype=float) * _MM


def _mm_point(p) -> tuple[float, float, float]:
    q = np.asarray(p, dtype=float).reshape(3) / _MM
    return (float(q[0]), float(q[1]), float(q[2]))
