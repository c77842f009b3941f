"""The solver factors only positive definite matrices: the projected tangent.

Reported (issue 11): the preconditioner was refactored from the consistent tangent, which
is indefinite where a body buckles or a cut flap folds; CHOLMOD refused it and the LU
fallback of an indefinite matrix is no conjugate-gradient preconditioner. The projected
tangent (each element's energy-density Hessian clamped to its positive eigenvalues) is
positive semi-definite everywhere and equals the consistent tangent where that is.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organsim.fem.assembly import Assembler
from organsim.fem.body import Body
from organsim.fem.materials import MooneyRivlin, NeoHookean, StVenantKirchhoff
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh

COLUMN = box_tet_mesh((3, 3, 15), 0.01)          # 1 cm nodes, 14 cm tall, 224 tets
BOTTOM = np.flatnonzero(np.isclose(COLUMN.points[:, 2], 0.0))
TOP = np.flatnonzero(np.isclose(COLUMN.points[:, 2], 0.14))


def _matrices(mesh, material, x):
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), material)])
    K = asm.pattern.matrix(asm.forces_and_stiffness(x, exact=True)[1]).toarray()
    P = asm.pattern.matrix(asm.projected_stiffness(x)).toarray()
    return K, P


def _compressed_column(integrator="realtime", frac=0.3, dt=5.0):
    sim = Simulation(Body(COLUMN, NeoHookean(1e4, 0.3), density=1000.0), gravity=(0, 0, 0), dt=dt,
                     integrator=integrator)
    sim.fix(BOTTOM, name="base")
    # a slight tilt makes it buckle one way, as a real one does
    sim.prescribe(TOP, COLUMN.points[TOP] + [0.0005, 0, -frac * 0.14], name="top")
    assert sim.solve_static(load_steps=10).converged
    return sim


@pytest.mark.parametrize("material", [NeoHookean(1e4, 0.3), StVenantKirchhoff(1e4, 0.3),
                                      MooneyRivlin(1500.0, 500.0, 5e4)], ids=lambda m: type(m).__name__)
@settings(max_examples=8, deadline=None)
@given(st.floats(0.6, 1.3), st.floats(-0.3, 0.3), st.integers(0, 2 ** 31 - 1))
def test_projected_tangent_is_symmetric_psd_and_exact_where_the_tangent_is(material, stretch, shear, seed):
    mesh = box_tet_mesh((3, 3, 3), 0.01)
    rng = np.random.default_rng(seed)
    G = np.array([[stretch, shear, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0 / stretch]])
    x = mesh.points @ G.T + 2e-4 * rng.standard_normal(mesh.points.shape)
    K, P = _matrices(mesh, material, x)
    assert np.abs(P - P.T).max() <= 1e-10 * np.abs(P).max()
    assert np.linalg.eigvalsh(P).min() >= -1e-10 * np.abs(P).max()
    # rigid translations cost nothing
    np.testing.assert_allclose(P @ np.tile([1.0, 0.0, 0.0], mesh.n_points), 0.0, atol=1e-9 * np.abs(P).max())
    # a pure rotation of the rest state: every element Hessian is positive semi-definite, so
    # the projection changes nothing
    c, s_ = np.cos(0.7), np.sin(0.7)
    R = np.array([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]])
    K, P = _matrices(mesh, material, mesh.points @ R.T)
    np.testing.assert_allclose(P, K, atol=1e-8 * np.abs(K).max())


class _NeoHookeanByEigh(NeoHookean):
    """The same energy taken by the generic path (its 9 x 9 Hessians decomposed numerically)."""

    kind = "neo_hookean_by_eigh"


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 0.49), st.sampled_from(["general", "isotropic", "two_equal"]), st.integers(0, 2 ** 31 - 1))
def test_the_closed_form_neo_hookean_projection_equals_clamping_the_hessians_eigenvalues(nu, stretch, seed):
    # one tet, deformed by a random F of each kind (equal singular values are where a
    # closed form could divide by zero), compressed or stretched, often indefinite
    rng = np.random.default_rng(seed)
    Qr, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    Qr *= np.sign(np.linalg.det(Qr))
    if stretch == "general":
        F = np.eye(3) + rng.uniform(0.05, 0.6) * rng.standard_normal((3, 3))
    elif stretch == "isotropic":
        F = rng.uniform(0.5, 1.8) * Qr
    else:
        s = rng.uniform(0.4, 2.0)
        F = Qr @ np.diag([s, s, rng.uniform(0.4, 2.0)])
    if np.linalg.det(F) <= 0.05:
        F = Qr
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]]) * 0.01
    mesh = TetMesh(pts, np.array([[0, 1, 2, 3]]))
    closed = Assembler(mesh, [(np.arange(1), NeoHookean(1e4, nu))]).projected_stiffness(pts @ F.T)
    numeric = Assembler(mesh, [(np.arange(1), _NeoHookeanByEigh(1e4, nu))]).projected_stiffness(pts @ F.T)
    np.testing.assert_allclose(closed, numeric, rtol=0, atol=1e-10 * np.abs(numeric).max())


def test_compressed_column_tangent_is_indefinite_but_the_solver_factors_cholesky():
    sim = _compressed_column()
    K, P = _matrices(COLUMN, NeoHookean(1e4, 0.3), sim.positions)
    assert np.abs(sim.displacements[:, :2]).max() > 5e-3           # it buckled sideways
    free = np.setdiff1d(np.arange(COLUMN.n_points), np.union1d(BOTTOM, TOP))
    dofs = (3 * free[:, None] + np.arange(3)).ravel()
    assert np.linalg.eigvalsh(K[np.ix_(dofs, dofs)]).min() < 0     # the consistent tangent is indefinite
    assert np.linalg.eigvalsh(P[np.ix_(dofs, dofs)]).min() > -1e-9 * np.abs(P).max()
    sim.refresh_preconditioner()
    assert sim.preconditioner_kind == "cholesky"
    for _ in range(5):
        info = sim.step()
        assert info.converged and info.substeps == 1
        assert sim.preconditioner_kind == "cholesky"


@pytest.mark.parametrize("integrator", ["realtime", "backward_euler"])
def test_column_pushed_past_buckling_steps_on_positive_definite_factorizations(integrator):
    """The top is pushed down 30 % in 0.1 s steps from rest: the column buckles while
    stepping, and every factorization the solver makes on the way is a Cholesky one."""
    sim = Simulation(Body(COLUMN, NeoHookean(1e4, 0.3), density=1000.0), gravity=(0, 0, 0), dt=0.1,
                     damping=(5.0, 0.0), integrator=integrator)
    sim.fix(BOTTOM, name="base")
    kinds = set()
    for k in range(1, 16):
        frac = 0.3 * min(k / 10, 1.0)
        sim.prescribe(TOP, COLUMN.points[TOP] + [0.0005 * frac, 0, -frac * 0.14], name="top")
        info = sim.step()
        assert info.converged, (k, info)
        kinds.add(sim.preconditioner_kind)
    assert np.abs(sim.displacements[:, :2]).max() > 5e-3
    assert kinds <= {"cholesky", "mapped cholesky"}, kinds
    assert np.all(np.isfinite(sim.positions))
