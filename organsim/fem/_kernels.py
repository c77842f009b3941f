"""Compiled (numba) per-frame kernels of the P1 finite-element core.

Each kernel walks a subset of elements (one material group), computes the
element quantities in registers and scatter-adds them into the global nodal
force array ``f`` (n, 3) and the global block-sparse stiffness data
``K`` (nnzb, 3, 3) through the precomputed element-to-block map
``blockmap`` (m, 4, 4). Nothing here allocates per element.

Kernels are compiled with ``cache=True``; the first call of a fresh install
compiles them (a few seconds), later processes load them from the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["bsr_matvec", "polar3", "corot_kernel", "neohooke_kernel", "generic_kernel",
           "min_jacobian",
           "bsr_gather", "lumped_diag_add", "corot_kernel_par", "neohooke_kernel_par", "min_jacobian_par",
           "nodal_rotations_par"]


@njit(cache=True, fastmath=False, inline="always")
def _inv3(a, out):
    det = (a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1])
           - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
           + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]))
    if det == 0.0:
        # a flat element: no inverse (callers treat det <= 0 as inverted); never divide by zero
        for i in range(3):
            for j in range(3):
                out[i, j] = 0.0
        return 0.0
    idet = 1.0 / det
    out[0, 0] = (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]) * idet
    out[0, 1] = (a[0, 2] * a[2, 1] - a[0, 1] * a[2, 2]) * idet
    out[0, 2] = (a[0, 1] * a[1, 2] - a[0, 2] * a[1, 1]) * idet
    out[1, 0] = (a[1, 2] * a[2, 0] - a[1, 0] * a[2, 2]) * idet
    out[1, 1] = (a[0, 0] * a[2, 2] - a[0, 2] * a[2, 0]) * idet
    out[1, 2] = (a[0, 2] * a[1, 0] - a[0, 0] * a[1, 2]) * idet
    out[2, 0] = (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]) * idet
    out[2, 1] = (a[0, 1] * a[2, 0] - a[0, 0] * a[2, 1]) * idet
    out[2, 2] = (a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]) * idet
    return det


@njit(cache=True, inline="always")
def _cofactors(a00, a01, a02, a10, a11, a12, a20, a21, a22):
    """The cofactor matrix of a 3x3 matrix, row by row (``cof(A) = det(A) A^-T``)."""
    return (a11 * a22 - a12 * a21, a12 * a20 - a10 * a22, a10 * a21 - a11 * a20,
            a02 * a21 - a01 * a22, a00 * a22 - a02 * a20, a01 * a20 - a00 * a21,
            a01 * a12 - a02 * a11, a02 * a10 - a00 * a12, a00 * a11 - a01 * a10)


@njit(cache=True, inline="always")
def _polar_scalar(a00, a01, a02, a10, a11, a12, a20, a21, a22):
    """Scaled Newton iteration ``R <- (g R + cof(R) / (g det R)) / 2`` on scalars.

    Returns the nine entries of the rotation and ``det`` of the input. The
    iteration converges quadratically; it stops once an update changes ``R`` by
    less than 1e-9, which leaves an error of order 1e-18. The scaling
    ``g = |det R|^(-1/3)`` (first two iterations) is taken only where ``|det R|`` is
    outside [1/2, 2]: nearer 1 it saves no iteration (measured on the patient liver:
    3.15 iterations without it, 3.04 with) and its cube root cost more than the rest
    of the decomposition (3.6 ms against 1.6 ms per 41k tets). Scaling does not change
    the limit, only how fast it is reached.
    """
    det0 = 0.0
    for it in range(40):
        c00, c01, c02, c10, c11, c12, c20, c21, c22 = _cofactors(a00, a01, a02, a10, a11, a12, a20, a21, a22)
        d = a00 * c00 + a01 * c01 + a02 * c02
        if it == 0:
            det0 = d
        if not (d != 0.0 and np.isfinite(d)):
            return a00, a01, a02, a10, a11, a12, a20, a21, a22, 0.0
        ad = abs(d)
        g = ad ** (-1.0 / 3.0) if it < 2 and (ad < 0.5 or ad > 2.0) else 1.0
        hg = 0.5 * g
        hi = 0.5 / (g * d)
        n00 = hg * a00 + hi * c00
        n01 = hg * a01 + hi * c01
        n02 = hg * a02 + hi * c02
        n10 = hg * a10 + hi * c10
        n11 = hg * a11 + hi * c11
        n12 = hg * a12 + hi * c12
        n20 = hg * a20 + hi * c20
        n21 = hg * a21 + hi * c21
        n22 = hg * a22 + hi * c22
        delta = max(abs(n00 - a00), abs(n01 - a01), abs(n02 - a02), abs(n10 - a10), abs(n11 - a11),
                    abs(n12 - a12), abs(n20 - a20), abs(n21 - a21), abs(n22 - a22))
        a00, a01, a02, a10, a11, a12, a20, a21, a22 = n00, n01, n02, n10, n11, n12, n20, n21, n22
        if delta < 1e-9:
            break
    return a00, a01, a02, a10, a11, a12, a20, a21, a22, det0


@njit(cache=True, nogil=True)
def polar3(F, R, tmp):
    """Rotation factor of ``F`` (3, 3) into ``R``; returns ``det F`` (``tmp`` unused)."""
    r = _polar_scalar(F[0, 0], F[0, 1], F[0, 2], F[1, 0], F[1, 1], F[1, 2], F[2, 0], F[2, 1], F[2, 2])
    for i in range(3):
        for j in range(3):
            R[i, j] = r[3 * i + j]
    return r[9]


@njit(cache=True, inline="always")
def polar3_warm(F, Rprev, R, Ft, Rt, tmp):
    """Polar rotation of ``F`` warm-started from a previous rotation ``Rprev``.

    Runs the iteration on ``Rprev^T F`` (close to symmetric when the rotation
    changed little) and returns ``R = Rprev polar(Rprev^T F)`` and ``det F``.
    """
    for i in range(3):
        for j in range(3):
            Ft[i, j] = Rprev[0, i] * F[0, j] + Rprev[1, i] * F[1, j] + Rprev[2, i] * F[2, j]
    r = _polar_scalar(Ft[0, 0], Ft[0, 1], Ft[0, 2], Ft[1, 0], Ft[1, 1], Ft[1, 2], Ft[2, 0], Ft[2, 1], Ft[2, 2])
    for i in range(3):
        for j in range(3):
            R[i, j] = Rprev[i, 0] * r[j] + Rprev[i, 1] * r[3 + j] + Rprev[i, 2] * r[6 + j]
    return r[9]


@njit(cache=True, inline="always")
def _pair_blocks(K, blk, blt, V, c_ab, c_ba, d, a0, a1, a2, b0, b1, b2, same):
    """Add ``V (c_ab u_a u_b^T + c_ba u_b u_a^T + d I)`` to block ``K[blk]`` and its transpose to
    ``K[blt]`` (only the first when ``same``: a diagonal block), with ``u_a = (a0, a1, a2)``,
    ``u_b = (b0, b1, b2)`` and ``d = m (g_a . g_b)``; on scalars (same arithmetic, in the same
    order, as the loop it replaced)."""
    v00 = (c_ab * a0 * b0 + c_ba * b0 * a0 + d) * V
    v01 = (c_ab * a0 * b1 + c_ba * b0 * a1) * V
    v02 = (c_ab * a0 * b2 + c_ba * b0 * a2) * V
    v10 = (c_ab * a1 * b0 + c_ba * b1 * a0) * V
    v11 = (c_ab * a1 * b1 + c_ba * b1 * a1 + d) * V
    v12 = (c_ab * a1 * b2 + c_ba * b1 * a2) * V
    v20 = (c_ab * a2 * b0 + c_ba * b2 * a0) * V
    v21 = (c_ab * a2 * b1 + c_ba * b2 * a1) * V
    v22 = (c_ab * a2 * b2 + c_ba * b2 * a2 + d) * V
    K[blk, 0, 0] += v00
    K[blk, 0, 1] += v01
    K[blk, 0, 2] += v02
    K[blk, 1, 0] += v10
    K[blk, 1, 1] += v11
    K[blk, 1, 2] += v12
    K[blk, 2, 0] += v20
    K[blk, 2, 1] += v21
    K[blk, 2, 2] += v22
    if not same:
        K[blt, 0, 0] += v00
        K[blt, 1, 0] += v01
        K[blt, 2, 0] += v02
        K[blt, 0, 1] += v10
        K[blt, 1, 1] += v11
        K[blt, 2, 1] += v12
        K[blt, 0, 2] += v20
        K[blt, 1, 2] += v21
        K[blt, 2, 2] += v22


@njit(cache=True, inline="always")
def _add_symmetric_blocks(K, blockmap, grads, e, V, c_ab, c_ba, u, m):
    """Add tet ``e``'s stiffness blocks ``V (c_ab u_a u_b^T + c_ba u_b u_a^T + m (g_a . g_b) I)``
    (rows i, columns k; ``u`` (4, 3) per-node vectors, ``grads`` the shape gradients) to ``K``
    at the blocks ``blockmap[e]``: the form both the corotational and the neo-Hookean
    tangents take. Computed once per node pair (a <= b), ``K_ba = K_ab^T``."""
    for a in range(4):
        a0, a1, a2 = u[a, 0], u[a, 1], u[a, 2]
        ga0, ga1, ga2 = grads[e, a, 0], grads[e, a, 1], grads[e, a, 2]
        for b in range(a, 4):
            dot = ga0 * grads[e, b, 0] + ga1 * grads[e, b, 1] + ga2 * grads[e, b, 2]
            _pair_blocks(K, blockmap[e, a, b], blockmap[e, b, a], V, c_ab, c_ba, m * dot,
                         a0, a1, a2, u[b, 0], u[b, 1], u[b, 2], b == a)


@njit(cache=True, inline="always")
def _deformation_gradient(x, tets, grads, e, F):
    """Fill ``F`` (3, 3) with tet ``e``'s deformation gradient ``sum_a x_a grad_a^T`` at ``x`` (n, 3)."""
    for i in range(3):
        for j in range(3):
            s = 0.0
            for a in range(4):
                s += x[tets[e, a], i] * grads[e, a, j]
            F[i, j] = s


