"""One value for a change of a mesh's topology (a cut increment, a resection).

A :class:`TopologyChange` carries the new rest mesh and the maps back to the
old one. Everything that refers to nodes or tets of the old mesh (a
simulation's state and constraints, instruments holding tissue, contact sets,
anchors on the surface, per-tet flags) carries itself across with the same
rules, which live here and nowhere else:

- a nodal field moves as ``new = transfer @ old``;
- a *set* of nodes (held by a grasper, fixed, in contact) keeps a new node when
  **every** old node it draws from was in the set (:meth:`TopologyChange.carry_nodes`):
  the copies of a held node made by a cut stay held; a node made in the middle
  of a cut edge is held only if both ends were;
- a per-tet value moves as ``new = old[tet_parent]``.

:class:`~organsim.surgery.cutting.CutResult` and
:class:`~organsim.surgery.resection.ResectionResult` are topology changes.

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> from organsim.mesh.generators import box_tet_mesh
>>> m = box_tet_mesh((2, 2, 2), 0.01)
>>> ch = TopologyChange(m, sp.identity(m.n_points, format="csr"), np.arange(m.n_tets),
...                     np.zeros(0, np.int64))
>>> ch.carry_nodes([0, 3]).tolist()
[0, 3]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..errors import MeshError
from .tetmesh import TetMesh

__all__ = ["TopologyChange", "all_parents_in", "face_keys", "split_vertex_pinches", "FACE_KEY_BASE"]

#: Node ids of a face key are packed in base 2**21 (meshes up to 2 million nodes).
FACE_KEY_BASE = 1 << 21


def face_keys(faces: np.ndarray) -> np.ndarray:
    """Order-independent int64 key of each triangle.

    Parameters
    ----------
    faces : ndarray, shape (k, 3)
        Node ids (each below 2**21).

    Returns
    -------
    ndarray, shape (k,), int64

    Examples
    --------
    >>> bool(face_keys([[1, 2, 3]])[0] == face_keys([[3, 1, 2]])[0])
    True
    """
    f = np.sort(np.asarray(faces, dtype=np.int64).reshape(-1, 3), axis=1)
    return f[:, 0] + FACE_KEY_BASE * (f[:, 1] + FACE_KEY_BASE * f[:, 2])


def split_vertex_pinches(tets: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Give each group of tets that meets the others at a node only through that node (or an
    edge) its own copy of the node.

    Around a node, the tets connected to each other through faces at the node form groups;
    a valid solid has one group per node. Two lumps of tissue touching at a single vertex
    (left, for example, where a resection's specimen touched the organ's surface at a
    vertex) have two: the boundary is pinched there and the lumps would hang together
    through one node. Each group after the first gets a copy.

    Parameters
    ----------
    tets : ndarray, shape (m, 4), int
    n_points : int

    Returns
    -------
    tets : ndarray, shape (m, 4), int64
        A new array with the copies numbered ``n_points + arange(d)`` (the input itself when
        nothing was split).
    src : ndarray, shape (d,), int64
        The node each copy was made from.

    Examples
    --------
    >>> t = np.array([[0, 1, 2, 3], [0, 4, 5, 6]])          # two tets touching at node 0
    >>> new, src = split_vertex_pinches(t, 7)
    >>> new.tolist(), src.tolist()
    ([[0, 1, 2, 3], [7, 4, 5, 6]], [0])
    """
    from scipy.sparse.csgraph import connected_components

    tets = np.asarray(tets, dtype=np.int64)
    m = len(tets)
    if m == 0:
        return tets, np.zeros(0, dtype=np.int64)
    local = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
    faces = tets[:, local].reshape(-1, 3)
    keys = face_keys(faces)
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    same = np.flatnonzero(ks[1:] == ks[:-1])
    fa, fb = order[same], order[same + 1]                # two tets sharing a face
    ta, tb = fa // 4, fb // 4
    la = local[fa % 4]                                   # (p, 3) local corners of the face in tet a
    va = tets[ta[:, None], la]                           # (p, 3) its nodes
    lb = np.argmax(tets[tb][:, None, :] == va[:, :, None], axis=2)   # the same nodes' corners in tet b
    rows = (4 * ta[:, None] + la).ravel()
    cols = (4 * tb[:, None] + lb).ravel()
    g = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(4 * m, 4 * m))
    _, comp = connected_components(g, directed=False)
    node = tets.ravel()
    pair_key = node * (4 * m) + comp                     # (node, group) of each corner
    ukey, first = np.unique(pair_key, return_index=True)
    unode = ukey // (4 * m)
    # the group of a node's first corner (in tets order) keeps the node; the others get copies
    keeper = np.zeros(len(ukey), dtype=bool)
    by_node = np.lexsort((first, unode))                 # per node, its groups by first corner
    starts = np.flatnonzero(np.r_[True, unode[by_node][1:] != unode[by_node][:-1]])
    keeper[by_node[starts]] = True
    if keeper.all():
        return tets, np.zeros(0, dtype=np.int64)
    copies = np.flatnonzero(~keeper)
    copies = copies[np.lexsort((first[copies], unode[copies]))]   # numbered by node, then group
    new_of = unode.copy()
    new_of[copies] = n_points + np.arange(len(copies))
    out = new_of[np.searchsorted(ukey, pair_key)]
    src = unode[copies].astype(np.int64)
    return out.reshape(m, 4), src


