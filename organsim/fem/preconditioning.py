"""Preconditioning of a :class:`~organsim.fem.simulation.Simulation`'s conjugate-gradient solves.

One job: build, cache, rotate and carry the preconditioner. :func:`cached_preconditioner`
factors the reference matrix ``(1/h^2 + alpha/h) M + (1 + beta/h) K`` (or a given tangent)
on the free nodes and caches it on the simulation; :func:`warped_preconditioner` rotates it
into the current nodal frames (a factorization of a deformed state by each node's rotation
since that state); :func:`refresh_preconditioner` refactors from the current tangent;
:func:`carry_preconditioner` keeps a factorization across a topology or constraint change
(:class:`~organsim.fem.solvers.MappedPreconditioner`) instead of refactoring. The constants
below are the policy of when a realtime step refactors.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from . import _kernels as kern
from . import _mesh_kernels as _mk
from .solvers import (
    MappedPreconditioner,
    WarpedPreconditioner,
    local_factor,
    make_preconditioner,
)

log = logging.getLogger(__name__)

__all__ = ["cached_preconditioner", "carry_preconditioner", "projected_system_data",
           "refactor_current", "refresh_preconditioner", "single_factor", "warped_preconditioner"]

#: Realtime steps whose first CG solve takes more than this many iterations (or does not
#: converge) count as slow ...
_SLOW_CG_ITERATIONS = 8
#: ... and after this many slow steps in a row the preconditioner is refactored from the
#: current tangent: a one-off factorization (about 0.2 s on the 10k-tet liver, a visible
#: hitch) instead of slow steps from then on. Carried-over factorizations (after cuts,
#: grasps and releases) are kept as long as they do not make steps slow.
_SLOW_STEPS_BEFORE_REFACTOR = 5
#: Cholesky preconditioners of at least this many entries are kept in single precision under
#: "auto" (``Simulation(factor_precision=...)``): there a solve is memory bound and takes about
#: 0.6 of the double one (measured from the 10k-tet organ's 1.6M entries, a 13 ms step against
#: 17 ms, to the 101k-tet beam's 33M); smaller ones keep double.
SINGLE_FACTOR_MIN_NNZ = 1_000_000
#: A factorization of a deformed state is rotated with the nodes (warped_preconditioner) only
#: while no element is compressed below this fraction of its volume, there and now: where
#: elements are crushed (a pressed flap, an inverted tet being stiffened) the nodal rotations
#: are not well defined, and rotating by them made CG need hundreds of iterations.
_RELATIVE_WARP_MIN_J = 0.5
#: A carried-over factorization is corrected by an exact solve on the nodes a cut, grasp or
#: release affected when there are at most this many of them (block Jacobi beyond).
_LOCAL_SOLVE_MAX_NODES = 3000


def cached_preconditioner(sim, h: float, kind_hint: str | None = None, data: np.ndarray | None = None):
    """Cached reference preconditioner for step ``h`` (built from ``data`` or the rest stiffness).

    Parameters
    ----------
    sim : Simulation
        Its preconditioner cache (``_prec``, ``_prec_key``, ``_prec_free``, ...) is updated.
    h : float
        Step (s) the matrix ``(1/h^2 + alpha/h) M + (1 + beta/h) K`` is for.
    kind_hint : str, optional
        Preconditioner kind overriding ``sim.preconditioner``.
    data : ndarray, optional
        Block data of the matrix to factor on the free nodes; default: the reference
        matrix from the rest stiffness (and the cached preconditioner when still valid).

    Returns
    -------
    prec
        The preconditioner.
    built : bool
        Whether it was (re)built by this call.
    """
    _, _, free = sim._constraint_state()
    key = (id(sim._cache_key), h)
    if data is None and sim._prec is not None and sim._prec_key == key:
        return sim._prec, False
    alpha, beta = sim.damping
    cM = 1.0 / (h * h) + alpha / h
    cK = 1.0 + beta / h
    sim._prec_is_ref = data is None
    sim._R_fact = None   # refactor_current records the rotations of the state it factors
    if data is None:
        data = sim._sub.gather(sim._rest_K(), cK, sim._Mb, cM, consume=True)
    kind = _kind(sim, len(free), kind_hint)
    t0 = time.perf_counter()
    # a single-precision factor is written so as it is computed (no double copy in memory)
    sim._prec = make_preconditioner(kind, sim._sub, data, sim.mesh.points[free], single_from_nnz=_single_from(sim))
    sim._prec_key = key
    sim._prec_free = free
    sim._mapped_count = 0
    log.debug("built %s preconditioner for %d free nodes in %.3f s", kind, len(free), time.perf_counter() - t0)
    return sim._prec, True


def single_factor(sim) -> bool:
    """Whether ``sim`` may keep a large Cholesky preconditioner in single precision
    (``factor_precision``; "auto": for the realtime integrator, whose solves stop at a coarse
    tolerance, until its CG is slow for several steps in a row: the refactorization that follows,
    and every later one, is kept in double)."""
    p = sim.factor_precision
    return p == "single" or (p == "auto" and sim.integrator == "realtime" and not sim._double_factor)


def _kind(sim, n_free: int, kind_hint: str | None = None) -> str:
    """The preconditioner kind ``sim`` builds for ``n_free`` free nodes ("auto" resolved: Cholesky up
    to ``cholesky_max_dofs`` free DOFs, the two-grid cycle of :mod:`organsim.fem.multigrid` above)."""
    kind = kind_hint or sim.preconditioner
    if kind != "auto":
        return kind
    return "cholesky" if 3 * n_free <= sim.cholesky_max_dofs else "multigrid"


def _single_from(sim) -> int | None:
    """The factor size from which ``sim``'s Cholesky factors are kept in single precision (None: never)."""
    p = sim.factor_precision
    return 0 if p == "single" else SINGLE_FACTOR_MIN_NNZ if p == "auto" and single_factor(sim) else None


