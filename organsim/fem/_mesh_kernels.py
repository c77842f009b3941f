"""Compiled kernels for the per-mesh set-up of the solver.

They run once per mesh, and again after every cut increment (a topology change),
so they sit on the interactive path of cutting: the block sparsity pattern and
the shape-function gradients of P1 tets, without sorting or Python loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
    deg : ndarray (n,) int32
        Number of tets around each node.

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
    deg = np.empty(n, dtype=np.int32)
    for i in range(n):
        deg[i] = ptr[i + 1] - ptr[i]
    return indptr, buf[:nnz].copy(), blockmap, diag, deg


@njit(cache=True, nogil=True)
def is_identity_order(elems):
    """Whether ``elems`` (k,) int64 is ``0, 1, ..., k - 1``."""
    for i in range(elems.shape[0]):
        if elems[i] != i:
            return False
    return True


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def sub_pattern(indptr, indices, nodes, newid):
    """The block pattern restricted to ``nodes`` (sorted), renumbered by ``newid``.

    ``newid[nodes[r]] = r``, -1 elsewhere.

    Returns ``blocks`` (k,) int64, the parent block of each kept block, and the
    kept pattern's ``indptr`` (len(nodes) + 1,), ``indices`` (k,) and ``rows`` (k,),
    all int32. Visits only the kept rows; they stay sorted because ``newid``
    is increasing on the kept nodes.
    """
    n_sub = nodes.shape[0]
    cap = 0
    for r in range(n_sub):
        cap += indptr[nodes[r] + 1] - indptr[nodes[r]]
    blocks = np.empty(cap, dtype=np.int64)
    sub_ind = np.empty(cap, dtype=np.int32)
    sub_rows = np.empty(cap, dtype=np.int32)
    sub_ptr = np.zeros(n_sub + 1, dtype=np.int32)
    k = 0
    for r in range(n_sub):
        i = nodes[r]
        for b in range(indptr[i], indptr[i + 1]):
            c = newid[indices[b]]
            if c >= 0:
                blocks[k] = b
                sub_ind[k] = c
                sub_rows[k] = r
                k += 1
        sub_ptr[r + 1] = k
    return blocks[:k].copy(), sub_ptr, sub_ind[:k].copy(), sub_rows[:k].copy()


@njit(cache=True, nogil=True)
def block_pattern_update(old_indptr, old_indices, old_blockmap, old_deg, old_tets, tets, n, tet_parent, new2old):
    """The block pattern of a mesh changed locally (a cut), from the pattern before the change.

    Rows of nodes whose surrounding tets are all unchanged are copied (their
    columns renumbered); only the rows around the change are rebuilt. Gives the
    same result as :func:`block_pattern` on the new mesh.

    Parameters
    ----------
    old_indptr, old_indices, old_blockmap, old_deg : the pattern of the old mesh (int32)
        and its number of tets around each node.
    old_tets : (m_old, 4) int64, the old mesh's tets.
    tets : (m, 4) int64, the new mesh's tets. n : int, its number of nodes.
    tet_parent : (m,) int64, the old tet each new tet comes from.
    new2old : (n,) int64, the old node a new node is a plain copy of, -1 for
        new or duplicated nodes. It must be increasing on the plain nodes.

    Returns
    -------
    indptr, indices, blockmap, diag, deg (int32), as :func:`block_pattern`.
    """
    m = tets.shape[0]
    n_old = old_indptr.shape[0] - 1
    # a tet is clean when it is its parent with every node a plain copy
    dirty = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        if new2old[i] < 0:
            dirty[i] = True
    clean_deg = np.zeros(n, dtype=np.int32)
    clean = np.empty(m, dtype=np.bool_)
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
    for i in range(n):
        if not dirty[i] and clean_deg[i] != old_deg[new2old[i]]:
            dirty[i] = True  # it lost a tet of the old mesh
    # incidences of the dirty nodes, in one pass over the tets (a few hundred among the
    # 4 m corners), then grouped by node
    k_inc = 0
    pair_tet = np.empty(4 * m, dtype=np.int32)
    pair_loc = np.empty(4 * m, dtype=np.int32)
    ptr = np.zeros(n + 1, dtype=np.int32)
    for e in range(m):
        for a in range(4):
            v = tets[e, a]
            if dirty[v]:
                pair_tet[k_inc] = e
                pair_loc[k_inc] = a
                k_inc += 1
                ptr[v + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    fill = ptr[:-1].copy()
    inc_tet = np.empty(k_inc, dtype=np.int32)
    inc_loc = np.empty(k_inc, dtype=np.int32)
    for k in range(k_inc):
        e = pair_tet[k]
        a = pair_loc[k]
        v = tets[e, a]
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
    deg = clean_deg
    for i in range(n):
        if dirty[i]:
            deg[i] = ptr[i + 1] - ptr[i]
    return indptr, indices, blockmap, diag, deg


@njit(cache=True, nogil=True)
def rest_sub_blocks(tets, grads, vols, lam, mu, row_slot, col_id, indptr, indices):
    """Small-strain (rest) stiffness of the tets around selected nodes, on their sub-pattern.

    ``K_ab = V (lam g_a g_b^T + mu g_b g_a^T + mu (g_a . g_b) I)`` for every node
    pair (a, b) of a tet with a among the selected rows and b among the selected
    columns; every tet around a selected row node is visited, so its blocks are complete.

    Parameters
    ----------
    tets : (m, 4) int64. grads : (m, 4, 3) 1/m. vols : (m,) m^3.
    lam, mu : (m,) Pa, the small-strain Lame parameters of each tet.
    row_slot : (n,) int64, the sub-pattern row of each node, -1 for nodes not selected.
    col_id : (n,) int64, the sub-pattern column of each node, -1 for nodes not selected.
    indptr, indices : the sub-pattern (rows and sorted block columns in that numbering).

    Returns
    -------
    ndarray, shape (len(indices), 3, 3), N/m
    """
    out = np.zeros((indices.shape[0], 3, 3))
    for e in range(tets.shape[0]):
        hit = False
        for a in range(4):
            if row_slot[tets[e, a]] >= 0:
                hit = True
        if not hit:
            continue
        V = vols[e]
        la = lam[e]
        m = mu[e]
        for a in range(4):
            ra = row_slot[tets[e, a]]
            if ra < 0:
                continue
            for b in range(4):
                cb = col_id[tets[e, b]]
                if cb < 0:
                    continue
                q = indptr[ra]
                while q < indptr[ra + 1] and indices[q] != cb:
                    q += 1
                if q == indptr[ra + 1]:
                    continue
                gab = 0.0
                for d in range(3):
                    gab += grads[e, a, d] * grads[e, b, d]
                for i in range(3):
                    for j in range(3):
                        v = la * grads[e, a, i] * grads[e, b, j] + m * grads[e, a, j] * grads[e, b, i]
                        if i == j:
                            v += m * gab
                        out[q, i, j] += V * v
    return out


@njit(cache=True, nogil=True)
def banded_lower(indptr, indices, data, pos, kd):
    """LAPACK lower band storage (kd + 1, 3 n) of a symmetric block matrix, nodes renumbered by ``pos``.

    ``data`` (nnz, 3, 3) holds the blocks of a symmetric matrix on the block CSR
    pattern ``indptr``/``indices``; entry (I, J), I >= J, of the permuted scalar
    matrix goes to ``ab[I - J, J]``. ``kd`` must cover the permuted bandwidth.
    """
    n = indptr.shape[0] - 1
    ab = np.zeros((kd + 1, 3 * n))
    for r in range(n):
        pr = pos[r]
        for q in range(indptr[r], indptr[r + 1]):
            pc = pos[indices[q]]
            if pr < pc:
                continue
            for i in range(3):
                for j in range(3):
                    I = 3 * pr + i
                    J = 3 * pc + j
                    if I >= J:
                        ab[I - J, J] = data[q, i, j]
    return ab


@njit(cache=True, nogil=True)
def restrict_compose(t_ptr, t_ind, t_val, row_keep, col_new, c_ptr, c_ind, c_val, n_cols):
    """Rows ``row_keep`` and mapped columns of a sparse transfer, optionally composed with a second one.

    Computes ``T[row_keep][:, cols] @ C`` in CSR form, where ``col_new`` (T's
    columns) gives the row of ``C`` for each column of ``T`` (-1: dropped). With
    an empty ``c_ptr`` (length 0), ``C`` is the identity (``n_cols`` columns).
    Entries with the same column in a row are summed; columns are unsorted.

    Returns
    -------
    indptr (k + 1,) int64, indices int64, data float64
    """
    k = row_keep.shape[0]
    compose = c_ptr.shape[0] > 0
    cap = 0
    for r in range(k):
        i = row_keep[r]
        for q in range(t_ptr[i], t_ptr[i + 1]):
            c = col_new[t_ind[q]]
            if c >= 0:
                cap += (c_ptr[c + 1] - c_ptr[c]) if compose else 1
    ptr = np.zeros(k + 1, dtype=np.int64)
    ind = np.empty(cap, dtype=np.int64)
    val = np.empty(cap)
    where = np.full(n_cols, -1, dtype=np.int64)
    nz = 0
    for r in range(k):
        start = nz
        i = row_keep[r]
        for q in range(t_ptr[i], t_ptr[i + 1]):
            c = col_new[t_ind[q]]
            if c < 0:
                continue
            if compose:
                lo = c_ptr[c]
                hi = c_ptr[c + 1]
            else:
                lo = 0
                hi = 1
            for s in range(lo, hi):
                col = c_ind[s] if compose else c
                v = t_val[q] * c_val[s] if compose else t_val[q]
                w = where[col]
                if w >= start:
                    val[w] += v
                else:
                    where[col] = nz
                    ind[nz] = col
                    val[nz] = v
                    nz += 1
        ptr[r + 1] = nz
    return ptr, ind[:nz].copy(), val[:nz].copy()


@njit(cache=True, nogil=True)
def lumped_masses(tets, vols, density, n):
    """Row-sum lumped mass per node (n,) kg: a quarter of each tet's mass ``rho V`` to each of its nodes."""
    m = np.zeros(n)
    for e in range(tets.shape[0]):
        w = 0.25 * density[e] * vols[e]
        for a in range(4):
            m[tets[e, a]] += w
    return m


