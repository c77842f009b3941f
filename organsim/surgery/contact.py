"""Rigid tool shapes and frictionless contact by an active set of projected nodes.

A tool shape answers, for points in the tool's local frame, the signed
distance to its surface (negative inside), the closest point on its surface
and the outward normal there. :class:`ContactSet` turns that into a Dirichlet
constraint on the simulation each step:

* surface nodes of the tissue (including faces made by a cut: the boundary of
  the current mesh) that are inside the tool are added to the active set;
* every active node is prescribed onto the tool surface (its current position
  projected onto the moved tool: frictionless sliding);
* after the step, an active node whose reaction pulls the tissue towards the
  tool (the contact would be adhesive) or that has left the tool surface is
  released.

The force the tool exerts on the tissue is the sum of the constraint's reactions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


__all__ = ["Shape", "Sphere", "Capsule", "Box", "ContactSet"]


class Shape(ABC):
    """A rigid shape in its local frame (m)."""

    @abstractmethod
    def query(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signed distance (k,), closest surface point (k, 3) and outward normal (k, 3) for local points q (k, 3)."""


@dataclass(frozen=True)
class Sphere(Shape):
    """A ball of ``radius`` (m) centred at the local origin."""

    radius: float

    def query(self, q):
        r = np.linalg.norm(q, axis=1)
        n = np.where(r[:, None] > 1e-15, q / np.maximum(r, 1e-15)[:, None], np.array([0.0, 0.0, 1.0]))
        return r - self.radius, n * self.radius, n


@dataclass(frozen=True)
class Capsule(Shape):
    """Points within ``radius`` (m) of the local segment from the origin to ``(0, 0, length)``."""

    radius: float
    length: float

    def query(self, q):
        z = np.clip(q[:, 2], 0.0, self.length)
        axis = np.column_stack([np.zeros_like(z), np.zeros_like(z), z])
        d = q - axis
        r = np.linalg.norm(d, axis=1)
        n = np.where(r[:, None] > 1e-15, d / np.maximum(r, 1e-15)[:, None], np.array([1.0, 0.0, 0.0]))
        return r - self.radius, axis + n * self.radius, n


@dataclass(frozen=True)
class Box(Shape):
    """An oriented box centred at the local origin with half extents ``half`` (3,) m (a retractor plate)."""

    half: tuple[float, float, float]

    def query(self, q):
        h = np.asarray(self.half, dtype=np.float64)
        d = np.abs(q) - h
        outside = np.linalg.norm(np.maximum(d, 0.0), axis=1)
        inside = np.minimum(d.max(axis=1), 0.0)
        sd = outside + inside
        clamped = np.clip(q, -h, h)
        # inside points: push out through the nearest face
        ax = np.argmax(d, axis=1)
        ins = sd < 0
        proj = clamped.copy()
        rows = np.flatnonzero(ins)
        sgn = np.where(q[rows, ax[rows]] >= 0, 1.0, -1.0)
        proj[rows, ax[rows]] = sgn * h[ax[rows]]
        n = q - proj
        ln = np.linalg.norm(n, axis=1)
        n = np.where(ln[:, None] > 1e-15, n / np.maximum(ln, 1e-15)[:, None], 0.0)
        n[rows] = 0.0
        n[rows, ax[rows]] = sgn
        return sd, proj, n


class ContactSet:
    """Active-set contact between one rigid shape and the tissue surface.

    Parameters
    ----------
    shape : Shape
    name : str
        Name of the simulation constraint it maintains.
    """

    def __init__(self, shape: Shape, *, name: str) -> None:
        self.shape = shape
        self.name = name
        self.active = np.zeros(0, dtype=np.int64)

    def _world(self, pose, q_local):
        return pose.position + q_local @ pose.rotation.T

    def update(self, sim, pose) -> int:
        """Add penetrating surface nodes, project the active set onto the tool, prescribe it.

        Returns the number of active nodes.
        """
        x = sim.positions
        surf = sim.mesh.boundary_nodes
        R, p = pose.rotation, pose.position
        ql = (x[surf] - p) @ R
        sd, _, _ = self.shape.query(ql)
        new = surf[sd < 0]
        act = np.union1d(self.active, new)
        if len(act) == 0:
            self._drop(sim)
            return 0
        qa = (x[act] - p) @ R
        sda, proj, _ = self.shape.query(qa)
        # nodes that were active but are now outside stay on the surface only if they touch it
        target = np.where((sda < 0)[:, None] | np.isin(act, self.active)[:, None], proj, qa)
        self.active = act
        sim.prescribe(act, p + target @ R.T, name=self.name)
        return len(act)

    def settle(self, sim, pose) -> None:
        """After a step: release active nodes that the tool pulls rather than pushes."""
        if len(self.active) == 0 or self.name not in sim.constraint_names:
            return
        f = sim.reaction(self.name)
        qa = (sim.positions[self.active] - pose.position) @ pose.rotation
        _, _, n = self.shape.query(qa)
        nw = n @ pose.rotation.T
        pull = np.einsum("ij,ij->i", f, nw) < -1e-12
        if np.any(pull):
            self.active = self.active[~pull]
            if len(self.active) == 0:
                self._drop(sim)

    def force_on_tissue(self, sim) -> tuple[np.ndarray, np.ndarray]:
        """Total (3,) N and per-node (k, 3) N force the tool exerts on the tissue."""
        if len(self.active) == 0 or self.name not in sim.constraint_names:
            return np.zeros(3), np.zeros((0, 3))
        f = sim.reaction(self.name)
        return f.sum(axis=0), f

    def remap(self, change) -> None:
        """Carry the active node ids across a topology change (a :class:`~organsim.mesh.topology.TopologyChange`)."""
        self.active = change.carry_nodes(self.active)

    def _drop(self, sim) -> None:
        self.active = np.zeros(0, dtype=np.int64)
        if self.name in sim.constraint_names:
            sim.release(self.name)
