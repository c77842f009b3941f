"""P1 assembly: shape gradients, symmetry, rigid-body null space, f = dU/dx, K = df/dx."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from organsim.errors import ConvergenceError, MaterialError, MeshError
from organsim.fem.assembly import Assembler, BlockPattern, consistent_mass_blocks, lumped_mass
from organsim.fem.kinematics import deformation_gradients, shape_gradients
from organsim.fem.materials import (
    Corotational,
    LinearElastic,
    MooneyRivlin,
    NeoHookean,
    StVenantKirchhoff,
)
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh

E, NU = 2.0e4, 0.4
MATS = [LinearElastic(E, NU), Corotational(E, NU), StVenantKirchhoff(E, NU), NeoHookean(E, NU),
        MooneyRivlin(2e3, 1e3, 5e4)]
IDS = [type(m).__name__ for m in MATS]


def _mesh(shape=(3, 3, 2), h=0.01, seed=0, jitter=0.15):
    m = box_tet_mesh(shape, h)
    rng = np.random.default_rng(seed)
    return TetMesh(m.points + jitter * h * rng.uniform(-1, 1, m.points.shape), m.tets)


def _asm(mesh, mat):
    return Assembler(mesh, [(np.arange(mesh.n_tets), mat)])


def test_shape_gradients_partition_of_unity_and_linear_exactness():
    mesh = _mesh()
    g, v = shape_gradients(mesh.points, mesh.tets)
    assert np.allclose(g.sum(axis=1), 0, atol=1e-9)
    assert np.allclose(v, mesh.volumes)
    A = np.array([[1.1, 0.2, 0.0], [0.1, 0.9, 0.3], [0.0, -0.2, 1.2]])
    F = deformation_gradients(mesh.points @ A.T + 0.5, mesh.tets, g)
    assert np.allclose(F, A, atol=1e-12)


def test_shape_gradients_reject_inverted_tets():
    mesh = box_tet_mesh((2, 2, 2), 1.0)
    tets = mesh.tets.copy()
    tets[0] = tets[0][[1, 0, 2, 3]]
    with pytest.raises(MeshError):
        shape_gradients(mesh.points, tets)


def test_block_pattern_matches_coo_assembly():
    mesh = _mesh((3, 2, 2))
    pat = BlockPattern(mesh.tets, mesh.n_points)
    rng = np.random.default_rng(0)
    local = rng.standard_normal((mesh.n_tets, 4, 4, 3, 3))
    data = np.zeros((pat.nnzb, 3, 3))
    np.add.at(data, pat.blockmap.ravel(), local.reshape(-1, 3, 3))
    rows = (3 * mesh.tets[:, :, None, None, None] + np.arange(3)[None, None, None, :, None])
    cols = (3 * mesh.tets[:, None, :, None, None] + np.arange(3)[None, None, None, None, :])
    rows, cols = (np.broadcast_to(a, local.shape).ravel() for a in (rows, cols))
    ref = sp.coo_matrix((local.ravel(), (rows, cols)), shape=(3 * mesh.n_points,) * 2).toarray()
    assert np.allclose(pat.matrix(data).toarray(), ref)


@pytest.mark.parametrize("mat", MATS, ids=IDS)
def test_force_is_gradient_of_energy_and_stiffness_is_symmetric(mat):
    mesh = _mesh((2, 2, 2))
    asm = _asm(mesh, mat)
    rng = np.random.default_rng(4)
    x = mesh.points + 0.0015 * rng.uniform(-1, 1, mesh.points.shape)
    f, K = asm.forces_and_stiffness(x)
    h = 1e-8
    num = np.zeros_like(x)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += h
        xm.flat[i] -= h
        num.flat[i] = (asm.energy(xp) - asm.energy(xm)) / (2 * h)
    assert np.abs(f - num).max() <= 1e-5 * np.abs(f).max()
    Kd = asm.pattern.matrix(K).toarray()
    assert np.abs(Kd - Kd.T).max() <= 1e-10 * np.abs(Kd).max()


@pytest.mark.parametrize("mat", MATS, ids=IDS)
def test_stiffness_is_derivative_of_force(mat):
    """The consistent tangent (``exact=True``; the corotational one includes dR)."""
    mesh = _mesh((2, 2, 2))
    asm = _asm(mesh, mat)
    rng = np.random.default_rng(5)
    Q = Rotation.from_rotvec([0.2, -0.4, 0.3]).as_matrix()
    x = (mesh.points + 0.002 * rng.uniform(-1, 1, mesh.points.shape)) @ Q.T
    Kd = asm.pattern.matrix(asm.forces_and_stiffness(x, exact=True)[1]).toarray()
    h = 1e-7
    num = np.zeros_like(Kd)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += h
        xm.flat[i] -= h
        num[:, i] = ((asm.forces(xp) - asm.forces(xm)) / (2 * h)).ravel()
    assert np.abs(Kd - num).max() <= 1e-6 * np.abs(Kd).max()


def test_corotational_stiffness_is_exact_at_rest_and_close_nearby():
    """R K0 R^T is the exact tangent at a rotated rest state and an approximation when strained."""
    mesh = _mesh((2, 2, 2))
    asm = _asm(mesh, Corotational(E, NU))
    Q = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    x = mesh.points @ Q.T
    Kd = asm.stiffness(x).toarray()
    h = 1e-7
    num = np.zeros_like(Kd)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += h
        xm.flat[i] -= h
        num[:, i] = ((asm.forces(xp) - asm.forces(xm)) / (2 * h)).ravel()
    assert np.abs(Kd - num).max() <= 1e-6 * np.abs(Kd).max()


def _rigid_modes(points):
    c = points - points.mean(axis=0)
    modes = []
    for d in range(3):
        t = np.zeros_like(points)
        t[:, d] = 1
        modes.append(t)
    for axis in np.eye(3):
        modes.append(np.cross(axis, c))
    return modes


@pytest.mark.parametrize("mat", MATS, ids=IDS)
def test_rest_stiffness_null_space_is_rigid_motion(mat):
    mesh = _mesh((3, 2, 2))
    K = _asm(mesh, mat).stiffness(mesh.points)
    scale = abs(K).max() * np.abs(mesh.points).max()
    for mode in _rigid_modes(mesh.points):
        assert np.abs(K @ mode.ravel()).max() <= 1e-9 * scale
    # and nothing else: exactly 6 zero eigenvalues
    ev = np.linalg.eigvalsh(K.toarray())
    assert np.sum(ev < 1e-8 * ev.max()) == 6


@settings(max_examples=20, deadline=None)
@given(q=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1),
       shift=st.lists(st.floats(-1, 1), min_size=3, max_size=3), seed=st.integers(0, 2**16),
       nx=st.integers(2, 4))
def test_rigid_motion_gives_zero_internal_force(q, shift, seed, nx):
    m = box_tet_mesh((nx, 2, 3), 0.01)
    pts = m.points + 0.25 * 0.01 * np.random.default_rng(seed).uniform(-1, 1, m.points.shape)
    from organsim.mesh.tetmesh import tet_volumes

    assume(np.all(tet_volumes(pts, m.tets) > 0))     # a jitter this large can invert a tet
    mesh = TetMesh(pts, m.tets)
    Q = Rotation.from_quat(np.asarray(q) / np.linalg.norm(q)).as_matrix()
    x = mesh.points @ Q.T + np.asarray(shift)
    for mat in MATS[1:]:
        f, K = _asm(mesh, mat).forces_and_stiffness(x)
        scale = E * mesh.volume ** (2 / 3)
        assert np.abs(f).max() <= 1e-8 * scale, type(mat).__name__


def test_per_region_materials_and_group_checks():
    mesh = box_tet_mesh((3, 2, 2), 0.01)
    rid = np.where(mesh.tets.min(axis=1) % 2 == 0, 1, 2)
    mesh = TetMesh(mesh.points, mesh.tets, rid, {1: "a", 2: "b"})
    e1, e2 = np.flatnonzero(rid == 1), np.flatnonzero(rid == 2)
    soft, stiff = NeoHookean(1e3, 0.3), NeoHookean(1e5, 0.3)
    asm = Assembler(mesh, [(e1, soft), (e2, stiff)])
    x = mesh.points * 1.01
    W = asm.energy_density(x)
    assert np.allclose(W[e2] / W[e1].mean(), 100.0)
    with pytest.raises(MaterialError):
        Assembler(mesh, [(e1, soft)])
    with pytest.raises(MaterialError):
        Assembler(mesh, [(np.arange(mesh.n_tets), "rubber")])


def test_inversion_is_reported():
    mesh = box_tet_mesh((2, 2, 2), 0.01)
    x = mesh.points.copy()
    x[:, 2] *= -1.0
    with pytest.raises(ConvergenceError):
        _asm(mesh, NeoHookean(E, NU)).forces_and_stiffness(x)
    assert _asm(mesh, NeoHookean(E, NU)).min_jacobian(x) < 0


def test_mass_matrices_conserve_total_mass():
    mesh = _mesh()
    rho = np.full(mesh.n_tets, 1000.0)
    m = lumped_mass(mesh.points, mesh.tets, rho)
    assert m.sum() == pytest.approx(1000.0 * mesh.volume)
    pat = BlockPattern(mesh.tets, mesh.n_points)
    Mb = consistent_mass_blocks(pat, mesh.volumes, rho)
    M = pat.matrix(Mb)
    one = np.zeros((mesh.n_points, 3))
    one[:, 0] = 1
    assert (M @ one.ravel()).sum() == pytest.approx(1000.0 * mesh.volume)


def _pattern_by_sorting(tets, n):
    """Reference pattern: unique (row, col) keys of every tet's node pairs, by sorting."""
    keys = (tets[:, :, None] * n + tets[:, None, :]).ravel()
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq // n, uniq % n, inv.reshape(len(tets), 4, 4)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 5), st.integers(2, 5), st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_compiled_block_pattern_equals_sorting_reference(nx, ny, nz, seed):
    mesh = box_tet_mesh((nx, ny, nz), 0.01)
    # renumber the nodes at random and add an unused node: the pattern must not care
    perm = np.random.default_rng(seed).permutation(mesh.n_points + 1)
    tets = perm[mesh.tets]
    n = mesh.n_points + 1
    pat = BlockPattern(tets, n)
    rows, cols, bmap = _pattern_by_sorting(tets, n)
    assert np.array_equal(pat.rows, rows) and np.array_equal(pat.indices, cols)
    assert np.array_equal(pat.blockmap, bmap)
    used = np.zeros(n, bool)
    used[tets.ravel()] = True
    assert np.all(pat.diag[~used] == -1)
    assert np.array_equal(pat.rows[pat.diag[used]], np.flatnonzero(used))
    assert np.array_equal(pat.indices[pat.diag[used]], np.flatnonzero(used))


