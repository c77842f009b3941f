"""Holding tissue: the surface nodes an instrument has taken, moved rigidly with it.

One implementation of a grasp (and of a hooked retractor): the procedure
engine's instruments and the viewer's grasp on a bare simulation both use
:class:`Hold`. The held nodes are a prescribed-position constraint named
after the instrument; they move rigidly with the instrument's point; a
topology change carries them (:meth:`Hold.carried`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mesh.tetmesh import TetMesh

__all__ = ["Hold", "grasp_nodes"]


def grasp_nodes(mesh: TetMesh, positions: np.ndarray, point: np.ndarray,
                radius: float) -> np.ndarray:
    """Surface nodes within ``radius`` (m) of ``point``; at least the nearest one.

    Returns
    -------
    ndarray, shape (k,)
        Sorted node ids (int64); empty if the nearest surface node is farther than
        three radii (the point is not on this tissue).

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> m = box_tet_mesh((3, 3, 3), 0.01)
    >>> grasp_nodes(m, m.points, [0.0, 0.0, 0.0], 0.005).tolist()
    [0]
    """
    surf = mesh.boundary_nodes
    d = np.linalg.norm(np.asarray(positions)[surf] - np.asarray(point, float), axis=1)
    if d.size == 0 or d.min() > 3.0 * radius:
        return np.zeros(0, dtype=np.int64)
    sel = surf[d <= radius]
    if sel.size == 0:
        sel = surf[[int(np.argmin(d))]]
    return np.sort(sel).astype(np.int64)


@dataclass
class Hold:
    """Surface nodes held by an instrument.

    Parameters
    ----------
    name : str
        The instrument, and the name of the simulation constraint.
    nodes : ndarray, shape (k,)
        Held node ids.
    start : ndarray, shape (k, 3)
        Their positions when taken (m).
    anchor : ndarray, shape (3,)
        The instrument's point when it took them (m).
    """

    name: str
    nodes: np.ndarray
    start: np.ndarray
    anchor: np.ndarray

    @classmethod
    def take(cls, sim, name: str, point, radius: float) -> Hold | None:
        """Hold the surface nodes of ``sim`` within ``radius`` (m) of ``point`` (m); None if none."""
        x = np.asarray(sim.positions)
        nodes = grasp_nodes(sim.mesh, x, point, radius)
        if len(nodes) == 0:
            return None
        hold = cls(name, nodes, x[nodes].copy(), np.asarray(point, dtype=float).copy())
        sim.prescribe(nodes, hold.start, name=name)
        return hold

    def move_to(self, sim, point) -> None:
        """Move the held nodes rigidly so the instrument's point is at ``point`` (m)."""
        sim.prescribe(self.nodes, self.start + (np.asarray(point, float) - self.anchor), name=self.name)

    def _in_effect(self, sim) -> bool:
        names = getattr(sim, "constraint_names", None)   # any object with prescribe/release works
        return True if names is None else self.name in names

    def release(self, sim) -> None:
        """Let go."""
        if self._in_effect(sim):
            sim.release(self.name)

    def force(self, sim) -> np.ndarray:
        """Force (N, shape (3,)) the tissue pulls the instrument with."""
        if not self._in_effect(sim) or not hasattr(sim, "reaction"):
            return np.zeros(3)
        return -np.asarray(sim.reaction(self.name)).sum(axis=0)

    def carried(self, change) -> Hold:
        """The hold on the mesh after a :class:`~organsim.mesh.topology.TopologyChange`."""
        nodes, start = change.carry_node_values(self.nodes, self.start)
        return Hold(self.name, nodes, start, self.anchor)
