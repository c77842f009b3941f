"""Compiled kernels of the two-grid preconditioner (:mod:`organsim.fem.multigrid`).

Block-CSR matrices here have 3x3 blocks; the prolongation ``P`` is a scalar CSR matrix
(fine nodes x coarse nodes) applied to each of the three displacement components (by
:func:`organsim.fem._kernels.csr_matvec3_add` in the cycle).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["galerkin_pattern", "galerkin_values"]


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
