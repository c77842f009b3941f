"""Strain and stress fields."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation

from organsim.fem import fields as FL
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh


class _NeoHookeRef:
    """Test-local reference material: W = mu/2 (I1 - 3) - mu ln J + lam/2 (ln J)^2."""

    def __init__(self, mu, lam):
        self.mu, self.lam = mu, lam

    def energy(self, F):
        J = np.linalg.det(F)
        I1 = np.einsum("kij,kij->k", F, F)
        return 0.5 * self.mu * (I1 - 3) - self.mu * np.log(J) + 0.5 * self.lam * np.log(J) ** 2

    def pk1(self, F):
        J = np.linalg.det(F)
        FinvT = np.swapaxes(np.linalg.inv(F), 1, 2)
        return self.mu * (F - FinvT) + self.lam * np.log(J)[:, None, None] * FinvT


def test_deformation_gradient_of_affine_map():
    m = box_tet_mesh((3, 3, 3), 0.01)
    A = np.array([[1.1, 0.2, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]])
    F = FL.deformation_gradients(m.points, m.tets, m.points @ A.T + 0.3)
    assert np.allclose(F, A, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_rigid_rotation_gives_zero_strain_and_stress(seed):
    R = Rotation.random(random_state=seed).as_matrix()
    F = np.repeat(R[None], 4, axis=0)
    assert np.allclose(FL.green_lagrange(F), 0, atol=1e-14)
    mat = _NeoHookeRef(1e3, 1e4)
    assert np.allclose(FL.cauchy_stress(F, mat), 0, atol=1e-9)
    assert np.allclose(FL.von_mises(FL.cauchy_stress(F, mat)), 0, atol=1e-6)


def test_cauchy_is_symmetric_and_von_mises_invariants():
    rng = np.random.default_rng(0)
    F = np.eye(3) + 0.2 * rng.normal(size=(50, 3, 3))
    F = F[np.linalg.det(F) > 0.2]
    mat = _NeoHookeRef(2e3, 2e4)
    s = FL.cauchy_stress(F, mat)
    assert np.allclose(s, np.swapaxes(s, 1, 2), atol=1e-9 * np.abs(s).max())
    # von Mises ignores pressure and equals |sigma| in uniaxial and sqrt(3)|tau| in shear
    assert FL.von_mises(np.eye(3)[None] * 7.0)[0] == pytest.approx(0.0, abs=1e-12)
    tau = np.zeros((1, 3, 3))
    tau[0, 0, 1] = tau[0, 1, 0] = 2.0
    assert FL.von_mises(tau)[0] == pytest.approx(2.0 * np.sqrt(3))


def test_green_lagrange_uniaxial():
    F = np.diag([1.2, 1.0, 1.0])[None]
    assert FL.green_lagrange(F)[0, 0, 0] == pytest.approx(0.5 * (1.44 - 1))


def test_nodal_average_of_constant_and_weights():
    m = box_tet_mesh((4, 3, 3), 0.01)
    const = np.full((m.n_tets, 3, 3), 2.5)
    assert np.allclose(FL.nodal_average(const, m.tets, m.volumes, m.n_points), 2.5)
    # two tets sharing nodes: weights by volume
    tets = np.array([[0, 1, 2, 3], [0, 2, 1, 4]])
    vals = np.array([1.0, 4.0])
    vol = np.abs(np.array([1 / 6, 2 / 6]))
    out = FL.nodal_average(vals, tets, vol, 5)
    assert out[0] == pytest.approx((1 * 1 + 4 * 2) / 3)
    assert out[3] == pytest.approx(1.0) and out[4] == pytest.approx(4.0)


def test_compute_fields_per_region_and_energy():
    m0 = box_tet_mesh((3, 3, 3), 0.01)
    rid = np.where(np.arange(m0.n_tets) < m0.n_tets // 2, 1, 2)
    m = TetMesh(m0.points, m0.tets, rid, {1: "soft", 2: "hard"})
    soft, hard = _NeoHookeRef(1e3, 1e4), _NeoHookeRef(5e3, 5e4)
    A = np.diag([1.05, 1.0, 0.98])
    out = FL.compute_fields(m, m.points @ A.T, {"soft": soft, 2: hard})
    F = np.repeat(A[None], 1, axis=0)
    Wsoft, Whard = soft.energy(F)[0], hard.energy(F)[0]
    vol = m.volumes
    expected = Wsoft * vol[rid == 1].sum() + Whard * vol[rid == 2].sum()
    assert out["strain_energy"] == pytest.approx(expected)
    assert out["von_mises"].shape == (m.n_tets,) and out["nodal_von_mises"].shape == (m.n_points,)
    assert out["nodal_cauchy"].shape == (m.n_points, 3, 3)
    with pytest.raises(Exception, match="no material for region"):
        FL.compute_fields(m, m.points, {"soft": soft})
    with pytest.raises(Exception, match="unknown region"):
        FL.compute_fields(m, m.points, {"liver": soft, 2: hard})


def test_inverted_element_reported():
    F = np.diag([1.0, 1.0, -0.5])[None]
    with pytest.raises(Exception, match="inverted"):
        FL.cauchy_stress(F, P=np.zeros((1, 3, 3)))