@njit(cache=True, inline="always")
def _tet_scalars(x, tets, grads, e):
    """Tet ``e``'s node ids, shape gradients and ``sum_a x_a grad_a^T`` (a deformation gradient
    for positions ``x``, a displacement gradient for a field), as scalars:
    ``(n0..n3, g00..g32, F00..F22)`` (``g{a}{j}`` is ``grads[e, a, j]``, ``F{i}{j}`` row i, column j)."""
    n0 = tets[e, 0]
    n1 = tets[e, 1]
    n2 = tets[e, 2]
    n3 = tets[e, 3]
    g00, g01, g02 = grads[e, 0, 0], grads[e, 0, 1], grads[e, 0, 2]
    g10, g11, g12 = grads[e, 1, 0], grads[e, 1, 1], grads[e, 1, 2]
    g20, g21, g22 = grads[e, 2, 0], grads[e, 2, 1], grads[e, 2, 2]
    g30, g31, g32 = grads[e, 3, 0], grads[e, 3, 1], grads[e, 3, 2]
    return (n0, n1, n2, n3,
            g00, g01, g02, g10, g11, g12,
            g20, g21, g22, g30, g31, g32,
            x[n0, 0] * g00 + x[n1, 0] * g10 + x[n2, 0] * g20 + x[n3, 0] * g30,
            x[n0, 0] * g01 + x[n1, 0] * g11 + x[n2, 0] * g21 + x[n3, 0] * g31,
            x[n0, 0] * g02 + x[n1, 0] * g12 + x[n2, 0] * g22 + x[n3, 0] * g32,
            x[n0, 1] * g00 + x[n1, 1] * g10 + x[n2, 1] * g20 + x[n3, 1] * g30,
            x[n0, 1] * g01 + x[n1, 1] * g11 + x[n2, 1] * g21 + x[n3, 1] * g31,
            x[n0, 1] * g02 + x[n1, 1] * g12 + x[n2, 1] * g22 + x[n3, 1] * g32,
            x[n0, 2] * g00 + x[n1, 2] * g10 + x[n2, 2] * g20 + x[n3, 2] * g30,
            x[n0, 2] * g01 + x[n1, 2] * g11 + x[n2, 2] * g21 + x[n3, 2] * g31,
            x[n0, 2] * g02 + x[n1, 2] * g12 + x[n2, 2] * g22 + x[n3, 2] * g32)


@njit(cache=True, inline="always")
def _scatter_forces(f, n0, n1, n2, n3,
                    g00, g01, g02, g10, g11, g12,
                    g20, g21, g22, g30, g31, g32,
                    P00, P01, P02, P10, P11, P12, P20, P21, P22):
    """Add ``P grad_a`` (``P`` the volume-weighted first Piola stress, N/m^2 * m^3) to ``f`` at the
    four nodes ``n0..n3`` of a tet with shape gradients ``g{a}{j}``."""
    f[n0, 0] += P00 * g00 + P01 * g01 + P02 * g02
    f[n0, 1] += P10 * g00 + P11 * g01 + P12 * g02
    f[n0, 2] += P20 * g00 + P21 * g01 + P22 * g02
    f[n1, 0] += P00 * g10 + P01 * g11 + P02 * g12
    f[n1, 1] += P10 * g10 + P11 * g11 + P12 * g12
    f[n1, 2] += P20 * g10 + P21 * g11 + P22 * g12
    f[n2, 0] += P00 * g20 + P01 * g21 + P02 * g22
    f[n2, 1] += P10 * g20 + P11 * g21 + P12 * g22
    f[n2, 2] += P20 * g20 + P21 * g21 + P22 * g22
    f[n3, 0] += P00 * g30 + P01 * g31 + P02 * g32
    f[n3, 1] += P10 * g30 + P11 * g31 + P12 * g32
    f[n3, 2] += P20 * g30 + P21 * g31 + P22 * g32


