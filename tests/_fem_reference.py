"""Test-local reference materials (closed-form, independent of organsim.fem.materials).

Used by the P2 and fields tests so they do not depend on the solver core, and as an
independent check of it in the verification tests.
"""

from __future__ import annotations

import numpy as np


class NeoHookeRef:
    """W = mu/2 (I1 - 3) - mu ln J + lam/2 (ln J)^2 (Ciarlet/Simo compressible neo-Hookean)."""

    def __init__(self, E, nu):
        self.mu = E / (2 * (1 + nu))
        self.lam = E * nu / ((1 + nu) * (1 - 2 * nu))

    def energy(self, F):
        J = np.linalg.det(F)
        I1 = np.einsum("kij,kij->k", F, F)
        return 0.5 * self.mu * (I1 - 3) - self.mu * np.log(J) + 0.5 * self.lam * np.log(J) ** 2

    def pk1(self, F):
        J = np.linalg.det(F)
        FinvT = np.swapaxes(np.linalg.inv(F), 1, 2)
        return self.mu * (F - FinvT) + self.lam * np.log(J)[:, None, None] * FinvT

    def tangent(self, F):
        J = np.linalg.det(F)
        Fi = np.linalg.inv(F)  # Fi[J, i]
        lnJ = np.log(J)
        I = np.eye(3)
        A = self.mu * np.einsum("ik,JL->iJkL", I, I)[None]
        A = A + (self.mu - self.lam * lnJ)[:, None, None, None, None] * np.einsum("zJk,zLi->ziJkL", Fi, Fi)
        A = A + self.lam * np.einsum("zJi,zLk->ziJkL", Fi, Fi)
        return A


class LinearRef:
    """Small-strain linear elasticity as a material of F: P = lam tr(eps) I + 2 mu eps."""

    def __init__(self, E, nu):
        self.mu = E / (2 * (1 + nu))
        self.lam = E * nu / ((1 + nu) * (1 - 2 * nu))

    def pk1(self, F):
        eps = 0.5 * (F + np.swapaxes(F, 1, 2)) - np.eye(3)
        return self.lam * np.trace(eps, axis1=1, axis2=2)[:, None, None] * np.eye(3) + 2 * self.mu * eps

    def energy(self, F):
        eps = 0.5 * (F + np.swapaxes(F, 1, 2)) - np.eye(3)
        tr = np.trace(eps, axis1=1, axis2=2)
        return 0.5 * self.lam * tr ** 2 + self.mu * np.einsum("kij,kij->k", eps, eps)

    def tangent(self, F):
        I = np.eye(3)
        A = (self.lam * np.einsum("ij,kl->ijkl", I, I)
             + self.mu * (np.einsum("ik,jl->ijkl", I, I) + np.einsum("il,jk->ijkl", I, I)))
        return np.broadcast_to(A, (len(F), 3, 3, 3, 3)).copy()
