"""Constitutive models of soft tissue, batched over deformation gradients.

Every material evaluates, for a batch of deformation gradients ``F`` of shape
(k, 3, 3):

- ``energy(F)`` (k,): strain-energy density (J/m^3 = Pa),
- ``pk1(F)`` (k, 3, 3): first Piola-Kirchhoff stress ``P = dW/dF`` (Pa),
- ``tangent(F)`` (k, 3, 3, 3, 3): ``A[e, i, J, k, L] = dP_iJ / dF_kL`` (Pa).

Models: :class:`LinearElastic` (small strain), :class:`Corotational` (small
strain in the element's rotated frame), :class:`StVenantKirchhoff`,
:class:`NeoHookean` (compressible) and :class:`MooneyRivlin` (isochoric
invariants plus a volumetric penalty).

Near incompressibility
----------------------
Soft tissue is nearly incompressible (Poisson ratio 0.45-0.49). The volumetric
terms used here are ``lam/2 (ln J)^2`` (neo-Hookean) and ``kappa/2 (J - 1)^2``
(Mooney-Rivlin); they stay finite and convex in ``J`` near ``J = 1``, and
``ln J`` blows up for ``J -> 0`` so elements resist inversion. **Linear
tetrahedra (P1) lock** as ``nu -> 0.5``: the displacement is under-predicted,
by a few percent at ``nu = 0.45`` and badly at ``nu = 0.49`` on coarse meshes.
organsim does not hide this with a mixed formulation in P1. For interactive
P1 use keep ``nu <= 0.45`` (the presets do); for accuracy-first runs with
``nu`` up to 0.49 use quadratic tets (:mod:`organsim.fem.p2`), which do not lock
at these ratios.

Examples
--------
>>> import numpy as np
>>> m = NeoHookean(E=3e3, nu=0.45)
>>> F = np.eye(3)[None]
>>> float(np.abs(m.pk1(F)).max())
0.0
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..errors import MaterialError
from .kinematics import polar_rotation

__all__ = ["Material", "LinearElastic", "Corotational", "StVenantKirchhoff", "NeoHookean",
           "MooneyRivlin", "lame_parameters"]

_I3 = np.eye(3)


def lame_parameters(E: float, nu: float) -> tuple[float, float]:
    """Lamé parameters ``(lambda, mu)`` (Pa) from Young's modulus (Pa) and Poisson's ratio.

    Examples
    --------
    >>> lame_parameters(2.6, 0.3)
    (1.5, 1.0)
    """
    E = float(E)
    nu = float(nu)
    if not (np.isfinite(E) and E > 0):
        raise MaterialError(f"Young's modulus must be a positive number of pascals, got {E!r}")
    if not (-1.0 < nu < 0.5):
        raise MaterialError(f"Poisson's ratio must lie in (-1, 0.5), got {nu!r}; use at most 0.49"
                            " for nearly incompressible tissue")
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


def _as_F(F: np.ndarray) -> np.ndarray:
    F = np.asarray(F)
    if F.ndim != 3 or F.shape[1:] != (3, 3):
        raise MaterialError(f"deformation gradients must have shape (k, 3, 3), got {F.shape}")
    return F


def _inv_T(F: np.ndarray) -> np.ndarray:
    return np.swapaxes(np.linalg.inv(F), 1, 2)


def _complex_step_tangent(pk1, F: np.ndarray) -> np.ndarray:
    """dP/dF by complex-step differentiation (exact to round-off for analytic ``pk1``)."""
    F = np.asarray(F, dtype=np.float64)
    h = 1e-30
    out = np.empty((len(F), 3, 3, 3, 3))
    for k in range(3):
        for L in range(3):
            Fc = F.astype(np.complex128)
            Fc[:, k, L] += 1j * h
            out[:, :, :, k, L] = pk1(Fc).imag / h
    return out


class Material(ABC):
    """Base class: a hyperelastic (or small-strain) constitutive model.

    Subclasses implement :meth:`energy`, :meth:`pk1` and :meth:`tangent`.
    ``kind`` tells the assembler which compiled kernel evaluates the model in the
    per-frame path ("linear", "corotational", "neo_hookean" or "generic").
    """

    kind = "generic"

    @abstractmethod
    def energy(self, F: np.ndarray) -> np.ndarray:
        """Strain-energy density (k,) in J/m^3."""

    @abstractmethod
    def pk1(self, F: np.ndarray) -> np.ndarray:
        """First Piola-Kirchhoff stress (k, 3, 3) in Pa."""

    def tangent(self, F: np.ndarray) -> np.ndarray:
        """``dP/dF`` (k, 3, 3, 3, 3) in Pa."""
        return _complex_step_tangent(self.pk1, _as_F(F))

    def small_strain_lame(self) -> tuple[float, float]:
        """Lamé parameters of the model's linearisation at ``F = I`` (Pa)."""
        A = self.tangent(np.eye(3)[None])[0]
        mu = A[0, 1, 0, 1]
        lam = A[0, 0, 1, 1]
        return float(lam), float(mu)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class _Isotropic(Material):
    def __init__(self, E: float, nu: float):
        self.E = float(E)
        self.nu = float(nu)
        self._lam, self._mu = lame_parameters(self.E, self.nu)

    @property
    def lam(self) -> float:
        """First Lamé parameter (Pa)."""
        return self._lam

    @property
    def mu(self) -> float:
        """Shear modulus (Pa)."""
        return self._mu

    def small_strain_lame(self) -> tuple[float, float]:
        return self._lam, self._mu

    def _small_tangent(self, k: int) -> np.ndarray:
        lam, mu = self._lam, self._mu
        C = (lam * np.einsum("ij,kl->ijkl", _I3, _I3)
             + mu * (np.einsum("ik,jl->ijkl", _I3, _I3) + np.einsum("il,jk->ijkl", _I3, _I3)))
        return np.broadcast_to(C, (k, 3, 3, 3, 3)).copy()