@njit(cache=True, inline="always")
def _corot_forces(q, x, tets, grads, vols, lam, mu, elems, f, rotate, Rcache, R, S):
    """Forces of one element of :func:`corot_kernel` (position ``q`` in ``elems``), on scalars.

    Adds ``V R sigma(sym(R^T F) - I) grad N_a`` to ``f`` at the element's four nodes,
    updates ``Rcache[e]`` (not where ``det F <= 0``), writes the rotation to ``R`` (3, 3)
    and ``sym(R^T F)`` to ``S`` (3, 3) for the stiffness, and returns ``det F``. Every
    intermediate is a local scalar (the same sums as array code, in registers: on the
    41k-tet patient liver 1.3 ms against 5.2 ms for a linear force pass).
    """
    e = elems[q]
    V = vols[e]
    la = lam[q]
    m = mu[q]
    (n0, n1, n2, n3,
     g00, g01, g02, g10, g11, g12,
     g20, g21, g22, g30, g31, g32,
     F00, F01, F02, F10, F11, F12, F20, F21, F22) = _tet_scalars(x, tets, grads, e)
    detF = (F00 * (F11 * F22 - F12 * F21) - F01 * (F10 * F22 - F12 * F20)
            + F02 * (F10 * F21 - F11 * F20))
    if rotate:
        p00, p01, p02 = Rcache[e, 0, 0], Rcache[e, 0, 1], Rcache[e, 0, 2]
        p10, p11, p12 = Rcache[e, 1, 0], Rcache[e, 1, 1], Rcache[e, 1, 2]
        p20, p21, p22 = Rcache[e, 2, 0], Rcache[e, 2, 1], Rcache[e, 2, 2]
        if detF > 0.0:
            # warm start: R = Rprev polar(Rprev^T F) (Rprev^T F is near symmetric)
            r = _polar_scalar(p00 * F00 + p10 * F10 + p20 * F20, p00 * F01 + p10 * F11 + p20 * F21,
                              p00 * F02 + p10 * F12 + p20 * F22, p01 * F00 + p11 * F10 + p21 * F20,
                              p01 * F01 + p11 * F11 + p21 * F21, p01 * F02 + p11 * F12 + p21 * F22,
                              p02 * F00 + p12 * F10 + p22 * F20, p02 * F01 + p12 * F11 + p22 * F21,
                              p02 * F02 + p12 * F12 + p22 * F22)
            R00 = p00 * r[0] + p01 * r[3] + p02 * r[6]
            R01 = p00 * r[1] + p01 * r[4] + p02 * r[7]
            R02 = p00 * r[2] + p01 * r[5] + p02 * r[8]
            R10 = p10 * r[0] + p11 * r[3] + p12 * r[6]
            R11 = p10 * r[1] + p11 * r[4] + p12 * r[7]
            R12 = p10 * r[2] + p11 * r[5] + p12 * r[8]
            R20 = p20 * r[0] + p21 * r[3] + p22 * r[6]
            R21 = p20 * r[1] + p21 * r[4] + p22 * r[7]
            R22 = p20 * r[2] + p21 * r[5] + p22 * r[8]
            Rcache[e, 0, 0], Rcache[e, 0, 1], Rcache[e, 0, 2] = R00, R01, R02
            Rcache[e, 1, 0], Rcache[e, 1, 1], Rcache[e, 1, 2] = R10, R11, R12
            Rcache[e, 2, 0], Rcache[e, 2, 1], Rcache[e, 2, 2] = R20, R21, R22
        else:
            # inverted: the polar factor is a reflection. Keep the element's last rotation
            # (of a state that was not inverted); in that frame it acts as a linear element,
            # which pushes back against the inversion instead of failing
            R00, R01, R02, R10, R11, R12, R20, R21, R22 = p00, p01, p02, p10, p11, p12, p20, p21, p22
    else:
        R00, R01, R02, R10, R11, R12, R20, R21, R22 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0
    # S = sym(R^T F); strain eps = S - I; stress sigma = lam tr(eps) I + 2 mu eps
    S00 = R00 * F00 + R10 * F10 + R20 * F20
    S11 = R01 * F01 + R11 * F11 + R21 * F21
    S22 = R02 * F02 + R12 * F12 + R22 * F22
    S01 = 0.5 * ((R00 * F01 + R10 * F11 + R20 * F21) + (R01 * F00 + R11 * F10 + R21 * F20))
    S02 = 0.5 * ((R00 * F02 + R10 * F12 + R20 * F22) + (R02 * F00 + R12 * F10 + R22 * F20))
    S12 = 0.5 * ((R01 * F02 + R11 * F12 + R21 * F22) + (R02 * F01 + R12 * F11 + R22 * F21))
    lt = la * (S00 + S11 + S22 - 3.0)
    m2 = 2.0 * m
    s00 = m2 * (S00 - 1.0) + lt
    s11 = m2 * (S11 - 1.0) + lt
    s22 = m2 * (S22 - 1.0) + lt
    s01 = m2 * S01
    s02 = m2 * S02
    s12 = m2 * S12
    # V P = V R sigma; force_a = V P grad_a
    P00 = V * (R00 * s00 + R01 * s01 + R02 * s02)
    P01 = V * (R00 * s01 + R01 * s11 + R02 * s12)
    P02 = V * (R00 * s02 + R01 * s12 + R02 * s22)
    P10 = V * (R10 * s00 + R11 * s01 + R12 * s02)
    P11 = V * (R10 * s01 + R11 * s11 + R12 * s12)
    P12 = V * (R10 * s02 + R11 * s12 + R12 * s22)
    P20 = V * (R20 * s00 + R21 * s01 + R22 * s02)
    P21 = V * (R20 * s01 + R21 * s11 + R22 * s12)
    P22 = V * (R20 * s02 + R21 * s12 + R22 * s22)
    _scatter_forces(f, n0, n1, n2, n3,
                    g00, g01, g02, g10, g11, g12,
                    g20, g21, g22, g30, g31, g32,
                    P00, P01, P02, P10, P11, P12, P20, P21, P22)
    R[0, 0], R[0, 1], R[0, 2] = R00, R01, R02
    R[1, 0], R[1, 1], R[1, 2] = R10, R11, R12
    R[2, 0], R[2, 1], R[2, 2] = R20, R21, R22
    S[0, 0], S[1, 1], S[2, 2] = S00, S11, S22
    S[0, 1], S[1, 0], S[0, 2], S[2, 0], S[1, 2], S[2, 1] = S01, S01, S02, S02, S12, S12
    return detF


@njit(cache=True, inline="always")
def _corot_element(q, x, tets, grads, vols, lam, mu, elems, blockmap, f, K, rotate, Rcache, exact,
                   R, S, Sg, Gi, g):
    """Forces and stiffness of one element of :func:`corot_kernel` (position ``q`` in ``elems``);
    returns its ``det F``. (A force-only pass calls :func:`_corot_forces` alone: inlined beside
    the stiffness code, even skipped, it ran three times slower.)"""
    detF = _corot_forces(q, x, tets, grads, vols, lam, mu, elems, f, rotate, Rcache, R, S)
    e = elems[q]
    V = vols[e]
    la = lam[q]
    m = mu[q]
    tr = S[0, 0] + S[1, 1] + S[2, 2] - 3.0
    exact_e = exact and rotate and detF > 0.0   # the rotation's derivative (fixed R when inverted)
    if exact_e:
        # G = (tr(S) I - S)^-1 with S = sym(R^T F)
        for i in range(3):
            for j in range(3):
                Sg[i, j] = -S[i, j] + ((tr + 3.0) if i == j else 0.0)
        _inv3(Sg, Gi)
    for a in range(4):
        for i in range(3):
            s = 0.0
            for j in range(3):
                s += R[i, j] * grads[e, a, j]
            g[a, i] = s
    if exact_e:
        c = la * tr - 2.0 * m
        for b in range(4):
            gb0 = grads[e, b, 0]
            gb1 = grads[e, b, 1]
            gb2 = grads[e, b, 2]
            for k in range(3):
                r0 = R[k, 0]
                r1 = R[k, 1]
                r2 = R[k, 2]
                rg = r0 * gb0 + r1 * gb1 + r2 * gb2
                # w = G (g_b x r_k)
                c0 = gb1 * r2 - gb2 * r1
                c1 = gb2 * r0 - gb0 * r2
                c2 = gb0 * r1 - gb1 * r0
                w0 = Gi[0, 0] * c0 + Gi[0, 1] * c1 + Gi[0, 2] * c2
                w1 = Gi[1, 0] * c0 + Gi[1, 1] * c1 + Gi[1, 2] * c2
                w2 = Gi[2, 0] * c0 + Gi[2, 1] * c1 + Gi[2, 2] * c2
                for a in range(4):
                    ga0 = grads[e, a, 0]
                    ga1 = grads[e, a, 1]
                    ga2 = grads[e, a, 2]
                    q0 = w1 * ga2 - w2 * ga1
                    q1 = w2 * ga0 - w0 * ga2
                    q2 = w0 * ga1 - w1 * ga0
                    blk = blockmap[e, a, b]
                    dot = ga0 * gb0 + ga1 * gb1 + ga2 * gb2
                    for i in range(3):
                        v = la * rg * g[a, i] + c * (R[i, 0] * q0 + R[i, 1] * q1 + R[i, 2] * q2)
                        if i == k:
                            v += 2.0 * m * dot
                        K[blk, i, k] += V * v
        return detF
    _add_symmetric_blocks(K, blockmap, grads, e, V, la, m, g, m)
    return detF


@njit(cache=True, nogil=True)
def corot_kernel(x, tets, grads, vols, lam, mu, elems, blockmap, f, K, want_K, rotate, Rcache, exact=False):
    """Corotational (``rotate``) or linear small-strain forces and stiffness.

    Force of element e on its node a: ``V R sigma(S - I) grad N_a`` with ``F = R S``;
    stiffness block ``R K0_ab R^T``. With ``rotate=False``, ``R = I`` and the force is
    ``K0 (x - X)`` (small-strain linear elasticity). ``Rcache`` (m, 3, 3) holds
    each element's last rotation: it warm-starts the polar decomposition and is
    updated in place. With ``exact`` the stiffness is the consistent tangent
    including the rotation's derivative,
    ``dP = 2 mu dF + lam tr(R^T dF) R + (lam tr(S - I) - 2 mu) dR`` with
    ``dR = R [w]x``, ``w = (tr(S) I - S)^-1 (2 axial(skew(R^T dF)))``.
    ``Rcache`` is updated only for elements with ``det F > 0``; an inverted element
    (``det F <= 0``, where the polar factor is a reflection) keeps its last rotation and
    acts as a linear element in that frame, which drives it back out of inversion.
    Returns the minimum of ``det F`` over the elements.
    """
    R = np.empty((3, 3))
    S = np.empty((3, 3))
    Sg = np.empty((3, 3))
    Gi = np.empty((3, 3))
    g = np.empty((4, 3))
    minJ = np.inf
    if not want_K:
        for q in range(elems.shape[0]):
            detF = _corot_forces(q, x, tets, grads, vols, lam, mu, elems, f, rotate, Rcache, R, S)
            if detF < minJ:
                minJ = detF
        return minJ
    for q in range(elems.shape[0]):
        detF = _corot_element(q, x, tets, grads, vols, lam, mu, elems, blockmap, f, K, rotate, Rcache,
                              exact, R, S, Sg, Gi, g)
        if detF < minJ:
            minJ = detF
    return minJ


