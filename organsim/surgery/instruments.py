"""Rigid surgical instruments acting on a :class:`~organsim.fem.simulation.Simulation`.

Every instrument has a pose (position + rotation) that is either set directly
(:meth:`Instrument.set_pose`, e.g. by the viewer) or interpolated from scripted
keyframes (:class:`Trajectory`). Each frame, :func:`step` moves every
instrument to the pose for the end of the step, lets the scalpel cut (and
carries the other instruments' node sets across the topology change), turns
each instrument's action into constraints, advances the simulation and
collects the forces:

* :class:`Grasper` closes on the tissue between its jaws, holds those
  material points rigidly in its frame (a prescribed constraint updated
  every step), drags them along its path and releases them. The jaw force is
  the sum of the constraint's reactions.
* :class:`Probe` (a capsule) and :class:`Retractor` (a plate) push and hold
  tissue by frictionless contact (:class:`~organsim.surgery.contact.ContactSet`),
  including against faces made by a cut.
* :class:`Scalpel` sweeps its blade and cuts progressively
  (:class:`~organsim.surgery.cutting.Cutter`).

Forces are reported as :class:`ToolForces`: the force on the tissue and its
opposite, the reaction on the instrument (what a haptic device would render).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..errors import SimulationError
from .contact import Box, Capsule, ContactSet, Shape
from .cutting import Cutter, CutResult

__all__ = ["Pose", "Trajectory", "ToolForces", "Instrument", "Grasper", "Probe", "Retractor",
           "Scalpel", "step"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pose:
    """A rigid pose: world = position + rotation @ local.

    Parameters
    ----------
    position : (3,) m
    rotation : (3, 3) rotation matrix (identity by default)
    """

    position: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        p = np.asarray(self.position, dtype=np.float64).reshape(3)
        R = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(R))):
            raise SimulationError("a pose must be finite; got NaN or infinite values")
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise SimulationError("pose rotation must be a proper rotation matrix (orthonormal, det +1)")
        object.__setattr__(self, "position", p)
        object.__setattr__(self, "rotation", R)

    def apply(self, local: np.ndarray) -> np.ndarray:
        """World coordinates (k, 3) of local points (k, 3)."""
        return self.position + np.asarray(local, dtype=np.float64) @ self.rotation.T

    def to_local(self, world: np.ndarray) -> np.ndarray:
        """Local coordinates (k, 3) of world points (k, 3)."""
        return (np.asarray(world, dtype=np.float64) - self.position) @ self.rotation


class Trajectory:
    """Keyframed poses, interpolated linearly in position and by slerp in rotation.

    Parameters
    ----------
    times : (k,) s, increasing
    positions : (k, 3) m
    rotations : (k, 3, 3), optional (identity)

    Examples
    --------
    >>> tr = Trajectory([0, 1], [[0, 0, 0], [0.01, 0, 0]])
    >>> tr.pose(0.5).position
    array([0.005, 0.   , 0.   ])
    """

    def __init__(self, times, positions, rotations=None) -> None:
        self.times = np.asarray(times, dtype=np.float64)
        self.positions = np.asarray(positions, dtype=np.float64)
        k = len(self.times)
        if k < 1 or self.positions.shape != (k, 3) or np.any(np.diff(self.times) <= 0):
            raise SimulationError(f"a trajectory needs increasing times (k,) and positions (k, 3);"
                                  f" got {self.times.shape} and {self.positions.shape}")
        rot = np.broadcast_to(np.eye(3), (k, 3, 3)) if rotations is None else np.asarray(rotations, float)
        self._rot = Rotation.from_matrix(rot)
        self._slerp = Slerp(self.times, self._rot) if k > 1 else None

    def pose(self, t: float) -> Pose:
        """The pose at time ``t`` (clamped to the keyframe range)."""
        t = float(np.clip(t, self.times[0], self.times[-1]))
        p = np.array([np.interp(t, self.times, self.positions[:, d]) for d in range(3)])
        R = self._slerp([t]).as_matrix()[0] if self._slerp is not None else self._rot.as_matrix()[0]
        return Pose(p, R)


@dataclass(frozen=True)
class ToolForces:
    """Forces between one instrument and the tissue after a step.

    Attributes
    ----------
    name : str
    time : float (s)
    on_tissue : (3,) N, total force the instrument exerts on the tissue
    on_tool : (3,) N, the reaction on the instrument (= -on_tissue)
    nodes : (k,) node ids in contact / held
    nodal : (k, 3) N, per-node force on the tissue
    """

    name: str
    time: float
    on_tissue: np.ndarray
    on_tool: np.ndarray
    nodes: np.ndarray
    nodal: np.ndarray

    @property
    def magnitude(self) -> float:
        """|on_tissue| (N)."""
        return float(np.linalg.norm(self.on_tissue))


class Instrument:
    """Base class: a named rigid tool with a pose.

    Parameters
    ----------
    name : str
        Unique name (also the name of the simulation constraint it maintains).
    trajectory : Trajectory, optional
        Scripted motion; without one, use :meth:`set_pose`.
    pose : Pose, optional
        Initial pose.
    """

    def __init__(self, name: str, *, trajectory: Trajectory | None = None, pose: Pose | None = None) -> None:
        self.name = str(name)
        self.trajectory = trajectory
        if pose is None:
            pose = trajectory.pose(trajectory.times[0]) if trajectory is not None else Pose(np.zeros(3))
        self.pose = pose

    def set_pose(self, position, rotation=None) -> None:
        """Place the instrument (viewer-driven motion)."""
        self.pose = Pose(position, np.eye(3) if rotation is None else rotation)

    def move_to_time(self, t: float) -> None:
        """Follow the trajectory (no-op without one)."""
        if self.trajectory is not None:
            self.pose = self.trajectory.pose(t)

    # hooks used by step()
    def apply(self, sim) -> None:
        """Turn the action into constraints for the next step."""

    def after_step(self, sim) -> ToolForces:
        """Read the forces after the step."""
        return _no_force(self.name, sim.time)

    def on_topology_change(self, result: CutResult) -> None:
        """Carry node sets across a topology change."""


def _no_force(name, t) -> ToolForces:
    return ToolForces(name, t, np.zeros(3), np.zeros(3), np.zeros(0, np.int64), np.zeros((0, 3)))


class Grasper(Instrument):
    """Jaws that close on the tissue between them and hold it.

    The jaw region in the grasper's local frame is the box
    ``0 <= x <= jaw_length``, ``|y| <= opening / 2``, ``|z| <= jaw_width / 2``
    (the tip points along local +x).

    Parameters
    ----------
    name : str
    jaw_length, opening, jaw_width : float (m)
    trajectory, pose : see :class:`Instrument`

    Examples
    --------
    >>> g = Grasper("grasper", jaw_length=0.01, opening=0.006, jaw_width=0.004)
    >>> g.is_closed
    False
    """

    def __init__(self, name: str = "grasper", *, jaw_length: float = 0.012, opening: float = 0.008,
                 jaw_width: float = 0.006, trajectory: Trajectory | None = None, pose: Pose | None = None):
        super().__init__(name, trajectory=trajectory, pose=pose)
        self.jaw_length, self.opening, self.jaw_width = float(jaw_length), float(opening), float(jaw_width)
        self.nodes = np.zeros(0, dtype=np.int64)
        self._local = np.zeros((0, 3))
        self._want_release = False

    @property
    def is_closed(self) -> bool:
        """True while holding tissue."""
        return len(self.nodes) > 0

    def jaw_nodes(self, positions: np.ndarray) -> np.ndarray:
        """Ids of nodes (current positions (n, 3)) inside the jaw region."""
        q = self.pose.to_local(positions)
        inside = ((q[:, 0] >= 0) & (q[:, 0] <= self.jaw_length) & (np.abs(q[:, 1]) <= self.opening / 2)
                  & (np.abs(q[:, 2]) <= self.jaw_width / 2))
        return np.flatnonzero(inside)

    def close(self, sim) -> int:
        """Close the jaws: grasp the nodes between them now. Returns how many were grasped.

        On a mesh coarser than the jaws, the jaws may close between nodes; then
        the surface node nearest the jaws' centre is taken if it lies within
        ``jaw_length`` of it (the jaws pinch the tissue surface there).
        """
        ids = self.jaw_nodes(sim.positions)
        if len(ids) == 0:
            surf = sim.mesh.boundary_nodes
            centre = self.pose.apply(np.array([[self.jaw_length / 2, 0.0, 0.0]]))[0]
            d = np.linalg.norm(sim.positions[surf] - centre, axis=1)
            if len(d) and d.min() <= self.jaw_length:
                ids = surf[[int(np.argmin(d))]]
        if len(ids) == 0:
            log.info("grasper %r closed on no tissue", self.name)
            return 0
        self.nodes = ids
        self._local = self.pose.to_local(sim.positions[ids])
        sim.prescribe(ids, self.pose.apply(self._local), name=self.name)
        return len(ids)

    def open(self, sim) -> None:
        """Open the jaws: release the tissue."""
        if self.name in sim.constraint_names:
            sim.release(self.name)
        self.nodes = np.zeros(0, dtype=np.int64)
        self._local = np.zeros((0, 3))

    def apply(self, sim) -> None:
        if self.is_closed:
            sim.prescribe(self.nodes, self.pose.apply(self._local), name=self.name)

    def after_step(self, sim) -> ToolForces:
        if not self.is_closed or self.name not in sim.constraint_names:
            return _no_force(self.name, sim.time)
        f = sim.reaction(self.name)
        tot = f.sum(axis=0)
        return ToolForces(self.name, sim.time, tot, -tot, self.nodes.copy(), f)

    def on_topology_change(self, result: CutResult) -> None:
        if self.is_closed:
            self.nodes, self._local = result.carry_node_values(self.nodes, self._local)


class _ContactTool(Instrument):
    shape: Shape

    def __init__(self, name, shape, *, trajectory=None, pose=None):
        super().__init__(name, trajectory=trajectory, pose=pose)
        self.shape = shape
        self.contact = ContactSet(shape, name=name)

    def apply(self, sim) -> None:
        self.contact.update(sim, self.pose)

    def after_step(self, sim) -> ToolForces:
        tot, nodal = self.contact.force_on_tissue(sim)
        out = ToolForces(self.name, sim.time, tot, -tot, self.contact.active.copy(), nodal)
        self.contact.settle(sim, self.pose)
        return out

    def on_topology_change(self, result: CutResult) -> None:
        self.contact.remap(result)


class Probe(_ContactTool):
    """A blunt probe: a capsule of ``radius`` along local +z from the tip (origin) for ``length``.

    Examples
    --------
    >>> Probe("probe", radius=0.003).shape.radius
    0.003
    """

    def __init__(self, name: str = "probe", *, radius: float = 0.003, length: float = 0.05,
                 trajectory: Trajectory | None = None, pose: Pose | None = None):
        super().__init__(name, Capsule(float(radius), float(length)), trajectory=trajectory, pose=pose)


class Retractor(_ContactTool):
    """A flat retractor plate: a box with half extents ``half`` (m) centred on the pose.

    Examples
    --------
    >>> Retractor("retractor", half=(0.002, 0.015, 0.02)).shape.half
    (0.002, 0.015, 0.02)
    """

    def __init__(self, name: str = "retractor", *, half=(0.002, 0.015, 0.02),
                 trajectory: Trajectory | None = None, pose: Pose | None = None):
        super().__init__(name, Box(tuple(float(h) for h in half)), trajectory=trajectory, pose=pose)


class Scalpel(Instrument):
    """A blade that cuts progressively along its swept path.

    The blade is the local segment from the tip (origin) up along local +z
    for ``depth`` m (the cutting edge). While ``cutting`` is True, each step
    cuts what the blade swept since the previous step.

    Parameters
    ----------
    name : str
    depth : float (m), blade length
    snap : float, see :class:`~organsim.surgery.cutting.Cutter`
    """

    def __init__(self, name: str = "scalpel", *, depth: float = 0.02, snap: float = 0.25,
                 trajectory: Trajectory | None = None, pose: Pose | None = None):
        super().__init__(name, trajectory=trajectory, pose=pose)
        self.depth = float(depth)
        self.snap = float(snap)
        self.cutting = True
        self.cutter: Cutter | None = None
        self.last_result: CutResult | None = None
        self.cut_seconds: list[float] = []

    def blade(self) -> np.ndarray:
        """Blade polyline (2, 3) in world coordinates."""
        return self.pose.apply(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, self.depth]]))

    def lift(self, sim=None) -> CutResult | None:
        """Stop cutting; the next cut starts a new stroke.

        With ``sim`` (the simulation being cut), the stroke is ended with
        :meth:`~organsim.surgery.cutting.Cutter.finish`: the crack front is rounded
        onto nearby vertices so the incision opens as far as the blade went, and
        ``sim``'s topology is updated. Returns that change, or None.
        """
        self.cutting = False
        if self.cutter is None:
            return None
        if sim is None or self.cutter.mesh is not sim.mesh:
            self.cutter.lift()
            return None
        res = self.cutter.finish(positions=sim.positions)
        if res.changed:
            sim.change_topology(res.mesh, res.transfer, res.tet_parent)
            self.cutter.mesh = sim.mesh if sim.mesh.n_points == res.mesh.n_points else res.mesh
            self.last_result = res
            return res
        return None

    def lower(self) -> None:
        """Resume cutting (a new stroke starts at the current pose)."""
        self.cutting = True

    def cut(self, sim) -> CutResult | None:
        """Cut along the blade's sweep since the last call; update ``sim``'s topology."""
        import time as _time

        if not self.cutting:
            return None
        if self.cutter is None or self.cutter.mesh is not sim.mesh:
            self.cutter = Cutter(sim.mesh, snap=self.snap)
        t0 = _time.perf_counter()
        res = self.cutter.advance(self.blade(), positions=sim.positions)
        if res.changed:
            sim.change_topology(res.mesh, res.transfer, res.tet_parent)
            # the simulation keeps its own copy of the mesh; follow it
            self.cutter.mesh = sim.mesh if sim.mesh.n_points == res.mesh.n_points else res.mesh
        self.cut_seconds.append(_time.perf_counter() - t0)
        self.last_result = res
        return res if res.changed else None


def step(sim, instruments, *, dt: float | None = None) -> dict[str, ToolForces]:
    """Advance ``sim`` by one step with the instruments acting.

    Parameters
    ----------
    sim : Simulation
    instruments : sequence of Instrument
    dt : float, optional (s)

    Returns
    -------
    dict
        ``{name: ToolForces}`` for every instrument.
    """
    names = [i.name for i in instruments]
    if len(set(names)) != len(names):
        raise SimulationError(f"instrument names must be unique, got {names}")
    t_next = sim.time + (sim.dt if dt is None else float(dt))
    for ins in instruments:
        ins.move_to_time(t_next)
    for ins in instruments:
        if isinstance(ins, Scalpel):
            res = ins.cut(sim)
            if res is not None:
                for other in instruments:
                    if other is not ins:
                        other.on_topology_change(res)
    for ins in instruments:
        ins.apply(sim)
    sim.step(dt)
    return {ins.name: ins.after_step(sim) for ins in instruments}
