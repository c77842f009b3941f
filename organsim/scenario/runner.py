"""Run a scenario: organ + materials + fixations + a timeline of instrument actions.

:class:`Procedure` is a scenario in progress. It owns the
:class:`~organsim.fem.simulation.Simulation`, the instruments, the progressive
:class:`~organsim.surgery.cutting.Cutter` and the :class:`MetricsRecorder`;
:meth:`Procedure.advance` applies the timeline and steps the simulation once.
It is also a viewer frame source (:mod:`organsim.viewer.sources`), so the same
procedure runs headless, in the interactive viewer, or into a video.

:func:`run` runs a scenario to the end and writes its results::

    outdir/
      series.pvd, series/series_NNNNNN.vtu   time series (ParaView)
      metrics.json                           metrics, score, timings
      report.html                            plots, score, rendered image
      final.png                              the final state, rendered off-screen
      <video>                                if recording was asked for

Settling under gravity
----------------------
With gravity on and ``settle_s > 0``, :meth:`Procedure.reset` first lets the
organ sag under its weight, held by its fixations, until it is at rest (no
instrument acts and nothing is recorded); the procedure's clock starts at 0
from that equilibrium. Without it the organ is dropped at ``t = 0``, and the
first instrument actions meet an organ still falling. Tets already above the
damage stress at rest (the stiff vessels and the tissue at the fixations' edges
carry the organ's weight) are left out of the peak-stress and damage metrics,
which score what the procedure does; their volume is reported as
``loaded_at_rest_ml``.

How instruments act
-------------------
Instrument points in a scenario (``at_mm``, cut ``path_mm``) are anchored to
the tissue: each is projected onto the organ's rest surface and follows that
material point as the organ deforms (a cut follows the line marked on the
tissue). Pull paths are positions in space the grasper's hand moves to.

- *grasp*: the surface nodes within ``radius_mm`` of the point are held
  (a prescribed-position constraint named after the instrument).
- *pull*: the held nodes move rigidly through ``path_mm`` (piecewise linear
  in time over ``duration_s``).
- *release*: the constraint is removed.
- *retract* / *probe*: the retractor blade (probe tip) engages the surface
  patch of ``width_mm`` (probe: 8 mm) at the point and displaces it along
  ``direction`` by ``distance_mm`` (``depth_mm``) over ``duration_s``, then
  holds it until released (a retractor hooked under the tissue).
- *cut*: a scalpel blade (a segment from 2 mm above the surface to
  ``depth_mm`` below it, along the inward normal unless ``direction`` is given)
  moves along the marked path over ``duration_s``; each step the
  :class:`~organsim.surgery.cutting.Cutter` splits what it swept and the
  simulation continues on the new mesh.
- *resect*: the region plus a ``margin_mm`` margin is removed
  (``organsim.surgery.resection.resect`` where installed; otherwise the tets
  whose centroid lies within the margin of the region, reported as an
  element-wise estimate).

The reported instrument force is the sum of the constraint's reaction forces
with the opposite sign: what the tissue pulls the instrument with.
"""

from __future__ import annotations

import json
import logging
import time as _time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import OrganSimError, ScenarioError
from ..mesh.tetmesh import TetMesh
from ..viewer.sources import InstrumentView
from .metrics import MetricsRecorder, composite_score, path_length
from .schema import Action, Scenario, check_regions

__all__ = ["Procedure", "Results", "run", "load_organ", "build_simulation"]

log = logging.getLogger(__name__)

_MM = 1e-3
#: Node speed (m/s) below which the organ counts as at rest when it settles under gravity.
SETTLED_SPEED = 1e-3
#: Gap (m) above the surface where the blade's back starts.
_BLADE_LIFT = 0.002


# ------------------------------------------------------------------ building
def load_organ(scenario: Scenario) -> TetMesh:
    """The scenario's organ mesh (rest configuration, metres)."""
    o = scenario.organ
    if o.shipped is not None:
        from ..mesh.shipped import load_shipped

        return load_shipped(o.shipped)
    from ..io import read_mesh

    return read_mesh(o.path, units=o.units)


