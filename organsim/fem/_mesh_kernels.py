"""Compiled kernels for the per-mesh set-up of the solver.

They run once per mesh, and again after every cut increment (a topology change),
so they sit on the interactive path of cutting: the block sparsity pattern and
the shape-function gradients of P1 tets, without sorting or Python loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _row_columns(i, ptr, inc_tet, tets, mark, buf, start):
    """Write the sorted, distinct nodes of the tets around node ``i`` into ``buf[start:]``.

    ``ptr``/``inc_tet`` list the tets around each node; ``mark`` (n,) remembers the
    row that last saw each node. Returns the end of the written run.
    """
    end = start
    for k in range(ptr[i], ptr[i + 1]):
        e = inc_tet[k]
        for b in range(4):
            j = tets[e, b]
            if mark[j] != i:
                mark[j] = i
                buf[end] = j
                end += 1
    # insertion sort of the (short) row
    for q in range(start + 1, end):
        v = buf[q]
        r = q - 1
        while r >= start and buf[r] > v:
            buf[r + 1] = buf[r]
            r -= 1
        buf[r + 1] = v
    return end


@njit(cache=True)
def block_pattern(tets, n):
    """Node-block CSR pattern of a P1 mesh and each tet's block map.

    Parameters
    ----------
    tets : ndarray, shape (m, 4), int64
    n : int
        Number of nodes.

    Returns
    -------
    indptr : ndarray (n + 1,) int32
    indices : ndarray (nnzb,) int32
        Block columns, sorted within each row.
    blockmap : ndarray (m, 4, 4) int32
        Block index of the node pair (a, b) of each tet.
    diag : ndarray (n,) int32
        Block index of each node's diagonal block (-1 for a node no tet uses).

    Notes
    -----
    Indices are 32-bit (fewer than 2**31 blocks): half the memory traffic of
    64-bit ones, which halves the time of this memory-bound pass.
    """
    m = tets.shape[0]
    # node -> (tet, local corner) incidence, by counting sort
    ptr = np.zeros(n + 1, dtype=np.int32)
    for e in range(m):
        for a in range(4):
            ptr[tets[e, a] + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    fill = ptr[:-1].copy()
    inc_tet = np.empty(4 * m, dtype=np.int32)
    inc_loc = np.empty(4 * m, dtype=np.int32)
    for e in range(m):
        for a in range(4):
            v = tets[e, a]
            inc_tet[fill[v]] = e
            inc_loc[fill[v]] = a
            fill[v] += 1
    mark = np.full(n, -1, dtype=np.int32)
    pos = np.zeros(n, dtype=np.int32)
    buf = np.empty(16 * m, dtype=np.int32)
    indptr = np.zeros(n + 1, dtype=np.int32)
    blockmap = np.empty((m, 4, 4), dtype=np.int32)
    diag = np.full(n, -1, dtype=np.int32)
    nnz = 0
    for i in range(n):
        start = nnz
        nnz = _row_columns(i, ptr, inc_tet, tets, mark, buf, start)
        for q in range(start, nnz):
            pos[buf[q]] = q
        indptr[i + 1] = nnz
        if nnz > start:
            diag[i] = pos[i]
        for k in range(ptr[i], ptr[i + 1]):
            e = inc_tet[k]
            a = inc_loc[k]
            for b in range(4):
                blockmap[e, a, b] = pos[tets[e, b]]
    return indptr, buf[:nnz].copy(), blockmap, diag


@njit(cache=True)
def shape_gradients(points, tets):
    """Rest shape-function gradients (m, 4, 3) in 1/m and signed volumes (m,) in m^3 of P1 tets."""
    m = tets.shape[0]
    grads = np.empty((m, 4, 3))
    vols = np.empty(m)
    for e in range(m):
        p0 = tets[e, 0]
        a0 = points[tets[e, 1], 0] - points[p0, 0]
        a1 = points[tets[e, 1], 1] - points[p0, 1]
        a2 = points[tets[e, 1], 2] - points[p0, 2]
        b0 = points[tets[e, 2], 0] - points[p0, 0]
        b1 = points[tets[e, 2], 1] - points[p0, 1]
        b2 = points[tets[e, 2], 2] - points[p0, 2]
        c0 = points[tets[e, 3], 0] - points[p0, 0]
        c1 = points[tets[e, 3], 1] - points[p0, 1]
        c2 = points[tets[e, 3], 2] - points[p0, 2]
        # rows of Dm^-1 = (b x c, c x a, a x b) / det
        r10 = b1 * c2 - b2 * c1
        r11 = b2 * c0 - b0 * c2
        r12 = b0 * c1 - b1 * c0
        r20 = c1 * a2 - c2 * a1
        r21 = c2 * a0 - c0 * a2
        r22 = c0 * a1 - c1 * a0
        r30 = a1 * b2 - a2 * b1
        r31 = a2 * b0 - a0 * b2
        r32 = a0 * b1 - a1 * b0
        det = a0 * r10 + a1 * r11 + a2 * r12
        vols[e] = det / 6.0
        inv = 1.0 / det if det != 0.0 else 0.0
        grads[e, 1, 0] = r10 * inv
        grads[e, 1, 1] = r11 * inv
        grads[e, 1, 2] = r12 * inv
        grads[e, 2, 0] = r20 * inv
        grads[e, 2, 1] = r21 * inv
        grads[e, 2, 2] = r22 * inv
        grads[e, 3, 0] = r30 * inv
        grads[e, 3, 1] = r31 * inv
        grads[e, 3, 2] = r32 * inv
        for d in range(3):
            grads[e, 0, d] = -(grads[e, 1, d] + grads[e, 2, d] + grads[e, 3, d])
    return grads, vols


@njit(cache=True)
def rest_diagonal_blocks(tets, grads, vols, lam, mu, slot, k):
    """Diagonal 3x3 blocks of the small-strain (rest) stiffness at selected nodes.

    ``K_aa = V ((lam + mu) g_a g_a^T + mu |g_a|^2 I)`` summed over the tets
    around each node, with ``g_a`` the gradient of node a's shape function.

    Parameters
    ----------
    tets : (m, 4) int64. grads : (m, 4, 3) 1/m. vols : (m,) m^3.
    lam, mu : (m,) Pa, the small-strain Lame parameters of each tet.
    slot : (n,) int64, the output row of each node, -1 for nodes not wanted.
    k : int, number of output rows.

    Returns
    -------
    ndarray, shape (k, 3, 3), N/m
    """
    out = np.zeros((k, 3, 3))
    for e in range(tets.shape[0]):
        for a in range(4):
            s = slot[tets[e, a]]
            if s < 0:
                continue
            V = vols[e]
            la = lam[e]
            m = mu[e]
            g0 = grads[e, a, 0]
            g1 = grads[e, a, 1]
            g2 = grads[e, a, 2]
            gg = g0 * g0 + g1 * g1 + g2 * g2
            g = (g0, g1, g2)
            for i in range(3):
                for j in range(3):
                    v = (la + m) * g[i] * g[j]
                    if i == j:
                        v += m * gg
                    out[s, i, j] += V * v
    return out


@njit(cache=True)
def sub_pattern(indptr, indices, newid, n_sub):
    """The block pattern restricted to the nodes with ``newid >= 0`` (renumbered by ``newid``).

    Returns ``blocks`` (k,) int64, the parent block of each kept block, and the
    kept pattern's ``indptr`` (n_sub + 1,), ``indices`` (k,) and ``rows`` (k,),
    all int32. Rows stay sorted because ``newid`` is increasing on the kept nodes.
    """
    n = indptr.shape[0] - 1
    nnz = indptr[n]
    blocks = np.empty(nnz, dtype=np.int64)
    sub_ind = np.empty(nnz, dtype=np.int32)
    sub_rows = np.empty(nnz, dtype=np.int32)
    sub_ptr = np.zeros(n_sub + 1, dtype=np.int32)
    k = 0
    for i in range(n):
        r = newid[i]
        if r < 0:
            continue
        for b in range(indptr[i], indptr[i + 1]):
            c = newid[indices[b]]
            if c >= 0:
                blocks[k] = b
                sub_ind[k] = c
                sub_rows[k] = r
                k += 1
        sub_ptr[r + 1] = k
    # rows without kept blocks inherit the previous end
    for r in range(n_sub):
        if sub_ptr[r + 1] < sub_ptr[r]:
            sub_ptr[r + 1] = sub_ptr[r]
    return blocks[:k].copy(), sub_ptr, sub_ind[:k].copy(), sub_rows[:k].copy()


@njit(cache=True)
def block_pattern_update(old_indptr, old_indices, old_blockmap, old_tets, tets, n, tet_parent, new2old):
    """The block pattern of a mesh changed locally (a cut), from the pattern before the change.

    Rows of nodes whose surrounding tets are all unchanged are copied (their
    columns renumbered); only the rows around the change are rebuilt. Gives the
    same result as :func:`block_pattern` on the new mesh.

    Parameters
    ----------
    old_indptr, old_indices, old_blockmap : the pattern of the old mesh (int32).
    old_tets : (m_old, 4) int64, the old mesh's tets.
    tets : (m, 4) int64, the new mesh's tets. n : int, its number of nodes.
    tet_parent : (m,) int64, the old tet each new tet comes from.
    new2old : (n,) int64, the old node a new node is a plain copy of, -1 for
        new or duplicated nodes. It must be increasing on the plain nodes.

    Returns
    -------
    indptr, indices, blockmap, diag (int32), as :func:`block_pattern`.
    """
    m = tets.shape[0]
    n_old = old_indptr.shape[0] - 1
    # a tet is clean when it is its parent with every node a plain copy
    dirty = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        if new2old[i] < 0:
            dirty[i] = True
    clean_deg = np.zeros(n, dtype=np.int32)
    clean = np.zeros(m, dtype=np.bool_)
    for e in range(m):
        p = tet_parent[e]
        ok = True
        for a in range(4):
            if new2old[tets[e, a]] != old_tets[p, a]:
                ok = False
                break
        clean[e] = ok
        if ok:
            for a in range(4):
                clean_deg[tets[e, a]] += 1
        else:
            for a in range(4):
                dirty[tets[e, a]] = True
    old_deg = np.zeros(n_old, dtype=np.int32)
    for e in range(old_tets.shape[0]):
        for a in range(4):
            old_deg[old_tets[e, a]] += 1
    for i in range(n):
        if not dirty[i] and clean_deg[i] != old_deg[new2old[i]]:
            dirty[i] = True  # it lost a tet of the old mesh
    # incidences of the dirty nodes
    ptr = np.zeros(n + 1, dtype=np.int32)
    for e in range(m):
        for a in range(4):
            if dirty[tets[e, a]]:
                ptr[tets[e, a] + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    fill = ptr[:-1].copy()
    inc_tet = np.empty(ptr[n], dtype=np.int32)
    inc_loc = np.empty(ptr[n], dtype=np.int32)
    for e in range(m):
        for a in range(4):
            v = tets[e, a]
            if dirty[v]:
                inc_tet[fill[v]] = e
                inc_loc[fill[v]] = a
                fill[v] += 1
    # columns of the dirty rows
    mark = np.full(n, -1, dtype=np.int32)
    dbuf = np.empty(16 * ptr[n] + 1, dtype=np.int32)
    dstart = np.zeros(n + 1, dtype=np.int32)
    rowlen = np.zeros(n, dtype=np.int32)
    nd = 0
    for i in range(n):
        if dirty[i]:
            dstart[i] = nd
            start = nd
            nd = _row_columns(i, ptr, inc_tet, tets, mark, dbuf, start)
            rowlen[i] = nd - start
        else:
            j = new2old[i]
            rowlen[i] = old_indptr[j + 1] - old_indptr[j]
    indptr = np.zeros(n + 1, dtype=np.int32)
    for i in range(n):
        indptr[i + 1] = indptr[i] + rowlen[i]
    old2new = np.full(n_old, -1, dtype=np.int32)
    for i in range(n):
        if new2old[i] >= 0:
            old2new[new2old[i]] = i
    indices = np.empty(indptr[n], dtype=np.int32)
    diag = np.full(n, -1, dtype=np.int32)
    pos = np.zeros(n, dtype=np.int32)
    blockmap = np.empty((m, 4, 4), dtype=np.int32)
    for i in range(n):
        o = indptr[i]
        if dirty[i]:
            s0 = dstart[i]
            for q in range(rowlen[i]):
                indices[o + q] = dbuf[s0 + q]
                pos[dbuf[s0 + q]] = o + q
            for k in range(ptr[i], ptr[i + 1]):
                e = inc_tet[k]
                a = inc_loc[k]
                for b in range(4):
                    blockmap[e, a, b] = pos[tets[e, b]]
        else:
            j = new2old[i]
            s0 = old_indptr[j]
            for q in range(rowlen[i]):
                indices[o + q] = old2new[old_indices[s0 + q]]
        for q in range(rowlen[i]):
            if indices[o + q] == i:
                diag[i] = o + q
    # clean tets: rows of clean nodes keep their block order, shifted to the new row start
    for e in range(m):
        if not clean[e]:
            continue
        p = tet_parent[e]
        for a in range(4):
            r = tets[e, a]
            if dirty[r]:
                continue
            shift = indptr[r] - old_indptr[new2old[r]]
            for b in range(4):
                blockmap[e, a, b] = old_blockmap[p, a, b] + shift
    return indptr, indices, blockmap, diag