class LinearElastic(_Isotropic):
    """Small-strain linear elasticity, ``sigma = lam tr(eps) I + 2 mu eps``.

    ``eps = sym(F) - I``. Not invariant under rotation: use it for small
    deformations only (and for verification against linear theory).

    Parameters
    ----------
    E : float
        Young's modulus (Pa).
    nu : float
        Poisson's ratio, in (-1, 0.5).

    Examples
    --------
    >>> import numpy as np
    >>> round(float(LinearElastic(1e3, 0.3).pk1(np.eye(3)[None] * 1.01)[0, 0, 0]), 6)
    25.0
    """

    kind = "linear"

    def _eps(self, F):
        F = _as_F(F)
        return 0.5 * (F + np.swapaxes(F, 1, 2)) - _I3

    def energy(self, F):
        e = self._eps(F)
        tr = np.trace(e, axis1=1, axis2=2)
        return self._mu * np.einsum("kij,kij->k", e, e) + 0.5 * self._lam * tr**2

    def pk1(self, F):
        e = self._eps(F)
        tr = np.trace(e, axis1=1, axis2=2)
        return 2 * self._mu * e + self._lam * tr[:, None, None] * _I3

    def tangent(self, F):
        return self._small_tangent(len(_as_F(F)))


class Corotational(_Isotropic):
    """Corotational linear elasticity: small strain measured in the element's rotated frame.

    With the polar decomposition ``F = R S``: ``eps = S - I``,
    ``W = mu eps:eps + lam/2 tr(eps)^2`` and ``P = R sigma(eps)``. A rigid
    rotation gives zero stress. :meth:`tangent` is the exact ``dP/dF``
    (including the rotation's derivative); the solver's per-frame assembly uses
    the usual stiffness-warping approximation ``R K0 R^T``.

    Parameters
    ----------
    E : float
        Young's modulus (Pa).
    nu : float
        Poisson's ratio.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.cos(0.5); s = np.sin(0.5)
    >>> Q = np.array([[[c, -s, 0], [s, c, 0], [0, 0, 1]]])
    >>> float(np.abs(Corotational(1e3, 0.4).pk1(Q)).max()) < 1e-9
    True
    """

    kind = "corotational"

    def _parts(self, F):
        F = _as_F(F)
        R = polar_rotation(F)
        S = np.swapaxes(R, 1, 2) @ F
        eps = 0.5 * (S + np.swapaxes(S, 1, 2)) - _I3
        tr = np.trace(eps, axis1=1, axis2=2)
        sig = 2 * self._mu * eps + self._lam * tr[:, None, None] * _I3
        return R, S, eps, tr, sig

    def energy(self, F):
        _, _, eps, tr, _ = self._parts(F)
        return (self._mu * np.einsum("kij,kij->k", eps, eps) + 0.5 * self._lam * tr**2).real

    def pk1(self, F):
        R, _, _, _, sig = self._parts(F)
        return R @ sig