def _material_for(scenario: Scenario, region: str):
    from ..fem import materials as mats
    from ..fem.tissues import tissue

    spec = scenario.materials.get(region, scenario.materials.get("default"))
    if spec is None:
        raise ScenarioError(f"materials: no material for region {region!r}; add "
                            f"[materials.{region}] or [materials.default]")
    preset = tissue(spec.tissue, model=spec.model, nu=spec.nu)
    material = preset.material
    if spec.E_pa is not None:
        cls = {"neo_hookean": mats.NeoHookean, "corotational": mats.Corotational,
               "linear": mats.LinearElastic, "stvk": mats.StVenantKirchhoff}.get(spec.model)
        if cls is None:
            raise ScenarioError(f"materials.{region}.E_pa: cannot override E for model "
                                f"{spec.model!r}; use neo_hookean, corotational, linear or stvk")
        material = cls(spec.E_pa, spec.nu)
    density = preset.density if spec.density is None else spec.density
    return material, density


def build_simulation(scenario: Scenario, mesh: TetMesh):
    """Body, materials, fixations and gravity of a scenario as a Simulation."""
    from ..fem import selection
    from ..fem.body import Body
    from ..fem.simulation import Simulation

    check_regions(scenario, set(mesh.region_names.values()))
    materials, density = {}, {}
    for rid, name in mesh.region_names.items():
        if not np.any(mesh.region_ids == rid):
            continue
        materials[name], density[name] = _material_for(scenario, name)
    body = Body(mesh, materials, density=density)
    sim = Simulation(body, gravity=scenario.gravity, dt=scenario.dt_s,
                     integrator=scenario.integrator,
                     damping=(scenario.damping_mass, scenario.damping_stiffness))
    for i, f in enumerate(scenario.fixations):
        if f.region is not None:
            nodes = selection.region(mesh, f.region)
        else:
            nodes = selection.box(mesh, np.asarray(f.box_min_mm) * _MM, np.asarray(f.box_max_mm) * _MM)
        sim.fix(nodes, name=f"fixation{i}")
    return sim


def _new_cutter(mesh: TetMesh):
    from ..surgery.cutting import Cutter

    return Cutter(mesh)