def all_parents_in(T: sp.csr_matrix, nparents: np.ndarray | None = None):
    """The node-set rule of a transfer ``T`` as a function of a mark on the old nodes.

    The one implementation of the rule (a new node belongs to a set when every
    old node it draws from did): :class:`TopologyChange`, the simulation's
    constraints and loads, and the instruments' contact sets all use it.

    Parameters
    ----------
    T : scipy.sparse.csr_matrix (n_new, n_old)
        The transfer, without stored zeros.
    nparents : (n_new,) int64, optional
        Stored entries per row of ``T`` (computed when not given).

    Returns
    -------
    callable
        ``select(mark_old)``: for a mark (n_old,) float (1 on the set, 0 elsewhere), the new
        nodes whose every parent is marked (and that have a parent), ascending.
    """
    n_new = T.shape[0]
    if nparents is None:
        nparents = np.diff(T.indptr)
    nz_rows = np.repeat(np.arange(n_new), nparents)

    def select(mark_old: np.ndarray) -> np.ndarray:
        """New nodes whose every parent is marked (and that have a parent)."""
        hit = np.bincount(nz_rows, weights=mark_old[T.indices], minlength=n_new)
        return np.flatnonzero((nparents > 0) & (hit == nparents))

    return select



@dataclass(frozen=True, eq=False)
class TopologyChange:
    """A new rest mesh and how it derives from the old one.

    Attributes
    ----------
    mesh : TetMesh
        The new rest mesh (metres).
    transfer : scipy.sparse.csr_matrix, shape (n_new, n_old)
        ``new = transfer @ old`` for nodal fields; each row's non-zero columns
        are the new node's parents.
    tet_parent : ndarray, shape (m_new,), int
        The old tet each new tet comes from.
    cut_face_keys : ndarray, shape (k,), int64
        Keys (:func:`face_keys`) of the faces of ``mesh`` made by cuts or
        resections so far (drawn as cut faces).
    """

    mesh: TetMesh
    transfer: sp.csr_matrix
    tet_parent: np.ndarray
    cut_face_keys: np.ndarray

    # ------------------------------------------------------------- derived
    @property
    def n_old_points(self) -> int:
        """Number of nodes of the mesh this change maps from."""
        return int(self.transfer.shape[1])

    @cached_property
    def cut_face_mask(self) -> np.ndarray:
        """Boolean mask over ``mesh.boundary_faces``: True for faces made by a cut, shape (f,)."""
        return np.isin(face_keys(self.mesh.boundary_faces), self.cut_face_keys)

    @cached_property
    def _parent_pattern(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR row pointer, parent columns and parent counts of ``transfer``'s non-zeros."""
        T = sp.csr_matrix(self.transfer)
        nz = T.data != 0
        if not nz.all():
            T = T.copy()
            T.eliminate_zeros()
        return T.indptr, T.indices, np.diff(T.indptr)

    @cached_property
    def _select(self):
        indptr, indices, npar = self._parent_pattern
        T = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=self.transfer.shape)
        return all_parents_in(T, npar)

    # ------------------------------------------------------------ carrying
    def _check_old_ids(self, node_ids, what: str) -> np.ndarray:
        ids = np.asarray(node_ids)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise MeshError(f"{what} must be integer node ids, got {ids.dtype}")
        ids = ids.astype(np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_old_points):
            raise MeshError(f"{what}: node ids must lie in 0..{self.n_old_points - 1} (the mesh "
                            f"before the change), got {int(ids.min())}..{int(ids.max())}")
        return ids

    def carry_nodes(self, node_ids) -> np.ndarray:
        """The new nodes of a node set: those whose every parent was in the set.

        Parameters
        ----------
        node_ids : array_like of int, shape (k,)
            Node ids of the old mesh.

        Returns
        -------
        ndarray, shape (k',), int64
            Sorted node ids of the new mesh.
        """
        ids = self._check_old_ids(node_ids, "carry_nodes")
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        mark = np.zeros(self.n_old_points, dtype=np.float64)
        mark[ids] = 1.0
        return self._select(mark).astype(np.int64)

    def carry_node_values(self, node_ids, values) -> tuple[np.ndarray, np.ndarray]:
        """Carry a node set with one value per node (targets, local coordinates, forces...).

        Parameters
        ----------
        node_ids : array_like of int, shape (k,)
            Old node ids.
        values : array_like, shape (k, d)
            A value per old node, interpolated with ``transfer`` onto the new nodes.

        Returns
        -------
        new_ids : ndarray, shape (k',), int64
            As :meth:`carry_nodes`.
        new_values : ndarray, shape (k', d)
        """
        ids = self._check_old_ids(node_ids, "carry_node_values")
        vals = np.asarray(values, dtype=np.float64)
        if vals.shape[:1] != ids.shape:
            raise MeshError(f"carry_node_values: one value per node expected ({len(ids)}), "
                            f"got shape {vals.shape}")
        new = self.carry_nodes(ids)
        full = np.zeros((self.n_old_points,) + vals.shape[1:])
        full[ids] = vals
        T = sp.csr_matrix(self.transfer)
        return new, np.asarray(T[new] @ full.reshape(self.n_old_points, -1)).reshape(
            (len(new),) + vals.shape[1:])

    def carry_tet_values(self, values: np.ndarray) -> np.ndarray:
        """A per-tet array of the old mesh on the new tets: ``values[tet_parent]``, shape (m_new, ...)."""
        return np.asarray(values)[np.asarray(self.tet_parent)]
