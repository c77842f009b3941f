"""Transfer of a simulation's constraints and loads across a topology change (a cut).

One job: given the nodal transfer ``new = T @ old`` of a topology change, say which new
nodes inherit each named node set and with which values. The rule for node sets: a new
node belongs to a set when every old node it draws from did (a cut node's copies keep
their parent's constraint). :meth:`organsim.fem.simulation.Simulation.change_topology`
validates the change with :func:`checked_transfer` and carries its constraints
(:func:`carry_constraints`), nodal forces (:func:`carry_forces`) and pressures
(:func:`carry_pressures`) and velocities (:func:`carry_velocities`) with these
functions; positions and the preconditioner are carried there.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from ..errors import SimulationError
from ..mesh.tetmesh import TetMesh

log = logging.getLogger(__name__)

__all__ = ["carry_constraints", "carry_forces", "carry_pressures", "carry_velocities", "checked_transfer"]


def checked_transfer(transfer, old_mesh: TetMesh, new_mesh: TetMesh,
                     tet_parent: np.ndarray | None) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """The transfer as a CSR matrix without stored zeros, and ``tet_parent`` as int64, both checked.

    Parameters
    ----------
    transfer : scipy.sparse matrix (n_new, n_old)
        Maps old nodal fields to new ones: ``new = transfer @ old``.
    old_mesh, new_mesh : TetMesh
        The rest meshes before and after the change.
    tet_parent : ndarray (m_new,), optional
        The old tet each new tet comes from.

    Raises
    ------
    SimulationError
        If the shapes do not match the meshes or a parent tet id is out of range.
    """
    T = sp.csr_matrix(transfer, dtype=np.float64)
    n_old = old_mesh.n_points
    n_new = new_mesh.n_points
    if T.shape != (n_new, n_old):
        raise SimulationError(f"transfer must have shape (n_new, n_old) = ({n_new}, {n_old}), got {T.shape}")
    if tet_parent is not None:
        tet_parent = np.asarray(tet_parent, dtype=np.int64)
        if tet_parent.shape != (new_mesh.n_tets,) or (
                len(tet_parent) and (tet_parent.min() < 0 or tet_parent.max() >= old_mesh.n_tets)):
            raise SimulationError(f"tet_parent must hold one old tet id (0..{old_mesh.n_tets - 1}) per new"
                                  f" tet ({new_mesh.n_tets}), got shape {tet_parent.shape}")
    if np.any(T.data == 0):
        T = T.copy()
        T.eliminate_zeros()
    return T, tet_parent


def carry_constraints(T: sp.csr_matrix, select, x_old: np.ndarray,
                      constraints: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The new nodes and targets of each named constraint.

    Parameters
    ----------
    T : scipy.sparse.csr_matrix (n_new, n_old)
    select : callable
        The node-set rule, :func:`all_parents_in`.
    x_old : (n_old, 3) float
        Current positions; the targets of the constrained nodes replace them and the
        result is mapped with ``T``.
    constraints : dict
        ``name -> constraint`` with ``nodes`` (k,) and ``targets`` (k, 3) attributes.

    Returns
    -------
    dict
        ``name -> (new node ids, new targets)``; constraints with no node left are
        dropped (with a warning).
    """
    n_old = T.shape[1]
    out = {}
    for name, c in constraints.items():
        mark = np.zeros(n_old)
        mark[c.nodes] = 1.0
        sel = select(mark)
        if len(sel) == 0:
            log.warning("constraint %r has no nodes left after the topology change; dropped", name)
            continue
        tgt_old = x_old.copy()
        tgt_old[c.nodes] = c.targets
        out[name] = (sel, (T @ tgt_old)[sel])
    return out