@njit(cache=True, inline="always")
def _neohooke_forces(q, x, tets, grads, vols, lam, mu, elems, f, Fi):
    """Forces of one element of :func:`neohooke_kernel` (position ``q`` in ``elems``), on scalars.

    Adds ``V P grad_a`` with ``P = mu F + (lam ln J - mu) F^-T`` to ``f`` at the element's nodes,
    writes ``F^-1`` to ``Fi`` (3, 3) for the stiffness and returns ``J`` (adding nothing when
    ``J <= 0`` or NaN). Every intermediate is a local scalar (as in :func:`_corot_forces`).
    """
    e = elems[q]
    (n0, n1, n2, n3,
     g00, g01, g02, g10, g11, g12,
     g20, g21, g22, g30, g31, g32,
     F00, F01, F02, F10, F11, F12, F20, F21, F22) = _tet_scalars(x, tets, grads, e)
    # cofactors: F^-T = C / J
    C00, C01, C02, C10, C11, C12, C20, C21, C22 = _cofactors(F00, F01, F02, F10, F11, F12, F20, F21, F22)
    J = F00 * C00 + F01 * C01 + F02 * C02
    if not (J > 0.0):
        return J
    iJ = 1.0 / J
    Fi[0, 0], Fi[0, 1], Fi[0, 2] = C00 * iJ, C10 * iJ, C20 * iJ
    Fi[1, 0], Fi[1, 1], Fi[1, 2] = C01 * iJ, C11 * iJ, C21 * iJ
    Fi[2, 0], Fi[2, 1], Fi[2, 2] = C02 * iJ, C12 * iJ, C22 * iJ
    V = vols[e]
    m = mu[q]
    c = (lam[q] * np.log(J) - m) * iJ
    P00 = V * (m * F00 + c * C00)
    P01 = V * (m * F01 + c * C01)
    P02 = V * (m * F02 + c * C02)
    P10 = V * (m * F10 + c * C10)
    P11 = V * (m * F11 + c * C11)
    P12 = V * (m * F12 + c * C12)
    P20 = V * (m * F20 + c * C20)
    P21 = V * (m * F21 + c * C21)
    P22 = V * (m * F22 + c * C22)
    _scatter_forces(f, n0, n1, n2, n3,
                    g00, g01, g02, g10, g11, g12,
                    g20, g21, g22, g30, g31, g32,
                    P00, P01, P02, P10, P11, P12, P20, P21, P22)
    return J


@njit(cache=True, inline="always")
def _neohooke_element(q, x, tets, grads, vols, lam, mu, elems, blockmap, f, K, Fi, h):
    """Forces and stiffness of one element of :func:`neohooke_kernel` (position ``q`` in ``elems``);
    returns its ``J`` (and adds nothing when ``J <= 0`` or NaN). Force-only passes call
    :func:`_neohooke_forces` alone."""
    J = _neohooke_forces(q, x, tets, grads, vols, lam, mu, elems, f, Fi)
    if not (J > 0.0):
        return J
    e = elems[q]
    la = lam[q]
    # h_a = F^-T grad_a (spatial gradient, times J-free)
    for a in range(4):
        for i in range(3):
            h[a, i] = Fi[0, i] * grads[e, a, 0] + Fi[1, i] * grads[e, a, 1] + Fi[2, i] * grads[e, a, 2]
    _add_symmetric_blocks(K, blockmap, grads, e, vols[e], la, mu[q] - la * np.log(J), h, mu[q])
    return J


@njit(cache=True, nogil=True)
def neohooke_kernel(x, tets, grads, vols, lam, mu, elems, blockmap, f, K, want_K):
    """Compressible neo-Hookean forces and consistent stiffness.

    ``W = mu/2 (I1 - 3) - mu ln J + lam/2 (ln J)^2``;
    ``P = mu (F - F^-T) + lam ln J F^-T``. Returns the minimum ``J``; when an
    element has ``J <= 0`` the kernel stops early and returns that value.
    """
    Fi = np.empty((3, 3))
    h = np.empty((4, 3))
    minJ = np.inf
    for q in range(elems.shape[0]):
        if want_K:
            J = _neohooke_element(q, x, tets, grads, vols, lam, mu, elems, blockmap, f, K, Fi, h)
        else:
            J = _neohooke_forces(q, x, tets, grads, vols, lam, mu, elems, f, Fi)
        if not (J > 0.0):
            return J
        if J < minJ:
            minJ = J
    return minJ


@njit(cache=True, nogil=True)
def generic_kernel(P, A, tets, grads, vols, elems, blockmap, f, K, want_K):
    """Scatter forces ``V P grad_a`` and stiffness ``V A_iJkL grad_aJ grad_bL``.

    ``P`` (k, 3, 3) and ``A`` (k, 3, 3, 3, 3) are the material's first
    Piola-Kirchhoff stress and tangent for the k elements in ``elems``.
    """
    for q in range(elems.shape[0]):
        e = elems[q]
        V = vols[e]
        for a in range(4):
            na = tets[e, a]
            for i in range(3):
                s = 0.0
                for j in range(3):
                    s += P[q, i, j] * grads[e, a, j]
                f[na, i] += V * s
        if want_K:
            for a in range(4):
                for b in range(4):
                    blk = blockmap[e, a, b]
                    for i in range(3):
                        for k in range(3):
                            s = 0.0
                            for J in range(3):
                                gJ = grads[e, a, J]
                                for L in range(3):
                                    s += A[q, i, J, k, L] * gJ * grads[e, b, L]
                            K[blk, i, k] += V * s


@njit(cache=True, inline="always")
def _det_F(x, tets, grads, e):
    """``det F`` of tet ``e`` at positions ``x``, on scalars."""
    (n0, n1, n2, n3,
     g00, g01, g02, g10, g11, g12,
     g20, g21, g22, g30, g31, g32,
     F00, F01, F02, F10, F11, F12, F20, F21, F22) = _tet_scalars(x, tets, grads, e)
    return (F00 * (F11 * F22 - F12 * F21)
            - F01 * (F10 * F22 - F12 * F20)
            + F02 * (F10 * F21 - F11 * F20))


@njit(cache=True, nogil=True)
def min_jacobian(x, tets, grads):
    """Smallest ``det F`` over all elements (negative or zero: an element inverted)."""
    minJ = np.inf
    for e in range(tets.shape[0]):
        d = _det_F(x, tets, grads, e)
        if not (d > -np.inf):
            return np.nan
        if d < minJ:
            minJ = d
    return minJ


@njit(cache=True, nogil=True)
def bsr_gather(K, blocks, cK, M, cM, out):
    """``out[q] = cK * K[blocks[q]] + cM * M[blocks[q]]`` for the free-node sub-pattern."""
    for q in range(blocks.shape[0]):
        b = blocks[q]
        for i in range(3):
            for j in range(3):
                out[q, i, j] = cK * K[b, i, j] + cM * M[b, i, j]


@njit(cache=True, nogil=True)
def lumped_diag_add(K, diag_blocks, mass, c):
    """Add ``c * mass[node]`` to the diagonal of each node's diagonal block."""
    for n in range(diag_blocks.shape[0]):
        b = diag_blocks[n]
        for i in range(3):
            K[b, i, i] += c * mass[n]


# ----------------------------------------------------------------- vector ops
# Conjugate-gradient vector updates without BLAS: numpy's multithreaded BLAS
# spins threads on every 1-D dot product, which on a loaded 2-core machine costs
# far more than the arithmetic.