class StVenantKirchhoff(_Isotropic):
    """St. Venant-Kirchhoff: ``S = lam tr(E) I + 2 mu E`` with Green-Lagrange ``E``.

    Rotation invariant, but softens and can invert under strong compression.

    Examples
    --------
    >>> import numpy as np
    >>> float(StVenantKirchhoff(1e3, 0.3).energy(np.eye(3)[None])[0])
    0.0
    """

    def _E(self, F):
        F = _as_F(F)
        return 0.5 * (np.swapaxes(F, 1, 2) @ F - _I3)

    def energy(self, F):
        E = self._E(F)
        tr = np.trace(E, axis1=1, axis2=2)
        return self._mu * np.einsum("kij,kij->k", E, E) + 0.5 * self._lam * tr**2

    def pk1(self, F):
        E = self._E(F)
        tr = np.trace(E, axis1=1, axis2=2)
        S = 2 * self._mu * E + self._lam * tr[:, None, None] * _I3
        return np.asarray(F) @ S

    def tangent(self, F):
        F = _as_F(F).astype(np.float64)
        E = self._E(F)
        tr = np.trace(E, axis1=1, axis2=2)
        S = 2 * self._mu * E + self._lam * tr[:, None, None] * _I3
        FFt = F @ np.swapaxes(F, 1, 2)
        return (np.einsum("ik,eJL->eiJkL", _I3, S)
                + self._lam * np.einsum("eiJ,ekL->eiJkL", F, F)
                + self._mu * (np.einsum("eik,JL->eiJkL", FFt, _I3) + np.einsum("eiL,ekJ->eiJkL", F, F)))


class NeoHookean(_Isotropic):
    """Compressible neo-Hookean: ``W = mu/2 (I1 - 3) - mu ln J + lam/2 (ln J)^2``.

    ``P = mu (F - F^-T) + lam ln J F^-T``. Reduces to linear elasticity with the
    same ``E`` and ``nu`` for small strains. Undefined for ``J <= 0`` (inverted
    elements): the energy is ``+inf`` there and the solver rejects such states.

    Parameters
    ----------
    E : float
        Small-strain Young's modulus (Pa).
    nu : float
        Small-strain Poisson's ratio (<= 0.45 recommended for P1, see module notes).

    Examples
    --------
    >>> import numpy as np
    >>> m = NeoHookean(E=1e4, nu=0.3)
    >>> round(float(m.pk1(np.diag([1.1, 1.0, 1.0])[None])[0, 0, 0]), 2)
    1234.14
    """

    kind = "neo_hookean"

    def energy(self, F):
        F = _as_F(F)
        J = np.linalg.det(F)
        I1 = np.einsum("kij,kij->k", F, F)
        with np.errstate(invalid="ignore", divide="ignore"):
            lnJ = np.log(np.where(J > 0, J, np.nan))
        W = 0.5 * self._mu * (I1 - 3) - self._mu * lnJ + 0.5 * self._lam * lnJ**2
        return np.where(J > 0, W, np.inf)

    def pk1(self, F):
        F = _as_F(F)
        J = np.linalg.det(F)
        FiT = _inv_T(F)
        lnJ = np.log(J)
        return self._mu * (F - FiT) + (self._lam * lnJ)[:, None, None] * FiT

    def tangent(self, F):
        F = _as_F(F).astype(np.float64)
        J = np.linalg.det(F)
        Fi = np.linalg.inv(F)
        lnJ = np.log(J)
        mu, lam = self._mu, self._lam
        # A_iJkL = mu d_ik d_JL + (mu - lam lnJ) Fi_Li Fi_Jk + lam Fi_Ji Fi_Lk
        return (mu * np.einsum("ik,JL->iJkL", _I3, _I3)[None]
                + (mu - lam * lnJ)[:, None, None, None, None] * np.einsum("eLi,eJk->eiJkL", Fi, Fi)
                + lam * np.einsum("eJi,eLk->eiJkL", Fi, Fi))