def projected_system_data(sim, x: np.ndarray, h: float, data: np.ndarray | None = None) -> np.ndarray:
    """Block data of ``(1 + beta/h) K+ + (1/h^2 + alpha/h) M`` on the free nodes, ``K+`` the
    projected tangent at ``x`` (:meth:`~organsim.fem.assembly.Assembler.projected_stiffness`):
    positive definite. ``data``, the same matrix with the default tangent, is returned as it
    is where that tangent is already the projected one (linear and corotational tissue)."""
    if data is not None and sim._asm.tangent_is_projected:
        return data
    alpha, beta = sim.damping
    return sim._sub.gather(sim._asm.projected_stiffness(x), 1.0 + beta / h, sim._Mb, 1.0 / (h * h) + alpha / h)


def refactor_current(sim, h: float, x: np.ndarray, data: np.ndarray | None = None, *, indefinite: bool = False):
    """Refactor the preconditioner of ``sim`` at the state ``x``, always on a positive definite matrix.

    Parameters
    ----------
    sim : Simulation
    h : float
        Step (s).
    x : (n, 3) float64
        The state (m).
    data : ndarray, optional
        The system's block data from the current tangent, when at hand. The Cholesky factor
        and the two-grid cycle are built from it when their factorization accepts it (the
        usual case: the sum over elements and the mass term are definite even where most
        elements' Hessians are not); where it is refused (an indefinite tangent: a buckled
        body, a folded flap), where the kind cannot tell (AMG, Jacobi), after a solve met
        negative curvature or without ``data``, the projected tangent's matrix is factored
        instead (:func:`projected_system_data`).
    indefinite : bool
        Whether a CG solve on the current tangent has just met negative curvature.

    Returns
    -------
    prec
        The new preconditioner.
    projected : ndarray or None
        The projected system data, when it was built.
    """
    _, _, free = sim._constraint_state()
    prec = projected = None
    indefinite = indefinite or sim._tangent_indefinite
    sim._tangent_indefinite = False
    if data is not None and (sim._asm.tangent_is_projected
                             or (not indefinite and _kind(sim, len(free)) in ("cholesky", "multigrid"))):
        prec, _ = cached_preconditioner(sim, h, data=data)
        if sim._asm.tangent_is_projected:
            projected = data
        elif _refused(prec):
            log.debug("the current tangent is not positive definite: factoring the projected one")
            prec = None
    if prec is None:
        projected = projected_system_data(sim, x, h, data)
        prec, _ = cached_preconditioner(sim, h, data=projected)
    # the nodal rotations of the factored state: later steps rotate the factorization by each
    # node's rotation since (warped_preconditioner), where they are well defined
    if sim.warp and sim._asm.min_jacobian(x) >= _RELATIVE_WARP_MIN_J:
        sim._asm.nodal_rotations(x, sim._Rn, sim._Racc)
        sim._R_fact = sim._Rn.copy()
    return prec, projected


def _refused(prec) -> bool:
    """Whether ``prec``'s Cholesky factorization (the two-grid cycle's coarse one) found its
    matrix not positive definite and fell back to LU."""
    return prec.kind == "lu" or (prec.kind == "multigrid" and prec.coarse.kind == "lu")


def warped_preconditioner(sim, prec, x, free):
    """The preconditioner rotated into the current nodal frames (when ``sim.warp``).

    A reference factorization (the rest state) is rotated by each free node's rotation at
    ``x``; one of a deformed state (:func:`refactor_current`) by each node's rotation since
    that state, ``R(x) R(x_f)^T``. A soft organ sagging under gravity or swinging after a cut
    mostly rotates its parts: so rotated, the 41k-tet patient liver on the liver preset
    (neo-Hookean, 5.2 kPa) refactored once in its first 60 steps instead of three times, at
    5.0 CG iterations a step instead of 7.3. Not where an element is compressed below
    :data:`_RELATIVE_WARP_MIN_J` of its volume, at the factored state or now.
    """
    if not sim.warp or (not sim._prec_is_ref and (sim._R_fact is None
                                                  or sim._asm.min_jacobian(x) < _RELATIVE_WARP_MIN_J)):
        return prec
    sim._asm.nodal_rotations(x, sim._Rn, sim._Racc)
    if sim._prec_is_ref:
        return WarpedPreconditioner(prec, np.ascontiguousarray(sim._Rn[free]))
    R = np.empty((len(free), 3, 3))
    kern.relative_rotations(sim._Rn, sim._R_fact, np.ascontiguousarray(free, dtype=np.int64), R)
    return WarpedPreconditioner(prec, R)


