"""organsim's supernodal Cholesky (organsim.fem.supernodal) against scipy's direct solver."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from organsim.fem.assembly import Assembler, lumped_mass
from organsim.fem.materials import Corotational
from organsim.fem.solvers import CholeskyFactor
from organsim.fem.supernodal import NotPositiveDefinite, SupernodalCholesky, factor_memory, node_order
from organsim.mesh.generators import box_tet_mesh


def _system(shape=(7, 5, 4), fixed_x=0.0, dt=0.01, seed=0, spacing=0.004):
    """The free-DOF block matrix M/h^2 + K_rest of a clamped box, and its pattern."""
    mesh = box_tet_mesh(shape, spacing)
    rng = np.random.default_rng(seed)
    pts = mesh.points + rng.normal(scale=0.1 * spacing, size=mesh.points.shape)   # irregular tets
    mesh = type(mesh)(pts, mesh.tets)
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), Corotational(3e4, 0.45))])
    free = np.flatnonzero(mesh.points[:, 0] > fixed_x + 1e-9)
    sub = asm.pattern.sub(free)
    mass = lumped_mass(mesh.points, mesh.tets, np.full(mesh.n_tets, 1000.0))
    data = sub.gather(asm.rest_stiffness(), 1.0, mass, 1.0 / dt**2)
    return sub, data


def test_a_solve_matches_scipy_on_a_clamped_box():
    sub, data = _system()
    A = sub.matrix(data).tocsc()
    chol = SupernodalCholesky(sub.indptr, sub.indices, data)
    b = np.random.default_rng(1).normal(size=A.shape[0])
    b_before = b.copy()
    x = chol.solve(b)
    ref = spla.spsolve(A, b)
    assert np.array_equal(b, b_before)                      # the right-hand side is not touched
    assert np.linalg.norm(x - ref) <= 1e-10 * np.linalg.norm(ref)
    assert np.linalg.norm(A @ x - b) <= 1e-12 * np.linalg.norm(b)
    assert chol.supernodes < sub.n                          # nodes were merged into supernodes
    # the factor holds at least the lower triangle of A, and the fill stays moderate
    assert (sp.tril(A).nnz <= chol.nnz <= 20 * sp.tril(A).nnz)


def test_a_single_precision_factor_is_a_preconditioner_accurate_to_single_precision():
    sub, data = _system()
    A = sub.matrix(data).tocsc()
    b = np.random.default_rng(2).normal(size=A.shape[0])
    ref = spla.spsolve(A, b)
    x = SupernodalCholesky(sub.indptr, sub.indices, data, single=True).solve(b)
    assert x.dtype == np.float64
    err = np.linalg.norm(x - ref) / np.linalg.norm(ref)
    assert 0 < err <= 1e-4


def test_a_factor_written_in_single_precision_solves_as_the_double_factor_converted():
    sub, data = _system()
    b = np.random.default_rng(4).normal(size=3 * sub.n)
    converted = SupernodalCholesky(sub.indptr, sub.indices, data)
    converted.keep_single()
    direct = SupernodalCholesky(sub.indptr, sub.indices, data, single=True)
    assert direct.single and converted.single
    assert np.array_equal(direct.solve(b), converted.solve(b))     # the same factor, bit for bit
    # the threshold on the factor's size decides before the numeric factorization
    big = SupernodalCholesky(sub.indptr, sub.indices, data, single_from_nnz=direct.nnz)
    small = SupernodalCholesky(sub.indptr, sub.indices, data, single_from_nnz=direct.nnz + 1)
    assert big.single and not small.single
    assert np.array_equal(big.solve(b), direct.solve(b))


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_the_predicted_factorization_memory_is_what_the_factorization_takes(single):
    import tracemalloc

    sub, data = _system(shape=(14, 10, 8))
    peak, entries, order = factor_memory(sub.indptr, sub.indices, single_from_nnz=0 if single else None)
    tracemalloc.start()
    chol = SupernodalCholesky(sub.indptr, sub.indices, data, order=order, single=single)
    _, measured = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert chol.nnz == entries
    assert 0.8 * measured <= peak <= 1.25 * measured


def test_several_right_hand_sides_are_solved_column_by_column():
    sub, data = _system(shape=(4, 4, 3))
    chol = SupernodalCholesky(sub.indptr, sub.indices, data)
    B = np.random.default_rng(3).normal(size=(3 * sub.n, 3))
    X = chol.solve(B)
    assert X.shape == B.shape
    assert np.allclose(sub.matrix(data) @ X, B, rtol=0, atol=1e-9 * np.abs(B).max())


def test_an_indefinite_matrix_is_refused_as_not_positive_definite():
    sub, data = _system(shape=(4, 4, 3))
    data = data.copy()
    rows_of_diag, diag = sub.diagonal_blocks
    data[diag[len(diag) // 2]] -= 1e12 * np.eye(3)          # one hugely negative diagonal block
    with pytest.raises(NotPositiveDefinite, match="not positive definite"):
        SupernodalCholesky(sub.indptr, sub.indices, data)


def test_the_nested_dissection_order_is_a_permutation():
    sub, _ = _system(shape=(6, 6, 6))
    order = node_order(sub.indptr, sub.indices)
    assert np.array_equal(np.sort(order), np.arange(sub.n))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nx=st.integers(2, 6), ny=st.integers(2, 5), nz=st.integers(2, 4), seed=st.integers(0, 2**16),
       ordering=st.sampled_from(["metis", "natural", "random"]), clamp=st.booleans(),
       threads=st.sampled_from([1, 2, 3]))
def test_any_mesh_free_set_and_order_give_the_exact_solve(nx, ny, nz, seed, ordering, clamp, threads):
    sub, data = _system(shape=(nx, ny, nz), fixed_x=0.0 if clamp else -1.0, seed=seed)
    if sub.n == 0:
        return
    rng = np.random.default_rng(seed)
    order = {"metis": None, "natural": np.arange(sub.n), "random": rng.permutation(sub.n)}[ordering]
    chol = SupernodalCholesky(sub.indptr, sub.indices, data, order=order, threads=threads)
    A = sub.matrix(data).tocsc()
    b = rng.normal(size=A.shape[0])
    x = chol.solve(b)
    assert np.linalg.norm(A @ x - b) <= 1e-10 * np.linalg.norm(b)


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_the_parallel_solve_gives_the_serial_solution(threads):
    """Subtrees substituted on several threads: the same solution as one thread, to round-off."""
    sub, data = _system(shape=(14, 9, 7), fixed_x=-1.0)    # free floating: no clamp, all nodes
    data = data.copy()
    serial = SupernodalCholesky(sub.indptr, sub.indices, data, threads=1)
    par = SupernodalCholesky(sub.indptr, sub.indices, data, threads=threads)
    assert serial.solve_threads == 1
    assert 1 < par.solve_threads <= threads    # the tree split into a share per thread (or fewer)
    B = np.random.default_rng(4).normal(size=(3 * sub.n, 2))
    X1, X2 = serial.solve(B), par.solve(B)
    assert np.linalg.norm(X2 - X1) <= 1e-13 * np.linalg.norm(X1)
    assert np.array_equal(par.solve(B), X2)    # and the same every time


def test_a_scalar_matrix_not_a_multiple_of_three_is_padded_and_solved():
    n = 3 * 20 + 2
    A = sp.diags([-1.0, 2.5, -1.0], [-1, 0, 1], shape=(n, n)).tocsr()
    L = sp.tril(A).tocoo()
    f = CholeskyFactor(n, L.row, L.col, L.data)
    assert f.kind == "cholesky"
    b = np.arange(n, dtype=float)
    x = f.solve(b)
    assert x.shape == (n,)
    assert np.allclose(A @ x, b, atol=1e-10 * np.abs(b).max())


def test_an_indefinite_scalar_matrix_falls_back_to_lu_and_still_solves():
    n = 12
    A = sp.diags([1.0, -3.0, 1.0], [-1, 0, 1], shape=(n, n)).tolil()
    A[0, 0] = 2.0                                          # indefinite, not singular
    A = A.tocsr()
    L = sp.tril(A).tocoo()
    f = CholeskyFactor(n, L.row, L.col, L.data)
    assert f.kind == "lu"
    b = np.ones(n)
    assert np.allclose(A @ f.solve(b), b, atol=1e-10)