def test_rest_stiffness_of_a_tet_subset_is_exact_around_its_inner_nodes():
    mesh = _mesh((4, 3, 3))
    asm = Assembler(mesh, [(np.arange(0, mesh.n_tets, 2), LinearElastic(E, NU)),
                           (np.arange(1, mesh.n_tets, 2), NeoHookean(2 * E, 0.3))])
    full = asm.rest_stiffness()
    nodes = np.array([7, 20, 31])
    ring = np.flatnonzero(np.isin(mesh.tets, nodes).any(axis=1))
    part = asm.rest_stiffness(elements=ring)
    d = asm.pattern.diag[nodes]
    assert np.allclose(part[d], full[d], rtol=1e-13, atol=0)
    others = np.setdiff1d(np.arange(mesh.n_points), np.unique(mesh.tets[ring]))
    assert np.all(part[asm.pattern.diag[others]] == 0)


def test_rest_diagonal_blocks_match_the_full_rest_stiffness():
    mesh = _mesh((4, 3, 3))
    asm = Assembler(mesh, [(np.arange(0, mesh.n_tets, 2), Corotational(E, NU)),
                           (np.arange(1, mesh.n_tets, 2), MooneyRivlin(2e3, 1e3, 5e4))])
    full = asm.rest_stiffness()
    nodes = np.array([31, 0, 7, 20])
    assert np.allclose(asm.rest_diagonal_blocks(nodes), full[asm.pattern.diag[nodes]], rtol=1e-12, atol=0)