def refresh_preconditioner(sim, h: float) -> None:
    """Factor the current tangent of ``sim`` for step ``h`` as its preconditioner
    (see :meth:`~organsim.fem.simulation.Simulation.refresh_preconditioner`)."""
    sim._constraint_state()
    alpha, beta = sim.damping
    _, K = sim._asm.forces_and_stiffness(sim._x)
    refactor_current(sim, h, sim._x, sim._sub.gather(K, 1.0 + beta / h, sim._Mb, 1.0 / (h * h) + alpha / h,
                                                     consume=True))
    sim._slow_steps = 0


def carry_preconditioner(sim, T, affected_all, prec, h, old_free, is_ref, count) -> None:
    """Keep the old factorization as a preconditioner on the new mesh (see MappedPreconditioner).

    Parameters
    ----------
    sim : Simulation
        On its new mesh and constraints; its preconditioner cache is set.
    T : scipy.sparse.csr_matrix (n_new, n_old)
        Nodal transfer from the mesh (or free set) the factorization was built for.
    affected_all : (n_new,) bool
        New nodes the change touched (corrected locally).
    prec, h, old_free, is_ref, count
        The old preconditioner, its step, its free nodes, whether it is a reference
        factorization and how many times it has been carried already.
    """
    _, _, free = sim._constraint_state()
    col_new = np.full(T.shape[1], -1, dtype=np.int64)
    col_new[old_free] = np.arange(len(old_free))
    affected = affected_all[free]
    base = prec
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    chain = (empty_i, empty_i, empty_f, len(old_free))
    if isinstance(prec, MappedPreconditioner):
        base = prec.base
        old_aff = np.zeros(T.shape[1])
        old_aff[old_free] = prec.affected
        affected = affected | ((T @ old_aff)[free] > 0)
        t_ptr, t_ind, t_val, t_shape = prec.Tnodes
        chain = (t_ptr, t_ind, t_val, t_shape[1])
    # the new free rows of T, its columns renumbered to the old free nodes, composed with
    # the transfer the old preconditioner already carried
    ptr, ind, val = _mk.restrict_compose(T.indptr.astype(np.int64, copy=False),
                                         T.indices.astype(np.int64, copy=False), T.data,
                                         np.ascontiguousarray(free, dtype=np.int64), col_new, *chain)
    Tf = (ptr, ind, val, (len(free), chain[3]))
    alpha, beta = sim.damping
    cM = 1.0 / (h * h) + alpha / h
    cK = 1.0 + beta / h
    aff_nodes = free[affected]
    if 0 < len(aff_nodes) <= _LOCAL_SOLVE_MAX_NODES:
        # an exact solve on the affected nodes: the reference matrix (rest stiffness of the
        # tets around them, and mass) at their rows (all free columns: the coupling of the
        # multiplicative correction), its affected-by-affected block factored (a few hundred DOFs)
        rows_sub = sim._asm.pattern.sub(aff_nodes, free)
        coupling = cK * sim._asm.rest_sub_stiffness(rows_sub)
        if sim._Mb.ndim == 1:   # lumped: nodal masses on the diagonal blocks
            r, d = rows_sub.diagonal_blocks
            kern.lumped_diag_add(coupling, d, np.ascontiguousarray(sim._m[aff_nodes[r]]), cM)
        else:
            coupling += cM * sim._Mb[rows_sub.blocks]
        sub = sim._asm.pattern.sub(aff_nodes)
        local = local_factor(sub, np.ascontiguousarray(coupling[affected[rows_sub.indices]]))
        coupling = (rows_sub.indptr, rows_sub.indices, coupling)
    else:
        # block Jacobi on the affected nodes: their rest diagonal blocks in one pass over the tets
        coupling = None
        local = (cK * sim._asm.rest_diagonal_blocks(aff_nodes)
                 + cM * (sim._m[aff_nodes, None, None] * np.eye(3) if sim._Mb.ndim == 1
                         else sim._Mb[sim._asm.pattern.diag[aff_nodes]]))
    sim._prec = MappedPreconditioner(base, Tf, local, affected, coupling)
    sim._prec_key = (id(sim._cache_key), h)
    sim._prec_free = free
    sim._prec_is_ref = is_ref
    sim._mapped_count = count + 1
