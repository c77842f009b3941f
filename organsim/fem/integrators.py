"""Time integrators and the static solver of a :class:`~organsim.fem.simulation.Simulation`.

One job: advance a simulation's state. :func:`advance_with_retries` runs one step
(substeps retried on rejection) with :func:`backward_euler_substep` (Newton with a
:func:`line_search`) or :func:`realtime_substep` (a fixed number of warm-started,
budgeted linear solves); :func:`solve_static` finds a static equilibrium by load
stepping with :func:`static_increment`. The integrators and their options are described
in :mod:`organsim.fem.simulation`; the functions here take the simulation and update its
state in place, and its public methods (:meth:`~organsim.fem.simulation.Simulation.step`,
:meth:`~organsim.fem.simulation.Simulation.solve_static`) are the way to call them.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse.linalg as spla

from ..errors import ConvergenceError
from .preconditioning import (
    _SLOW_CG_ITERATIONS,
    _SLOW_STEPS_BEFORE_REFACTOR,
    cached_preconditioner,
    projected_system_data,
    refactor_current,
    warped_preconditioner,
)
from .solvers import CholeskyFactor, pcg
from .stiffness_form import TimedProducts

log = logging.getLogger(__name__)

__all__ = ["advance_with_retries", "backward_euler_substep", "line_search", "realtime_substep", "solve_static",
           "static_increment"]

#: Relative residual below which a Newton iteration that stops decreasing (three
#: iterations in a row without halving the residual) is taken as converged: the
#: residual has reached the round-off level of the assembled forces.
_ROUNDOFF_FLOOR = 1e-8


def advance_with_retries(sim, h: float, budget_s: float | None):
    """Advance ``sim`` by a step ``h``, retried with 2, 4, ... substeps when one is rejected.

    Parameters
    ----------
    sim : Simulation
        The simulation; its state is advanced in place (and restored before each retry).
    h : float
        Step (s).
    budget_s : float, optional
        Realtime mode: wall-clock budget of the linear solves (s); default ``sim.budget_s``.

    Returns
    -------
    stats : tuple
        ``(newton_iterations, linear_iterations, residual, converged, min_jacobian, refactored)``.
    n_sub : int
        Number of substeps the step took.

    Raises
    ------
    ConvergenceError
        If the step fails even with ``sim.max_substeps`` substeps; the state is unchanged.
    """
    x0, v0, t0 = sim._x.copy(), sim._v.copy(), sim._t
    cons, tgt = sim._targets()
    n_sub = 1
    last_exc = None
    while n_sub <= sim.max_substeps:
        try:
            stats = _advance(sim, h, n_sub, cons, x0[cons], tgt, budget_s)
            break
        except ConvergenceError as exc:
            last_exc = exc
            sim._x, sim._v, sim._t = x0.copy(), v0.copy(), t0
            sim._warm = None
            # the retry starts from a factorization of the current tangent (a carried-over
            # or rest-state one may be what made the step fail)
            sim._slow_steps = _SLOW_STEPS_BEFORE_REFACTOR
            log.info("step rejected (%s); retrying with %d substeps", exc, 2 * n_sub)
            n_sub *= 2
    else:
        raise ConvergenceError(f"the step of {h:g} s could not be completed even with {sim.max_substeps}"
                               f" substeps ({last_exc}); the state is unchanged. Reduce dt, soften the"
                               " loads or the instrument motion, or check the mesh quality") from last_exc
    return stats, n_sub


def _advance(sim, h, n_sub, cons, c_start, c_target, budget_s):
    """The ``n_sub`` substeps of one step ``h``, the constrained nodes moved linearly from
    ``c_start`` to ``c_target``; returns the summed statistics (see :func:`advance_with_retries`)."""
    hs = h / n_sub
    tot_newton = tot_lin = 0
    res = 0.0
    conv = True
    minJ = np.inf
    refac = False
    budget = sim.budget_s if budget_s is None else budget_s
    deadline = None if budget is None else time.perf_counter() + budget
    for k in range(n_sub):
        ck = c_start + (c_target - c_start) * ((k + 1) / n_sub)
        if sim.integrator == "realtime":
            out = realtime_substep(sim, hs, cons, ck, deadline)
        else:
            out = backward_euler_substep(sim, hs, cons, ck)
        nw, li, r, cv, mj, rf = out
        tot_newton += nw
        tot_lin += li
        res = max(res, r)
        conv = conv and cv
        minJ = min(minJ, mj)
        refac = refac or rf
    return tot_newton, tot_lin, res, conv, minJ, refac


def _substep_start(sim, h, cons, ck):
    """Common start of a dynamic substep of length ``h``: the free nodes, the mass and
    stiffness coefficients of the system matrix (``cM M + cK K``), the current state,
    the predictor ``x_n + h v`` with the constrained nodes at ``ck``, and the loads there."""
    _, _, free = sim._constraint_state()
    alpha, beta = sim.damping
    cM = 1.0 / (h * h) + alpha / h
    cK = 1.0 + beta / h
    x_n = sim._x
    x_pred = x_n + h * sim._v
    x = x_pred.copy()
    x[cons] = ck
    return free, cM, cK, x_n, x_pred, x, sim._external(x)


def _start_forces(sim, x, x_n, cons, ck, **kw):
    """``(x, f, K)``: forces and stiffness at a substep's starting guess ``x`` (the predictor
    ``x_n + h v``). If the predictor inverts an element (a thin tet whose nodes move across
    it within the step, as slivers left by a cut can), the solve starts from the current
    state instead: only the starting guess changes, not the equations."""
    try:
        return (x, *sim._asm.forces_and_stiffness(x, **kw))
    except ConvergenceError:
        x = x_n.copy()
        x[cons] = ck
        return (x, *sim._asm.forces_and_stiffness(x, **kw))


def backward_euler_substep(sim, h, cons, ck):
    """One backward-Euler substep ``h`` by Newton with line search to ``sim.newton_tol``.

    The constrained nodes ``cons`` end at ``ck``; returns ``(newton iterations, CG iterations,
    relative residual, converged, min det F, refactored)``.

    Raises
    ------
    ConvergenceError
        If Newton does not converge in ``sim.max_newton`` iterations or diverges.
    """
    free, cM, cK, x_n, x_pred, x, fext = _substep_start(sim, h, cons, ck)
    x, f, K = _start_forces(sim, x, x_n, cons, ck, exact=True)
    g = sim._dyn_residual(x, f, K, x_n, x_pred, h, fext)
    rnorm = float(np.linalg.norm(g[free]))
    scale = max(rnorm, float(np.linalg.norm(fext[free])), 1e-6 * sim._force_floor(), 1e-300)
    prec, refac = cached_preconditioner(sim, h)
    potential = _incremental_potential(sim, x_n, x_pred, h, fext)
    lin_total = 0
    it = 0
    stall = 0
    converged = rnorm <= sim.newton_tol * scale
    while not converged:
        if it >= sim.max_newton:
            raise ConvergenceError(f"Newton did not converge in {sim.max_newton} iterations"
                                   f" (relative residual {rnorm / scale:.2e})")
        A = sim._sub.operator(sim._sub.gather(K, cK, sim._Mb, cM))
        b = -g[free].ravel()
        eta = min(1e-2, max(0.1 * sim.newton_tol * scale / rnorm, 1e-4))  # inexact Newton forcing
        sol = pcg(A, b, precond=warped_preconditioner(sim, prec, x, free), rtol=eta, maxiter=sim.max_cg)
        lin_total += sol.iterations
        if not sol.converged:
            # stale preconditioner: refactor on the current state and solve again, on a
            # positive definite matrix (a factorization of an indefinite one is no CG
            # preconditioner): the current tangent's, or the projected tangent's where that is not
            prec, proj = refactor_current(sim, h, x, sim._sub.gather(K, cK, sim._Mb, cM), indefinite=sol.indefinite)
            refac = True
            if sol.indefinite:
                # the consistent tangent is indefinite here: a projected-Newton step (its
                # direction descends, and the line search keeps what lowers the residual)
                A = sim._sub.operator(proj if proj is not None else projected_system_data(sim, x, h))
                sol = pcg(A, b, precond=prec, rtol=eta, maxiter=sim.max_cg)
            else:
                sol = pcg(A, b, precond=prec, x0=sol.x, rtol=eta, maxiter=sim.max_cg)
            lin_total += sol.iterations
        d = np.zeros_like(x)
        d[free] = sol.x.reshape(-1, 3)
        prev = rnorm
        x, f, K, g, rnorm = line_search(
            sim._asm, x, d, rnorm, free,
            lambda xt, ft, Kt: sim._dyn_residual(xt, ft, Kt, x_n, x_pred, h, sim._external(xt)),
            potential=potential, g=g)
        it += 1
        stall = stall + 1 if rnorm > 0.5 * prev else 0
        converged = rnorm <= sim.newton_tol * scale or (stall >= 3 and rnorm <= _ROUNDOFF_FLOOR * scale)
    minJ = sim._asm.min_jacobian(x)
    sim._last = ("dyn", x.copy(), x_n.copy(), x_pred, h)
    sim._v = (x - x_n) / h
    sim._x = x
    return it, lin_total, rnorm / scale, True, minJ, refac


def _incremental_potential(sim, x_n, x_pred, h, fext):
    """The energy a backward-Euler step minimises, as a function of the end state, or None.

    ``(x - x_pred)^T M (x - x_pred) / (2 h^2) + alpha (x - x_n)^T M (x - x_n) / (2 h)
    + U(x) - fext . x`` (J): its gradient is the step's residual. It exists when the
    loads are conservative (no follower pressure) and the damping is mass-proportional
    only (``beta = 0``); the line search then accepts Newton steps that lower it, as a
    body snapping through a buckle needs (there the residual norm rises on the way).
    """
    alpha, beta = sim.damping
    if beta != 0 or sim._pressures:
        return None

    def potential(xt):
        a, b = xt - x_pred, xt - x_n
        inertia = float(np.sum(a * sim._mass_times(a))) / (2 * h * h)
        damping = alpha * float(np.sum(b * sim._mass_times(b))) / (2 * h) if alpha else 0.0
        return inertia + damping + sim._asm.energy(xt) - float(np.sum(fext * xt))
    return potential


def line_search(asm, x, d, rnorm, free, residual, *, potential=None, g=None):
    """Backtracking line search along the Newton direction ``d`` from ``x``.

    Tries the steps ``d, d/2, ...`` (8 at most) and takes the first that lowers the
    residual norm on the ``free`` nodes below ``(1 - 1e-4 alpha) rnorm``, or, when a
    ``potential`` (the energy the problem minimises, with gradient ``g`` at ``x``) is
    given and ``d`` descends it, lowers that energy by the Armijo amount
    ``1e-4 alpha g . d``; else the best one tried. ``residual(x, f, K)`` gives the
    nonlinear residual (n, 3) from the elastic forces and stiffness of ``asm`` at ``x``.
    The energy test accepts the full Newton steps a bending body needs: there the
    residual norm often rises on the way to the minimum although the energy falls.

    Returns
    -------
    x, f, K, g : the accepted state, its forces, stiffness block data and residual.
    rnorm : float
        Its residual norm on the free nodes.

    Raises
    ------
    ConvergenceError
        If every trial inverts an element or produces NaN, or the best one raises the
        residual more than tenfold (divergence).
    """
    alpha = 1.0
    best = None
    slope = float(np.sum(g[free] * d[free])) if potential is not None and g is not None else 0.0
    e0 = potential(x) if slope < 0 else None
    for _ in range(8):
        xt = x + alpha * d
        try:
            ft, Kt = asm.forces_and_stiffness(xt, exact=True)
            gt = residual(xt, ft, Kt)
            rt = float(np.linalg.norm(gt[free]))
            if not np.isfinite(rt):
                raise ConvergenceError("non-finite residual")
        except ConvergenceError:
            alpha *= 0.5
            continue
        if rt <= (1.0 - 1e-4 * alpha) * rnorm:
            return xt, ft, Kt, gt, rt
        if e0 is not None:
            et = potential(xt)
            if np.isfinite(et) and et <= e0 + 1e-4 * alpha * slope:
                return xt, ft, Kt, gt, rt
        if best is None or rt < best[4]:
            best = (xt, ft, Kt, gt, rt)
        alpha *= 0.5
    if best is None:
        raise ConvergenceError("every trial step inverted an element or produced NaN")
    if best[4] > 10.0 * rnorm:
        raise ConvergenceError(f"Newton diverges (residual grew from {rnorm:.3g} to {best[4]:.3g})")
    return best


def realtime_substep(sim, h, cons, ck, deadline):
    """One realtime substep ``h``: ``sim.realtime_newton`` Newton iterations, each a capped,
    warm-started PCG solve stopped at ``deadline`` (a ``time.perf_counter`` value, or None).

    Returns the same statistics as :func:`backward_euler_substep`.

    Raises
    ------
    ConvergenceError
        If the step inverts an element of a hyperelastic material or produces NaN.
    """
    free, cM, cK, x_n, x_pred, x, fext = _substep_start(sim, h, cons, ck)
    prec, refac = cached_preconditioner(sim, h)
    lin_total = 0
    rel = 0.0
    conv = True
    warm = sim._warm if (sim._warm is not None and len(sim._warm) == 3 * len(free)) else None
    # residuals far below the loads are not worth iterating on (an organ resting under
    # gravity would otherwise be solved to a tolerance relative to a tiny correction)
    atol = sim.realtime_rtol * float(np.linalg.norm(fext[free]))
    # matrix-free products (no stiffness assembly) where the materials allow it and no
    # stiffness damping needs K in the residual; under "auto" the cheaper form as measured
    # (see organsim.fem.stiffness_form)
    mfree = sim._asm.matrix_free and sim.damping[1] == 0
    auto = mfree and sim.matrix_free == "auto"
    if auto:
        mfree = sim._stiffness_forms.choose()
    elif sim.matrix_free is False:
        mfree = False
    setup_s = product_s = 0.0
    products = 0
    fresh = False   # whether this step refactored because steps had been slow
    for it in range(sim.realtime_newton):
        t_setup = time.perf_counter()
        if it == 0:
            x, f, K = _start_forces(sim, x, x_n, cons, ck, want_K=not mfree)
        else:
            f, K = sim._asm.forces_and_stiffness(x, want_K=not mfree)
        g = sim._dyn_residual(x, f, K, x_n, x_pred, h, fext if not sim._pressures else sim._external(x))
        data = None if mfree else sim._sub.gather(K, cK, sim._Mb, cM, consume=True)   # K is not needed after
        K = None
        proj = None
        if it == 0 and sim._slow_steps >= _SLOW_STEPS_BEFORE_REFACTOR:
            # the factorization no longer fits the loaded, deformed state (gravity sag,
            # stress released by cuts): factor the current tangent instead (the projected
            # one where the current one is not positive definite)
            t_refactor = time.perf_counter()
            prec, proj = refactor_current(sim, h, x, data)
            t_setup += time.perf_counter() - t_refactor   # not the stiffness form's cost
            refac = fresh = True
            sim._slow_steps = 0
        A = TimedProducts(_matrix_free_operator(sim, x, free, cK, cM) if mfree else sim._sub.operator(data))
        setup_s += time.perf_counter() - t_setup
        b = -g[free].ravel()
        sol = pcg(A, b, precond=warped_preconditioner(sim, prec, x, free), x0=warm if it == 0 else None,
                  rtol=sim.realtime_rtol, atol=atol,
                  maxiter=sim.realtime_cg, deadline=deadline)
        product_s += A.seconds
        products += A.count
        if sol.indefinite:
            # the tangent is indefinite here (a body compressed past buckling): solve with
            # the projected tangent instead, whose direction descends (projected Newton), and
            # refactor the projected tangent when the preconditioner is next refactored
            sim._tangent_indefinite = True
            if proj is None:
                proj = projected_system_data(sim, x, h, data)
            lin_total += sol.iterations
            sol = pcg(sim._sub.operator(proj), b, precond=warped_preconditioner(sim, prec, x, free),
                      rtol=sim.realtime_rtol, atol=atol, maxiter=sim.realtime_cg, deadline=deadline)
        if it == 0:
            slow = sol.iterations > _SLOW_CG_ITERATIONS or not sol.converged
            sim._slow_steps = sim._slow_steps + 1 if slow else 0
            if slow and fresh:
                # even a fresh factorization of the current tangent is slow: where it was
                # kept in single precision, that may be the cause, so later ones are kept in
                # double (a soft organ's slow spells are its motion: a fresh single factor
                # solves them in 1-2 iterations, and its solves cost 0.6-0.8 of the double's)
                sim._double_factor = True
        lin_total += sol.iterations
        rel = sol.residual
        conv = sol.converged
        x[free] += sol.x.reshape(-1, 3)
        if it == 0:
            sim._warm = sol.x.copy()
    if auto:
        sim._stiffness_forms.record(mfree, setup_s, product_s, products)
    sim._stiffness_form = "matrix-free" if mfree else "assembled"
    minJ = sim._asm.min_jacobian(x)
    # linear and corotational elements push back out of an inversion; the hyperelastic
    # models are undefined there
    inversion_fails = any(m.kind not in ("linear", "corotational") for _, m, _, _ in sim._asm.groups)
    if not np.isfinite(minJ):
        raise ConvergenceError("the realtime step produced NaN")
    if inversion_fails and minJ <= 0:
        where, inverted = _most_compressed(sim, x)
        exc = ConvergenceError(f"the realtime step inverted an element (min det F = {minJ:.3g}; {where})")
        exc.inverted_tets = inverted   # what Simulation.step may stiffen to go on
        raise exc
    sim._last = ("dyn", x.copy(), x_n.copy(), x_pred, h)
    sim._v = (x - x_n) / h
    sim._x = x
    return sim.realtime_newton, lin_total, rel, conv, minJ, refac


def _most_compressed(sim, x) -> tuple[str, np.ndarray]:
    """Where the state ``x`` compresses the mesh most, in the user's terms (the tet's region and
    rest position in mm, and how many tets are inverted), and the inverted tets' ids (computed
    only when a step fails)."""
    from ..mesh.tetmesh import tet_volumes

    m = sim.mesh
    ratio = tet_volumes(x, m.tets) / m.volumes
    e = int(np.argmin(ratio))
    c = m.points[m.tets[e]].mean(axis=0) * 1e3
    name = m.region_names.get(int(m.region_ids[e]), str(m.region_ids[e]))
    return (f"{int((ratio <= 0).sum())} tet(s) inside out, the worst in region {name!r} at"
            f" ({c[0]:.0f}, {c[1]:.0f}, {c[2]:.0f}) mm"), np.flatnonzero(ratio <= 0)


def _matrix_free_operator(sim, x, free, cK, cM):
    """``cK K(x) + cM M`` on the free DOFs, ``K`` applied element by element
    (:class:`~organsim.fem.assembly.ElasticOperator`); a consistent mass is gathered once per
    constraint set and step."""
    if sim._Mb.ndim == 1:
        return sim._asm.stiffness_operator(x, free, cK, sim._m, cM)
    key = (id(sim._cache_key), cM)
    if getattr(sim, "_mf_mass", (None,))[0] != key:
        sim._mf_mass = (key, sim._sub.operator(sim._sub.gather(sim._Mb, 0.0, sim._Mb, cM)))
    return sim._asm.stiffness_operator(x, free, cK, mass_op=sim._mf_mass[1].__matmul__)


def solve_static(sim, load_steps: int, tol: float, max_newton: int, max_cuts: int):
    """Static equilibrium of ``sim`` by Newton with line search and automatic load stepping.

    The loads and prescribed motions are applied in ``load_steps`` increments, each
    halved (up to ``max_cuts`` times) when Newton fails; see
    :meth:`~organsim.fem.simulation.Simulation.solve_static`. On success the state is set
    to the equilibrium with zero velocities.

    Returns
    -------
    load_steps : int
        Increments taken.
    newton_iterations : int
        Newton iterations, summed.
    residual : float
        Relative residual of the last increment.

    Raises
    ------
    ConvergenceError
        If an increment fails after ``max_cuts`` halvings (state unchanged).
    """
    _, _, free = sim._constraint_state()
    cons, tgt = sim._targets()
    x_start = sim._x.copy()
    c_start = x_start[cons]
    x = x_start.copy()
    lam = 0.0
    step = 1.0 / max(int(load_steps), 1)
    total_newton = 0
    steps_done = 0
    cuts = 0
    rel = 0.0
    while lam < 1.0 - 1e-12:
        lam_t = min(1.0, lam + step)
        try:
            x_new, nit, rel = static_increment(sim, x, free, cons, c_start + lam_t * (tgt - c_start),
                                               lam_t, tol, max_newton)
        except ConvergenceError as exc:
            cuts += 1
            if cuts > max_cuts:
                raise ConvergenceError(f"static solve failed at load factor {lam_t:.3g} after {max_cuts}"
                                       f" step halvings ({exc}); the state is unchanged. Use more load"
                                       " steps, a smaller load, or check the constraints") from exc
            step *= 0.5
            continue
        total_newton += nit
        steps_done += 1
        x = x_new
        lam = lam_t
    sim._x = x
    sim._v = np.zeros_like(x)
    sim._last = ("static", x.copy())
    return steps_done, total_newton, rel


def static_increment(sim, x, free, cons, ck, lam, tol, max_newton):
    """One load increment of :func:`solve_static`: Newton with a direct sparse solve from ``x``
    with the constrained nodes at ``ck`` and the loads scaled by ``lam``; returns
    ``(x, iterations, relative residual)``."""
    x = x.copy()
    x[cons] = ck
    fext_fn = lambda xt: sim._external(xt, lam)  # noqa: E731
    # gravity and nodal forces are conservative: the increment minimises the potential energy
    # W(x) - fext . x, and the line search can judge a Newton step by it (follower pressures
    # have no potential: then by the residual alone)
    potential = None
    if not sim._pressures:
        fext0 = fext_fn(x)
        potential = lambda xt: sim._asm.energy(xt) - float(np.sum(fext0[free] * xt[free]))  # noqa: E731
    f, K = sim._asm.forces_and_stiffness(x, exact=True)
    g = f - fext_fn(x)
    rnorm = float(np.linalg.norm(g[free]))
    scale = max(float(np.linalg.norm(sim._external(x)[free])), rnorm,
                1e-6 * sim._force_floor(), 1e-300)
    it = 0
    stall = 0
    while rnorm > tol * scale:
        if it >= max_newton:
            raise ConvergenceError(f"Newton did not converge in {max_newton} iterations"
                                   f" (relative residual {rnorm / scale:.2e})")
        d = np.zeros_like(x)
        Kp = sim._pressure_stiffness(x, free, lam)
        if Kp is None:
            r, c, v = sim._sub.lower_coo(sim._sub.gather(K, 1.0))
            fac = CholeskyFactor(3 * len(free), r, c, v)
            d[free] = fac.solve(-g[free].ravel()).reshape(-1, 3)
        else:
            # follower pressure: the tangent d(f - fext)/dx has the pressure's own, unsymmetric
            # term (quadratic convergence instead of linear), so LU instead of Cholesky
            A = (sim._sub.matrix(sim._sub.gather(K, 1.0)).tocsr() - Kp).tocsc()
            try:
                d[free] = spla.splu(A).solve(-g[free].ravel()).reshape(-1, 3)
            except RuntimeError as exc:
                raise ConvergenceError(f"the static tangent is singular under the pressure ({exc}); add"
                                       " constraints or apply the pressure in more load steps") from exc
        prev = rnorm
        x, f, K, g, rnorm = line_search(sim._asm, x, d, rnorm, free, lambda xt, ft, Kt: ft - fext_fn(xt),
                                        potential=potential, g=g)
        it += 1
        stall = stall + 1 if rnorm > 0.5 * prev else 0
        if stall >= 3 and rnorm <= _ROUNDOFF_FLOOR * scale:
            log.info("static Newton stagnated at relative residual %.2e, below the round-off floor"
                     " %.0e; accepted", rnorm / scale, _ROUNDOFF_FLOOR)
            break
    return x, it, rnorm / scale
