"""The scenario schema: a procedure as plain dataclasses, validated.

A scenario names an organ, the material of each region, what holds the organ,
gravity, the time step and duration, a timeline of instrument actions, how
the attempt is scored and what to write. It round-trips exactly through TOML
(:mod:`organsim.scenario.loader`) and can be built in Python::

    from organsim.scenario import Scenario, Organ, Fixation, Action
    s = Scenario(name="retraction", organ=Organ(shipped="liver"),
                 fixations=[Fixation(region="ligament")],
                 timeline=[Action(t=0.1, action="grasp", at_mm=(40.0, -60.0, 10.0)),
                           Action(t=0.2, action="pull", path_mm=((40.0, -80.0, 30.0),),
                                  duration_s=1.0)])

Coordinates in a scenario are millimetres in the organ's world frame (LPS for
organs from imaging); inside organsim everything is converted to metres.

Validation (:func:`scenario_from_dict`) raises
:class:`~organsim.errors.ScenarioError` whose message names the key (as a
path, e.g. ``timeline[2].at_mm``), what is wrong and what is allowed.
Region names can only be checked against a mesh: :func:`check_regions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ScenarioError

__all__ = [
    "Organ", "Material", "Fixation", "Action", "Scoring", "Output", "Scenario",
    "ACTION_KINDS", "ACTION_KEYS", "INSTRUMENT_KINDS", "INTEGRATORS",
    "scenario_from_dict", "scenario_to_dict", "check_regions",
]

Point = tuple[float, float, float]

#: Actions a timeline can hold, and the keys each takes (besides ``t`` and ``action``).
ACTION_KEYS: dict[str, dict[str, bool]] = {
    # key -> required?
    "grasp": {"instrument": False, "at_mm": True, "radius_mm": False},
    "pull": {"instrument": False, "path_mm": True, "duration_s": True, "times_s": False},
    "release": {"instrument": False},
    "probe": {"instrument": False, "at_mm": True, "direction": False, "depth_mm": True,
              "duration_s": True},
    "retract": {"instrument": False, "at_mm": True, "direction": True, "distance_mm": True,
                "duration_s": True, "width_mm": False},
    "cut": {"instrument": False, "path_mm": True, "depth_mm": True, "duration_s": True,
            "direction": False, "times_s": False},
    "resect": {"region": True, "margin_mm": True},
}
ACTION_KINDS = tuple(ACTION_KEYS)
#: Instrument kind each action uses when the scenario does not name an instrument.
DEFAULT_INSTRUMENT = {"grasp": "grasper", "pull": "grasper", "release": "grasper",
                      "probe": "probe", "retract": "retractor", "cut": "scalpel"}
INSTRUMENT_KINDS = ("grasper", "probe", "retractor", "scalpel")
INTEGRATORS = ("backward_euler", "realtime")
MATERIAL_MODELS = ("neo_hookean", "corotational", "linear", "stvk", "mooney_rivlin")
SHIPPED = ("liver", "kidney", "block", "gauze")
UNITS = ("m", "cm", "mm", "um")
#: Camera presets (kept in step with organsim.viewer.scene.CAMERA_PRESETS; a test checks).
CAMERAS = ("anterior", "posterior", "superior", "inferior", "right", "left", "surgeon", "demo")

#: Bounds of numeric keys: (low, high, inclusive-low).
_LIMITS = {
    "duration_s": (0.0, 3600.0), "times_s": (0.0, 3600.0), "dt_s": (1e-5, 0.1), "t": (0.0, 3600.0),
    "radius_mm": (0.1, 50.0), "depth_mm": (0.0, 200.0), "distance_mm": (0.0, 300.0),
    "margin_mm": (0.0, 50.0), "width_mm": (1.0, 100.0), "nu": (0.0, 0.4999),
    "E_pa": (1.0, 1e9), "density": (100.0, 5000.0), "safe_force_n": (0.0, 1000.0),
    "damage_stress_pa": (0.0, 1e9), "target_time_s": (0.0, 36000.0),
    "cut_tolerance_mm": (0.0, 100.0), "expose_lift_mm": (0.1, 300.0), "every": (1, 100000), "fps": (1, 120),
    "steps_per_frame": (1, 1000), "edge_length_mm": (0.5, 50.0),
    "damping_mass": (0.0, 1e4), "damping_stiffness": (0.0, 10.0), "settle_s": (0.0, 60.0),
}


# ---------------------------------------------------------------- dataclasses
@dataclass
class Organ:
    """The organ to simulate: a shipped mesh by name, or a file.

    Parameters
    ----------
    shipped : str, optional
        ``"liver"``, ``"kidney"`` or ``"block"``.
    path : str, optional
        A volume mesh file (VTU, MSH, MEDIT, XDMF); relative paths are relative
        to the scenario file.
    units : str, optional
        Length unit of ``path`` if its format has none. Not given: metres for a
        VTU written by organsim, else ``"mm"`` (as imaging software exports).
    """

    shipped: str | None = "liver"
    path: str | None = None
    units: str | None = None


@dataclass
class Material:
    """The material of one region: a tissue preset, optionally overridden.

    Parameters
    ----------
    tissue : str
        Preset name (see :mod:`organsim.fem.tissues`): liver, tumour, kidney, ...
    model : str
        Constitutive model: neo_hookean, corotational, linear, stvk, mooney_rivlin.
    nu : float
        Poisson ratio.
    E_pa : float, optional
        Young's modulus (Pa) instead of the preset's.
    density : float, optional
        Mass density (kg/m^3) instead of the preset's.
    """

    tissue: str = "liver"
    model: str = "neo_hookean"
    nu: float = 0.45
    E_pa: float | None = None
    density: float | None = None


@dataclass
class Fixation:
    """Nodes held fixed: those of a region, or inside a box (mm)."""

    region: str | None = None
    box_min_mm: Point | None = None
    box_max_mm: Point | None = None


@dataclass
class Action:
    """One timeline entry. Which keys apply depends on ``action`` (:data:`ACTION_KEYS`).

    Parameters
    ----------
    t : float
        Start time (s).
    action : str
        grasp, pull, release, probe, retract, cut or resect.
    instrument : str, optional
        Instrument name; each distinct name is one instrument (its kind is the
        action's default: grasper, probe, retractor, scalpel).
    at_mm : (float, float, float), optional
        Where a grasp, probe or retraction starts (mm).
    path_mm : tuple of points, optional
        Way points (mm): a pull moves the grasper through them; a cut follows them
        on the surface.
    duration_s : float, optional
        How long a pull, probe, retraction or cut takes (s).
    times_s : tuple of float, optional
        For a pull or a cut: when (s after ``t``) each point of ``path_mm`` is
        reached, one per point, non-decreasing, the last at most ``duration_s``
        (the way a recorded live attempt moved). Without it the instrument moves
        at constant speed along the path over ``duration_s``; a cut ends (the
        blade is withdrawn) at ``duration_s``.
    direction : (float, float, float), optional
        Direction of a retraction or probe push; the blade's depth direction for a
        cut (default: into the organ, opposite the surface normal).
    distance_mm, depth_mm, radius_mm, width_mm : float, optional
        Retraction distance, probe/cut depth, grasp radius, retractor width.
    region : str, optional
        Region a resection removes.
    margin_mm : float, optional
        Safety margin around the resected region (mm).
    """

    t: float
    action: str
    instrument: str | None = None
    at_mm: Point | None = None
    path_mm: tuple[Point, ...] | None = None
    duration_s: float | None = None
    times_s: tuple[float, ...] | None = None
    direction: Point | None = None
    distance_mm: float | None = None
    depth_mm: float | None = None
    radius_mm: float | None = None
    width_mm: float | None = None
    region: str | None = None
    margin_mm: float | None = None

    @property
    def instrument_name(self) -> str | None:
        """The instrument this action drives (its explicit name or the default kind)."""
        return self.instrument or DEFAULT_INSTRUMENT.get(self.action)


@dataclass
class Scoring:
    """How an attempt is scored (see :mod:`organsim.scenario.metrics`).

    Parameters
    ----------
    safe_force_n : float
        Instrument force above which tissue is considered at risk (N).
    damage_stress_pa : float
        von Mises stress above which tissue counts as damaged (Pa).
    planned_cut_mm : tuple of points, optional
        The path the cut should follow (mm); defaults to the cut actions' paths.
    cut_tolerance_mm : float
        Deviation from the planned cut that is still on the line (mm).
    target_time_s : float, optional
        Expert procedure time used by the score (s); defaults to the duration.
    expose_at_mm : (float, float, float), optional
        A retraction task: the tissue point (mm, on the rest surface) that must
        be lifted out of the way to expose what lies under it.
    expose_lift_mm : float
        How far that point must move along ``expose_direction`` (mm).
    expose_direction : (float, float, float), optional
        Direction of the lift (default: against gravity, or +z without it).
    """

    safe_force_n: float = 3.0
    damage_stress_pa: float = 30e3
    planned_cut_mm: tuple[Point, ...] | None = None
    cut_tolerance_mm: float = 2.0
    target_time_s: float | None = None
    expose_at_mm: Point | None = None
    expose_lift_mm: float = 20.0
    expose_direction: Point | None = None


@dataclass
class Output:
    """What a run writes.

    Parameters
    ----------
    series : bool
        VTU/PVD time series (opens in ParaView).
    every : int
        Write every n-th step.
    report : bool
        HTML report next to ``metrics.json``.
    video : str, optional
        File name of an off-screen recording (.mp4 or .gif) inside the output folder.
    fps : int
        Frame rate of the recording.
    camera : str
        Camera preset of the recording and the rendered image (see
        :data:`organsim.viewer.scene.CAMERA_PRESETS`).
    """

    series: bool = True
    every: int = 1
    report: bool = True
    video: str | None = None
    fps: int = 25
    camera: str = "surgeon"


@dataclass
class Scenario:
    """A complete procedure.

    Parameters
    ----------
    name : str
    description : str
    organ : Organ
    materials : dict[str, Material]
        Region name -> material; the key ``"default"`` applies to regions not listed.
    fixations : list[Fixation]
    gravity : (float, float, float)
        m/s^2.
    settle_s : float
        Before ``t = 0``, let the organ come to rest under gravity and its
        fixations for at most this much simulated time (s; instruments idle,
        nothing recorded), so the procedure starts from the sagged equilibrium
        instead of dropping the organ at ``t = 0``. The settling stops early once
        no node moves faster than 1 mm/s. ``0`` (the default) starts from the
        rest mesh.
    duration_s, dt_s : float
        Simulated time and time step (s).
    integrator : str
        ``"backward_euler"`` or ``"realtime"``.
    damping_mass, damping_stiffness : float
        Rayleigh damping coefficients (1/s and s).
    timeline : list[Action]
    scoring : Scoring
    output : Output
    """

    name: str = "procedure"
    description: str = ""
    organ: Organ = field(default_factory=Organ)
    materials: dict[str, Material] = field(default_factory=lambda: {"default": Material()})
    fixations: list[Fixation] = field(default_factory=list)
    gravity: Point = (0.0, 0.0, -9.81)
    settle_s: float = 0.0
    duration_s: float = 1.0
    dt_s: float = 0.02
    integrator: str = "backward_euler"
    damping_mass: float = 0.5
    damping_stiffness: float = 0.01
    timeline: list[Action] = field(default_factory=list)
    scoring: Scoring = field(default_factory=Scoring)
    output: Output = field(default_factory=Output)

    @property
    def n_steps(self) -> int:
        """Number of time steps."""
        return int(round(self.duration_s / self.dt_s))


# ------------------------------------------------------------------ validation
def _fail(key: str, problem: str, allowed: str) -> ScenarioError:
    return ScenarioError(f"{key}: {problem}; {allowed}")


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(v), type(v).__name__)


def _check_keys(d: Any, key: str, allowed: list[str], required: list[str] = ()) -> dict:
    if not isinstance(d, dict):
        raise _fail(key or "scenario", f"expected a table, got {_type_name(d)} {d!r}",
                    f"allowed keys: {', '.join(allowed)}")
    for k in d:
        if k not in allowed:
            raise _fail(f"{key}.{k}" if key else k, "unknown key",
                        f"allowed keys{' in ' + key if key else ''}: {', '.join(allowed)}")
    for k in required:
        if k not in d:
            raise _fail(f"{key}.{k}" if key else k, "missing",
                        f"it is required{' in ' + key if key else ''}")
    return d


def _num(v: Any, key: str, *, integer: bool = False) -> float | int:
    name = key.rsplit(".", 1)[-1]
    base = name.split("[")[0]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise _fail(key, f"expected {'an integer' if integer else 'a number'}, got "
                    f"{_type_name(v)} {v!r}", _limit_text(base))
    if not math.isfinite(v):
        raise _fail(key, f"must be finite, got {v!r}", _limit_text(base))
    if base in _LIMITS:
        lo, hi = _LIMITS[base]
        if not lo <= v <= hi:
            raise _fail(key, f"{v!r} is out of range", _limit_text(base))
    return int(v) if integer else float(v)


def _limit_text(base: str) -> str:
    if base in _LIMITS:
        lo, hi = _LIMITS[base]
        return f"allowed: {lo:g} to {hi:g}"
    return "allowed: a finite number"


def _str(v: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(v, str):
        raise _fail(key, f"expected a string, got {_type_name(v)} {v!r}",
                    f"allowed: {', '.join(choices)}" if choices else "use a quoted string")
    if choices is not None and v not in choices:
        raise _fail(key, f"unknown value {v!r}", f"allowed: {', '.join(choices)}")
    return v


def _bool(v: Any, key: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(key, f"expected true or false, got {_type_name(v)} {v!r}", "allowed: true, false")
    return v


def _point(v: Any, key: str) -> Point:
    if (not isinstance(v, (list, tuple)) or len(v) != 3
            or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in v)):
        raise _fail(key, f"expected a list of 3 numbers, got {v!r}",
                    "write it as [x, y, z] (mm for *_mm keys)")
    if not all(math.isfinite(c) for c in v):
        raise _fail(key, f"coordinates must be finite, got {v!r}", "write it as [x, y, z]")
    return (float(v[0]), float(v[1]), float(v[2]))


def _path(v: Any, key: str, *, min_points: int = 1) -> tuple[Point, ...]:
    if not isinstance(v, (list, tuple)) or len(v) < min_points:
        raise _fail(key, f"expected a list of at least {min_points} points, got {v!r}",
                    "write it as [[x, y, z], [x, y, z], ...] in mm")
    return tuple(_point(p, f"{key}[{i}]") for i, p in enumerate(v))


def _known_tissues() -> tuple[str, ...]:
    try:
        from ..fem.tissues import TISSUE_DATA
    except ImportError:  # the tissue table is not installed: accept any name here
        return ()
    return tuple(TISSUE_DATA) + ("vessel", "tumor", "heart")


def _material(d: Any, key: str) -> Material:
    allowed = [f.name for f in fields(Material)]
    _check_keys(d, key, allowed)
    m = Material()
    if "tissue" in d:
        known = _known_tissues()
        m.tissue = _str(d["tissue"], f"{key}.tissue", known or None)
    if "model" in d:
        m.model = _str(d["model"], f"{key}.model", MATERIAL_MODELS)
    if "nu" in d:
        m.nu = _num(d["nu"], f"{key}.nu")
    if "E_pa" in d:
        m.E_pa = _num(d["E_pa"], f"{key}.E_pa")
    if "density" in d:
        m.density = _num(d["density"], f"{key}.density")
    return m


def _fixation(d: Any, key: str) -> Fixation:
    _check_keys(d, key, ["region", "box_min_mm", "box_max_mm"])
    f = Fixation(region=_str(d["region"], f"{key}.region") if "region" in d else None)
    if "box_min_mm" in d or "box_max_mm" in d:
        if "box_min_mm" not in d or "box_max_mm" not in d:
            raise _fail(key, "a box needs both box_min_mm and box_max_mm",
                        "give both corners, or a region")
        f.box_min_mm = _point(d["box_min_mm"], f"{key}.box_min_mm")
        f.box_max_mm = _point(d["box_max_mm"], f"{key}.box_max_mm")
        if any(a >= b for a, b in zip(f.box_min_mm, f.box_max_mm)):
            raise _fail(f"{key}.box_max_mm", f"each coordinate must exceed box_min_mm's "
                        f"({f.box_min_mm} vs {f.box_max_mm})", "give the low and the high corner")
    if (f.region is None) == (f.box_min_mm is None):
        raise _fail(key, "give exactly one of region or a box (box_min_mm, box_max_mm)",
                    "allowed keys: region, box_min_mm, box_max_mm")
    return f


def _action(d: Any, key: str) -> Action:
    if not isinstance(d, dict):
        raise _fail(key, f"expected a table, got {_type_name(d)} {d!r}",
                    "write each entry as [[timeline]] with t and action")
    if "action" not in d:
        raise _fail(f"{key}.action", "missing", f"allowed actions: {', '.join(ACTION_KINDS)}")
    kind = _str(d["action"], f"{key}.action", ACTION_KINDS)
    spec = ACTION_KEYS[kind]
    allowed = ["t", "action", *spec]
    required = ["t", *[k for k, req in spec.items() if req]]
    for k in d:
        if k not in allowed:
            raise _fail(f"{key}.{k}", f"unknown key for a {kind!r} action",
                        f"allowed keys for {kind!r}: {', '.join(allowed)}")
    for k in required:
        if k not in d:
            raise _fail(f"{key}.{k}", f"missing (a {kind!r} action needs it)",
                        f"required keys for {kind!r}: {', '.join(required)}")
    a = Action(t=_num(d["t"], f"{key}.t"), action=kind)
    for k, v in d.items():
        if k in ("t", "action"):
            continue
        kk = f"{key}.{k}"
        if k in ("instrument", "region"):
            setattr(a, k, _str(v, kk))
        elif k in ("at_mm", "direction"):
            setattr(a, k, _point(v, kk))
        elif k == "path_mm":
            a.path_mm = _path(v, kk, min_points=2 if kind == "cut" else 1)
        elif k == "times_s":
            if not isinstance(v, (list, tuple)):
                raise _fail(kk, f"expected a list of numbers, got {v!r}",
                            "give one time (s after t) per point of path_mm")
            a.times_s = tuple(float(_num(x, f"{kk}[{i}]")) for i, x in enumerate(v))
        else:
            setattr(a, k, _num(v, kk))
    if a.direction is not None and all(c == 0 for c in a.direction):
        raise _fail(f"{key}.direction", "must not be zero", "give a direction such as [0, -1, 0]")
    if kind in ("pull", "probe", "retract", "cut") and a.duration_s is not None and a.duration_s <= 0:
        raise _fail(f"{key}.duration_s", f"must be positive, got {a.duration_s}", "allowed: > 0 s")
    if a.times_s is not None:
        ts = a.times_s
        if len(ts) != len(a.path_mm):
            raise _fail(f"{key}.times_s", f"has {len(ts)} times for {len(a.path_mm)} points of path_mm",
                        "give one time (s after t) per point")
        if any(x < 0 for x in ts) or any(b < a_ for a_, b in zip(ts, ts[1:])):
            raise _fail(f"{key}.times_s", f"times must be >= 0 and non-decreasing, got {list(ts)}",
                        "list when each point is reached, in order")
        if ts[-1] > a.duration_s + 1e-9:
            raise _fail(f"{key}.times_s", f"the last time {ts[-1]:g} s is after duration_s = "
                        f"{a.duration_s:g} s", "make duration_s at least the last time")
    return a


def _scoring(d: Any, key: str) -> Scoring:
    allowed = [f.name for f in fields(Scoring)]
    _check_keys(d, key, allowed)
    s = Scoring()
    for k, v in d.items():
        if k == "planned_cut_mm":
            s.planned_cut_mm = _path(v, f"{key}.{k}", min_points=2)
        elif k in ("expose_at_mm", "expose_direction"):
            setattr(s, k, _point(v, f"{key}.{k}"))
        else:
            setattr(s, k, _num(v, f"{key}.{k}"))
    return s


def _output(d: Any, key: str) -> Output:
    allowed = [f.name for f in fields(Output)]
    _check_keys(d, key, allowed)
    o = Output()
    for k, v in d.items():
        kk = f"{key}.{k}"
        if k in ("series", "report"):
            setattr(o, k, _bool(v, kk))
        elif k in ("every", "fps"):
            setattr(o, k, _num(v, kk, integer=True))
        elif k == "camera":
            o.camera = _str(v, kk, CAMERAS)
        elif k == "video":
            o.video = _str(v, kk)
            if not o.video.lower().endswith((".mp4", ".gif")):
                raise _fail(kk, f"unsupported video file {o.video!r}", "allowed: a .mp4 or .gif name")
    return o


def scenario_from_dict(d: Any) -> Scenario:
    """Validate a parsed TOML document and build the :class:`Scenario`.

    Raises
    ------
    ScenarioError
        Naming the key, what is wrong and what is allowed.
    """
    if isinstance(d, dict) and not d:
        raise ScenarioError("the scenario is empty; give at least [organ] (shipped = \"liver\" or "
                            "path = \"mesh.vtu\") and a [[timeline]]; see examples/scenarios/")
    top = [f.name for f in fields(Scenario)]
    _check_keys(d, "", top)
    s = Scenario()
    for k, v in d.items():
        if k in ("name", "description"):
            setattr(s, k, _str(v, k))
        elif k == "integrator":
            s.integrator = _str(v, k, INTEGRATORS)
        elif k == "gravity":
            s.gravity = _point(v, k)
        elif k in ("duration_s", "dt_s", "damping_mass", "damping_stiffness", "settle_s"):
            setattr(s, k, _num(v, k))
        elif k == "organ":
            _check_keys(v, "organ", ["shipped", "path", "units"])
            o = Organ(shipped=None)
            if "shipped" in v:
                o.shipped = _str(v["shipped"], "organ.shipped", SHIPPED)
            if "path" in v:
                o.path = _str(v["path"], "organ.path")
            if "units" in v:
                o.units = _str(v["units"], "organ.units", UNITS)
            if (o.shipped is None) == (o.path is None):
                raise _fail("organ", "give exactly one of shipped or path",
                            f"shipped organs: {', '.join(SHIPPED)}; or path = a mesh file")
            s.organ = o
        elif k == "materials":
            if not isinstance(v, dict) or not v:
                raise _fail("materials", f"expected a table of regions, got {v!r}",
                            "write [materials.<region>] tables (or [materials.default])")
            s.materials = {str(r): _material(m, f"materials.{r}") for r, m in v.items()}
        elif k == "fixations":
            if not isinstance(v, list):
                raise _fail("fixations", f"expected a list, got {_type_name(v)}",
                            "write each as [[fixations]] with region = ... or a box")
            s.fixations = [_fixation(f, f"fixations[{i}]") for i, f in enumerate(v)]
        elif k == "timeline":
            if not isinstance(v, list):
                raise _fail("timeline", f"expected a list, got {_type_name(v)}",
                            "write each action as [[timeline]]")
            s.timeline = [_action(a, f"timeline[{i}]") for i, a in enumerate(v)]
        elif k == "scoring":
            s.scoring = _scoring(v, "scoring")
        elif k == "output":
            s.output = _output(v, "output")
    if s.duration_s <= 0:
        raise _fail("duration_s", f"must be positive, got {s.duration_s}", _limit_text("duration_s"))
    if s.dt_s > s.duration_s:
        raise _fail("dt_s", f"{s.dt_s} s is longer than duration_s = {s.duration_s} s",
                    "use a time step shorter than the duration")
    for i, a in enumerate(s.timeline):
        if a.t > s.duration_s:
            raise _fail(f"timeline[{i}].t", f"{a.t} s is after the end (duration_s = {s.duration_s})",
                        f"allowed: 0 to {s.duration_s:g} s")
    times = [a.t for a in s.timeline]
    if times != sorted(times):
        i = next(j for j in range(1, len(times)) if times[j] < times[j - 1])
        raise _fail(f"timeline[{i}].t", f"{times[i]} s comes before the previous action ({times[i - 1]} s)",
                    "list the timeline in time order")
    return s


def _clean(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_clean(x) for x in v]
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items() if x is not None}
    return v


def _dc(obj: Any) -> dict:
    return {f.name: _clean(getattr(obj, f.name)) for f in fields(obj)
            if getattr(obj, f.name) is not None}


def scenario_to_dict(s: Scenario) -> dict:
    """The scenario as a TOML-ready dict (``None`` values left out)."""
    out = {k: _clean(getattr(s, k)) for k in ("name", "description", "duration_s", "dt_s",
                                              "integrator", "damping_mass", "damping_stiffness",
                                              "gravity", "settle_s")}
    out["organ"] = _dc(s.organ)
    out["materials"] = {r: _dc(m) for r, m in s.materials.items()}
    out["fixations"] = [_dc(f) for f in s.fixations]
    out["timeline"] = [_dc(a) for a in s.timeline]
    out["scoring"] = _dc(s.scoring)
    out["output"] = _dc(s.output)
    return out


def check_regions(s: Scenario, region_names: list[str] | set[str]) -> None:
    """Check every region the scenario names exists in the organ mesh.

    Raises
    ------
    ScenarioError
        Naming the key and listing the mesh's regions.
    """
    names = set(region_names)
    allowed = f"regions of this organ: {', '.join(sorted(names))}"
    for r in s.materials:
        if r != "default" and r not in names:
            raise _fail(f"materials.{r}", "unknown region", allowed + " (or default)")
    for i, f in enumerate(s.fixations):
        if f.region is not None and f.region not in names:
            raise _fail(f"fixations[{i}].region", f"unknown region {f.region!r}", allowed)
    for i, a in enumerate(s.timeline):
        if a.region is not None and a.region not in names:
            raise _fail(f"timeline[{i}].region", f"unknown region {a.region!r}", allowed)
