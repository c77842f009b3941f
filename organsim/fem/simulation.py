"""The simulation: state, constraints, loads and integrators of a deformable body.

Integrators
-----------
``"backward_euler"`` (default)
    Implicit (backward) Euler with Rayleigh damping ``C = alpha M + beta K``;
    each step is solved by Newton's method (with the consistent tangent, for the
    corotational model too) and a backtracking line search to a relative
    residual ``newton_tol``. Linear systems are solved by conjugate
    gradients preconditioned with a factorization of a reference matrix
    ``(1/h^2 + alpha/h) M + (1 + beta/h) K`` that is reused across steps and
    refreshed (with the current tangent) when conjugate gradients need too many
    iterations.
``"realtime"``
    The same discretisation with a fixed small number of Newton iterations
    (``realtime_newton``, default 1: a linearly implicit step) warm-started from
    the last frame, each solved by at most ``realtime_cg`` preconditioned CG
    iterations and stopped by the time budget ``budget_s``. The reference
    factorization is rebuilt only when the constraints or the time step change.
    :class:`StepInfo` reports the residual reached and whether it converged.

Static equilibrium (:meth:`Simulation.solve_static`) uses Newton with line search
and automatic load stepping, with a direct sparse factorization per iteration.

Constraints are Dirichlet conditions on whole nodes, eliminated from the linear
systems. Robustness: an inverted element, a diverging Newton iteration or a
non-finite value rejects the step; the step is retried with 2, 4, ... substeps,
and :class:`~organsim.errors.ConvergenceError` is raised, with the state
unchanged, if that fails.

Modules
-------
This module holds the :class:`Simulation` itself: its state, constraints, loads,
residuals and outputs, and the public methods. The algorithms it calls live beside it:
the time integrators and the static solver in :mod:`organsim.fem.integrators`, building,
caching and carrying the preconditioner in :mod:`organsim.fem.preconditioning`, and the
transfer of constraints and loads across a topology change in
:mod:`organsim.fem.topology_transfer`.

Examples
--------
>>> import numpy as np
>>> from organsim.mesh.generators import box_tet_mesh
>>> from organsim.fem.materials import NeoHookean
>>> from organsim.fem.body import Body
>>> mesh = box_tet_mesh((6, 3, 3), 0.01)
>>> sim = Simulation(Body(mesh, NeoHookean(1e5, 0.4), density=1000.0), dt=0.01)
>>> sim.fix(np.flatnonzero(mesh.points[:, 0] == 0), name="wall")
>>> info = sim.step()
>>> info.converged, bool(sim.displacements[:, 2].min() < 0)
(True, True)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..errors import ConvergenceError, SimulationError
from ..mesh.tetmesh import TetMesh
from . import _mesh_kernels as _mk
from . import integrators
from .assembly import Assembler, consistent_mass_blocks
from .body import Body
from .preconditioning import carry_preconditioner, refresh_preconditioner
from .solvers import single_threaded_blas
from .stiffness_form import StiffnessFormChooser
from ..mesh.topology import all_parents_in
from .topology_transfer import (
    carry_constraints,
    carry_forces,
    carry_pressures,
    carry_velocities,
    checked_transfer,
)

__all__ = ["Simulation", "StepInfo", "StaticInfo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepInfo:
    """What one :meth:`Simulation.step` did.

    Attributes
    ----------
    time : float
        Simulation time after the step (s).
    dt : float
        Step size (s).
    newton_iterations : int
        Newton iterations, summed over substeps.
    linear_iterations : int
        Conjugate-gradient iterations, summed.
    residual : float
        Relative residual reached: the nonlinear residual ``||g|| / scale`` for
        ``backward_euler``; for ``realtime`` the relative residual of the last
        linear solve.
    converged : bool
        Whether the tolerance was met (realtime mode may stop early on budget).
    substeps : int
        1 unless the step had to be retried with smaller steps.
    wall_s : float
        Wall-clock time of the step (s).
    min_jacobian : float
        Smallest ``det F`` after the step.
    refactored : bool
        Whether a preconditioner factorization was (re)built during the step.
    """

    time: float
    dt: float
    newton_iterations: int
    linear_iterations: int
    residual: float
    converged: bool
    substeps: int
    wall_s: float
    min_jacobian: float
    refactored: bool


@dataclass(frozen=True)
class StaticInfo:
    """What :meth:`Simulation.solve_static` did (residual relative to the load scale)."""

    converged: bool
    load_steps: int
    newton_iterations: int
    residual: float
    wall_s: float
    min_jacobian: float


class _Constraint:
    __slots__ = ("nodes", "targets")

    def __init__(self, nodes, targets):
        self.nodes = nodes
        self.targets = targets


def _per_node_vectors(values, k: int, what: str) -> np.ndarray:
    """One finite 3-vector per node, shape (k, 3), from (k, 3) or a single (3,) for all."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape == (3,):
        v = np.broadcast_to(v, (k, 3))
    if v.shape != (k, 3) or not np.all(np.isfinite(v)):
        raise SimulationError(f"{what} must be finite with shape ({k}, 3) or (3,), got {v.shape}")
    return np.array(v)


def _integer_ids(values, what: str, kind: str = "node") -> np.ndarray:
    """Integer ids from ``values``, refusing non-integral or non-finite numbers (never truncating)."""
    ids = np.atleast_1d(np.asarray(values))
    if ids.dtype.kind == "f":
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            bad = ids[~np.isfinite(ids) | (ids != np.round(ids))][:3]
            raise SimulationError(f"{what}: {kind} ids must be whole numbers, got {bad.tolist()}; pass "
                                  f"integer ids (for example from organsim.fem.selection)")
    elif ids.dtype.kind not in "iu" and ids.size:
        raise SimulationError(f"{what}: {kind} ids must be integers, got {ids.dtype} values")
    return ids.astype(np.int64).ravel()