# ------------------------------------------------------------------ anchors
class _Surface:
    """Closest-point queries on a mesh's rest boundary (anchoring points to tissue).

    The search tree is built at the first query: after a cut increment the runner
    makes a new one, and most increments never anchor anything.
    """

    def __init__(self, mesh: TetMesh) -> None:
        self.mesh = mesh

    @cached_property
    def faces(self) -> np.ndarray:
        return self.mesh.boundary_faces

    @cached_property
    def tree(self):
        from scipy.spatial import cKDTree

        return cKDTree(self.mesh.points[self.faces].mean(axis=1))

    def anchor(self, point: np.ndarray, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
        """Nodes (3,) and barycentric weights (3,) of the closest rest-surface point."""
        k = min(k, len(self.faces))
        _, idx = self.tree.query(point, k=k)
        idx = np.atleast_1d(idx)
        tri = self.mesh.points[self.faces[idx]]
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        n = np.cross(b - a, c - a)
        area2 = np.einsum("ij,ij->i", n, n)
        q = point - (np.einsum("ij,ij->i", point - a, n) / np.where(area2 > 0, area2, 1.0))[:, None] * n
        w0 = np.einsum("ij,ij->i", np.cross(c - b, q - b), n)
        w1 = np.einsum("ij,ij->i", np.cross(a - c, q - c), n)
        w = np.clip(np.c_[w0, w1, area2 - w0 - w1] / np.where(area2 > 0, area2, 1.0)[:, None], 0, None)
        w /= np.where(w.sum(axis=1) > 0, w.sum(axis=1), 1.0)[:, None]
        proj = np.einsum("ij,ijk->ik", w, tri)
        best = int(np.argmin(np.linalg.norm(proj - point, axis=1)))
        return self.faces[idx[best]], w[best]


def _eval_anchor(nodes, w, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Current position (3,) and outward unit normal (3,) of an anchored point."""
    tri = x[nodes]
    pos = w @ tri
    nrm = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    ln = np.linalg.norm(nrm)
    return pos, (nrm / ln if ln > 0 else np.array([0.0, 0.0, 1.0]))


def _polyline_at(points: np.ndarray, s: float) -> np.ndarray:
    """Point at arc-length fraction ``s`` in [0, 1] of a polyline (k, 3)."""
    if len(points) == 1:
        return points[0].copy()
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    target = np.clip(s, 0.0, 1.0) * cum[-1]
    return np.array([np.interp(target, cum, points[:, c]) for c in range(3)])


# ---------------------------------------------------------------- instruments
@dataclass
class _Tool:
    """One instrument's state."""

    name: str
    kind: str
    tip: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    axis: np.ndarray = field(default_factory=lambda: np.array([0.0, -0.6, 0.8]))
    held: np.ndarray | None = None          # node ids held by the constraint ``name``
    start: np.ndarray | None = None         # (k, 3) positions of the held nodes at grasp
    anchor: np.ndarray | None = None        # tip position at grasp
    motion: tuple | None = None             # (t0 s, duration s, waypoints (q, 3) m)
    cut: dict | None = None                 # active cut stroke
    visible: bool = False

    @property
    def active(self) -> bool:
        return self.held is not None or self.cut is not None


class Procedure:
    """A scenario in progress; also a frame source for the viewer.

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
    >>> from organsim.scenario import loads                       # doctest: +SKIP
    >>> proc = Procedure(loads(open("retraction.toml").read()))    # doctest: +SKIP
    >>> while not proc.finished:                                   # doctest: +SKIP
    ...     proc.advance()
    """

    def __init__(self, scenario: Scenario, *, fields_every: int = 5, mesh: TetMesh | None = None,
                 open_ended: bool = False) -> None:
        self.scenario = scenario
        self.open_ended = bool(open_ended)
        self.fields_every = max(1, int(fields_every))
        self._organ = load_organ(scenario) if mesh is None else mesh
        self.notes: list[str] = []
        if any(a.action == "cut" for a in scenario.timeline):
            # the compiled cutting kernels load now, not in the frame of the first cut
            from ..surgery.cutting import warm_up

            warm_up()
        self.reset()

    # ---------------------------------------------------------------- state
    def reset(self) -> None:
        """Start the procedure again from the rest state."""
        from ..surgery.cutting import Cutter

        s = self.scenario
        self.sim = build_simulation(s, self._organ)
        self._t_origin = 0.0
        self._settle()
        self._rest_loaded = self._loaded_at_rest()
        self.cutter = Cutter(self._organ)
        self._surface = _Surface(self._organ)
        self.topology_version = getattr(self, "topology_version", 0) + 1
        self.cut_face_mask: np.ndarray | None = None
        self.tools: dict[str, _Tool] = {}
        self._next_action = 0
        self.step_count = 0
        self.step_ms: list[float] = []
        self.cut_ms: list[float] = []
        self._fields: dict | None = None
        self._fields_step = -1
        self.recorder = MetricsRecorder(safe_force_n=s.scoring.safe_force_n,
                                        damage_stress_pa=s.scoring.damage_stress_pa)
        self.recorder.initial_volume_m3 = self._organ.volume
        self.resections: list[dict] = []
        self._cut_trace_rest: list[list[np.ndarray]] = []
        self._interactive_cuts: list[np.ndarray] = []
        self._planned_rest: np.ndarray | None = None
        self.last_message = ""
        self._record()

    @property
    def mesh(self) -> TetMesh:
        return self.sim.mesh

    @property
    def positions(self) -> np.ndarray:
        return self.sim.positions

    @property
    def time(self) -> float:
        """Procedure time (s): 0 when the timeline starts, after any settling."""
        return float(self.sim.time) - self._t_origin

    def _loaded_at_rest(self) -> np.ndarray | None:
        """Tets (m,) bool that carry the organ's weight above the damage stress once settled.

        The stiff vessels and the tissue at the fixations' edges carry the weight of
        an organ at rest under gravity; that stress is not the trainee's doing, so
        these tets are left out of the peak-stress and damage metrics.
        """
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
                                       f" settling): {exc}.{advice}") from exc
            self.settle_steps = k + 1
            if k >= 2 and float(np.abs(self.sim.velocities).max()) < SETTLED_SPEED:
                break
        if not info.min_jacobian > 0:
            # linear and corotational tissue can be crushed inside out without the step failing
            raise ConvergenceError(f"the organ could not settle under gravity: after {self.settle_steps} steps"
                                   f" elements are crushed inside out (min det F = {info.min_jacobian:.3g})."
                                   + advice)
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

    @property
    def finished(self) -> bool:
        return self.time >= self.scenario.duration_s - 0.5 * self.scenario.dt_s

    # --------------------------------------------------------------- frames
    def advance(self) -> None:
        """Apply the timeline due now, move the instruments, cut, and step once."""
        if self.finished and not self.open_ended:
            return
        dt = self.scenario.dt_s
        t_end = self.time + dt
        tl = self.scenario.timeline
        while self._next_action < len(tl) and tl[self._next_action].t <= self.time + 1e-9:
            self._start(tl[self._next_action])
            self._next_action += 1
        for tool in list(self.tools.values()):
            self._move(tool, t_end)
        t0 = _time.perf_counter()
        self.sim.step()
        self.step_ms.append((_time.perf_counter() - t0) * 1e3)
        self.step_count += 1
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

    def _get_fields(self, max_age: int = 0) -> dict:
        """Strain/stress fields, recomputed when older than ``max_age`` steps (or after a cut)."""
        if self._fields is None or self.step_count - self._fields_step > max_age:
            self._fields = self.sim.fields()
            self._fields_step = self.step_count
        return self._fields

    def nodal_field(self, name: str) -> np.ndarray | None:
        # the live stress view refreshes the fields every few steps: they cost about as much
        # as a solver step
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

    def panel_lines(self) -> list[str]:
        lines = []
        if self.step_ms:
            lines.append(f"step {self.step_ms[-1]:.0f} ms")
        rec = self.recorder
        if rec.peak_stress_pa:
            lines.append(f"peak stress {max(rec.peak_stress_pa) / 1e3:.1f} kPa")
        if rec.cut_paths:
            lines.append(f"cut {sum(path_length(c) for c in rec.cut_paths) * 1e3:.0f} mm")
        if self.last_message:
            lines.append(self.last_message)
        return lines

    def _force(self, tool: _Tool) -> np.ndarray:
        if tool.held is None or tool.name not in self.sim.constraint_names:
            return np.zeros(3)
        return -np.asarray(self.sim.reaction(tool.name)).sum(axis=0)

    # -------------------------------------------------------------- actions
    def _tool(self, action: Action) -> _Tool:
        from .schema import DEFAULT_INSTRUMENT

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
        return _eval_anchor(nodes, w, self.positions)

    def _hold(self, tool: _Tool, centre: np.ndarray, radius: float) -> bool:
        from ..viewer.sources import grasp_nodes

        nodes = grasp_nodes(self.mesh, self.positions, centre, radius)
        if len(nodes) == 0:
            self.last_message = f"{tool.name}: no tissue within reach"
            log.warning("%s: nothing to hold near %s mm", tool.name, np.round(centre / _MM, 1))
            return False
        tool.held = nodes
        tool.start = self.positions[nodes].copy()
        tool.anchor = np.asarray(centre, float).copy()
        tool.tip = tool.anchor.copy()
        self.sim.prescribe(nodes, tool.start, name=tool.name)
        return True

    def _let_go(self, tool: _Tool) -> None:
        if tool.name in self.sim.constraint_names:
            self.sim.release(tool.name)
        tool.held = tool.start = None
        tool.motion = None

    def _start(self, a: Action) -> None:
        if a.action == "resect":
            self._resect(a)
            return
        tool = self._tool(a)
        tool.visible = True
        if a.action == "grasp":
            if tool.held is not None:
                self._let_go(tool)
            pos, nrm = self._surface_point(np.asarray(a.at_mm) * _MM)
            tool.axis = nrm
            self._hold(tool, pos, (a.radius_mm or 6.0) * _MM)
        elif a.action == "pull":
            if tool.held is None:
                self.last_message = f"{tool.name}: pull without a grasp ignored"
                log.warning("timeline t=%g: %s pulls but holds nothing; grasp first", a.t, tool.name)
                return
            way = np.vstack([tool.tip, np.asarray(a.path_mm) * _MM])
            tool.motion = (self.time, a.duration_s, way)
        elif a.action == "release":
            if tool.cut is not None:
                tool.cut = None
                self._end_stroke()
            self._let_go(tool)
            tool.visible = False
        elif a.action in ("retract", "probe"):
            if tool.held is not None:
                self._let_go(tool)
            pos, nrm = self._surface_point(np.asarray(a.at_mm) * _MM)
            width = (a.width_mm or 20.0) if a.action == "retract" else 8.0
            d = -nrm if a.direction is None else np.asarray(a.direction, float)
            d = d / np.linalg.norm(d)
            dist = (a.distance_mm if a.action == "retract" else a.depth_mm) * _MM
            tool.axis = -d if a.action == "probe" else nrm
            if self._hold(tool, pos, 0.5 * width * _MM):
                tool.motion = (self.time, a.duration_s, np.vstack([pos, pos + dist * d]))
        elif a.action == "cut":
            anchors = [self._surface.anchor(np.asarray(p) * _MM) for p in a.path_mm]
            rest_pts = np.array([w @ self._surface.mesh.points[n] for n, w in anchors])
            d = None if a.direction is None else np.asarray(a.direction, float) / np.linalg.norm(a.direction)
            tool.cut = {"t0": self.time, "duration": a.duration_s, "rest": rest_pts,
                        "depth": a.depth_mm * _MM, "direction": d}
            self._cut_trace_rest.append([])
            self.cutter.lift()
            self._blade(tool, 0.0)

    def _move(self, tool: _Tool, t: float) -> None:
        if tool.motion is not None and tool.held is not None:
            t0, dur, way = tool.motion
            s = min(1.0, (t - t0) / dur) if dur > 0 else 1.0
            target = _polyline_at(way, s)
            tool.tip = target
            self.sim.prescribe(tool.held, tool.start + (target - tool.anchor), name=tool.name)
            if s >= 1.0:
                tool.motion = None
        if tool.cut is not None:
            c = tool.cut
            s = min(1.0, (t - c["t0"]) / c["duration"])
            self._blade(tool, s)
            if s >= 1.0:
                tool.cut = None
                tool.visible = False  # the scalpel is withdrawn after its stroke
                self._end_stroke()

    def _blade(self, tool: _Tool, s: float) -> None:
        """Move the scalpel to fraction ``s`` of its path and cut what it swept."""
        c = tool.cut
        p_rest = _polyline_at(c["rest"], s)
        pos, nrm = self._surface_point(p_rest)
        down = -nrm if c["direction"] is None else c["direction"]
        blade = np.vstack([pos - _BLADE_LIFT * down, pos + c["depth"] * down])
        tool.tip = pos
        tool.axis = -down
        self._cut_trace_rest[-1].append(p_rest)
        t0 = _time.perf_counter()
        r = self.cutter.advance(blade, positions=self.positions)
        if r.changed:
            self._apply_topology(r.mesh, r.transfer, r.tet_parent)
            self.cut_face_mask = r.cut_face_mask
            self.cut_ms.append((_time.perf_counter() - t0) * 1e3)

    def _end_stroke(self) -> None:
        """Take the scalpel out: round the stroke's crack front onto nearby vertices (Cutter.finish)."""
        t0 = _time.perf_counter()
        r = self.cutter.finish(positions=self.positions)
        if r.changed:
            self._apply_topology(r.mesh, r.transfer, r.tet_parent)
            self.cut_face_mask = r.cut_face_mask
            self.cut_ms.append((_time.perf_counter() - t0) * 1e3)

    def _apply_topology(self, new_mesh: TetMesh, transfer, tet_parent=None) -> None:
        """Continue the simulation on a new rest mesh; carry held nodes of each tool."""
        T = sp.csr_matrix(transfer)
        holding = [tool for tool in self.tools.values() if tool.held is not None]
        if holding:
            Tb = T.copy()
            Tb.data = (Tb.data != 0).astype(float)
            nparents = np.diff(Tb.indptr)
        for tool in holding:
            mark = np.zeros(T.shape[1])
            mark[tool.held] = 1.0
            new = np.flatnonzero((nparents > 0) & ((Tb @ mark) == nparents))
            full = np.zeros((T.shape[1], 3))
            full[tool.held] = tool.start
            tool.held = new
            tool.start = (T @ full)[new]
        self.sim.change_topology(new_mesh, T, tet_parent)
        if self._rest_loaded is not None:
            self._rest_loaded = None if tet_parent is None else self._rest_loaded[np.asarray(tet_parent)]
        self._surface = _Surface(new_mesh)
        self.topology_version += 1
        self._fields = None

    def _resect(self, a: Action) -> None:
        """Remove a region with a margin (``surgery.resection.resect``), measured in the current shape."""
        from ..surgery.resection import resect
        from ..surgery.cutting import face_keys

        res = resect(self.mesh, a.region, margin_m=a.margin_mm * _MM, positions=self.positions)
        self.recorder.resected_volume_m3 += float(res.removed_volume_m3)
        self.resections.append({"region": a.region, **res.summary()})
        self.last_message = f"resected {res.removed_volume_m3 * 1e6:.1f} mL"
        loaded = self._rest_loaded
        self._apply_topology(res.mesh, res.transfer)
        self._rest_loaded = None if loaded is None else loaded[np.asarray(res.tet_parent)]
        # keep earlier cut faces and add the resection surface
        keys = face_keys(res.mesh.boundary_faces)
        mask = np.isin(keys, res.cut_face_keys)
        self.cutter = _new_cutter(res.mesh)
        self.cut_face_mask = mask

    # ------------------------------------------------------- interactive use
    def grasp_begin(self, point: np.ndarray, *, radius: float = 0.006) -> bool:
        """Viewer: hold the tissue near ``point`` (m) with the mouse grasper."""
        tool = self.tools.setdefault("mouse", _Tool(name="mouse", kind="grasper"))
        if tool.held is not None:
            self._let_go(tool)
        tool.visible = True
        tool.axis = np.array([0.0, -0.6, 0.8])
        return self._hold(tool, np.asarray(point, float), radius)

    def grasp_move(self, target: np.ndarray) -> None:
        tool = self.tools.get("mouse")
        if tool is None or tool.held is None:
            return
        tool.tip = np.asarray(target, float)
        self.sim.prescribe(tool.held, tool.start + (tool.tip - tool.anchor), name=tool.name)

    def grasp_end(self) -> None:
        tool = self.tools.get("mouse")
        if tool is not None:
            self._let_go(tool)
            tool.visible = False

    def cut_path(self, points: np.ndarray, *, depth: float = 0.015) -> str:
        """Viewer: cut along a path drawn on the current (deformed) surface (m)."""
        pts = np.asarray(points, float)
        n_before = self.mesh.n_tets
        self.cutter.lift()
        for p in pts:
            nrm = self._current_normal(p)
            blade = np.vstack([p + _BLADE_LIFT * nrm, p - depth * nrm])
            t0 = _time.perf_counter()
            r = self.cutter.advance(blade, positions=self.positions)
            if r.changed:
                self._apply_topology(r.mesh, r.transfer, r.tet_parent)
                self.cut_face_mask = r.cut_face_mask
                self.cut_ms.append((_time.perf_counter() - t0) * 1e3)
        self._end_stroke()
        self._interactive_cuts.append(pts)
        return f"cut {path_length(pts) * 1e3:.0f} mm: {self.mesh.n_tets - n_before} tets added"

    def _current_normal(self, p: np.ndarray) -> np.ndarray:
        """Outward unit normal of the current surface near ``p`` (mean of the nearest faces)."""
        x = self.positions
        bf = self.mesh.boundary_faces
        tri = x[bf]
        d = np.linalg.norm(tri.mean(axis=1) - p, axis=1)
        near = np.argsort(d)[:6]
        n = np.cross(tri[near, 1] - tri[near, 0], tri[near, 2] - tri[near, 0]).sum(axis=0)
        ln = np.linalg.norm(n)
        return n / ln if ln > 0 else np.array([0.0, 0.0, 1.0])

    # --------------------------------------------------------------- results
    def planned_cut_rest(self) -> np.ndarray | None:
        """The planned cut (m, rest surface) used for the deviation metrics."""
        s = self.scenario
        if s.scoring.planned_cut_mm is not None:
            return np.array([self._project_rest(np.asarray(p) * _MM) for p in s.scoring.planned_cut_mm])
        cuts = [a for a in s.timeline if a.action == "cut"]
        if not cuts:
            return None
        return np.array([self._project_rest(np.asarray(p) * _MM) for a in cuts for p in a.path_mm])

    def _project_rest(self, p: np.ndarray) -> np.ndarray:
        surf = _Surface(self._organ)
        n, w = surf.anchor(p)
        return w @ self._organ.points[n]

    def summary(self) -> tuple[dict, dict]:
        """Metrics and composite score of the procedure so far."""
        rec = self.recorder
        rec.cut_paths = [np.array(tr) for tr in self._cut_trace_rest if len(tr) >= 2] + \
            list(self._interactive_cuts)
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
        target = s.scoring.target_time_s or s.duration_s
        planned_path = self._planned_path_length()
        score = composite_score(m, target_time_s=target, safe_force_n=s.scoring.safe_force_n,
                                cut_tolerance_mm=s.scoring.cut_tolerance_mm,
                                planned_path_m=planned_path)
        return m, score

    def _planned_path_length(self) -> float | None:
        """Shortest instrument travel the timeline asks for (m): the economy-of-motion reference."""
        total = 0.0
        planned = self.scenario.scoring.planned_cut_mm
        if planned is not None:
            total += path_length(np.asarray(planned) * _MM)
        for a in self.scenario.timeline:
            if a.action == "pull":
                total += path_length(np.asarray(a.path_mm) * _MM)
            elif a.action == "retract":
                total += a.distance_mm * _MM
            elif a.action == "probe":
                total += a.depth_mm * _MM
            elif a.action == "cut" and planned is None:
                total += path_length(np.asarray(a.path_mm) * _MM)
        return total or None


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


def _state_arrays(proc: Procedure, with_fields: bool) -> tuple[dict, dict]:
    point_data, cell_data = {}, {}
    if with_fields:
        f = proc._get_fields()
        point_data["von_mises"] = f["nodal_von_mises"]
        cell_data["von_mises"] = f["von_mises"]
    if proc.cut_face_mask is not None:
        cell_data["cut_faces"] = cut_face_bits(proc.mesh, proc.cut_face_mask)
    return point_data, cell_data


def fragments(mesh: TetMesh) -> list[float]:
    """Volumes (m^3) of the mesh's face-connected pieces, largest first."""
    from scipy.sparse.csgraph import connected_components

    rows = np.repeat(np.arange(mesh.n_tets), 4)
    a = sp.csr_matrix((np.ones(rows.size), (rows, mesh.tets.ravel())),
                      shape=(mesh.n_tets, mesh.n_points))
    n, lab = connected_components(a @ a.T, directed=False)
    vols = np.bincount(lab, weights=mesh.volumes, minlength=n)
    return sorted(vols.tolist(), reverse=True)


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


def run(scenario: Scenario, outdir: str | Path, *, record: str | Path | None = None,
        progress: bool = True, trainee: str | None = None, history_path: str | Path | None = None,
        image: bool = True, window_size: tuple[int, int] = (800, 600)) -> Results:
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

    Returns
    -------
    Results
    """
    from ..io.series import SeriesWriter

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
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
    wall = _time.perf_counter() - t_start
    metrics, score = proc.summary()
    notes += [n_ for n_ in proc.notes if n_ not in notes]
    if failure:
        notes.insert(0, f"the run stopped early at t = {proc.time:.3f} s of {scenario.duration_s:g} s: "
                        f"{failure[0]}")
        metrics["completed"] = False
        # an attempt that did not finish is not scored
        score = {**score, "score": 0.0, "proficient_attempt": False, "incomplete": True}
    timings = {
        "wall_s": wall,
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
            v.scene.camera_preset(o.camera)
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
    doc = {"scenario": scenario.name, "description": scenario.description,
           "score": score, "metrics": metrics, "timings": timings, "notes": notes,
           "files": {"series": series_path.name if series_path else None,
                     "video": video_path.name if video_path else None,
                     "image": image_path.name if image_path else None}}
    mpath = out / "metrics.json"
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=float), encoding="utf-8")
    tmp.replace(mpath)
    report = None
    if o.report:
        from .report import write_report

        t, forces = proc.recorder.force_series()
        report = write_report(out / "report.html", title=f"organsim: {scenario.name}",
                              metrics=metrics, score=score, force_times=t, forces=forces,
                              safe_force_n=scenario.scoring.safe_force_n, curve=curve,
                              image_png=png, notes=notes)
    return Results(outdir=out, metrics=metrics, score=score, metrics_path=mpath, series=series_path,
                   report=report, video=video_path, image=image_path, notes=notes, timings=timings,
                   completed=not failure)
