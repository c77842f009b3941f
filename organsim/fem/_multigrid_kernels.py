"""Compiled kernels of the two-grid preconditioner (:mod:`organsim.fem.multigrid`).

Block-CSR matrices here have 3x3 blocks; the prolongation ``P`` is a scalar CSR matrix
(fine nodes x coarse nodes) applied to each of the three displacement components.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["galerkin_pattern", "galerkin_values", "prolong_add", "restrict"]


@njit(cache=True, nogil=True)
def restrict(Pt_ptr, Pt_ind, Pt_val, r, out):
    """``out = P^T r`` for nodal vectors: ``Pt`` is ``P^T`` in CSR (coarse rows), r (3 n_f,), out (3 n_c,)."""
    for c in range(Pt_ptr.shape[0] - 1):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for q in range(Pt_ptr[c], Pt_ptr[c + 1]):
            k = 3 * Pt_ind[q]
            w = Pt_val[q]
            s0 += w * r[k]
            s1 += w * r[k + 1]
            s2 += w * r[k + 2]
        out[3 * c] = s0
        out[3 * c + 1] = s1
        out[3 * c + 2] = s2


@njit(cache=True, nogil=True)
def prolong_add(P_ptr, P_ind, P_val, e, z):
    """``z += P e`` for nodal vectors: e (3 n_c,), z (3 n_f,)."""
    for k in range(P_ptr.shape[0] - 1):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for q in range(P_ptr[k], P_ptr[k + 1]):
            c = 3 * P_ind[q]
            w = P_val[q]
            s0 += w * e[c]
            s1 += w * e[c + 1]
            s2 += w * e[c + 2]
        z[3 * k] += s0
        z[3 * k + 1] += s1
        z[3 * k + 2] += s2


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