def carry_forces(T: sp.csr_matrix, select, nparents: np.ndarray,
                 forces: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named nodal forces on the new nodes, split among the copies so that each total is kept.

    Parameters
    ----------
    T : scipy.sparse.csr_matrix (n_new, n_old)
    select : callable
        The node-set rule, :func:`all_parents_in`.
    nparents : (n_new,) int64
        Stored entries per row of ``T``.
    forces : dict
        ``name -> (node ids (k,), forces (k, 3) N)``.

    Returns
    -------
    dict
        ``name -> (new node ids, forces)``; sets with no node left are dropped.
    """
    new_forces = {}
    if forces:
        n_old = T.shape[1]
        Tb = sp.csr_matrix((np.ones(T.nnz), T.indices, T.indptr), shape=T.shape)
        for name, (ids, fo) in forces.items():
            full = np.zeros((n_old, 3))
            full[ids] = fo
            mark = np.zeros(n_old)
            mark[ids] = 1.0
            sel = select(mark)
            if len(sel) == 0:
                continue
            ncop = np.asarray(Tb[sel].sum(axis=0)).ravel()  # copies per old node
            share = full / np.maximum(ncop, 1.0)[:, None]
            new_forces[name] = (sel, np.asarray(Tb[sel] @ share) / np.maximum(nparents[sel], 1)[:, None])
    return new_forces


def carry_pressures(parent: np.ndarray, old_faces: np.ndarray, new_faces: np.ndarray,
                    pressures: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named pressures on the new boundary faces whose three nodes derive from an old loaded face.

    Parameters
    ----------
    parent : (n_new,) int64
        Main old parent of each new node.
    old_faces, new_faces : (f, 3) int64
        Boundary faces of the old and the new mesh.
    pressures : dict
        ``name -> (old face ids (k,), pressures (k,) Pa)``.

    Returns
    -------
    dict
        ``name -> (new face ids, pressures)``; pressures with no face left are dropped
        (with a warning).
    """
    new_press = {}
    if pressures:
        keyed = np.sort(parent[new_faces], axis=1)
        for name, (fids, p) in pressures.items():
            lut = {tuple(k): pv for k, pv in zip(np.sort(old_faces[fids], axis=1).tolist(), p.tolist())}
            sel = [(i, lut[tuple(k)]) for i, k in enumerate(keyed.tolist()) if tuple(k) in lut]
            if sel:
                new_press[name] = (np.array([s[0] for s in sel]), np.array([s[1] for s in sel]))
            else:
                log.warning("pressure %r has no faces left after the topology change; dropped", name)
    return new_press


def carry_velocities(v: np.ndarray, m_old: np.ndarray, m_new: np.ndarray, parent: np.ndarray,
                     nparents: np.ndarray, energy_before: float, kinetic_energy) -> np.ndarray:
    """Nodal velocities on the new mesh: the mapped ones ``T @ v_old``, never with more kinetic energy.

    A cut's new points are exact P1 refinements and its copies carry their parent's
    velocity, but the lumped masses are shared anew over the new tets: where a pending
    tet is re-split, mass moves between its existing nodes, and when it moves onto
    fast ones the mapped velocities carry more kinetic energy than the body had
    (measured up to 2.2 % of a slowly moving ball's). A topology change must not feed
    energy into the body, so when it would, only the velocities of the nodes whose
    mass changed (new points, and the copies of old nodes whose mass moved) are scaled
    down by one common factor, just enough to give the excess back. Every other node
    keeps ``T @ v_old`` exactly.

    Parameters
    ----------
    v : (n_new, 3) float64
        The velocities mapped by the change's transfer ``T``, m/s (not modified).
    m_old, m_new : (n_old,), (n_new,) float64
        Lumped nodal masses before and after, kg.
    parent, nparents : (n_new,) int64
        Main old node and stored entries of each row of ``T``.
    energy_before : float
        Kinetic energy before the change, J.
    kinetic_energy : callable
        ``v (n_new, 3) -> J`` with the new mass matrix.

    Returns
    -------
    (n_new, 3) float64
    """
    v = np.asarray(v, dtype=np.float64)
    e1 = kinetic_energy(v)
    if not e1 > energy_before * (1.0 + 1e-12):
        return v
    plain = nparents == 1
    group = np.bincount(parent[plain], weights=m_new[plain], minlength=m_old.shape[0])
    moved = np.abs(group - m_old) > 1e-12 * np.maximum(m_old, np.finfo(float).tiny)
    changed = ~plain | moved[parent]
    v_changed = np.where(changed[:, None], v, 0.0)
    v_kept = v - v_changed
    a = kinetic_energy(v_kept)
    c = kinetic_energy(v_changed)
    if c <= 0.0:
        return v
    b = 0.5 * (e1 - a - c)      # energy(v_kept + s v_changed) = a + 2 b s + c s^2
    disc = b * b - c * (a - energy_before)
    s = (-b + np.sqrt(disc)) / c if disc >= 0.0 else -b / c
    s = float(np.clip(s, 0.0, 1.0))
    return v_kept + s * v_changed
