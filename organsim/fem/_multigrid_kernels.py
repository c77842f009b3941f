"""Compiled kernels of the two-grid preconditioner (:mod:`organsim.fem.multigrid`).

Block-CSR matrices here have 3x3 blocks; the prolongation ``P`` is a scalar CSR matrix
(fine nodes x coarse nodes) applied to each of the three displacement components (by
:func:`organsim.fem._kernels.csr_matvec3_add` in the cycle).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["galerkin_pattern", "galerkin_values", "sym_bsr_matvec", "sym_bsr_matvec_par"]


@njit(cache=True, nogil=True)
def _row_columns(I, Pt_ptr, Pt_ind, A_ptr, A_ind, P_ptr, P_ind, marker, tmp):
    """The coarse columns of row ``I`` of ``P^T A P`` into ``tmp`` (unsorted); their count."""
    count = 0
    for a in range(Pt_ptr[I], Pt_ptr[I + 1]):
        k = Pt_ind[a]
        for q in range(A_ptr[k], A_ptr[k + 1]):
            lnode = A_ind[q]
            for b in range(P_ptr[lnode], P_ptr[lnode + 1]):
                J = P_ind[b]
                if marker[J] != I:
                    marker[J] = I
                    tmp[count] = J
                    count += 1
    return count


@njit(cache=True, nogil=True, parallel=True)
def galerkin_pattern(Pt_ptr, Pt_ind, A_ptr, A_ind, P_ptr, P_ind, n_coarse, max_row):
    """Block pattern (indptr, indices, sorted rows) of ``P^T A P``; ``max_row`` bounds a row's length."""
    n_chunks = 64
    counts = np.zeros(n_coarse + 1, dtype=np.int64)
    for ch in prange(n_chunks):
        marker = np.full(n_coarse, -1, dtype=np.int64)
        tmp = np.empty(max_row, dtype=np.int64)
        for I in range(ch * n_coarse // n_chunks, (ch + 1) * n_coarse // n_chunks):
            counts[I + 1] = _row_columns(I, Pt_ptr, Pt_ind, A_ptr, A_ind, P_ptr, P_ind, marker, tmp)
    indptr = np.cumsum(counts)
    indices = np.empty(indptr[-1], dtype=np.int64)
    for ch in prange(n_chunks):
        marker = np.full(n_coarse, -1, dtype=np.int64)
        tmp = np.empty(max_row, dtype=np.int64)
        for I in range(ch * n_coarse // n_chunks, (ch + 1) * n_coarse // n_chunks):
            c = _row_columns(I, Pt_ptr, Pt_ind, A_ptr, A_ind, P_ptr, P_ind, marker, tmp)
            indices[indptr[I]:indptr[I] + c] = np.sort(tmp[:c])
    return indptr, indices


@njit(cache=True, nogil=True, parallel=True)
def galerkin_values(Pt_ptr, Pt_ind, Pt_val, A_ptr, A_ind, A_data, P_ptr, P_ind, P_val, C_ptr, C_ind):
    """Block data (nnz, 3, 3) of ``C = P^T A P`` on the pattern :func:`galerkin_pattern` gave."""
    n_coarse = C_ptr.shape[0] - 1
    C = np.zeros((C_ind.shape[0], 3, 3))
    n_chunks = 64
    for ch in prange(n_chunks):
        slot = np.empty(n_coarse, dtype=np.int64)
        for I in range(ch * n_coarse // n_chunks, (ch + 1) * n_coarse // n_chunks):
            for s in range(C_ptr[I], C_ptr[I + 1]):
                slot[C_ind[s]] = s
            for a in range(Pt_ptr[I], Pt_ptr[I + 1]):
                k = Pt_ind[a]
                wk = Pt_val[a]
                for q in range(A_ptr[k], A_ptr[k + 1]):
                    lnode = A_ind[q]
                    for b in range(P_ptr[lnode], P_ptr[lnode + 1]):
                        s = slot[P_ind[b]]
                        w = wk * P_val[b]
                        for i in range(3):
                            for j in range(3):
                                C[s, i, j] += w * A_data[q, i, j]
    return C


@njit(cache=True, nogil=True, inline="always")
def _sym_rows(lo, hi, indptr, indices, data, x, y):
    """Rows ``lo:hi`` of ``y += A x``, ``A`` symmetric and stored as its upper triangle: each
    stored block ``B`` of row ``i``, column ``j`` adds ``B x_j`` to ``y_i`` and, off the diagonal,
    ``B^T x_i`` to ``y_j``."""
    for i in range(lo, hi):
        xi0 = x[3 * i]
        xi1 = x[3 * i + 1]
        xi2 = x[3 * i + 2]
        y0 = 0.0
        y1 = 0.0
        y2 = 0.0
        for q in range(indptr[i], indptr[i + 1]):
            j = indices[q]
            b00 = data[q, 0, 0]
            b01 = data[q, 0, 1]
            b02 = data[q, 0, 2]
            b10 = data[q, 1, 0]
            b11 = data[q, 1, 1]
            b12 = data[q, 1, 2]
            b20 = data[q, 2, 0]
            b21 = data[q, 2, 1]
            b22 = data[q, 2, 2]
            xj0 = x[3 * j]
            xj1 = x[3 * j + 1]
            xj2 = x[3 * j + 2]
            y0 += b00 * xj0 + b01 * xj1 + b02 * xj2
            y1 += b10 * xj0 + b11 * xj1 + b12 * xj2
            y2 += b20 * xj0 + b21 * xj1 + b22 * xj2
            if j != i:
                y[3 * j] += b00 * xi0 + b10 * xi1 + b20 * xi2
                y[3 * j + 1] += b01 * xi0 + b11 * xi1 + b21 * xi2
                y[3 * j + 2] += b02 * xi0 + b12 * xi1 + b22 * xi2
        y[3 * i] += y0
        y[3 * i + 1] += y1
        y[3 * i + 2] += y2


@njit(cache=True, nogil=True)
def sym_bsr_matvec(indptr, indices, data, x, y):
    """``y = A x`` for a symmetric matrix of 3x3 blocks stored as its upper triangle (block CSR,
    diagonal blocks included; ``x``, ``y`` flat): each off-diagonal block is read once for both
    of its products, half the memory traffic of the full matrix's product."""
    y[:] = 0.0
    _sym_rows(0, indptr.shape[0] - 1, indptr, indices, data, x, y)


@njit(cache=True, nogil=True, parallel=True)
def sym_bsr_matvec_par(indptr, indices, data, x, y, bounds, partial):
    """:func:`sym_bsr_matvec` with the row ranges ``bounds[t]:bounds[t + 1]`` on the threads, each
    summing into its own ``partial[t]`` (``(len(bounds) - 1, len(y))``), then added up."""
    k = bounds.shape[0] - 1
    for t in prange(k):
        p = partial[t]
        p[:] = 0.0
        _sym_rows(bounds[t], bounds[t + 1], indptr, indices, data, x, p)
    n = y.shape[0]
    for r in prange(n):
        s = 0.0
        for t in range(k):
            s += partial[t, r]
        y[r] = s