def _node_ids(node_ids, n: int, what: str) -> np.ndarray:
    ids = np.asarray(node_ids)
    if ids.dtype == bool:
        if ids.shape != (n,):
            raise SimulationError(f"{what}: a boolean node mask must have shape ({n},), got {ids.shape}")
        ids = np.flatnonzero(ids)
    ids = _integer_ids(ids, what)
    if ids.size == 0:
        raise SimulationError(f"{what}: the node selection is empty; check the selector (box, region...)")
    if ids.min() < 0 or ids.max() >= n:
        raise SimulationError(f"{what}: node ids must lie in 0..{n - 1}, got {ids.min()}..{ids.max()}")
    uniq, first = np.unique(ids, return_index=True)
    if len(uniq) != len(ids):
        raise SimulationError(f"{what}: node ids contain duplicates")
    return ids


class Simulation:
    """A deformable body in time: state, constraints, loads and an integrator.

    Parameters
    ----------
    body : Body
        Mesh, materials and density.
    gravity : (3,) float
        Gravitational acceleration (m/s^2).
    dt : float
        Default step (s).
    integrator : {"backward_euler", "realtime"}
        See the module notes.
    damping : (float, float)
        Rayleigh coefficients ``(alpha_mass 1/s, beta_stiffness s)``.
    mass : {"lumped", "consistent"}
        Mass matrix. Gravity always uses the (equivalent) lumped nodal masses.
    preconditioner : {"auto", "cholesky", "multigrid", "amg", "jacobi"}
        Preconditioner of the conjugate-gradient solves. "auto" takes a sparse
        Cholesky factorization (of the reference matrix, rotated into the nodal
        frames; organsim's supernodal one, :mod:`organsim.fem.supernodal`) up to
        ``cholesky_max_dofs`` free DOFs and the two-grid cycle of
        :mod:`organsim.fem.multigrid` (a lattice over the mesh, its coarse matrix
        factored) above: on a 1M-tet block that steps in 0.8 s against the Cholesky
        factor's 1.4 s, after 10 s of set-up against 135 s, in 1.8 kB/tet against 6.6.
        "amg" is algebraic multigrid (the optional package pyamg), "jacobi" block Jacobi.
    newton_tol : float
        Relative residual tolerance of the backward-Euler Newton iteration.
    max_newton : int
        Newton iteration cap per (sub)step.
    realtime_newton : int
        Newton iterations per realtime step.
    realtime_cg : int
        CG iteration cap per realtime Newton iteration.
    realtime_rtol : float
        Relative residual at which a realtime linear solve stops early.
    warp : bool
        Rotate the reference preconditioner into each node's current frame
        (:class:`~organsim.fem.solvers.WarpedPreconditioner`); keeps CG
        iteration counts low after large rotations without refactoring.
    budget_s : float, optional
        Default realtime time budget per step (s).
    max_substeps : int
        Largest number of substeps a rejected step is retried with.
    cholesky_max_dofs : int
        Free DOFs up to which "auto" uses a Cholesky preconditioner (the two-grid cycle above).
        Measured in lockstep, realtime steps: the factor is faster on the 10k organ (6k free
        DOFs, the two-grid cycle 1.23x slower) and the 19k beam (13k, 1.16x); about even on
        the 41k patient liver (22k DOFs, 0.98x); from 55k DOFs on the two-grid cycle is as
        fast or faster (100k block 0.94x, 101k beam 0.82-0.93x, 99k liver 0.83x, 100k organ
        1.05x) with a first step of 0.3-1.6 s against 1.6-22 s and a third of the memory.
    max_cg : int
        CG iteration cap per backward-Euler Newton iteration before the
        preconditioner is refreshed with the current matrix.
    matrix_free : {"auto", True, False}
        Realtime integrator: whether the CG products apply the stiffness element by element
        (True; linear, corotational and neo-Hookean materials, no stiffness damping) or
        assemble it once per Newton iteration (False). Both give the same products to
        round-off. Matrix-free saves the assembly (the force pass alone costs about a third
        of the force-and-stiffness pass) but each product costs about five block matvecs
        (10k organ: 0.56 against 0.11 ms), so it wins when a step needs few CG iterations.
        "auto" (default) measures both on this mesh and machine and takes the cheaper for the
        recent steps' number of products
        (:class:`~organsim.fem.stiffness_form.StiffnessFormChooser`; see :attr:`stiffness_form`).
    stiffen_max_fraction : float
        Real-time steps that turn hyperelastic tets inside out even in substeps: the
        largest fraction of the organ's volume the simulation may make stiffer to go on
        (see :attr:`stiffened_tets`); 0 stops with the error instead.
    factor_precision : {"auto", "single", "double"}
        Precision the Cholesky preconditioner's factor is kept in after factoring in
        double. Single halves its memory and the memory traffic of each solve, which is
        memory bound (on two cores: 101k-tet beam step 71 ms against 93 ms, with the same
        3.43 CG iterations per step and tip deflection); the preconditioner is then
        accurate to about 1e-7 times the matrix's condition number. "auto" takes single
        for the realtime integrator's factors of at least
        :data:`~organsim.fem.preconditioning.SINGLE_FACTOR_MIN_NNZ` entries (its solves stop
        at ``realtime_rtol``), in double from then on if a run of slow CG steps refactors and
        even the fresh factor's first solve is slow; double for backward Euler (Newton to
        ``newton_tol``).

    Examples
    --------
    See the module docstring.
    """

    def __init__(self, body: Body, *, gravity=(0.0, 0.0, -9.81), dt: float = 0.01,
                 integrator: str = "backward_euler", damping=(0.0, 0.0), mass: str = "lumped",
                 preconditioner: str = "auto", newton_tol: float = 1e-6, max_newton: int = 25,
                 realtime_newton: int = 1, realtime_cg: int = 20, realtime_rtol: float = 1e-3,
                 warp: bool = True, budget_s: float | None = None,
                 max_substeps: int = 16, cholesky_max_dofs: int = 30000, max_cg: int = 200,
                 matrix_free: bool | str = "auto", stiffen_max_fraction: float = 0.02,
                 factor_precision: str = "auto"):
        if not isinstance(body, Body):
            raise SimulationError(f"Simulation needs a Body, got {type(body).__name__};"
                                  " build one with Body(mesh, material, density=...)")
        if integrator not in ("backward_euler", "realtime"):
            raise SimulationError(f"unknown integrator {integrator!r}; use 'backward_euler' or 'realtime'")
        if mass not in ("lumped", "consistent"):
            raise SimulationError(f"unknown mass {mass!r}; use 'lumped' or 'consistent'")
        if factor_precision not in ("auto", "single", "double"):
            raise SimulationError(f"unknown factor_precision {factor_precision!r}; use 'auto', 'single' or 'double'")
        if preconditioner not in ("auto", "cholesky", "multigrid", "amg", "jacobi"):
            raise SimulationError(
                f"unknown preconditioner {preconditioner!r}; use 'auto', 'cholesky', 'multigrid', 'amg' or 'jacobi'"
            )
        self.dt = self._check_dt(dt)
        g = np.asarray(gravity, dtype=np.float64)
        if g.shape != (3,) or not np.all(np.isfinite(g)):
            raise SimulationError(f"gravity must be 3 finite numbers (m/s^2), got {gravity!r}")
        self.gravity = g
        try:
            a, b = (float(v) for v in damping)
        except (TypeError, ValueError):
            raise SimulationError(f"damping must be two numbers (alpha 1/s, beta s) for Rayleigh damping "
                                  f"C = alpha M + beta K, got {damping!r}; for example damping=(0.5, 0.01)"
                                  ) from None
        if not (a >= 0 and b >= 0 and np.isfinite(a) and np.isfinite(b)):
            raise SimulationError(f"Rayleigh damping coefficients must be finite and >= 0, got {damping!r}")
        self.damping = (a, b)
        self.integrator = integrator
        self.mass_kind = mass
        self.preconditioner = preconditioner
        self.factor_precision = factor_precision
        self.newton_tol = float(newton_tol)
        self.max_newton = int(max_newton)
        self.realtime_newton = int(realtime_newton)
        self.realtime_cg = int(realtime_cg)
        self.realtime_rtol = float(realtime_rtol)
        self.warp = bool(warp)
        self.budget_s = budget_s
        self.max_substeps = int(max_substeps)
        self.max_cg = int(max_cg)
        if matrix_free not in ("auto", True, False):
            raise SimulationError(f"matrix_free must be 'auto' (the cheaper form as measured), True (apply the"
                                  f" stiffness element by element) or False (assemble it), got {matrix_free!r}")
        self.matrix_free = matrix_free if matrix_free == "auto" else bool(matrix_free)
        self._stiffness_forms = StiffnessFormChooser()
        self._stiffness_form = None
        self.cholesky_max_dofs = int(cholesky_max_dofs)
        self.stiffen_max_fraction = float(stiffen_max_fraction)
        if not (0.0 <= self.stiffen_max_fraction <= 1.0):
            raise SimulationError(f"stiffen_max_fraction must be a fraction of the volume in [0, 1], got"
                                  f" {stiffen_max_fraction!r}; 0 switches the stiffening off")
        self._constraints: dict[str, _Constraint] = {}
        self._forces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._pressures: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._setup_body(body)
        self._x = np.array(body.mesh.points, dtype=np.float64)
        self._v = np.zeros_like(self._x)
        self._t = 0.0

    # ----------------------------------------------------------------- set-up
    @staticmethod
    def _check_dt(dt) -> float:
        dt = float(dt)
        if not (np.isfinite(dt) and dt > 0):
            raise SimulationError(f"time step must be a positive number of seconds, got {dt!r}")
        return dt

    def _setup_body(self, body: Body, *, node_rotations: np.ndarray | None = None,
                    element_rotations: np.ndarray | None = None, pattern=None,
                    stiffness_scale: np.ndarray | None = None) -> None:
        """Build the per-mesh state (assembler, masses, caches) for ``body``.

        ``node_rotations`` (n, 3, 3) and ``element_rotations`` (m, 3, 3) carry the
        last nodal and element rotations over a topology change (identity if omitted);
        ``pattern`` is the mesh's block pattern when already known; ``stiffness_scale``
        (m,) the factor on each tet's stiffness (see :attr:`stiffened_tets`).
        """
        self.body = body
        self._asm = Assembler(body.mesh, body.material_groups(), element_rotations=element_rotations,
                              pattern=pattern, stiffness_scale=stiffness_scale)
        pat = self._asm.pattern
        dens = body.density_per_tet
        self._m = _mk.lumped_masses(body.mesh.tets, self._asm.vols, dens, body.mesh.n_points)
        # the mass as the sub-pattern gathers it: block data (consistent) or nodal masses (lumped)
        self._Mb = consistent_mass_blocks(pat, self._asm.vols, dens) if self.mass_kind == "consistent" else self._m
        self._floor = None  # absolute residual scale (N), built lazily
        self._components = None
        self._cache_key = None
        self._sub_pattern = None  # the free-node sub-pattern, built when first needed (_sub)
        self._prec = None
        self._prec_key = None
        self._warm = None
        self._last = None  # data to compute reactions lazily
        if node_rotations is None:
            self._Rn = np.repeat(np.eye(3)[None], body.mesh.n_points, axis=0)
        else:
            self._Rn = np.ascontiguousarray(node_rotations, dtype=np.float64)
        self._Racc = np.empty_like(self._Rn)
        self._prec_is_ref = True
        self._R_fact = None  # nodal rotations (n, 3, 3) of the state a non-reference factor is of
        self._prec_free = None
        self._mapped_count = 0
        self._slow_steps = 0  # consecutive realtime steps whose CG needed many iterations
        self._double_factor = False  # "auto" precision fell back to double (slow CG in single)
        self._tangent_indefinite = False  # a realtime solve met negative curvature since the last factor

    # ------------------------------------------------------------ properties
    @property
    def mesh(self) -> TetMesh:
        """The rest mesh."""
        return self.body.mesh

    @property
    def positions(self) -> np.ndarray:
        """Current node positions (n, 3) m (read-only view)."""
        v = self._x.view()
        v.setflags(write=False)
        return v

    @property
    def velocities(self) -> np.ndarray:
        """Current node velocities (n, 3) m/s (read-only view)."""
        v = self._v.view()
        v.setflags(write=False)
        return v

    @property
    def displacements(self) -> np.ndarray:
        """Displacements from the rest mesh (n, 3) m."""
        return self._x - self.mesh.points

    @property
    def time(self) -> float:
        """Simulation time (s)."""
        return self._t

    @property
    def constraint_names(self) -> list[str]:
        """Names of the active constraints."""
        return list(self._constraints)

    @property
    def stiffened_tets(self) -> np.ndarray:
        """Ids of the tets the simulation made stiffer to get past a step, ascending (k,).

        A real-time step that turns a few hyperelastic tets inside out (a thin flap or tip
        of tissue left by a cut, crushed by a load) cannot be completed even in substeps.
        Rather than stop, the simulation makes those tets and the tets around them 10 times
        stiffer (up to 1000 times, over retries) when they hold at most
        ``stiffen_max_fraction`` of the organ's volume, warns, and goes on; their stresses
        are then not the tissue's. The factor follows the tets through later cuts.
        """
        scale = self._asm.stiffness_scale
        return np.zeros(0, dtype=np.int64) if scale is None else np.flatnonzero(scale != 1.0)

    @property
    def preconditioner_kind(self) -> str | None:
        """The factorization the linear solves are preconditioned with, or None before the first.

        ``"cholesky"``, ``"multigrid"``, ``"amg"`` or ``"jacobi"``; ``"lu"`` where a matrix
        given to the Cholesky factorization was not positive definite (the solver itself
        factors only positive definite matrices); ``"mapped <kind>"`` while a factorization
        is carried across cuts.
        """
        if self._prec is None:
            return None
        base = getattr(self._prec, "base", None)
        return f"mapped {base.kind}" if self._prec.kind == "mapped" and base is not None else self._prec.kind

    @property
    def preconditioner_precision(self) -> str | None:
        """``"single"`` or ``"double"``: the precision the preconditioner's factor is kept in
        (see ``factor_precision``), or None before the first solve."""
        if self._prec is None:
            return None
        base = getattr(self._prec, "base", None) if self._prec.kind == "mapped" else self._prec
        return "single" if getattr(base, "single", False) else "double"

    @property
    def stiffness_form(self) -> str | None:
        """How the last real-time step's CG applied the stiffness: ``"matrix-free"`` or
        ``"assembled"`` (see ``matrix_free``), or None before the first real-time step."""
        return self._stiffness_form

    @property
    def nodal_masses(self) -> np.ndarray:
        """Lumped nodal masses (n,) kg."""
        return self._m.copy()

    # ------------------------------------------------------------ constraints
    def fix(self, node_ids, *, name: str) -> None:
        """Hold nodes at their current positions (a named Dirichlet set).

        Parameters
        ----------
        node_ids : array_like of int (k,) or bool mask (n,)
        name : str
            Name used by :meth:`release` and :meth:`reaction`.
        """
        ids = _node_ids(node_ids, self.mesh.n_points, f"fix({name!r})")
        self._set_constraint(name, ids, self._x[ids].copy())

    def prescribe(self, node_ids, positions, *, name: str) -> None:
        """Create or update a named set of nodes moved to given positions by the next step.

        Parameters
        ----------
        node_ids : array_like of int (k,)
        positions : array_like (k, 3) or (3,)
            Target positions (m) reached at the end of the next step; a grasper
            updates them every frame.
        name : str
        """
        ids = _node_ids(node_ids, self.mesh.n_points, f"prescribe({name!r})")
        pos = _per_node_vectors(positions, len(ids), f"prescribe({name!r}): positions")
        self._set_constraint(name, ids, pos)

    def _set_constraint(self, name: str, ids: np.ndarray, targets: np.ndarray) -> None:
        old = self._constraints.get(name)
        if old is not None and np.array_equal(old.nodes, ids):
            old.targets = targets
            return
        self._constraints.pop(name, None)
        self._constraints[name] = _Constraint(ids, targets)
        self._cache_key = None

    def release(self, name: str) -> None:
        """Remove a named constraint (its nodes become free)."""
        if name not in self._constraints:
            raise SimulationError(f"no constraint named {name!r}; active: {list(self._constraints)}")
        del self._constraints[name]
        self._cache_key = None

    # ------------------------------------------------------------------ loads
    def add_nodal_force(self, node_ids, forces, *, name: str) -> None:
        """Add (or replace) a named set of constant nodal forces.

        Parameters
        ----------
        node_ids : array_like of int (k,)
        forces : array_like (k, 3) or (3,)
            Force on each node (N).
        name : str
        """
        ids = _node_ids(node_ids, self.mesh.n_points, f"add_nodal_force({name!r})")
        self._forces[name] = (ids, _per_node_vectors(forces, len(ids),
                                                     f"add_nodal_force({name!r}): forces"))

    def add_pressure(self, face_ids, pressure_pa, *, name: str) -> None:
        """Add (or replace) a named pressure on boundary faces (a follower load).

        Parameters
        ----------
        face_ids : array_like of int (k,)
            Indices into ``mesh.boundary_faces``.
        pressure_pa : float or (k,)
            Pressure (Pa); positive pushes into the body.
        name : str
        """
        fids = _integer_ids(face_ids, f"add_pressure({name!r})", "face")
        nf = len(self.mesh.boundary_faces)
        if fids.size == 0 or fids.min() < 0 or fids.max() >= nf:
            raise SimulationError(f"add_pressure({name!r}): face ids must be a non-empty selection of"
                                  f" boundary faces 0..{nf - 1}; use fem.selection.surface_patch")
        p = np.broadcast_to(np.asarray(pressure_pa, dtype=np.float64), fids.shape)
        if not np.all(np.isfinite(p)):
            raise SimulationError(f"add_pressure({name!r}): pressure must be finite (Pa)")
        self._pressures[name] = (fids, np.array(p))

    def remove_load(self, name: str) -> None:
        """Remove a named nodal force or pressure."""
        if self._forces.pop(name, None) is None and self._pressures.pop(name, None) is None:
            raise SimulationError(f"no load named {name!r}; loads: {list(self._forces) + list(self._pressures)}")

    def _external(self, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        f = self._m[:, None] * self.gravity[None, :]
        for ids, fo in self._forces.values():
            np.add.at(f, ids, fo)
        if self._pressures:
            from .loads import pressure_nodal_forces
            faces = self.mesh.boundary_faces
            for fids, p in self._pressures.values():
                f += pressure_nodal_forces(x, faces[fids], p)
        return f * scale if scale != 1.0 else f

    def _pressure_stiffness(self, x: np.ndarray, free: np.ndarray, scale: float = 1.0):
        """``d f_ext / d x`` of the follower pressures on the free DOFs, (3 f, 3 f) CSR, or None.

        Pressure follows the faces' area and orientation, so the external force depends on
        the positions; Newton needs this term (it is not symmetric) to converge quadratically.
        """
        if not self._pressures:
            return None
        from .loads import pressure_load_stiffness
        faces = self.mesh.boundary_faces
        dofs = (3 * np.asarray(free, dtype=np.int64)[:, None] + np.arange(3)).ravel()
        out = None
        for fids, p in self._pressures.values():
            Kp = pressure_load_stiffness(x, faces[fids], p * scale)[dofs][:, dofs]
            out = Kp if out is None else out + Kp
        return out

    # ------------------------------------------------------ constraint cache
    def _constraint_state(self):
        """(owner per node (-1 free), constrained ids, free ids); the sub-pattern is :attr:`_sub`."""
        if self._cache_key is None:
            n = self.mesh.n_points
            owner = np.full(n, -1, dtype=np.int64)
            for k, c in enumerate(self._constraints.values()):
                owner[c.nodes] = k
            cons = np.flatnonzero(owner >= 0)
            free = np.flatnonzero(owner < 0)
            self._sub_pattern = None
            self._cstate = (owner, cons, free)
            self._cache_key = object()
            carried = None
            if (self.integrator == "realtime" and self._prec is not None and self._prec_free is not None
                    and self._prec_key is not None and self._mapped_count < 40):
                carried = (self._prec, self._prec_key[1], self._prec_free, self._prec_is_ref, self._mapped_count)
            self._prec = None
            if carried is not None:
                # a grasp or a release changed which nodes are free: keep the factorization
                # (restricted to the nodes still free, block Jacobi on newly freed ones)
                # instead of refactoring, which would stall the frame
                was_free = np.zeros(n, dtype=bool)
                was_free[carried[2]] = True
                carry_preconditioner(self, sp.identity(n, format="csr"), ~was_free, *carried)
        return self._cstate

    @property
    def _sub(self):
        """The block pattern restricted to the free nodes (:class:`~organsim.fem.assembly.SubPattern`),
        built when first needed after a change of mesh or constraints: a matrix-free real-time
        step never needs it, so a cut increment does not pay for it (0.85 ms at 99k tets)."""
        free = self._constraint_state()[2]
        if self._sub_pattern is None:
            self._sub_pattern = self._asm.pattern.sub(free)
        return self._sub_pattern

    def _targets(self) -> tuple[np.ndarray, np.ndarray]:
        """(constrained node ids, their target positions) with later constraints winning overlaps."""
        owner, cons, _ = self._constraint_state()
        tgt = np.empty((self.mesh.n_points, 3))
        for k, c in enumerate(self._constraints.values()):
            mine = owner[c.nodes] == k
            tgt[c.nodes[mine]] = c.targets[mine]
        return cons, tgt[cons]

    def _check_rigid_modes(self, *, static: bool) -> None:
        # the lumped masses' sum is the body's mass (Body.mass would compute the new mesh's
        # volumes again after every cut increment: 13 ms at 99k tets)
        if not static and float(self._m.sum()) > 0:
            return
        if self._components is None:
            pat = self._asm.pattern
            adj = sp.csr_matrix((np.ones(pat.nnzb), pat.indices, pat.indptr), shape=(pat.n, pat.n))
            self._components = connected_components(adj, directed=False)
        ncomp, label = self._components
        _, cons, _ = self._constraint_state()
        used = np.zeros(self.mesh.n_points, dtype=bool)
        used[np.unique(self.mesh.tets)] = True
        for c in range(ncomp):
            nodes_c = np.flatnonzero((label == c) & used)
            if len(nodes_c) == 0:
                continue
            held = cons[label[cons] == c]
            ok = False
            if len(held) >= 3:
                P = self._x[held] - self._x[held].mean(axis=0)
                s = np.linalg.svd(P, compute_uv=False)
                ok = s[1] > 1e-9 * max(s[0], 1e-300)
            if not ok:
                what = "a static solve" if static else "a massless body"
                raise SimulationError(
                    f"free rigid-body motion: connected piece {c} of the mesh ({len(nodes_c)} nodes) is held by"
                    f" {len(held)} constrained node(s){' (collinear)' if len(held) >= 3 else ''}; {what} needs at"
                    " least 3 non-collinear constrained nodes per piece. Fix a region of it (e.g. sim.fix("
                    "selection.region(mesh, 'ligament'), name='ligament')) or use dynamic steps with mass")

    # ------------------------------------------------------------- residuals
    def _rest_K(self) -> np.ndarray:
        """The rest stiffness's block data, assembled afresh (not kept: 190 B/tet for the few times a
        preconditioner is built from it)."""
        return self._asm.rest_stiffness()

    def _force_floor(self) -> float:
        """Absolute force scale (N) of this body: the elastic force that would move every
        node by the body's size. Residuals far below it are round-off whatever the loads
        (an unloaded body at rest has a zero residual up to round-off)."""
        if self._floor is None:
            K0 = self._rest_K()
            diag = np.einsum("kii->k", K0[self._asm.pattern.diag]) / 3.0
            size = float(np.ptp(self.body.mesh.points, axis=0).max())
            self._floor = float(np.linalg.norm(diag)) * size
        return self._floor

    def _mass_times(self, a: np.ndarray) -> np.ndarray:
        if self.mass_kind == "lumped":
            return self._m[:, None] * a
        return (self._asm.pattern.matrix(self._Mb) @ a.ravel()).reshape(-1, 3)

    def _dyn_residual(self, x, f_int, K, x_n, x_pred, h, fext):
        alpha, beta = self.damping
        g = self._mass_times(x - x_pred) / (h * h) + f_int - fext
        if alpha > 0:
            g += alpha * self._mass_times(x - x_n) / h
        if beta > 0:
            g += beta * (self._asm.pattern.matrix(K) @ ((x - x_n) / h).ravel()).reshape(-1, 3)
        return g

    # ------------------------------------------------------------------ step
    def step(self, dt: float | None = None, *, budget_s: float | None = None) -> StepInfo:
        """Advance the state by one step.

        Parameters
        ----------
        dt : float, optional
            Step (s); default ``self.dt``.
        budget_s : float, optional
            Realtime mode: wall-clock budget of the linear solves (s).

        Returns
        -------
        StepInfo

        Raises
        ------
        ConvergenceError
            If the step cannot be completed even with ``max_substeps`` substeps (and,
            where it turned a few tets inside out, after stiffening them: see
            :attr:`stiffened_tets`); the state is unchanged.
        """
        h = self._check_dt(self.dt if dt is None else dt)
        self._check_rigid_modes(static=False)
        t_start = time.perf_counter()
        t0 = self._t
        scale_before = self._asm.stiffness_scale
        # BLAS on one thread for the whole step: its few dense calls (CG's dot products, the
        # factor's panels) gain nothing from OpenBLAS's threads, which spin after each call and
        # take the second core from the compiled kernels and the parallel solve (patient liver:
        # 22 ms per step so, 28 ms with OpenBLAS's threads)
        with single_threaded_blas():
            for attempt in range(4):
                try:
                    stats, n_sub = integrators.advance_with_retries(self, h, budget_s)
                    break
                except ConvergenceError as exc:
                    if attempt == 3 or not self._stiffen_inverted(exc):
                        if self._asm.stiffness_scale is not scale_before:   # the state is unchanged
                            self._setup_body(self.body, node_rotations=self._Rn,
                                             element_rotations=self._asm.element_rotations, pattern=self._asm.pattern,
                                             stiffness_scale=scale_before)
                        raise
        newton, lin, res, conv, minJ, refac = stats
        self._t = t0 + h
        return StepInfo(time=self._t, dt=h, newton_iterations=newton, linear_iterations=lin, residual=res,
                        converged=conv, substeps=n_sub, wall_s=time.perf_counter() - t_start,
                        min_jacobian=minJ, refactored=refac)

    def _stiffen_inverted(self, exc: ConvergenceError) -> bool:
        """After a failed step: stiffen the few tets it turned inside out, and those around them,
        by 10; False (nothing changed) when the failure was another, the tets are too many
        (above ``stiffen_max_fraction`` of the volume) or of a material that cannot be scaled."""
        inverted = getattr(exc.__cause__, "inverted_tets", None)
        if inverted is None or len(inverted) == 0 or self.stiffen_max_fraction <= 0:
            return False
        m = self.mesh
        near = np.zeros(m.n_points, dtype=bool)
        near[m.tets[inverted]] = True
        tets = np.flatnonzero(near[m.tets].any(axis=1))
        vols = m.volumes
        if vols[tets].sum() > self.stiffen_max_fraction * vols.sum():
            return False
        scalable = np.zeros(m.n_tets, dtype=bool)
        for elems, _, lam, _ in self._asm.groups:
            scalable[elems] = lam is not None
        if not scalable[tets].all():
            return False
        scale = np.ones(m.n_tets) if self._asm.stiffness_scale is None else self._asm.stiffness_scale.copy()
        scale[tets] *= 10.0
        c = m.points[m.tets[inverted]].mean(axis=(0, 1)) * 1e3
        log.warning("a step turned %d tet(s) inside out near (%.0f, %.0f, %.0f) mm; %d tets there"
                    " (%.2g mL, %.2g %% of the organ) made %g times stiffer to go on: their stresses"
                    " are not the tissue's", len(inverted), c[0], c[1], c[2], len(tets), 1e6 * vols[tets].sum(),
                    100 * vols[tets].sum() / vols.sum(), scale[tets].max())
        self._setup_body(self.body, node_rotations=self._Rn, element_rotations=self._asm.element_rotations,
                         pattern=self._asm.pattern, stiffness_scale=scale)
        return True

    # ---------------------------------------------------------------- static
    def solve_static(self, *, load_steps: int = 1, tol: float = 1e-8, max_newton: int = 40,
                     max_cuts: int = 6) -> StaticInfo:
        """Find the static equilibrium under the current loads and constraints.

        Newton's method with a direct sparse solve and a backtracking line
        search per iteration; loads and prescribed motions are applied in
        ``load_steps`` increments, each halved automatically (up to
        ``max_cuts`` times) when Newton fails. Velocities are set to zero.

        Parameters
        ----------
        load_steps : int
            Initial number of load increments.
        tol : float
            Relative residual tolerance (residual over the load scale).
        max_newton : int
            Newton iteration cap per increment.
        max_cuts : int
            How many times an increment may be halved.

        Returns
        -------
        StaticInfo

        Raises
        ------
        SimulationError
            If some piece of the body is not held (free rigid-body modes).
        ConvergenceError
            If an increment fails even after ``max_cuts`` halvings (state unchanged).
        """
        self._check_rigid_modes(static=True)
        t_start = time.perf_counter()
        steps_done, total_newton, rel = integrators.solve_static(self, load_steps, tol, max_newton, max_cuts)
        return StaticInfo(converged=True, load_steps=steps_done, newton_iterations=total_newton, residual=rel,
                          wall_s=time.perf_counter() - t_start, min_jacobian=self._asm.min_jacobian(self._x))

    # -------------------------------------------------------------- outputs
    def refresh_preconditioner(self, dt: float | None = None) -> None:
        """Factor the current tangent as the solver's preconditioner (e.g. once the organ has settled).

        The consistent tangent is factored where the factorization accepts it (with the mass
        term it is positive definite in the usual case), the projected one
        (:meth:`~organsim.fem.assembly.Assembler.projected_stiffness`) where it is not, so
        that the factorization is always a valid conjugate-gradient preconditioner. Later
        steps rotate it by each node's rotation since this state.

        The realtime preconditioner is otherwise factored from the rest stiffness and
        rotated into each node's frame; for a loaded, deformed state (an organ hanging
        under gravity) the current tangent is a much closer fit: conjugate gradients then
        need a few iterations instead of ten or more. Costs one sparse factorization
        (about 0.2 s for the 10k-tet liver on a laptop-class CPU). A realtime simulation
        also refactors by itself after a run of slow steps.

        Parameters
        ----------
        dt : float, optional
            The step the factorization is for (s); default ``self.dt``.
        """
        h = self._check_dt(self.dt if dt is None else dt)
        refresh_preconditioner(self, h)

    def reaction(self, name: str) -> np.ndarray:
        """Force (k, 3) N that constraint ``name`` exerts on the tissue at each of its nodes.

        This is what a holder or an instrument feels, with the opposite sign. At
        a static equilibrium the reactions balance the external loads. Nodes of
        this constraint that a later constraint also holds report zero.
        """
        if name not in self._constraints:
            raise SimulationError(f"no constraint named {name!r}; active: {list(self._constraints)}")
        c = self._constraints[name]
        owner, _, _ = self._constraint_state()
        k = list(self._constraints).index(name)
        out = np.zeros((len(c.nodes), 3))
        mine = owner[c.nodes] == k
        nodes = c.nodes[mine]
        if len(nodes) == 0:
            return out
        # only the tets around the held nodes: their forces and stiffness rows are complete
        mark = np.zeros(self.mesh.n_points, dtype=bool)
        mark[nodes] = True
        ring = np.flatnonzero(mark[self._asm.tets].any(axis=1))
        if self._last is None or self._last[0] == "static":
            x = self._x if self._last is None else self._last[1]
            f, _ = self._asm.forces_and_stiffness(x, want_K=False, elements=ring)
            g = f[nodes] - self._external(x)[nodes]
        else:
            _, x, x_n, x_pred, h = self._last
            alpha, beta = self.damping
            f, K = self._asm.forces_and_stiffness(x, want_K=beta > 0, elements=ring)
            g = self._mass_rows(nodes, x - x_pred) / (h * h) + f[nodes] - self._external(x)[nodes]
            if alpha > 0:
                g += alpha * self._mass_rows(nodes, x - x_n) / h
            if beta > 0:
                g += beta * self._block_rows(K, nodes, (x - x_n) / h)
        out[mine] = g
        return out

    def constraint_nodes(self, name: str) -> np.ndarray:
        """Node ids (k,) that constraint ``name`` holds, in the order :meth:`reaction` reports them."""
        if name not in self._constraints:
            raise SimulationError(f"no constraint named {name!r}; active: {list(self._constraints)}")
        return self._constraints[name].nodes.copy()

    def reaction_field(self) -> np.ndarray:
        """Force (n, 3) N that all the constraints together exert on the tissue, per node.

        Zero at free nodes; at a held node, what :meth:`reaction` reports for the
        constraint holding it (the sum over a fixation's nodes is the force on its
        holder, with the opposite sign).
        """
        out = np.zeros((self.mesh.n_points, 3))
        for name in self._constraints:
            out[self._constraints[name].nodes] += self.reaction(name)
        return out

    def _block_rows(self, data: np.ndarray, nodes: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Rows ``nodes`` (k,) of the block matrix with block data ``data`` times ``u`` (n, 3): (k, 3)."""
        pat = self._asm.pattern
        slot = np.full(pat.n, -1, dtype=np.int64)
        slot[nodes] = np.arange(len(nodes))
        blocks = np.flatnonzero(slot[pat.rows] >= 0)
        prod = np.einsum("bij,bj->bi", data[blocks], u[pat.indices[blocks]])
        out = np.zeros((len(nodes), 3))
        np.add.at(out, slot[pat.rows[blocks]], prod)
        return out

    def _mass_rows(self, nodes: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Rows ``nodes`` of ``M u`` (k, 3) for a nodal field ``u`` (n, 3)."""
        if self.mass_kind == "lumped":
            return self._m[nodes, None] * u[nodes]
        return self._block_rows(self._Mb, nodes, u)

    def strain_energy(self) -> float:
        """Elastic strain energy of the current state (J)."""
        return self._asm.energy(self._x)

    def kinetic_energy(self) -> float:
        """Kinetic energy ``v^T M v / 2`` of the current state (J)."""
        return 0.5 * float(np.sum(self._v * self._mass_times(self._v)))

    def gravity_energy(self) -> float:
        """Gravitational potential energy relative to the rest mesh (J)."""
        return -float(np.sum(self._m[:, None] * self.gravity[None, :] * (self._x - self.mesh.points)))

    def fields(self) -> dict:
        """Strain and stress fields of the current state.

        Returns
        -------
        dict
            ``green_lagrange`` (m, 3, 3), ``cauchy`` (m, 3, 3) Pa, ``von_mises`` (m,) Pa,
            ``nodal_von_mises`` (n,) Pa, ``strain_energy`` float J, plus ``F``,
            ``energy_density``, ``nodal_green_lagrange``, ``nodal_cauchy`` and
            ``displacement`` (n, 3) m, ``velocity`` (n, 3) m/s.
        """
        from .fields import compute_fields
        out = compute_fields(self.mesh, self._x, self.body.materials)
        out["displacement"] = self.displacements
        out["velocity"] = self._v.copy()
        return out

    # ------------------------------------------------------------- topology
    def change_topology(self, new_rest_mesh: TetMesh, transfer, tet_parent: np.ndarray | None = None) -> None:
        """Continue on a new rest mesh (after a cut), carrying the state over.

        Parameters
        ----------
        new_rest_mesh : TetMesh
            The new rest mesh (same region ids and names).
        transfer : scipy.sparse matrix (n_new, n_old)
            Maps old nodal fields to new ones: ``new = transfer @ old``.
        tet_parent : ndarray (m_new,), optional
            The old tet each new tet comes from (``CutResult.tet_parent``);
            when given, each tet's last corotational rotation is carried over
            as the warm start of its next polar decomposition.

        Notes
        -----
        Positions and velocities are mapped with ``transfer``; where sharing the lumped
        masses anew would give the body more kinetic energy, the velocities of the nodes
        whose mass changed are scaled down to give the excess back
        (:func:`~organsim.fem.topology_transfer.carry_velocities`). A new node joins a
        constraint when every old node it draws from belongs to that constraint
        (a cut node's copies keep their parent's constraint); its target is
        mapped the same way. Nodal forces move to such nodes, split among the
        copies so that the total force is kept. Pressure faces are carried where
        all three nodes of a new boundary face derive from an old loaded face.

        The update is incremental where it matters for interactive cutting: the
        current preconditioner's factorization is kept and mapped onto the new
        mesh (:class:`~organsim.fem.solvers.MappedPreconditioner`) with a block
        Jacobi correction built only from the tets around the nodes the cut
        touched; the full rest stiffness is rebuilt lazily, when a refactorization
        needs it.
        """
        T, tet_parent = checked_transfer(transfer, self.mesh, new_rest_mesh, tet_parent)
        n_old = self.mesh.n_points
        n_new = new_rest_mesh.n_points
        x_new = T @ self._x
        v_new = T @ self._v
        m_old, energy_before = self._m, self.kinetic_energy()
        if not (np.all(np.isfinite(x_new)) and np.all(np.isfinite(v_new))):
            raise SimulationError("the transfer produced non-finite positions; check the transfer matrix")
        # per new node: main parent, number of parents, plain copy of one old node, and
        # whether the change touched it (see _mk.transfer_summary); copies per old node
        parent, nparents, ncopies, _, new2old, affected_all, kept_in_order = _mk.transfer_summary(
            T.indptr, T.indices, T.data, n_old)
        select = all_parents_in(T, nparents)
        new_cons = {name: _Constraint(sel, tgt)
                    for name, (sel, tgt) in carry_constraints(T, select, self._x, self._constraints).items()}
        new_forces = carry_forces(T, select, nparents, self._forces)
        new_press = {}
        if self._pressures:
            new_press = carry_pressures(parent, self.mesh.boundary_faces, new_rest_mesh.boundary_faces,
                                        self._pressures)
        carried = None
        if self._prec is not None and self._prec_free is not None and self._mapped_count < 40:
            carried = (self._prec, self._prec_key[1], self._prec_free, self._prec_is_ref, self._mapped_count)
        rotations = self._asm.element_rotations
        Rcache_new = (np.take(rotations, tet_parent, axis=0) if tet_parent is not None and rotations is not None
                      else None)
        pattern = None
        if tet_parent is not None and kept_in_order:   # the cut kept the order of the surviving nodes
            pattern = self._asm.pattern.updated(self.mesh.tets, new_rest_mesh.tets, n_new, tet_parent, new2old)
        scale = self._asm.stiffness_scale
        if scale is not None:   # stiffened tets stay stiffened in the pieces they become
            if tet_parent is None:
                log.warning("change_topology without tet_parent: the %d stiffened tets are reset",
                            int((scale != 1.0).sum()))
                scale = None
            else:
                scale = scale[tet_parent]
        R_fact = self._R_fact
        self._setup_body(self.body.with_mesh(new_rest_mesh), node_rotations=self._Rn[parent],
                         element_rotations=Rcache_new, pattern=pattern, stiffness_scale=scale)
        self._x = np.asarray(x_new, dtype=np.float64)
        self._v = carry_velocities(v_new, m_old, self._m, parent, nparents, energy_before,
                                   lambda v: 0.5 * float(np.sum(v * self._mass_times(v))))
        self._constraints = new_cons
        self._forces = new_forces
        self._pressures = new_press
        self._cache_key = None
        if carried is not None:
            # nodes the cut touched: a new node that is not a plain copy of one old node, or
            # a copy of an old node that now has several copies
            carry_preconditioner(self, T, affected_all, *carried)
            if R_fact is not None:   # a new node had its main parent's rotation then
                self._R_fact = R_fact[parent]