@njit(cache=True, nogil=True)
def vdot(a, b):
    """Dot product of two 1-D arrays."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True, nogil=True)
def cg_update_xr(x, r, p, Ap, alpha):
    """``x += alpha p``; ``r -= alpha Ap``; returns ``|r|^2``."""
    s = 0.0
    for i in range(x.shape[0]):
        x[i] += alpha * p[i]
        r[i] -= alpha * Ap[i]
        s += r[i] * r[i]
    return s


@njit(cache=True, nogil=True)
def cg_update_p(p, z, beta):
    """``p = z + beta p``."""
    for i in range(p.shape[0]):
        p[i] = z[i] + beta * p[i]


@njit(cache=True, inline="always")
def _bsr_row(indptr, indices, data, x, y, i):
    """Row ``i`` of ``y = A x`` for a block-CSR matrix with 3x3 blocks (float32 or float64 data)."""
    y0 = 0.0
    y1 = 0.0
    y2 = 0.0
    for q in range(indptr[i], indptr[i + 1]):
        j = 3 * indices[q]
        x0 = x[j]
        x1 = x[j + 1]
        x2 = x[j + 2]
        y0 += data[q, 0, 0] * x0 + data[q, 0, 1] * x1 + data[q, 0, 2] * x2
        y1 += data[q, 1, 0] * x0 + data[q, 1, 1] * x1 + data[q, 1, 2] * x2
        y2 += data[q, 2, 0] * x0 + data[q, 2, 1] * x1 + data[q, 2, 2] * x2
    y[3 * i] = y0
    y[3 * i + 1] = y1
    y[3 * i + 2] = y2


@njit(cache=True, nogil=True)
def bsr_matvec(indptr, indices, data, x, y):
    """``y = A x`` for a square block-CSR matrix with 3x3 blocks (x, y flat)."""
    for i in range(indptr.shape[0] - 1):
        _bsr_row(indptr, indices, data, x, y, i)


@njit(cache=True, nogil=True)
def csr_matvec3_add(ptr, ind, val, x, out, transpose):
    """``out += T x`` (or ``T^T x``) for a CSR matrix T (rows, cols) and nodal fields x, out (., 3)."""
    for i in range(ptr.shape[0] - 1):
        for q in range(ptr[i], ptr[i + 1]):
            c = ind[q]
            v = val[q]
            if transpose:
                for d in range(3):
                    out[c, d] += v * x[i, d]
            else:
                for d in range(3):
                    out[i, d] += v * x[c, d]


@njit(cache=True, nogil=True)
def bsr_tmatvec_add(indptr, indices, data, x, y, c):
    """``y += c A^T x`` for a block-CSR matrix A (k block rows) with 3x3 blocks (x (3k,), y flat)."""
    for i in range(indptr.shape[0] - 1):
        x0 = x[3 * i]
        x1 = x[3 * i + 1]
        x2 = x[3 * i + 2]
        for q in range(indptr[i], indptr[i + 1]):
            j = 3 * indices[q]
            y[j] += c * (data[q, 0, 0] * x0 + data[q, 1, 0] * x1 + data[q, 2, 0] * x2)
            y[j + 1] += c * (data[q, 0, 1] * x0 + data[q, 1, 1] * x1 + data[q, 2, 1] * x2)
            y[j + 2] += c * (data[q, 0, 2] * x0 + data[q, 1, 2] * x1 + data[q, 2, 2] * x2)


@njit(cache=True, nogil=True)
def block_diag_solve(inv, b, out):
    """``out_n = inv_n b_n`` for 3x3 blocks (block Jacobi)."""
    for n in range(inv.shape[0]):
        b0 = b[3 * n]
        b1 = b[3 * n + 1]
        b2 = b[3 * n + 2]
        for i in range(3):
            out[3 * n + i] = inv[n, i, 0] * b0 + inv[n, i, 1] * b1 + inv[n, i, 2] * b2


@njit(cache=True, inline="always")
def _add_to_nodes(acc, n0, n1, n2, n3, a00, a01, a02, a10, a11, a12, a20, a21, a22):
    """Add the 3x3 matrix ``a`` to ``acc`` (n, 3, 3) at the four nodes ``n0..n3``."""
    for nd in (n0, n1, n2, n3):
        acc[nd, 0, 0] += a00
        acc[nd, 0, 1] += a01
        acc[nd, 0, 2] += a02
        acc[nd, 1, 0] += a10
        acc[nd, 1, 1] += a11
        acc[nd, 1, 2] += a12
        acc[nd, 2, 0] += a20
        acc[nd, 2, 1] += a21
        acc[nd, 2, 2] += a22


@njit(cache=True, inline="always")
def _add_tet_vf(acc, x, tets, grads, vols, e):
    """``acc[n] += V_e F_e`` at each node ``n`` of tet ``e``."""
    (n0, n1, n2, n3,
     g00, g01, g02, g10, g11, g12,
     g20, g21, g22, g30, g31, g32,
     F00, F01, F02, F10, F11, F12, F20, F21, F22) = _tet_scalars(x, tets, grads, e)
    V = vols[e]
    _add_to_nodes(acc, n0, n1, n2, n3, F00 * V, F01 * V, F02 * V, F10 * V, F11 * V, F12 * V,
                  F20 * V, F21 * V, F22 * V)


@njit(cache=True, inline="always")
def _polar_node(n, acc, Rn, F, R, Ft, Rt, tmp):
    """``Rn[n] = polar(acc[n])`` warm-started from ``Rn[n]``; kept where ``acc[n]`` is zero (no tets)."""
    if acc[n, 0, 0] == 0.0 and acc[n, 1, 1] == 0.0 and acc[n, 2, 2] == 0.0:
        return
    for i in range(3):
        for j in range(3):
            F[i, j] = acc[n, i, j]
    d = polar3_warm(F, Rn[n], R, Ft, Rt, tmp)
    if d > 0.0:
        for i in range(3):
            for j in range(3):
                Rn[n, i, j] = R[i, j]


@njit(cache=True, nogil=True)
def nodal_rotations(x, tets, grads, vols, elems, Rn, acc):
    """Rotation of each node's neighbourhood: ``polar(sum_e V_e F_e)`` over its tets.

    The sums run over the tets ``elems`` (p,) in that order. ``Rn`` (n, 3, 3) holds the
    previous rotations (warm start) and is updated in place; ``acc`` (n, 3, 3) is scratch.
    Nodes without tets keep their rotation.
    """
    acc[:] = 0.0
    for k in range(elems.shape[0]):
        _add_tet_vf(acc, x, tets, grads, vols, elems[k])
    F = np.empty((3, 3))
    R = np.empty((3, 3))
    Ft = np.empty((3, 3))
    Rt = np.empty((3, 3))
    tmp = np.empty((3, 3))
    for n in range(Rn.shape[0]):
        _polar_node(n, acc, Rn, F, R, Ft, Rt, tmp)


@njit(cache=True, nogil=True)
def rotate_blocks(R, v, out, transpose):
    """``out_n = R_n v_n`` (or ``R_n^T v_n``) for flat vectors of 3-blocks."""
    for n in range(R.shape[0]):
        v0 = v[3 * n]
        v1 = v[3 * n + 1]
        v2 = v[3 * n + 2]
        for i in range(3):
            if transpose:
                out[3 * n + i] = R[n, 0, i] * v0 + R[n, 1, i] * v1 + R[n, 2, i] * v2
            else:
                out[3 * n + i] = R[n, i, 0] * v0 + R[n, i, 1] * v1 + R[n, i, 2] * v2


# ----------------------------------------------------------------- parallel kernels
# Both cores (``numba.prange``) without races: the elements of a group are split into
# spatially compact chunks, and the chunks colored so that no two chunks of one color
# share a node (:mod:`organsim.fem.parallel`). Chunks of one color run in parallel; the
# colors run one after another. Each node's sums are therefore taken in the same order
# whatever the number of threads (the results do not depend on it), and nothing is
# allocated per element. ``order`` (p,) lists positions in ``elems``, chunk ``c`` being
# ``order[chunk_ptr[c]:chunk_ptr[c + 1]]`` and color ``k`` the chunks
# ``color_ptr[k]:color_ptr[k + 1]``.

@njit(cache=True, nogil=True, parallel=True)
def corot_kernel_par(x, tets, grads, vols, lam, mu, elems, blockmap, f, K, want_K, rotate, Rcache, exact,
                     order, chunk_ptr, color_ptr):
    """:func:`corot_kernel` on both cores over a colored chunk schedule; returns the minimum ``det F``."""
    cmin = np.full(chunk_ptr.shape[0] - 1, np.inf)
    for col in range(color_ptr.shape[0] - 1):
        for c in prange(color_ptr[col], color_ptr[col + 1]):
            R = np.empty((3, 3))
            S = np.empty((3, 3))
            Sg = np.empty((3, 3))
            Gi = np.empty((3, 3))
            g = np.empty((4, 3))
            mj = np.inf
            if want_K:
                for k in range(chunk_ptr[c], chunk_ptr[c + 1]):
                    d = _corot_element(order[k], x, tets, grads, vols, lam, mu, elems, blockmap, f, K,
                                       rotate, Rcache, exact, R, S, Sg, Gi, g)
                    if d < mj:
                        mj = d
            else:
                for k in range(chunk_ptr[c], chunk_ptr[c + 1]):
                    d = _corot_forces(order[k], x, tets, grads, vols, lam, mu, elems, f, rotate, Rcache, R, S)
                    if d < mj:
                        mj = d
            cmin[c] = mj
    return cmin.min() if cmin.shape[0] else np.inf


@njit(cache=True, nogil=True, parallel=True)
def neohooke_kernel_par(x, tets, grads, vols, lam, mu, elems, blockmap, f, K, want_K, order, chunk_ptr, color_ptr):
    """:func:`neohooke_kernel` on both cores over a colored chunk schedule.

    Returns the minimum ``J``, or the first non-positive (or NaN) ``J`` found, chunks
    in schedule order (the elements with ``J <= 0`` add nothing).
    """
    nc = chunk_ptr.shape[0] - 1
    cmin = np.full(nc, np.inf)
    bad = np.zeros(nc, dtype=np.bool_)
    for col in range(color_ptr.shape[0] - 1):
        for c in prange(color_ptr[col], color_ptr[col + 1]):
            Fi = np.empty((3, 3))
            h = np.empty((4, 3))
            mj = np.inf
            for k in range(chunk_ptr[c], chunk_ptr[c + 1]):
                if want_K:
                    J = _neohooke_element(order[k], x, tets, grads, vols, lam, mu, elems, blockmap, f, K, Fi, h)
                else:
                    J = _neohooke_forces(order[k], x, tets, grads, vols, lam, mu, elems, f, Fi)
                if not (J > 0.0):
                    if not bad[c]:
                        bad[c] = True
                        mj = J
                elif not bad[c] and J < mj:
                    mj = J
            cmin[c] = mj
    for c in range(nc):
        if bad[c]:
            return cmin[c]
    return cmin.min() if nc else np.inf


@njit(cache=True, nogil=True, parallel=True)
def min_jacobian_par(x, tets, grads):
    """:func:`min_jacobian` on both cores (NaN if a ``det F`` is NaN)."""
    m = tets.shape[0]
    nb = 64
    out = np.full(nb, np.inf)
    for b in prange(nb):
        mj = np.inf
        for e in range(b * m // nb, (b + 1) * m // nb):
            d = _det_F(x, tets, grads, e)
            if not (d > -np.inf):
                mj = np.nan
                break
            if d < mj:
                mj = d
        out[b] = mj
    res = np.inf
    for b in range(nb):
        if np.isnan(out[b]):
            return np.nan
        if out[b] < res:
            res = out[b]
    return res


@njit(cache=True, nogil=True, parallel=True)
def nodal_rotations_par(x, tets, grads, vols, elems, order, chunk_ptr, color_ptr, Rn, acc):
    """:func:`nodal_rotations` on both cores over a colored chunk schedule of the tets ``elems``
    (:func:`organsim.fem.parallel.element_schedule`): the same sums in the same order as the
    serial kernel over ``elems[order]``, whatever the number of threads."""
    acc[:] = 0.0
    for col in range(color_ptr.shape[0] - 1):
        for c in prange(color_ptr[col], color_ptr[col + 1]):
            for k in range(chunk_ptr[c], chunk_ptr[c + 1]):
                _add_tet_vf(acc, x, tets, grads, vols, elems[order[k]])
    for n in prange(Rn.shape[0]):
        F = np.empty((3, 3))
        R = np.empty((3, 3))
        Ft = np.empty((3, 3))
        Rt = np.empty((3, 3))
        tmp = np.empty((3, 3))
        _polar_node(n, acc, Rn, F, R, Ft, Rt, tmp)


# ----------------------------------------------------------------- matrix-free stiffness products
# The realtime step's conjugate-gradient products ``K p`` element by element, from the state of
# the last force pass, instead of assembling K: the force pass alone costs about a third of
# the force-and-stiffness pass, and a product about as much as one assembled block matvec.
# They apply exactly the matrices the stiffness kernels assemble (the warped corotational
# ``R K0 R^T``, the neo-Hookean consistent tangent), summed in another order (round-off).

@njit(cache=True, inline="always")
def _mat3(a00, a01, a02, a10, a11, a12, a20, a21, a22, b00, b01, b02, b10, b11, b12, b20, b21, b22):
    """The 3x3 product ``A B`` of two matrices given row by row as scalars, row by row."""
    return (a00 * b00 + a01 * b10 + a02 * b20, a00 * b01 + a01 * b11 + a02 * b21,
            a00 * b02 + a01 * b12 + a02 * b22,
            a10 * b00 + a11 * b10 + a12 * b20, a10 * b01 + a11 * b11 + a12 * b21,
            a10 * b02 + a11 * b12 + a12 * b22,
            a20 * b00 + a21 * b10 + a22 * b20, a20 * b01 + a21 * b11 + a22 * b21,
            a20 * b02 + a21 * b12 + a22 * b22)


@njit(cache=True, inline="always")
def _corot_apply_element(q, tets, grads, vols, lam, mu, elems, Rcache, rotate, p, out):
    """``out += K_e p`` of one element of :func:`corot_kernel` (``want_K``, not ``exact``), on scalars.

    ``K_e`` is ``V (lam g_a g_b^T + mu g_b g_a^T + mu (g_a . g_b) I)`` with ``g = R grad N``
    (``R`` the element's rotation of the last force pass, in ``Rcache``; ``I`` if not
    ``rotate``), so ``(K_e p)_a = V sigma(H) R grad_a`` with ``H = sum_b p_b g_b^T = Hr R^T``,
    ``Hr = sum_b p_b grad_b^T`` and ``sigma(H) = lam tr(H) I + mu (H + H^T)``.
    """
    e = elems[q]
    V = vols[e]
    la = lam[q]
    m = mu[q]
    (n0, n1, n2, n3,
     g00, g01, g02, g10, g11, g12,
     g20, g21, g22, g30, g31, g32,
     a00, a01, a02, a10, a11, a12, a20, a21, a22) = _tet_scalars(p, tets, grads, e)
    if rotate:
        r00, r01, r02 = Rcache[e, 0, 0], Rcache[e, 0, 1], Rcache[e, 0, 2]
        r10, r11, r12 = Rcache[e, 1, 0], Rcache[e, 1, 1], Rcache[e, 1, 2]
        r20, r21, r22 = Rcache[e, 2, 0], Rcache[e, 2, 1], Rcache[e, 2, 2]
    else:
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0
    # H = Hr R^T
    h00, h01, h02, h10, h11, h12, h20, h21, h22 = _mat3(a00, a01, a02, a10, a11, a12, a20, a21, a22,
                                                        r00, r10, r20, r01, r11, r21, r02, r12, r22)
    lt = la * (h00 + h11 + h22)
    # V sigma(H)
    s00 = V * (2.0 * m * h00 + lt)
    s11 = V * (2.0 * m * h11 + lt)
    s22 = V * (2.0 * m * h22 + lt)
    s01 = V * m * (h01 + h10)
    s02 = V * m * (h02 + h20)
    s12 = V * m * (h12 + h21)
    s10, s20, s21 = s01, s02, s12
    # (K_e p)_a = (V sigma R) grad_a
    P00, P01, P02, P10, P11, P12, P20, P21, P22 = _mat3(s00, s01, s02, s10, s11, s12, s20, s21, s22,
                                                        r00, r01, r02, r10, r11, r12, r20, r21, r22)
    _scatter_forces(out, n0, n1, n2, n3,
                    g00, g01, g02, g10, g11, g12,
                    g20, g21, g22, g30, g31, g32,
                    P00, P01, P02, P10, P11, P12, P20, P21, P22)


@njit(cache=True, nogil=True)
def corot_apply(tets, grads, vols, lam, mu, elems, Rcache, rotate, p, out):
    """``out += K p`` (nodal fields (n, 3)) for the corotational or linear elements ``elems``."""
    for q in range(elems.shape[0]):
        _corot_apply_element(q, tets, grads, vols, lam, mu, elems, Rcache, rotate, p, out)


@njit(cache=True, nogil=True, parallel=True)
def corot_apply_par(tets, grads, vols, lam, mu, elems, Rcache, rotate, p, out, order, chunk_ptr, color_ptr):
    """:func:`corot_apply` on both cores over a colored chunk schedule (see the parallel kernels)."""
    for col in range(color_ptr.shape[0] - 1):
        for c in prange(color_ptr[col], color_ptr[col + 1]):
            for k in range(chunk_ptr[c], chunk_ptr[c + 1]):
                _corot_apply_element(order[k], tets, grads, vols, lam, mu, elems, Rcache, rotate, p, out)


@njit(cache=True, nogil=True, parallel=True)
def neohooke_state(x, tets, grads, elems, lam, mu, Fi_out, cm_out):
    """Per-tet state of the neo-Hookean tangent at ``x``: ``F^-1`` into ``Fi_out[e]`` (m, 3, 3) and
    ``mu - lam ln J`` into ``cm_out[e]`` (m,), for the tets ``e`` in ``elems`` (0 where ``J <= 0``)."""
    for q in prange(elems.shape[0]):
        e = elems[q]
        F = np.empty((3, 3))
        Fi = np.empty((3, 3))
        _deformation_gradient(x, tets, grads, e, F)
        J = _inv3(F, Fi)
        ok = J > 0.0
        for i in range(3):
            for j in range(3):
                Fi_out[e, i, j] = Fi[i, j] if ok else 0.0
        cm_out[e] = mu[q] - lam[q] * np.log(J) if ok else 0.0


@njit(cache=True, inline="always")
def _neohooke_apply_element(q, tets, grads, vols, lam, mu, elems, Fis, cms, p, out):
    """``out += K_e p`` of one element of :func:`neohooke_kernel`'s consistent tangent, on scalars.

    With ``h_a = F^-T grad_a``, ``Hm = sum_b p_b grad_b^T`` and ``G = Hm F^-1``:
    ``(K_e p)_a = V ((mu - lam ln J) G^T F^-T + lam tr(G) F^-T + mu Hm) grad_a``; ``F^-1`` and
    ``mu - lam ln J`` from :func:`neohooke_state` (``Fis[e]``, ``cms[e]``). Every intermediate is
    a local scalar (as in :func:`_corot_forces`).
    """
    e = elems[q]
    V = vols[e]
    la = lam[q]
    m = mu[q]
    cm = cms[e]
    (n0, n1, n2, n3,
     g00, g01, g02, g10, g11, g12,
     g20, g21, g22, g30, g31, g32,
     h00, h01, h02, h10, h11, h12, h20, h21, h22) = _tet_scalars(p, tets, grads, e)
    f00, f01, f02 = Fis[e, 0, 0], Fis[e, 0, 1], Fis[e, 0, 2]
    f10, f11, f12 = Fis[e, 1, 0], Fis[e, 1, 1], Fis[e, 1, 2]
    f20, f21, f22 = Fis[e, 2, 0], Fis[e, 2, 1], Fis[e, 2, 2]
    # G = Hm F^-1
    G00, G01, G02, G10, G11, G12, G20, G21, G22 = _mat3(h00, h01, h02, h10, h11, h12, h20, h21, h22,
                                                        f00, f01, f02, f10, f11, f12, f20, f21, f22)
    lt = la * (G00 + G11 + G22)
    # Q = cm G^T F^-T + lam tr(G) F^-T + mu Hm, times V
    Q00 = V * (cm * (G00 * f00 + G10 * f01 + G20 * f02) + lt * f00 + m * h00)
    Q01 = V * (cm * (G00 * f10 + G10 * f11 + G20 * f12) + lt * f10 + m * h01)
    Q02 = V * (cm * (G00 * f20 + G10 * f21 + G20 * f22) + lt * f20 + m * h02)
    Q10 = V * (cm * (G01 * f00 + G11 * f01 + G21 * f02) + lt * f01 + m * h10)
    Q11 = V * (cm * (G01 * f10 + G11 * f11 + G21 * f12) + lt * f11 + m * h11)
    Q12 = V * (cm * (G01 * f20 + G11 * f21 + G21 * f22) + lt * f21 + m * h12)
    Q20 = V * (cm * (G02 * f00 + G12 * f01 + G22 * f02) + lt * f02 + m * h20)
    Q21 = V * (cm * (G02 * f10 + G12 * f11 + G22 * f12) + lt * f12 + m * h21)
    Q22 = V * (cm * (G02 * f20 + G12 * f21 + G22 * f22) + lt * f22 + m * h22)
    out[n0, 0] += Q00 * g00 + Q01 * g01 + Q02 * g02
    out[n0, 1] += Q10 * g00 + Q11 * g01 + Q12 * g02
    out[n0, 2] += Q20 * g00 + Q21 * g01 + Q22 * g02
    out[n1, 0] += Q00 * g10 + Q01 * g11 + Q02 * g12
    out[n1, 1] += Q10 * g10 + Q11 * g11 + Q12 * g12
    out[n1, 2] += Q20 * g10 + Q21 * g11 + Q22 * g12
    out[n2, 0] += Q00 * g20 + Q01 * g21 + Q02 * g22
    out[n2, 1] += Q10 * g20 + Q11 * g21 + Q12 * g22
    out[n2, 2] += Q20 * g20 + Q21 * g21 + Q22 * g22
    out[n3, 0] += Q00 * g30 + Q01 * g31 + Q02 * g32
    out[n3, 1] += Q10 * g30 + Q11 * g31 + Q12 * g32
    out[n3, 2] += Q20 * g30 + Q21 * g31 + Q22 * g32


@njit(cache=True, nogil=True)
def neohooke_apply(tets, grads, vols, lam, mu, elems, Fis, cms, p, out):
    """``out += K p`` (nodal fields (n, 3)) for the neo-Hookean elements ``elems``
    (tangent state from :func:`neohooke_state`)."""
    for q in range(elems.shape[0]):
        _neohooke_apply_element(q, tets, grads, vols, lam, mu, elems, Fis, cms, p, out)


@njit(cache=True, nogil=True, parallel=True)
def neohooke_apply_par(tets, grads, vols, lam, mu, elems, Fis, cms, p, out, order, chunk_ptr, color_ptr):
    """:func:`neohooke_apply` on both cores over a colored chunk schedule."""
    for col in range(color_ptr.shape[0] - 1):
        for c in prange(color_ptr[col], color_ptr[col + 1]):
            for k in range(chunk_ptr[c], chunk_ptr[c + 1]):
                _neohooke_apply_element(order[k], tets, grads, vols, lam, mu, elems, Fis, cms, p, out)


@njit(cache=True, nogil=True)
def free_scatter(p, free, out):
    """``out[free[i]] = p[3 i : 3 i + 3]`` (out (n, 3), zero elsewhere beforehand)."""
    for i in range(free.shape[0]):
        for d in range(3):
            out[free[i], d] = p[3 * i + d]


@njit(cache=True, nogil=True)
def free_gather_axpy(Kp, free, cK, mass_diag, p, y):
    """``y[3 i + d] = cK Kp[free[i], d] + mass_diag[i] p[3 i + d]`` (lumped mass)."""
    for i in range(free.shape[0]):
        for d in range(3):
            y[3 * i + d] = cK * Kp[free[i], d] + mass_diag[i] * p[3 * i + d]


@njit(cache=True, inline="always")
def _cholesky_9_is_pd(A, tol):
    """Whether the symmetric 9 x 9 matrix ``A`` (overwritten) is positive definite: an in-place
    Cholesky whose every pivot exceeds ``tol`` times the largest diagonal entry."""
    dmax = 0.0
    for i in range(9):
        dmax = max(dmax, abs(A[i, i]))
    floor = tol * dmax
    for j in range(9):
        d = A[j, j]
        for k in range(j):
            d -= A[j, k] * A[j, k]
        if not (d > floor):
            return False
        d = np.sqrt(d)
        A[j, j] = d
        for i in range(j + 1, 9):
            s = A[i, j]
            for k in range(j):
                s -= A[i, k] * A[j, k]
            A[i, j] = s / d
    return True


@njit(cache=True, nogil=True)
def hessians_pd(A, tol, ok):
    """``ok[q]``: whether the symmetric 9 x 9 energy-density Hessian ``A[q]`` (k, 9, 9) is
    positive definite (pivots above ``tol`` times its largest diagonal entry); ``A`` is kept."""
    W = np.empty((9, 9))
    for q in range(A.shape[0]):
        W[:, :] = A[q]
        ok[q] = _cholesky_9_is_pd(W, tol)


@njit(cache=True, inline="always")
def _jacobi_eig3(A, V):
    """Eigen-decompose the symmetric 3 x 3 ``A`` in place by cyclic Jacobi rotations: its diagonal
    becomes the eigenvalues, the columns of ``V`` (3, 3) the eigenvectors."""
    for i in range(3):
        for j in range(3):
            V[i, j] = 1.0 if i == j else 0.0
    for _ in range(24):
        off = A[0, 1] * A[0, 1] + A[0, 2] * A[0, 2] + A[1, 2] * A[1, 2]
        if off <= 1e-32 * (A[0, 0] * A[0, 0] + A[1, 1] * A[1, 1] + A[2, 2] * A[2, 2]) or off == 0.0:
            return
        for p in range(2):
            for q in range(p + 1, 3):
                apq = A[p, q]
                if apq == 0.0:
                    continue
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                t = 1.0 / (abs(theta) + np.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(3):
                    akp = A[k, p]
                    akq = A[k, q]
                    A[k, p] = c * akp - s * akq
                    A[k, q] = s * akp + c * akq
                for k in range(3):
                    apk = A[p, k]
                    aqk = A[q, k]
                    A[p, k] = c * apk - s * aqk
                    A[q, k] = s * apk + c * aqk
                for k in range(3):
                    vkp = V[k, p]
                    vkq = V[k, q]
                    V[k, p] = c * vkp - s * vkq
                    V[k, q] = s * vkp + c * vkq


@njit(cache=True, inline="always")
def _neohooke_projected_element(q, x, tets, grads, vols, lam, mu, elems, blockmap, K, Fm, C, Vr, U, W, sig, Q,
                                lm, h):
    """One element of :func:`neohooke_projected_kernel` (position ``q`` in ``elems``; the rest
    is scratch); returns its ``J`` and adds nothing where ``J <= 0``."""
    r2 = 1.0 / np.sqrt(2.0)
    e = elems[q]
    (n0, n1, n2, n3,
     g00, g01, g02, g10, g11, g12,
     g20, g21, g22, g30, g31, g32,
     F00, F01, F02, F10, F11, F12, F20, F21, F22) = _tet_scalars(x, tets, grads, e)
    J = (F00 * (F11 * F22 - F12 * F21) - F01 * (F10 * F22 - F12 * F20) + F02 * (F10 * F21 - F11 * F20))
    if not (J > 0.0):
        return J
    Fm[0, 0], Fm[0, 1], Fm[0, 2] = F00, F01, F02
    Fm[1, 0], Fm[1, 1], Fm[1, 2] = F10, F11, F12
    Fm[2, 0], Fm[2, 1], Fm[2, 2] = F20, F21, F22
    # singular values and vectors: F^T F = V S^2 V^T, U = F V S^-1
    for i in range(3):
        for j in range(3):
            C[i, j] = Fm[0, i] * Fm[0, j] + Fm[1, i] * Fm[1, j] + Fm[2, i] * Fm[2, j]
    _jacobi_eig3(C, Vr)
    for a in range(3):
        sig[a] = np.sqrt(max(C[a, a], 1e-300))
        for i in range(3):
            U[i, a] = (Fm[i, 0] * Vr[0, a] + Fm[i, 1] * Vr[1, a] + Fm[i, 2] * Vr[2, a]) / sig[a]
    m_ = mu[q]
    la = lam[q]
    c = m_ - la * np.log(J)
    # the twist and flip modes of each pair
    m = 0
    for a in range(2):
        for b in range(a + 1, 3):
            s = c / (sig[a] * sig[b])
            lm[m] = m_ + s
            lm[m + 1] = m_ - s
            for i in range(3):
                for j in range(3):
                    ab = U[i, a] * Vr[j, b]
                    ba = U[i, b] * Vr[j, a]
                    Q[m, i, j] = r2 * (ab + ba)
                    Q[m + 1, i, j] = r2 * (ab - ba)
            m += 2
    # the scaling modes: the 3 x 3 block on the diagonal of dS
    for a in range(3):
        for b in range(3):
            W[a, b] = la / (sig[a] * sig[b])
        W[a, a] += m_ + c / (sig[a] * sig[a])
    _jacobi_eig3(W, C)   # eigenvalues on W's diagonal, vectors in C's columns
    for k in range(3):
        lm[6 + k] = W[k, k]
        for i in range(3):
            for j in range(3):
                Q[6 + k, i, j] = (C[0, k] * U[i, 0] * Vr[j, 0] + C[1, k] * U[i, 1] * Vr[j, 1]
                                  + C[2, k] * U[i, 2] * Vr[j, 2])
    V = vols[e]
    n = 0   # the modes kept (positive eigenvalues), packed first
    for k in range(9):
        if lm[k] <= 0.0:
            continue
        lm[n] = V * lm[k]
        for a in range(4):
            for i in range(3):
                h[n, a, i] = Q[k, i, 0] * grads[e, a, 0] + Q[k, i, 1] * grads[e, a, 1] + Q[k, i, 2] * grads[e, a, 2]
        n += 1
    for a in range(4):
        for b in range(4):
            blk = blockmap[e, a, b]
            for i in range(3):
                for j in range(3):
                    s = 0.0
                    for k in range(n):
                        s += lm[k] * h[k, a, i] * h[k, b, j]
                    K[blk, i, j] += s
    return J


@njit(cache=True, nogil=True)
def neohooke_projected_kernel(x, tets, grads, vols, lam, mu, elems, blockmap, K):
    """Neo-Hookean stiffness with each element's energy-density Hessian projected onto the
    positive semi-definite cone (its negative eigenvalues clamped to zero), in closed form.

    With ``F = U S V^T`` (``S = diag(s)``) and ``c = mu - lam ln J``, the Hessian
    ``mu I + c T + lam g g^T`` (``T dF = F^-T dF^T F^-T``, ``g = F^-T``) has, for each pair
    ``a < b``, the eigenvalues ``mu + c / (s_a s_b)`` and ``mu - c / (s_a s_b)`` on
    ``U (E_ab + E_ba) V^T`` and ``U (E_ab - E_ba) V^T``, and on ``U diag(w) V^T`` those of
    ``mu I + c diag(1/s^2) + lam (1/s)(1/s)^T``: the same projection as clamping the 9 x 9
    Hessian's eigenvalues, in a few hundred flops, without forming it. Adds
    ``V sum_m max(l_m, 0) (Q_m g_a)(Q_m g_b)^T`` to the blocks. Returns the minimum ``J``;
    stops at an element with ``J <= 0``.
    """
    Fm, C, Vr, U, W = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
    sig, Q, lm, h = np.empty(3), np.empty((9, 3, 3)), np.empty(9), np.empty((9, 4, 3))
    minJ = np.inf
    for q in range(elems.shape[0]):
        J = _neohooke_projected_element(q, x, tets, grads, vols, lam, mu, elems, blockmap, K, Fm, C, Vr, U, W,
                                        sig, Q, lm, h)
        if not (J > 0.0):
            return J
        if J < minJ:
            minJ = J
    return minJ


@njit(cache=True, nogil=True, parallel=True)
def neohooke_projected_kernel_par(x, tets, grads, vols, lam, mu, elems, blockmap, K, order, chunk_ptr, color_ptr):
    """:func:`neohooke_projected_kernel` on both cores over a colored chunk schedule (see
    :func:`corot_kernel_par`); returns the minimum ``J``, or a non-positive one found."""
    nc = chunk_ptr.shape[0] - 1
    cmin = np.full(nc, np.inf)
    for col in range(color_ptr.shape[0] - 1):
        for c in prange(color_ptr[col], color_ptr[col + 1]):
            Fm, C, Vr, U, W = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
            sig, Q, lm, h = np.empty(3), np.empty((9, 3, 3)), np.empty(9), np.empty((9, 4, 3))
            mj = np.inf
            for k in range(chunk_ptr[c], chunk_ptr[c + 1]):
                J = _neohooke_projected_element(order[k], x, tets, grads, vols, lam, mu, elems, blockmap, K, Fm, C,
                                                Vr, U, W, sig, Q, lm, h)
                if not (J > 0.0) or J < mj:
                    mj = J
                    if not (J > 0.0):
                        break
            cmin[c] = mj
    out = np.inf
    for c in range(nc):
        if not (cmin[c] > 0.0):
            return cmin[c]
        out = min(out, cmin[c])
    return out


@njit(cache=True, nogil=True)
def relative_rotations(Rn, Rf, nodes, out):
    """``out[k] = Rn[nodes[k]] Rf[nodes[k]]^T`` (k, 3, 3): each node's rotation since the state of ``Rf``."""
    for k in range(nodes.shape[0]):
        n = nodes[k]
        for i in range(3):
            for j in range(3):
                out[k, i, j] = Rn[n, i, 0] * Rf[n, j, 0] + Rn[n, i, 1] * Rf[n, j, 1] + Rn[n, i, 2] * Rf[n, j, 2]
