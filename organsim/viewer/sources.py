"""What the viewer draws: a *frame source*.

The viewer does not know about solvers, instruments or scenarios. It reads
the current state of a frame source each frame and, when it is not paused,
asks the source to advance. Three sources exist:

- :class:`StaticSource`: a mesh that does not move (mesh files, previews).
- :class:`SimulationSource`: a :class:`organsim.fem.simulation.Simulation`
  stepped by the viewer's timer; mouse grasping acts on it through
  ``Simulation.prescribe``/``release``.
- :class:`organsim.scenario.runner.Procedure`: a scenario (simulation plus a
  timeline of instrument actions and running metrics).

Any object with the attributes of :class:`FrameSource` works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..mesh.tetmesh import TetMesh

__all__ = ["InstrumentView", "FrameSource", "StaticSource", "SimulationSource"]


@dataclass
class InstrumentView:
    """How the viewer sees one instrument this frame.

    Parameters
    ----------
    name : str
        Label shown in the panel ("grasper", "scalpel"...).
    kind : str
        Shape to draw: ``"grasper"``, ``"probe"``, ``"retractor"`` or ``"scalpel"``.
    tip : ndarray, shape (3,)
        Position of the working tip (m).
    axis : ndarray, shape (3,)
        Unit vector from the tip towards the handle.
    force : ndarray, shape (3,)
        Force the tissue exerts on the instrument (N).
    active : bool
        Whether it is acting on the tissue (jaws closed, blade cutting...).
    """

    name: str
    kind: str
    tip: np.ndarray
    axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    force: np.ndarray = field(default_factory=lambda: np.zeros(3))
    active: bool = False


@runtime_checkable
class FrameSource(Protocol):
    """The state the viewer reads each frame.

    Attributes
    ----------
    mesh : TetMesh
        Current rest mesh (its topology changes after a cut).
    topology_version : int
        Incremented whenever ``mesh`` is replaced.
    positions : ndarray, shape (n, 3)
        Current node positions (m).
    time : float
        Simulated time (s).
    cut_face_mask : ndarray of bool, shape (k,) or None
        True for faces of ``mesh.boundary_faces`` created by a cut.
    """

    mesh: TetMesh
    topology_version: int
    positions: np.ndarray
    time: float
    cut_face_mask: np.ndarray | None

    def advance(self) -> None: ...

    def reset(self) -> None: ...

    def instruments(self) -> list[InstrumentView]: ...

    def nodal_field(self, name: str) -> np.ndarray | None: ...

    def panel_lines(self) -> list[str]: ...


def _toward_camera_axis() -> np.ndarray:
    return np.array([0.0, -0.6, 0.8])


class StaticSource:
    """A mesh that does not move.

    Parameters
    ----------
    mesh : TetMesh
    positions : ndarray, shape (n, 3), optional
        Deformed positions to show instead of the rest positions (m).
    cut_face_mask : ndarray of bool, shape (k,), optional
        Faces of ``mesh.boundary_faces`` to draw as cut faces.
    point_fields : dict[str, ndarray], optional
        Nodal fields ((n,) arrays) the stress view may show, e.g. ``{"von_mises": ...}``.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> src = StaticSource(box_tet_mesh((3, 3, 3), 0.01))
    >>> src.positions.shape
    (27, 3)
    """

    def __init__(self, mesh: TetMesh, *, positions: np.ndarray | None = None,
                 cut_face_mask: np.ndarray | None = None,
                 point_fields: dict[str, np.ndarray] | None = None) -> None:
        self.mesh = mesh
        self.topology_version = 0
        self.positions = np.asarray(mesh.points if positions is None else positions, dtype=np.float64)
        self.time = 0.0
        self.cut_face_mask = None if cut_face_mask is None else np.asarray(cut_face_mask, dtype=bool)
        self._fields = dict(point_fields or {})

    def advance(self) -> None:
        """Nothing moves."""

    def reset(self) -> None:
        """Nothing to reset."""

    def instruments(self) -> list[InstrumentView]:
        return []

    def nodal_field(self, name: str) -> np.ndarray | None:
        return self._fields.get(name)

    def panel_lines(self) -> list[str]:
        return [f"{self.mesh.n_tets} tets, {self.mesh.n_points} nodes"]


class SimulationSource:
    """A :class:`~organsim.fem.simulation.Simulation` stepped by the viewer.

    Parameters
    ----------
    simulation : Simulation
        Anything with ``mesh``, ``positions``, ``time``, ``step()``; ``fields()``,
        ``prescribe``/``release``/``reaction`` are used where present.
    steps_per_frame : int
        Simulation steps per rendered frame.
    """

    def __init__(self, simulation, *, steps_per_frame: int = 1) -> None:
        self.simulation = simulation
        self.steps_per_frame = int(steps_per_frame)
        self._initial_positions = np.array(simulation.positions, dtype=np.float64)
        self._mesh_id = id(simulation.mesh)
        self.topology_version = 0
        self.cut_face_mask = None
        self._fields_cache: tuple[float, dict] | None = None
        self.last_step_ms = float("nan")
        self._hold = None          # organsim.surgery.hold.Hold while the mouse grasps
        self._grasp_tip = None

    @property
    def mesh(self) -> TetMesh:
        if id(self.simulation.mesh) != self._mesh_id:
            self._mesh_id = id(self.simulation.mesh)
            self.topology_version += 1
        return self.simulation.mesh

    @property
    def positions(self) -> np.ndarray:
        return np.asarray(self.simulation.positions)

    @property
    def time(self) -> float:
        return float(self.simulation.time)

    def advance(self) -> None:
        import time as _time

        t0 = _time.perf_counter()
        for _ in range(self.steps_per_frame):
            self.simulation.step()
        self.last_step_ms = (_time.perf_counter() - t0) * 1e3

    def reset(self) -> None:
        """Put the nodes back where they started (velocities to zero) where the simulation allows."""
        reset = getattr(self.simulation, "reset", None)
        if callable(reset):
            reset()

    # ----------------------------------------------------------- grasping
    GRASP_NAME = "viewer_grasp"

    def grasp_begin(self, point: np.ndarray, *, radius: float = 0.006) -> bool:
        """Hold the surface nodes within ``radius`` (m) of ``point`` (m); False if none."""
        from ..surgery.hold import Hold

        self.grasp_end()
        self._hold = Hold.take(self.simulation, self.GRASP_NAME, point, radius)
        self._grasp_tip = None if self._hold is None else self._hold.anchor.copy()
        return self._hold is not None

    def grasp_move(self, target: np.ndarray) -> None:
        """Move the held nodes rigidly so the grasped point goes to ``target`` (m)."""
        if self._hold is not None:
            self._hold.move_to(self.simulation, target)
            self._grasp_tip = np.asarray(target, float)

    def grasp_end(self) -> None:
        """Let go of the held nodes."""
        if self._hold is not None:
            self._hold.release(self.simulation)
        self._hold = None

    def grasp_force(self) -> np.ndarray:
        """Force (N, shape (3,)) the tissue pulls the grasper with; zero when not grasping."""
        return np.zeros(3) if self._hold is None else self._hold.force(self.simulation)

    def instruments(self) -> list[InstrumentView]:
        if self._hold is None:
            return []
        return [InstrumentView("grasper", "grasper", self._grasp_tip, _toward_camera_axis(),
                               self.grasp_force(), True)]

    def nodal_field(self, name: str) -> np.ndarray | None:
        fields = getattr(self.simulation, "fields", None)
        if not callable(fields):
            return None
        t = self.time
        if self._fields_cache is None or self._fields_cache[0] != t:
            self._fields_cache = (t, fields())
        f = self._fields_cache[1]
        key = {"von_mises": "nodal_von_mises"}.get(name, name)
        val = f.get(key, f.get(name))
        if val is None or np.ndim(val) != 1 or len(val) != self.simulation.mesh.n_points:
            return None
        return np.asarray(val)

    def panel_lines(self) -> list[str]:
        return [f"step {self.last_step_ms:.1f} ms"] if np.isfinite(self.last_step_ms) else []