def test_compiled_sub_pattern_matches_masking_the_parent():
    mesh = _mesh((4, 3, 3))
    pat = BlockPattern(mesh.tets, mesh.n_points)
    free = np.sort(np.random.default_rng(5).choice(mesh.n_points, mesh.n_points - 9, replace=False))
    sub = pat.sub(free)
    newid = np.full(pat.n, -1)
    newid[free] = np.arange(len(free))
    r, c = newid[pat.rows], newid[pat.indices]
    keep = (r >= 0) & (c >= 0)
    assert np.array_equal(sub.blocks, np.flatnonzero(keep))
    assert np.array_equal(sub.indices, c[keep]) and np.array_equal(sub.rows, r[keep])
    assert np.array_equal(sub.indptr, np.concatenate([[0], np.cumsum(np.bincount(r[keep], minlength=len(free)))]))
    data = np.random.default_rng(6).standard_normal((pat.nnzb, 3, 3))
    dense = pat.matrix(data).toarray()
    dofs = (3 * free[:, None] + np.arange(3)).ravel()
    assert np.allclose(sub.matrix(data[sub.blocks]).toarray(), dense[np.ix_(dofs, dofs)])


def test_rest_sub_stiffness_equals_the_full_rest_stiffness_restricted():
    """The local assembly around selected nodes equals the full rest stiffness on their sub-pattern."""
    mesh = _mesh((5, 4, 3))
    asm = Assembler(mesh, [(np.arange(0, mesh.n_tets, 2), Corotational(E, NU)),
                           (np.arange(1, mesh.n_tets, 2), MooneyRivlin(2e3, 1e3, 5e4))])
    full = asm.rest_stiffness()
    rng = np.random.default_rng(1)
    for k in (1, 7, 30, mesh.n_points):
        nodes = np.sort(rng.choice(mesh.n_points, k, replace=False))
        sub = asm.pattern.sub(nodes)
        assert np.allclose(asm.rest_sub_stiffness(sub), sub.gather(full, 1.0), rtol=1e-12,
                           atol=1e-12 * np.abs(full).max())