class MooneyRivlin(Material):
    """Compressible Mooney-Rivlin with isochoric invariants and a volumetric penalty.

    ``W = c10 (J^-2/3 I1 - 3) + c01 (J^-4/3 I2 - 3) + kappa/2 (J - 1)^2``.
    Small-strain shear modulus ``mu = 2 (c10 + c01)``, bulk modulus ``kappa``.

    Parameters
    ----------
    c10, c01 : float
        Mooney-Rivlin constants (Pa); ``c10 + c01 > 0``.
    kappa : float
        Bulk modulus (Pa). ``kappa = 2 mu (1 + nu) / (3 (1 - 2 nu))`` for a target
        Poisson ratio ``nu``.

    Examples
    --------
    >>> import numpy as np
    >>> m = MooneyRivlin(c10=300.0, c01=100.0, kappa=1e5)
    >>> float(np.abs(m.pk1(np.eye(3)[None])).max())
    0.0
    """

    def __init__(self, c10: float, c01: float, kappa: float):
        self.c10 = float(c10)
        self.c01 = float(c01)
        self.kappa = float(kappa)
        if not (np.isfinite(self.c10) and np.isfinite(self.c01) and self.c10 + self.c01 > 0
                and self.c10 >= 0 and self.c01 >= 0):
            raise MaterialError(f"Mooney-Rivlin needs c10 >= 0, c01 >= 0 and c10 + c01 > 0 (Pa);"
                                f" got c10={c10!r}, c01={c01!r}")
        if not (np.isfinite(self.kappa) and self.kappa > 0):
            raise MaterialError(f"Mooney-Rivlin bulk modulus kappa must be > 0 Pa, got {kappa!r}")

    def small_strain_lame(self) -> tuple[float, float]:
        mu = 2 * (self.c10 + self.c01)
        return self.kappa - 2.0 * mu / 3.0, mu

    def _inv(self, F):
        C = np.swapaxes(F, 1, 2) @ F
        I1 = np.trace(C, axis1=1, axis2=2)
        I2 = 0.5 * (I1**2 - np.einsum("kij,kji->k", C, C))
        J = np.linalg.det(F)
        return C, I1, I2, J

    def energy(self, F):
        F = _as_F(F)
        _, I1, I2, J = self._inv(F)
        with np.errstate(invalid="ignore", divide="ignore"):
            W = (self.c10 * (np.cbrt(J) ** -2 * I1 - 3) + self.c01 * (np.cbrt(J) ** -4 * I2 - 3)
                 + 0.5 * self.kappa * (J - 1) ** 2)
        return np.where(J > 0, W, np.inf)

    def pk1(self, F):
        F = _as_F(F)
        C, I1, I2, J = self._inv(F)
        FiT = _inv_T(F)
        j23 = J ** (-2.0 / 3.0)
        j43 = j23 * j23
        e = lambda a: a[:, None, None]  # noqa: E731
        return (self.c10 * e(j23) * (2 * F - e(2.0 / 3.0 * I1) * FiT)
                + self.c01 * e(j43) * (2 * (e(I1) * F - F @ C) - e(4.0 / 3.0 * I2) * FiT)
                + e(self.kappa * (J - 1) * J) * FiT)
