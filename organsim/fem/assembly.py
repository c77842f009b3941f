"""P1 assembly over all tets at once: internal forces, tangent stiffness, mass.

The sparsity pattern is node-block based (3x3 blocks, one per pair of nodes that
share a tet) and computed once per mesh together with an element-to-block map
``blockmap`` (m, 4, 4); each stiffness update then only refills the block data
array with a compiled kernel (no per-update index work, no ``np.add.at``).

Examples
--------
>>> import numpy as np
>>> from organsim.mesh.generators import box_tet_mesh
>>> from organsim.fem.materials import NeoHookean
>>> mesh = box_tet_mesh((3, 3, 3), 0.01)
>>> asm = Assembler(mesh, [(np.arange(mesh.n_tets), NeoHookean(1e4, 0.3))])
>>> f, K = asm.forces_and_stiffness(mesh.points)
>>> bool(np.abs(f).max() < 1e-12)
True
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import ConvergenceError, MaterialError
from . import _kernels as kern
from . import _mesh_kernels as _mk
from . import parallel as par
from .kinematics import deformation_gradients, shape_gradients
from .materials import Material

__all__ = ["Assembler", "BlockPattern", "ElasticOperator", "lumped_mass", "consistent_mass_blocks"]

#: An energy-density Hessian counts as positive definite when every pivot of its Cholesky
#: factorization exceeds this fraction of its largest diagonal entry; others are projected.
_HESSIAN_PD_TOL = 1e-10


class BlockPattern:
    """Node-block sparsity pattern of a P1 mesh.

    Attributes
    ----------
    n : int
        Number of nodes (block rows).
    indptr, indices : ndarray
        Block CSR structure (sorted columns per row).
    blockmap : ndarray, shape (m, 4, 4), int32
        Block index of the (a, b) node pair of each tet.
    diag : ndarray, shape (n,), int32
        Block index of each node's diagonal block (-1 for a node no tet uses).
    tet_degree : ndarray, shape (n,), int32
        Number of tets around each node (what a local update after a cut starts from).
    """

    def __init__(self, tets: np.ndarray, n: int):
        tets = np.ascontiguousarray(tets, dtype=np.int64)
        self._set(int(n), *_mk.block_pattern(tets, int(n)))

    def _set(self, n, indptr, indices, blockmap, diag, deg) -> None:
        self.n = n
        self.indptr, self.indices, self.blockmap, self.diag = indptr, indices, blockmap, diag
        self.tet_degree = deg
        self._rows = None
        self.nnzb = len(self.indices)

    @property
    def rows(self) -> np.ndarray:
        """Block row of each stored block (nnzb,) int32 (built when first asked for)."""
        if self._rows is None:
            self._rows = np.repeat(np.arange(self.n, dtype=np.int32), np.diff(self.indptr))
        return self._rows

    def updated(self, old_tets: np.ndarray, tets: np.ndarray, n: int, tet_parent: np.ndarray,
                new2old: np.ndarray) -> BlockPattern:
        """The pattern of a locally changed mesh (after a cut), rebuilding only the rows around the change.

        Parameters
        ----------
        old_tets : ndarray (m_old, 4), the tets this pattern was built for.
        tets : ndarray (m, 4), the new tets; n : int, the new number of nodes.
        tet_parent : ndarray (m,), the old tet each new tet comes from.
        new2old : ndarray (n,), the old node each new node is a plain copy of (-1 if
            none); increasing on the plain nodes.

        Returns
        -------
        BlockPattern
            Equal to ``BlockPattern(tets, n)``.
        """
        out = BlockPattern.__new__(BlockPattern)
        out._set(int(n), *_mk.block_pattern_update(
            self.indptr, self.indices, self.blockmap, self.tet_degree, np.ascontiguousarray(old_tets, dtype=np.int64),
            np.ascontiguousarray(tets, dtype=np.int64), int(n), np.ascontiguousarray(tet_parent, dtype=np.int64),
            np.ascontiguousarray(new2old, dtype=np.int64)))
        return out

    def matrix(self, data: np.ndarray) -> sp.bsr_matrix:
        """The (3n, 3n) BSR matrix with block data ``data`` (nnzb, 3, 3)."""
        return sp.bsr_matrix((data, self.indices, self.indptr), shape=(3 * self.n, 3 * self.n))

    def sub(self, free_nodes: np.ndarray, col_nodes: np.ndarray | None = None) -> SubPattern:
        """The pattern restricted to rows ``free_nodes`` and columns ``col_nodes`` (sorted ids; the same by default)."""
        return SubPattern(self, free_nodes, col_nodes)


class SubPattern:
    """The free-node block of a :class:`BlockPattern` (constraints eliminated).

    Rows are the nodes ``free_nodes`` and columns the nodes ``col_nodes`` (the
    same by default), each renumbered in order: ``n`` rows, ``n_cols`` columns.
    """

    def __init__(self, parent: BlockPattern, free_nodes: np.ndarray, col_nodes: np.ndarray | None = None):
        free_nodes = np.asarray(free_nodes, dtype=np.int64)
        col_nodes = free_nodes if col_nodes is None else np.asarray(col_nodes, dtype=np.int64)
        newid = np.full(parent.n, -1, dtype=np.int64)
        newid[col_nodes] = np.arange(len(col_nodes))
        self.n = len(free_nodes)
        self.n_cols = len(col_nodes)
        self.blocks, self.indptr, self.indices, self.rows = _mk.sub_pattern(parent.indptr, parent.indices,
                                                                            free_nodes, newid)
        self.free_nodes = free_nodes
        self.col_nodes = col_nodes
        self._diag = None

    def gather(self, K: np.ndarray, cK: float, M: np.ndarray | None = None, cM: float = 0.0,
               out: np.ndarray | None = None, *, consume: bool = False) -> np.ndarray:
        """Block data ``cK K + cM M`` restricted to the free pattern.

        ``K`` is block data on the parent pattern (nnzb, 3, 3); ``M`` is block data
        too (a consistent mass) or nodal masses (n,) of a lumped mass, which only
        add to the diagonal blocks. ``consume=True`` writes the result into ``K``'s own
        memory (``K`` is overwritten; a view of its first blocks is returned): for a ``K``
        assembled only for this, without a second matrix in memory (the kept blocks are
        in the parent's order, so each is read before its slot is written).
        """
        if consume:
            out = K[:len(self.blocks)]
        elif out is None:
            out = np.empty((len(self.blocks), 3, 3))
        if M is not None and M.ndim == 1:
            kern.bsr_gather(K, self.blocks, float(cK), K, 0.0, out)
            rows_of_diag, diag = self.diagonal_blocks
            kern.lumped_diag_add(out, diag, np.ascontiguousarray(M[self.free_nodes[rows_of_diag]]), float(cM))
            return out
        kern.bsr_gather(K, self.blocks, float(cK), K if M is None else M, float(cM) if M is not None else 0.0, out)
        return out

    @property
    def diagonal_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """(sub rows that have a diagonal block, the index of that block), cached."""
        if self._diag is None:
            d = np.flatnonzero(self.col_nodes[self.indices] == self.free_nodes[self.rows])
            self._diag = (self.rows[d].astype(np.int64), d)
        return self._diag

    def matrix(self, data: np.ndarray) -> sp.bsr_matrix:
        return sp.bsr_matrix((data, self.indices, self.indptr), shape=(3 * self.n, 3 * self.n_cols))

    def operator(self, data: np.ndarray):
        """A compiled block matvec operator (:class:`organsim.fem.solvers.BlockOperator`)."""
        from .solvers import BlockOperator
        return BlockOperator(self.indptr, self.indices, data)

    def lower_coo(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scalar COO triplets (rows, cols, values) of the lower triangle, for a Cholesky factor."""
        br = np.repeat(self.rows.astype(np.int64), 9).reshape(-1, 3, 3)
        bc = np.repeat(self.indices.astype(np.int64), 9).reshape(-1, 3, 3)
        ii = 3 * br + np.arange(3)[None, :, None]
        jj = 3 * bc + np.arange(3)[None, None, :]
        ii = ii.ravel()
        jj = jj.ravel()
        v = data.ravel()
        low = ii >= jj
        return ii[low].astype(np.int32), jj[low].astype(np.int32), np.ascontiguousarray(v[low])


class ElasticOperator:
    """``A = cK K(x) + cM M`` on the free DOFs, with ``K(x) p`` computed element by element.

    The matrix-free counterpart of ``SubPattern.operator(SubPattern.gather(K, cK, M, cM))``:
    the same matrix (to round-off) without assembling ``K``.

    Parameters
    ----------
    asm : Assembler
        Its last force pass was at ``x`` (the corotational rotations).
    x : ndarray (n, 3)
        Current positions (m).
    free : ndarray (k,) int
        Free nodes, sorted.
    cK : float
        Stiffness coefficient.
    mass : ndarray (n,), optional
        Lumped nodal masses (kg), scaled by ``cM``; or
    mass_op : callable, optional
        ``cM M`` on the free DOFs (a consistent mass), applied to a (3k,) vector.
    """

    def __init__(self, asm, x, free, cK, mass=None, cM=0.0, mass_op=None):
        self.asm = asm
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        if asm._nh_state is not None:   # a new operator: the state at x is computed afresh (x may be the
            asm._nh_state = (None, *asm._nh_state[1:])   # same array as before, changed in place)
        self.free = np.ascontiguousarray(free, dtype=np.int64)
        self.cK = float(cK)
        self.mass_op = mass_op
        self.mass_diag = (np.ascontiguousarray(cM * mass[self.free], dtype=np.float64) if mass is not None
                          else np.zeros(len(self.free)))
        self.shape = (3 * len(self.free),) * 2

    def __matmul__(self, p: np.ndarray) -> np.ndarray:
        p = np.ascontiguousarray(p, dtype=np.float64)
        full = np.zeros((self.asm.n, 3))
        kern.free_scatter(p, self.free, full)
        Kp = np.zeros((self.asm.n, 3))
        self.asm.apply_stiffness(self.x, full, Kp)
        y = np.empty(len(p))
        kern.free_gather_axpy(Kp, self.free, self.cK, self.mass_diag, p, y)
        if self.mass_op is not None:
            y += self.mass_op(p)
        return y


def lumped_mass(points: np.ndarray, tets: np.ndarray, density_per_tet: np.ndarray) -> np.ndarray:
    """Row-sum lumped mass per node (kg): ``rho V / 4`` of every tet to each of its nodes.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
    tets : ndarray, shape (m, 4)
    density_per_tet : ndarray, shape (m,)
        kg/m^3.

    Returns
    -------
    ndarray, shape (n,)
    """
    _, vol = shape_gradients(points, tets)
    w = np.repeat(density_per_tet * vol / 4.0, 4)
    return np.bincount(np.asarray(tets).ravel(), weights=w, minlength=len(points))


def consistent_mass_blocks(pattern: BlockPattern, vols: np.ndarray, density_per_tet: np.ndarray) -> np.ndarray:
    """Consistent P1 mass as block data on ``pattern``: ``M_ab = rho V (1 + d_ab) / 20 I``."""
    w = density_per_tet * vols / 20.0
    loc = w[:, None, None] * (np.ones((4, 4)) + np.eye(4))[None]
    scal = np.bincount(pattern.blockmap.ravel(), weights=loc.ravel(), minlength=pattern.nnzb)
    return scal[:, None, None] * np.eye(3)[None]


class Assembler:
    """Internal forces, energy and tangent stiffness of a P1 mesh with per-group materials.

    Parameters
    ----------
    mesh : TetMesh
        Rest mesh.
    groups : list of (element ids (k,), Material)
        A partition of the tets into material groups.
    element_rotations : ndarray, shape (m, 3, 3), optional
        Warm start of each tet's corotational rotation (identity by default;
        used to carry rotations over a cut).
    pattern : BlockPattern, optional
        The mesh's block pattern, when already known (e.g. updated after a cut
        by :meth:`BlockPattern.updated`); built from the tets otherwise.
    stiffness_scale : ndarray, shape (m,), optional
        A factor on each tet's Lame parameters (1 by default): tets a simulation stiffened
        to get past a step (:attr:`organsim.fem.simulation.Simulation.stiffened_tets`).
        Linear, corotational and neo-Hookean groups only; other materials must keep 1.

    Notes
    -----
    The per-frame work runs in compiled kernels: corotational and linear groups
    use :func:`organsim.fem._kernels.corot_kernel` (stiffness ``R K0 R^T``),
    neo-Hookean groups :func:`~organsim.fem._kernels.neohooke_kernel` (consistent
    tangent); any other material is evaluated batched by numpy (its ``pk1`` and
    ``tangent``) and scattered by :func:`~organsim.fem._kernels.generic_kernel`.
    """

    def __init__(self, mesh, groups: list[tuple[np.ndarray, Material]], *,
                 element_rotations: np.ndarray | None = None, pattern: BlockPattern | None = None,
                 stiffness_scale: np.ndarray | None = None):
        self.mesh = mesh
        self.tets = np.ascontiguousarray(mesh.tets, dtype=np.int64)
        self.n = mesh.n_points
        self.grads, self.vols = shape_gradients(mesh.points, self.tets)
        self.pattern = BlockPattern(self.tets, self.n) if pattern is None else pattern
        if self.pattern.n != self.n or self.pattern.blockmap.shape != (len(self.tets), 4, 4):
            raise MaterialError(f"the block pattern is for {self.pattern.n} nodes and"
                                f" {len(self.pattern.blockmap)} tets, the mesh has {self.n} and {len(self.tets)}")
        self.groups = []
        scale = None
        if stiffness_scale is not None:
            scale = np.asarray(stiffness_scale, dtype=np.float64)
            if scale.shape != (len(self.tets),) or not np.all(np.isfinite(scale) & (scale > 0)):
                raise MaterialError(f"stiffness_scale must hold one positive factor per tet ({len(self.tets)}),"
                                    f" got shape {scale.shape}")
            if np.all(scale == 1.0):
                scale = None
        #: the factor on each tet's Lame parameters (m,), or None for 1 everywhere
        self.stiffness_scale = scale
        m = len(self.tets)
        # one group of all the tets in order (one material everywhere, as Body gives it) covers
        # each tet once without counting
        whole = (len(groups) == 1 and len(groups[0][0]) == m and m > 0
                 and _mk.is_identity_order(np.ascontiguousarray(groups[0][0], dtype=np.int64)))
        seen = None if whole else np.zeros(m, dtype=np.int64)
        for elems, mat in groups:
            if not isinstance(mat, Material):
                raise MaterialError(f"expected an organsim.fem.materials.Material, got {type(mat).__name__};"
                                    " build one with e.g. NeoHookean(E, nu)")
            elems = np.ascontiguousarray(elems, dtype=np.int64)
            if seen is not None and len(elems):
                seen += np.bincount(elems, minlength=m)
            if mat.kind in ("linear", "corotational", "neo_hookean"):
                lam = np.full(len(elems), mat.lam)
                mu = np.full(len(elems), mat.mu)
                if scale is not None:
                    lam *= scale[elems]
                    mu *= scale[elems]
            else:
                lam = mu = None
                if scale is not None and np.any(scale[elems] != 1.0):
                    raise MaterialError(f"{type(mat).__name__} tets cannot be stiffened (stiffness_scale);"
                                        " only linear, corotational and neo-Hookean ones")
            self.groups.append((elems, mat, lam, mu))
        if seen is not None and np.any(seen != 1):
            raise MaterialError("material groups must cover every tet exactly once;"
                                f" {int((seen == 0).sum())} tets have no material")
        if element_rotations is None:
            # the rotations the corotational kernels warm-start from, one per tet (72 B/tet): none
            # where no tet is linear or corotational (the neo-Hookean kernels need none)
            rotating = any(m.kind in ("linear", "corotational") for _, m, _, _ in self.groups)
            self._Rcache = np.repeat(np.eye(3)[None], len(self.tets) if rotating else 0, axis=0)
        else:
            self._Rcache = np.ascontiguousarray(element_rotations, dtype=np.float64)
            if self._Rcache.shape != (len(self.tets), 3, 3):
                raise MaterialError(f"element_rotations must have shape ({len(self.tets)}, 3, 3),"
                                    f" got {self._Rcache.shape}")
        self._whole_group = whole   # one group of all the tets, in order
        self._rest_lame = None  # per-tet small-strain (lam, mu), built when first needed
        self._schedules: dict[int, tuple] = {}  # group index -> parallel chunk schedule (built when first used)
        self._rotation_sched = None  # (elems, schedule, elems in its order) of nodal_rotations
        self._tunes: dict[str, par.Autotune] = {}
        self._nh_state = None   # (x, F^-1, mu - lam ln J) of the last matrix-free neo-Hookean products
        self.linear_only = all(m.kind == "linear" for _, m, _, _ in self.groups)
        #: whether the default (non-exact) tangent is already :meth:`projected_stiffness`
        self.tangent_is_projected = all(m.kind in ("linear", "corotational") for _, m, _, _ in self.groups)

    # ------------------------------------------------------------------ public
    def forces_and_stiffness(self, x: np.ndarray, *, want_K: bool = True, check_inversion: bool = True,
                             exact: bool = False, elements: np.ndarray | None = None
                             ) -> tuple[np.ndarray, np.ndarray | None]:
        """Internal nodal forces ``f = dU/dx`` (n, 3) N and stiffness block data (nnzb, 3, 3) N/m.

        Corotational groups give the warped stiffness ``R K0 R^T`` (symmetric positive
        semi-definite; best for conjugate gradients) unless ``exact``, which gives
        the consistent tangent including the rotation's derivative (quadratic
        Newton convergence; not always symmetric or definite).

        With ``elements`` (tet ids), only those tets are assembled: the force on a
        node and its stiffness row are then complete when every tet around that
        node is included (e.g. the reaction at a few held nodes).

        Raises
        ------
        ConvergenceError
            If an element of a hyperelastic group is inverted (``det F <= 0``; linear and
            corotational elements are defined there and push back) or the state is not finite.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        f = np.zeros((self.n, 3))
        K = np.zeros((self.pattern.nnzb, 3, 3)) if want_K else np.zeros((1, 3, 3))
        minJ = np.inf
        pick = None
        Rcache = self._Rcache
        if elements is not None:
            pick = np.zeros(len(self.tets), dtype=bool)
            pick[np.asarray(elements, dtype=np.int64)] = True
            # a query of a few tets (a reaction a display reads) must not change the state:
            # the corotational kernels warm-start their polar decompositions from this cache
            # and write it back, so a query works on a copy (else an attempt and its replay,
            # observed a different number of times, part at round-off and then diverge)
            Rcache = self._Rcache.copy()
        for gi, (elems, mat, lam, mu) in enumerate(self.groups):
            if pick is not None:
                sel = pick[elems]
                elems = np.ascontiguousarray(elems[sel])
                if lam is not None:
                    lam, mu = np.ascontiguousarray(lam[sel]), np.ascontiguousarray(mu[sel])
            sched = None
            if (pick is None and mat.kind in ("linear", "corotational", "neo_hookean")
                    and len(elems) >= par.MIN_PARALLEL_ELEMENTS):
                # the group's colored chunk order, on one thread (its elements permuted into
                # that order) or on several (the same sums in the same order)
                sched, s_elems, s_lam, s_mu, tune = self._schedule(gi)
                if want_K:   # its own timings: a pass with the stiffness costs about 3x a force pass
                    tune = self._tune(("forces_and_stiffness", gi))
            if mat.kind in ("linear", "corotational"):
                rot = mat.kind == "corotational"
                if sched is None:
                    j = kern.corot_kernel(x, self.tets, self.grads, self.vols, lam, mu, elems,
                                          self.pattern.blockmap, f, K, want_K, rot, Rcache, exact)
                else:
                    with tune.timed() as parallel:
                        if parallel:
                            with par.KERNEL_LOCK:
                                j = kern.corot_kernel_par(x, self.tets, self.grads, self.vols, lam, mu, elems,
                                                          self.pattern.blockmap, f, K, want_K, rot, Rcache,
                                                          exact, *sched)
                        else:
                            j = kern.corot_kernel(x, self.tets, self.grads, self.vols, s_lam, s_mu, s_elems,
                                                  self.pattern.blockmap, f, K, want_K, rot, Rcache, exact)
            elif mat.kind == "neo_hookean":
                if sched is None:
                    j = kern.neohooke_kernel(x, self.tets, self.grads, self.vols, lam, mu, elems,
                                             self.pattern.blockmap, f, K, want_K)
                else:
                    with tune.timed() as parallel:
                        if parallel:
                            with par.KERNEL_LOCK:
                                j = kern.neohooke_kernel_par(x, self.tets, self.grads, self.vols, lam, mu, elems,
                                                             self.pattern.blockmap, f, K, want_K, *sched)
                        else:
                            j = kern.neohooke_kernel(x, self.tets, self.grads, self.vols, s_lam, s_mu, s_elems,
                                                     self.pattern.blockmap, f, K, want_K)
            else:
                F = deformation_gradients(x, self.tets[elems], self.grads[elems])
                j = float(np.linalg.det(F).min()) if len(F) else np.inf
                if j > 0:
                    P = np.ascontiguousarray(mat.pk1(F))
                    A = np.ascontiguousarray(mat.tangent(F)) if want_K else np.zeros((1, 3, 3, 3, 3))
                    kern.generic_kernel(P, A, self.tets, self.grads, self.vols, elems,
                                        self.pattern.blockmap, f, K, want_K)
            minJ = min(minJ, j)
            if check_inversion and not (minJ > 0) and (mat.kind not in ("linear", "corotational")
                                                      or not np.isfinite(minJ)):
                raise ConvergenceError(f"an element is inverted or degenerate (det F = {minJ:.3g} <= 0);"
                                       " the step is rejected; use a smaller step or a softer load")
        if not np.all(np.isfinite(f)):
            raise ConvergenceError("internal forces are not finite (NaN/inf); the step is rejected;"
                                   " check the loads and use a smaller step")
        return f, (K if want_K else None)

    def forces(self, x: np.ndarray) -> np.ndarray:
        """Internal nodal forces (n, 3) in N."""
        return self.forces_and_stiffness(x, want_K=False)[0]

    def stiffness(self, x: np.ndarray) -> sp.bsr_matrix:
        """Tangent stiffness at ``x`` as a (3n, 3n) scipy BSR matrix (N/m)."""
        return self.pattern.matrix(self.forces_and_stiffness(x)[1])

    def deformation_gradients(self, x: np.ndarray) -> np.ndarray:
        """Deformation gradient per tet (m, 3, 3)."""
        return deformation_gradients(x, self.tets, self.grads)

    def energy_density(self, x: np.ndarray) -> np.ndarray:
        """Strain-energy density per tet (m,) in J/m^3."""
        F = self.deformation_gradients(x)
        W = np.empty(len(self.tets))
        for elems, mat, _, _ in self.groups:
            W[elems] = mat.energy(F[elems]).real
        if self.stiffness_scale is not None:   # the energies are linear in (lam, mu)
            W *= self.stiffness_scale
        return W

    def energy(self, x: np.ndarray) -> float:
        """Total strain energy (J)."""
        return float(self.energy_density(x) @ self.vols)

    def projected_stiffness(self, x: np.ndarray) -> np.ndarray:
        """Block data (nnzb, 3, 3) N/m of a symmetric positive semi-definite tangent at ``x``.

        The matrix a factorization or conjugate gradients can always rely on, also where
        the consistent tangent is indefinite (a slender body compressed past buckling, a
        flap folded by a cut). Linear and corotational groups give the warped stiffness
        ``R K0 R^T``, positive semi-definite by construction. The hyperelastic groups
        project each element's material tangent ``dP/dF`` (a symmetric 9 x 9 matrix, the
        Hessian of the energy density) onto the positive semi-definite cone by clamping its
        negative eigenvalues to zero; the element stiffness ``V B^T A B`` is then positive
        semi-definite too. Where an element's Hessian is already positive semi-definite its
        blocks equal the consistent tangent's. The energy-density Hessian is what
        projected-Newton solvers of hyperelasticity project (Teran et al., 2005). Neo-Hookean
        groups project in closed form from each element's singular values
        (:func:`~organsim.fem._kernels.neohooke_projected_kernel`, on both cores for large
        groups: 0.17 s for the 99k-tet patient liver, where decomposing the 9 x 9 Hessians
        numerically took 1.3 s); the others decompose those that are not positive definite.

        Raises
        ------
        ConvergenceError
            If an element of a hyperelastic group is inverted or the state is not finite.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ConvergenceError("the state is not finite (NaN/inf); check the loads and use a smaller step")
        f = np.zeros((self.n, 3))
        K = np.zeros((self.pattern.nnzb, 3, 3))
        for gi, (elems, mat, lam, mu) in enumerate(self.groups):
            if mat.kind in ("linear", "corotational"):
                kern.corot_kernel(x, self.tets, self.grads, self.vols, lam, mu, elems, self.pattern.blockmap,
                                  f, K, True, mat.kind == "corotational", self._Rcache, False)
                continue
            if mat.kind == "neo_hookean":   # in closed form, element by element
                if par.use_parallel(len(elems)):
                    with par.KERNEL_LOCK:
                        J = kern.neohooke_projected_kernel_par(x, self.tets, self.grads, self.vols, lam, mu, elems,
                                                               self.pattern.blockmap, K, *self._schedule(gi)[0])
                else:
                    J = kern.neohooke_projected_kernel(x, self.tets, self.grads, self.vols, lam, mu, elems,
                                                       self.pattern.blockmap, K)
                if not (J > 0):
                    raise ConvergenceError(f"an element is inverted or degenerate (det F = {J:.3g} <= 0);"
                                           " the step is rejected; use a smaller step or a softer load")
                continue
            F = deformation_gradients(x, self.tets[elems], self.grads[elems])
            J = np.linalg.det(F) if len(F) else np.ones(0)
            if len(J) and not (J.min() > 0):
                raise ConvergenceError(f"an element is inverted or degenerate (det F = {J.min():.3g} <= 0);"
                                       " the step is rejected; use a smaller step or a softer load")
            A = np.asarray(mat.tangent(F), dtype=np.float64).reshape(-1, 9, 9)
            if self.stiffness_scale is not None:   # the tangent is linear in (lam, mu)
                A = A * self.stiffness_scale[elems][:, None, None]
            A = 0.5 * (A + A.transpose(0, 2, 1))
            # only the elements whose Hessian is not positive definite need the eigen-
            # decomposition (a neo-Hookean one is indefinite wherever the element is compressed
            # or much stretched: 60-70 % of the patient liver's elements under gravity)
            pd = np.empty(len(A), dtype=np.bool_)
            kern.hessians_pd(A, _HESSIAN_PD_TOL, pd)
            clamp = np.flatnonzero(~pd)
            if len(clamp):
                w, Q = np.linalg.eigh(A[clamp])
                A[clamp] = np.einsum("eij,ej,ekj->eik", Q, np.maximum(w, 0.0), Q)
            kern.generic_kernel(np.zeros((len(elems), 3, 3)), np.ascontiguousarray(A.reshape(-1, 3, 3, 3, 3)),
                                self.tets, self.grads, self.vols, elems, self.pattern.blockmap, f, K, True)
        return K

    def rest_stiffness(self, elements: np.ndarray | None = None) -> np.ndarray:
        """Block data (nnzb, 3, 3) of the small-strain stiffness at the rest state (linearisation at ``F = I``).

        Parameters
        ----------
        elements : ndarray of int, optional
            Assemble only these tets (default: all). Blocks of a node are then
            complete when every tet around that node is included.
        """
        f = np.zeros((self.n, 3))
        K = np.zeros((self.pattern.nnzb, 3, 3))
        pick = None
        if elements is not None:
            pick = np.zeros(len(self.tets), dtype=bool)
            pick[np.asarray(elements, dtype=np.int64)] = True
        for elems, mat, lam, mu in self.groups:
            if lam is None:
                l0, m0 = mat.small_strain_lame()
                lam_ = np.full(len(elems), l0)
                mu_ = np.full(len(elems), m0)
            else:
                lam_, mu_ = lam, mu
            if pick is not None:
                sel = pick[elems]
                elems, lam_, mu_ = (np.ascontiguousarray(a[sel]) for a in (elems, lam_, mu_))
            kern.corot_kernel(np.ascontiguousarray(self.mesh.points), self.tets, self.grads, self.vols,
                              lam_, mu_, elems, self.pattern.blockmap, f, K, True, False, self._Rcache)
        return K

    def _rest_lame_per_tet(self) -> tuple[np.ndarray, np.ndarray]:
        """Small-strain Lame parameters (lam, mu) of each tet, (m,) Pa each (cached)."""
        if self._rest_lame is None and self._whole_group and self.groups[0][2] is not None:
            self._rest_lame = (self.groups[0][2], self.groups[0][3])   # the group's own, in tet order
        if self._rest_lame is None:
            lam = np.empty(len(self.tets))
            mu = np.empty(len(self.tets))
            for elems, mat, l_, m_ in self.groups:
                if l_ is None:
                    l0, m0 = mat.small_strain_lame()
                    lam[elems], mu[elems] = l0, m0
                else:
                    lam[elems], mu[elems] = l_, m_
            self._rest_lame = (lam, mu)
        return self._rest_lame

    def rest_diagonal_blocks(self, nodes: np.ndarray) -> np.ndarray:
        """Diagonal blocks (k, 3, 3) of :meth:`rest_stiffness` at ``nodes`` (k,), N/m, in one pass over the tets."""
        nodes = np.asarray(nodes, dtype=np.int64)
        slot = np.full(self.n, -1, dtype=np.int64)
        slot[nodes] = np.arange(len(nodes))
        return _mk.rest_diagonal_blocks(self.tets, self.grads, self.vols, *self._rest_lame_per_tet(), slot, len(nodes))

    def rest_sub_stiffness(self, sub: SubPattern) -> np.ndarray:
        """:meth:`rest_stiffness` restricted to the rows and columns of ``sub``, as block data on it (k, 3, 3), N/m.

        One pass over the tets, assembling only those around the sub-pattern's row
        nodes (the local solve around a cut), without the full (nnzb, 3, 3) array.
        """
        row_slot = np.full(self.n, -1, dtype=np.int64)
        row_slot[sub.free_nodes] = np.arange(sub.n)
        col_id = row_slot
        if sub.col_nodes is not sub.free_nodes:
            col_id = np.full(self.n, -1, dtype=np.int64)
            col_id[sub.col_nodes] = np.arange(sub.n_cols)
        return _mk.rest_sub_blocks(self.tets, self.grads, self.vols, *self._rest_lame_per_tet(), row_slot, col_id,
                                   sub.indptr, sub.indices)

    def min_jacobian(self, x: np.ndarray) -> float:
        """Smallest ``det F`` over all tets (<= 0: some element inverted; NaN: non-finite state)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if len(self.tets) >= par.MIN_PARALLEL_ELEMENTS:
            with self._tune("minJ").timed() as parallel:
                if parallel:
                    with par.KERNEL_LOCK:
                        return float(kern.min_jacobian_par(x, self.tets, self.grads))
                return float(kern.min_jacobian(x, self.tets, self.grads))
        return float(kern.min_jacobian(x, self.tets, self.grads))

    @property
    def element_rotations(self) -> np.ndarray | None:
        """Each tet's rotation of the last corotational force pass (m, 3, 3), or None where no tet is
        linear or corotational."""
        return self._Rcache if len(self._Rcache) == len(self.tets) and len(self.tets) else None

    def nodal_rotations(self, x: np.ndarray, Rn: np.ndarray, acc: np.ndarray) -> None:
        """Update ``Rn`` (n, 3, 3) in place to each node's rotation ``polar(sum_e V_e F_e)`` at ``x`` (n, 3).

        ``Rn`` warm-starts the polar decompositions; ``acc`` (n, 3, 3) is scratch. Meshes of at
        least :data:`~organsim.fem.parallel.MIN_PARALLEL_ELEMENTS` tets sum in a colored chunk
        order, on one core or both (the same sums in the same order); smaller ones in tet order.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        elems, sched, s_elems = self._rotation_schedule()
        if sched is None:
            kern.nodal_rotations(x, self.tets, self.grads, self.vols, s_elems, Rn, acc)
            return
        with self._tune("rotations").timed() as parallel:
            if parallel:
                with par.KERNEL_LOCK:
                    kern.nodal_rotations_par(x, self.tets, self.grads, self.vols, elems, *sched, Rn, acc)
            else:
                kern.nodal_rotations(x, self.tets, self.grads, self.vols, s_elems, Rn, acc)

    def _rotation_schedule(self) -> tuple:
        """``(elems, schedule, elems in schedule order)`` over all tets for :meth:`nodal_rotations`,
        built once: for a small mesh no schedule (None) and the tets in order; else the one
        group's schedule when a single group holds every tet (nothing more to keep), or one built
        for the whole mesh."""
        if self._rotation_sched is None:
            m = len(self.tets)
            if m < par.MIN_PARALLEL_ELEMENTS:
                ids = np.arange(m, dtype=np.int64)
                self._rotation_sched = (ids, None, ids)
            elif len(self.groups) == 1 and len(self.groups[0][0]) == m:
                sched, s_elems = self._schedule(0)[:2]
                self._rotation_sched = (self.groups[0][0], sched, s_elems)
            else:
                elems = np.arange(m, dtype=np.int64)
                sched = par.element_schedule(self.mesh.points, self.tets, elems)
                self._rotation_sched = (elems, sched, np.ascontiguousarray(elems[sched[0]]))
        return self._rotation_sched

    @property
    def matrix_free(self) -> bool:
        """Whether :meth:`stiffness_operator` can apply this mesh's stiffness (linear, corotational
        and neo-Hookean groups only)."""
        return all(m.kind in ("linear", "corotational", "neo_hookean") for _, m, _, _ in self.groups)

    def apply_stiffness(self, x: np.ndarray, p: np.ndarray, out: np.ndarray) -> None:
        """``out += K(x) p`` element by element, without assembling ``K`` (nodal fields (n, 3)).

        ``K`` is what :meth:`forces_and_stiffness` assembles at ``x`` (not ``exact``); the
        corotational groups use the rotations of the last force pass, so call it at ``x``
        first.
        """
        for gi, (elems, mat, lam, mu) in enumerate(self.groups):
            sched = None
            if len(elems) >= par.MIN_PARALLEL_ELEMENTS:
                sched, s_elems, s_lam, s_mu, _ = self._schedule(gi)
            tune = self._tune(("apply", gi))
            if mat.kind in ("linear", "corotational"):
                rot = mat.kind == "corotational"
                if sched is None:
                    kern.corot_apply(self.tets, self.grads, self.vols, lam, mu, elems, self._Rcache, rot, p, out)
                    continue
                with tune.timed() as parallel:
                    if parallel:
                        with par.KERNEL_LOCK:
                            kern.corot_apply_par(self.tets, self.grads, self.vols, lam, mu, elems, self._Rcache, rot,
                                                 p, out, *sched)
                    else:
                        kern.corot_apply(self.tets, self.grads, self.vols, s_lam, s_mu, s_elems, self._Rcache, rot,
                                         p, out)
            elif mat.kind == "neo_hookean":
                Fis, cms = self._tangent_state(x)
                if sched is None:
                    kern.neohooke_apply(self.tets, self.grads, self.vols, lam, mu, elems, Fis, cms, p, out)
                    continue
                with tune.timed() as parallel:
                    if parallel:
                        with par.KERNEL_LOCK:
                            kern.neohooke_apply_par(self.tets, self.grads, self.vols, lam, mu, elems, Fis, cms, p,
                                                    out, *sched)
                    else:
                        kern.neohooke_apply(self.tets, self.grads, self.vols, s_lam, s_mu, s_elems, Fis, cms, p,
                                            out)
            else:
                raise MaterialError(f"{type(mat).__name__} has no matrix-free stiffness; assemble it instead")

    def _tangent_state(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-tet ``F^-1`` (m, 3, 3) and ``mu - lam ln J`` (m,) of the neo-Hookean groups at ``x``
        (:func:`~organsim.fem._kernels.neohooke_state`), kept while ``x`` is the same array."""
        st = self._nh_state
        if st is not None and st[0] is x:
            return st[1], st[2]
        Fis = st[1] if st is not None else np.zeros((len(self.tets), 3, 3))
        cms = st[2] if st is not None else np.zeros(len(self.tets))
        with par.KERNEL_LOCK:
            for elems, mat, lam, mu in self.groups:
                if mat.kind == "neo_hookean":
                    kern.neohooke_state(x, self.tets, self.grads, elems, lam, mu, Fis, cms)
        self._nh_state = (x, Fis, cms)
        return Fis, cms

    def stiffness_operator(self, x: np.ndarray, free: np.ndarray, cK: float, mass: np.ndarray | None = None,
                           cM: float = 0.0, mass_op=None) -> ElasticOperator:
        """The free-DOF operator ``cK K(x) + cM M`` applied element by element (see :class:`ElasticOperator`)."""
        return ElasticOperator(self, x, free, cK, mass, cM, mass_op)

    def _tune(self, key) -> par.Autotune:
        tune = self._tunes.get(key)
        if tune is None:
            tune = self._tunes[key] = par.Autotune()
        return tune

    def _schedule(self, gi: int) -> tuple:
        """Group ``gi``'s parallel chunk schedule (:func:`organsim.fem.parallel.element_schedule`), cached.

        Returns ``(schedule, elems, lam, mu, autotune)``: the schedule, the group's tets and
        Lame parameters permuted into its order (for the serial kernel) and the group's
        :class:`~organsim.fem.parallel.Autotune`.
        """
        got = self._schedules.get(gi)
        if got is None:
            elems, _, lam, mu = self.groups[gi]
            sched = par.element_schedule(self.mesh.points, self.tets, elems)
            o = sched[0]
            got = (sched, np.ascontiguousarray(elems[o]), None if lam is None else np.ascontiguousarray(lam[o]),
                   None if mu is None else np.ascontiguousarray(mu[o]), par.Autotune())
            self._schedules[gi] = got
        return got