def test_sub_gather_of_lumped_masses_equals_the_block_mass():
    mesh = _mesh((4, 3, 3))
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), LinearElastic(E, NU))])
    m = lumped_mass(mesh.points, mesh.tets, np.full(mesh.n_tets, 1000.0))
    Mb = np.zeros((asm.pattern.nnzb, 3, 3))
    for i in range(3):
        Mb[asm.pattern.diag, i, i] = m
    K = asm.rest_stiffness()
    sub = asm.pattern.sub(np.arange(3, mesh.n_points, 2))
    assert np.allclose(sub.gather(K, 1.5, m, 40.0), sub.gather(K, 1.5, Mb, 40.0), rtol=1e-14, atol=0)


@pytest.mark.parametrize("shape", [(12, 2, 2), (5, 4, 3)])
def test_local_factor_solves_the_reference_matrix(shape):
    """Band Cholesky (narrow strips) or sparse Cholesky (wider sets) both solve the local system exactly."""
    from organsim.fem.solvers import BandedCholesky, CholeskyFactor, local_factor

    mesh = _mesh(shape)
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), LinearElastic(E, NU))])
    nodes = np.arange(4, mesh.n_points)
    sub = asm.pattern.sub(nodes)
    data = asm.rest_sub_stiffness(sub) + 1e4 * np.eye(3) * (sub.rows == sub.indices)[:, None, None]
    f = local_factor(sub, data)
    assert isinstance(f, (BandedCholesky, CholeskyFactor))
    b = np.random.default_rng(0).standard_normal(3 * sub.n)
    A = sub.matrix(data).toarray()
    assert np.allclose(A @ f(b), b, rtol=0, atol=1e-9 * np.abs(b).max())
    banded = BandedCholesky(sub, data)
    assert np.allclose(A @ banded(b), b, rtol=0, atol=1e-9 * np.abs(b).max())


def test_banded_cholesky_rejects_an_indefinite_matrix_and_local_factor_falls_back():
    from organsim.fem.solvers import BandedCholesky, local_factor

    mesh = _mesh((6, 2, 2))
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), LinearElastic(E, NU))])
    sub = asm.pattern.sub(np.arange(mesh.n_points))
    data = asm.rest_sub_stiffness(sub) - 1e3 * np.eye(3) * (sub.rows == sub.indices)[:, None, None]
    with pytest.raises(ConvergenceError, match="not positive definite"):
        BandedCholesky(sub, data)
    f = local_factor(sub, data)      # the sparse path (LU for an indefinite matrix) still solves it
    b = np.random.default_rng(2).standard_normal(3 * sub.n)
    assert np.allclose(sub.matrix(data).toarray() @ f(b), b, atol=1e-8 * np.abs(b).max())
