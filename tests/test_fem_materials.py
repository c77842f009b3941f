"""Constitutive models: zero stress at rest, P = dW/dF, A = dP/dF, frame indifference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from organsim.errors import MaterialError
from organsim.fem.kinematics import polar_rotation
from organsim.fem.materials import (
    Corotational,
    LinearElastic,
    MooneyRivlin,
    NeoHookean,
    StVenantKirchhoff,
    lame_parameters,
)

E, NU = 4.0e4, 0.42
ALL = [LinearElastic(E, NU), Corotational(E, NU), StVenantKirchhoff(E, NU), NeoHookean(E, NU),
       MooneyRivlin(3.0e3, 1.5e3, 9.0e4)]
NONLINEAR = ALL[1:]
IDS = [type(m).__name__ for m in ALL]


def _random_F(rng, k=5, amp=0.15):
    return np.eye(3)[None] + amp * rng.uniform(-1, 1, (k, 3, 3))


@pytest.mark.parametrize("mat", ALL, ids=IDS)
def test_zero_stress_and_energy_at_rest(mat):
    F = np.repeat(np.eye(3)[None], 3, axis=0)
    assert np.abs(mat.pk1(F)).max() < 1e-9
    assert np.abs(mat.energy(F)).max() < 1e-9


@pytest.mark.parametrize("mat", ALL, ids=IDS)
def test_pk1_is_derivative_of_energy(mat):
    rng = np.random.default_rng(1)
    F = _random_F(rng)
    P = mat.pk1(F)
    h = 1e-6
    num = np.empty_like(P)
    for i in range(3):
        for j in range(3):
            Fp, Fm = F.copy(), F.copy()
            Fp[:, i, j] += h
            Fm[:, i, j] -= h
            num[:, i, j] = (mat.energy(Fp) - mat.energy(Fm)) / (2 * h)
    assert np.abs(P - num).max() <= 1e-6 * np.abs(P).max()


@pytest.mark.parametrize("mat", ALL, ids=IDS)
def test_tangent_is_derivative_of_pk1(mat):
    rng = np.random.default_rng(2)
    F = _random_F(rng)
    A = mat.tangent(F)
    assert A.shape == (len(F), 3, 3, 3, 3)
    h = 1e-6
    num = np.empty_like(A)
    for k in range(3):
        for L in range(3):
            Fp, Fm = F.copy(), F.copy()
            Fp[:, k, L] += h
            Fm[:, k, L] -= h
            num[:, :, :, k, L] = (mat.pk1(Fp) - mat.pk1(Fm)) / (2 * h)
    assert np.abs(A - num).max() <= 1e-6 * np.abs(A).max()


@pytest.mark.parametrize("mat", ALL, ids=IDS)
def test_tangent_at_rest_matches_small_strain_elasticity(mat):
    lam, mu = mat.small_strain_lame()
    ref = LinearElastic(1.0, 0.3)
    ref._lam, ref._mu = lam, mu
    A = mat.tangent(np.eye(3)[None])
    # the tangent of a rotation-invariant model at rest has the small-strain symmetries
    sym = 0.5 * (A + np.swapaxes(A, 1, 2))
    sym = 0.5 * (sym + np.swapaxes(sym, 3, 4))
    assert np.allclose(sym, ref.tangent(np.eye(3)[None]), rtol=1e-8, atol=1e-6 * mu)


@settings(max_examples=25, deadline=None)
@given(q=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1))
def test_rigid_rotation_gives_zero_stress(q):
    Q = Rotation.from_quat(np.asarray(q) / np.linalg.norm(q)).as_matrix()[None]
    for mat in NONLINEAR:
        P = mat.pk1(Q)
        assert np.abs(P).max() < 1e-8 * mat.small_strain_lame()[1], type(mat).__name__
        assert abs(mat.energy(Q)[0]) < 1e-10 * mat.small_strain_lame()[1]


@settings(max_examples=25, deadline=None)
@given(q=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1),
       seed=st.integers(0, 2**16))
def test_frame_indifference(q, seed):
    """W(QF) = W(F) and P(QF) = Q P(F) for every nonlinear model."""
    Q = Rotation.from_quat(np.asarray(q) / np.linalg.norm(q)).as_matrix()
    F = _random_F(np.random.default_rng(seed), k=3, amp=0.2)
    for mat in NONLINEAR:
        scale = np.abs(mat.pk1(F)).max() + 1.0
        assert np.allclose(mat.energy(Q @ F), mat.energy(F), rtol=1e-9, atol=1e-9 * scale)
        assert np.allclose(mat.pk1(Q @ F), Q @ mat.pk1(F), rtol=1e-8, atol=1e-8 * scale)


def test_linear_elastic_is_not_rotation_invariant():
    Q = Rotation.from_rotvec([0, 0, 0.5]).as_matrix()[None]
    assert np.abs(LinearElastic(E, NU).pk1(Q)).max() > 1e-3 * E


def test_neo_hookean_uniaxial_closed_form():
    mat = NeoHookean(E, NU)
    lam, mu = lame_parameters(E, NU)
    s = 1.2
    F = np.diag([s, 1.0, 1.0])[None]
    expected = mu * (s - 1 / s) + lam * np.log(s) / s
    assert mat.pk1(F)[0, 0, 0] == pytest.approx(expected, rel=1e-12)


def test_neo_hookean_rejects_inversion_in_energy():
    mat = NeoHookean(E, NU)
    assert np.isinf(mat.energy(np.diag([-1.0, 1.0, 1.0])[None])[0])


def test_polar_rotation_is_orthogonal():
    rng = np.random.default_rng(3)
    F = _random_F(rng, k=20, amp=0.4)
    R = polar_rotation(F)
    assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-12)
    S = np.swapaxes(R, 1, 2) @ F
    assert np.allclose(S, np.swapaxes(S, 1, 2), atol=1e-12)


@pytest.mark.parametrize("args", [(-1.0, 0.3), (1e3, 0.5), (1e3, -1.0), (float("nan"), 0.3)])
def test_invalid_parameters_raise(args):
    with pytest.raises(MaterialError):
        NeoHookean(*args)


def test_invalid_mooney_rivlin_raises():
    with pytest.raises(MaterialError):
        MooneyRivlin(-1.0, 0.0, 1e4)
    with pytest.raises(MaterialError):
        MooneyRivlin(1.0, 0.0, 0.0)


def test_bad_shape_raises():
    with pytest.raises(MaterialError):
        NeoHookean(E, NU).pk1(np.eye(3))