@njit(cache=True, nogil=True)
def transfer_summary(indptr, indices, data, n_old):
    """How each new node of a transfer (new = T old, CSR) relates to the old nodes, in one pass.

    Returns
    -------
    parent : (n_new,) int64
        The old node with the largest weight in each row (the first of equal ones; 0 if empty).
    nparents : (n_new,) int64
        Stored entries per row.
    ncopies : (n_old,) int64
        Rows drawing on each old node.
    plain : (n_new,) bool
        Rows that copy one old node (a single entry within 1e-5 of 1).
    new2old : (n_new,) int64
        ``parent`` for plain rows whose old node has no other copy, -1 otherwise.
    affected : (n_new,) bool
        Rows the change touched: not plain, or a copy of an old node with several copies.
    kept_in_order : bool
        Whether ``new2old`` increases over the rows where it is set.
    """
    n = indptr.shape[0] - 1
    parent = np.zeros(n, dtype=np.int64)
    nparents = np.zeros(n, dtype=np.int64)
    plain = np.zeros(n, dtype=np.bool_)
    ncopies = np.zeros(n_old, dtype=np.int64)
    for i in range(n):
        best = -np.inf
        for q in range(indptr[i], indptr[i + 1]):
            ncopies[indices[q]] += 1
            if data[q] > best:
                best = data[q]
                parent[i] = indices[q]
        k = indptr[i + 1] - indptr[i]
        nparents[i] = k
        plain[i] = k == 1 and abs(data[indptr[i]] - 1.0) <= 1e-5
    new2old = np.full(n, -1, dtype=np.int64)
    affected = np.zeros(n, dtype=np.bool_)
    kept_in_order = True
    last = -1
    for i in range(n):
        single = ncopies[parent[i]] == 1
        affected[i] = not plain[i] or not single
        if plain[i] and single:
            new2old[i] = parent[i]
            if parent[i] <= last:
                kept_in_order = False
            last = parent[i]
    return parent, nparents, ncopies, plain, new2old, affected, kept_in_order
