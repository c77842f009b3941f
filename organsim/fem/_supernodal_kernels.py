"""Compiled kernels of organsim's supernodal sparse Cholesky (:mod:`organsim.fem.supernodal`).

The factorization is multifrontal on the 3x3 block (node) graph: the symbolic analysis
(:func:`analyse`) runs on nodes, a third of the DOFs, and every supernode's front is a dense
column-major matrix factored with LAPACK/BLAS (``dpotrf``, ``dtrsm``, ``dsyrk``). The BLAS is
scipy's (``scipy.linalg.cython_blas`` / ``cython_lapack``), called through function addresses
passed in at run time (:func:`blas_call`), so the kernels stay cacheable and release the GIL.

Conventions: ``perm`` maps a new (factor) node position to the old node, ``iperm`` the reverse;
node ``i`` owns DOFs ``3 i .. 3 i + 2``; supernode ``s`` holds the consecutive new nodes
``first[s] .. first[s + 1] - 1`` and its rows below them are ``rows[rptr[s]:rptr[s + 1]]``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

# indices into the function-address table (see organsim.fem.supernodal._blas_table)
DPOTRF, DTRSM, DSYRK, DTRSV, DGEMV, STRSV, SGEMV = 0, 1, 2, 3, 4, 5, 6
# indices into the character table
CH_L, CH_N, CH_T, CH_R = 0, 1, 2, 3


@intrinsic
def blas_call(typingctx, fn, args):
    """Call the C function at address ``fn`` with the pointer arguments ``args`` (a tuple of addresses).

    scipy's ``cython_blas``/``cython_lapack`` functions take every argument by pointer and return
    nothing, so one intrinsic calls them all.
    """
    if not (isinstance(fn, types.Integer) and isinstance(args, types.BaseTuple)
            and all(isinstance(t, types.Integer) for t in args.types)):
        return None
    count = len(args.types)

    def codegen(context, builder, signature, llargs):
        address, packed = llargs
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p] * count)
        fptr = builder.inttoptr(address, fnty.as_pointer())
        builder.call(fptr, [builder.inttoptr(builder.extract_value(packed, i), i8p) for i in range(count)])
        return context.get_dummy_value()

    return types.void(fn, args), codegen


@njit(cache=True)
def _postorder(parent):
    """Postorder of the forest ``parent`` (-1 at roots): ``post[k]`` is the node visited k-th."""
    n = len(parent)
    head = np.full(n, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    for j in range(n - 1, -1, -1):       # children lists, in increasing order
        p = parent[j]
        if p != -1:
            nxt[j] = head[p]
            head[p] = j
    post = np.empty(n, np.int64)
    stack = np.empty(n, np.int64)
    k = 0
    for root in range(n):
        if parent[root] != -1:
            continue
        top = 0
        stack[0] = root
        while top >= 0:
            p = stack[top]
            c = head[p]
            if c == -1:
                top -= 1
                post[k] = p
                k += 1
            else:
                head[p] = nxt[c]
                top += 1
                stack[top] = c
    return post


@njit(cache=True)
def _etree(indptr, indices, perm, iperm):
    """Elimination tree of the permuted symmetric node graph (Liu's algorithm, path compression)."""
    n = len(perm)
    parent = np.full(n, -1, np.int64)
    ancestor = np.full(n, -1, np.int64)
    for i in range(n):
        r = perm[i]
        for k in range(indptr[r], indptr[r + 1]):
            j = iperm[indices[k]]
            while j != -1 and j < i:
                jn = ancestor[j]
                ancestor[j] = i
                if jn == -1:
                    parent[j] = i
                j = jn
    return parent


@njit(cache=True, inline="always")
def _merge_unmarked(src, lo, hi, mark, j, work, cnt):
    """Append to ``work[cnt:]`` the entries of ``src[lo:hi]`` not yet marked ``j`` (marking
    them); the new count. A column structure built as a set union."""
    for t in range(lo, hi):
        i = src[t]
        if mark[i] != j:
            mark[i] = j
            work[cnt] = i
            cnt += 1
    return cnt


@njit(cache=True)
def analyse(indptr, indices, order, relax_zeros, relax_small):
    """Symbolic analysis: ordering postordered, lower pattern, supernodes and their row structure.

    Parameters
    ----------
    indptr, indices : ndarray (int)
        Block CSR pattern of the symmetric matrix (both triangles and the diagonal), nodes.
    order : (n,) int64
        Fill-reducing node order (new position -> old node), e.g. nested dissection.
    relax_zeros : float
        A chain column joins the supernode below it when the explicit zeros this adds stay at
        most this fraction of the merged supernode's entries ...
    relax_small : int
        ... or the merged supernode has at most this many nodes (relaxed amalgamation).

    Returns
    -------
    tuple
        ``perm, iperm, a_ptr, a_row, a_blk, diag_blk, first, rptr, rows, sparent, nchild,
        l_off, front_max, stack_max`` (see the module docstring; ``a_*`` is the strictly lower
        block pattern by new column with the index of its (upper, transposed) block in the
        input, ``l_off`` each supernode's offset in the factor storage, in doubles).
    """
    n = len(order)
    iperm0 = np.empty(n, np.int64)
    for i in range(n):
        iperm0[order[i]] = i
    parent0 = _etree(indptr, indices, order, iperm0)
    post = _postorder(parent0)
    perm = np.empty(n, np.int64)
    for k in range(n):
        perm[k] = order[post[k]]
    iperm = np.empty(n, np.int64)
    for i in range(n):
        iperm[perm[i]] = i
    parent = _etree(indptr, indices, perm, iperm)

    # strictly lower block pattern by column: column j's rows i > j; the block (perm[j], perm[i])
    # of the input is A[j, i], whose transpose is the lower block A[i, j]
    a_cnt = np.zeros(n + 1, np.int64)
    diag_blk = np.full(n, -1, np.int64)
    for j in range(n):
        r = perm[j]
        for k in range(indptr[r], indptr[r + 1]):
            i = iperm[indices[k]]
            if i > j:
                a_cnt[j + 1] += 1
            elif i == j:
                diag_blk[j] = k
    a_ptr = np.cumsum(a_cnt)
    a_row = np.empty(a_ptr[n], np.int64)
    a_blk = np.empty(a_ptr[n], np.int64)
    fill = a_ptr[:n].copy()
    for j in range(n):
        r = perm[j]
        for k in range(indptr[r], indptr[r + 1]):
            i = iperm[indices[k]]
            if i > j:
                a_row[fill[j]] = i
                a_blk[fill[j]] = k
                fill[j] += 1
        lo, hi = a_ptr[j], a_ptr[j + 1]
        o = np.argsort(a_row[lo:hi])
        a_row[lo:hi] = a_row[lo:hi][o]
        a_blk[lo:hi] = a_blk[lo:hi][o]

    # each column's strictly lower structure (nodes): its A rows and its children's
    # structures without itself; children precede parents in the postorder
    head = np.full(n, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    nkids = np.zeros(n, np.int64)
    for j in range(n - 1, -1, -1):
        p = parent[j]
        if p != -1:
            nxt[j] = head[p]
            head[p] = j
            nkids[p] += 1
    cap = max(4 * a_ptr[n], 16)
    s_idx = np.empty(cap, np.int64)
    s_ptr = np.zeros(n + 1, np.int64)
    mark = np.full(n, -1, np.int64)
    work = np.empty(n, np.int64)
    for j in range(n):
        mark[j] = j
        cnt = 0
        cnt = _merge_unmarked(a_row, a_ptr[j], a_ptr[j + 1], mark, j, work, cnt)
        c = head[j]
        while c != -1:
            cnt = _merge_unmarked(s_idx, s_ptr[c], s_ptr[c + 1], mark, j, work, cnt)
            c = nxt[c]
        if s_ptr[j] + cnt > cap:
            while s_ptr[j] + cnt > cap:
                cap *= 2
            grown = np.empty(cap, np.int64)
            grown[:s_ptr[j]] = s_idx[:s_ptr[j]]
            s_idx = grown
        w = np.sort(work[:cnt])
        s_idx[s_ptr[j]:s_ptr[j] + cnt] = w
        s_ptr[j + 1] = s_ptr[j] + cnt
    count = s_ptr[1:] - s_ptr[:-1]        # strictly lower node count per column

    # supernodes: column j joins the one ending at j - 1 when j - 1 is its only child and
    # the merge adds no (fundamental) or few (relaxed) explicit zeros
    first_l = np.empty(n + 1, np.int64)
    ns = 0
    first_l[0] = 0
    size = 1          # nodes in the current supernode
    zeros = 0         # explicit zero blocks in it
    entries = count[0] + 1
    for j in range(1, n):
        join = False
        if parent[j - 1] == j and nkids[j] == 1:
            # the current supernode's columns all get j's structure: extra rows per column
            extra = count[j] - (count[j - 1] - 1)
            new_zeros = zeros + size * extra
            new_entries = entries + size * extra + count[j] + 1
            if extra == 0 or size + 1 <= relax_small or new_zeros <= relax_zeros * new_entries:
                join = True
                zeros = new_zeros
                entries = new_entries
                size += 1
        if not join:
            ns += 1
            first_l[ns] = j
            size = 1
            zeros = 0
            entries = count[j] + 1
    ns += 1
    first_l[ns] = n
    first = first_l[:ns + 1].copy()

    # each supernode's rows below it: its last column's structure (which holds the others')
    sn_of = np.empty(n, np.int64)
    for s in range(ns):
        for j in range(first[s], first[s + 1]):
            sn_of[j] = s
    rptr = np.zeros(ns + 1, np.int64)
    for s in range(ns):
        rptr[s + 1] = rptr[s] + count[first[s + 1] - 1]
    rows = np.empty(rptr[ns], np.int64)
    for s in range(ns):
        last = first[s + 1] - 1
        rows[rptr[s]:rptr[s + 1]] = s_idx[s_ptr[last]:s_ptr[last + 1]]
    sparent = np.full(ns, -1, np.int64)
    nchild = np.zeros(ns, np.int64)
    for s in range(ns):
        if rptr[s + 1] > rptr[s]:
            sparent[s] = sn_of[rows[rptr[s]]]
            nchild[sparent[s]] += 1

    # storage: the factor's dense panels, the largest front, the update-matrix stack's peak
    l_off = np.zeros(ns + 1, np.int64)
    front_max = 0
    stack_max = 0
    stack_top = 0
    stack_sizes = np.empty(ns, np.int64)
    depth = 0
    for s in range(ns):
        ncol = 3 * (first[s + 1] - first[s])
        m = ncol + 3 * (rptr[s + 1] - rptr[s])
        l_off[s + 1] = l_off[s] + m * ncol
        front_max = max(front_max, m * m)
        for _ in range(nchild[s]):
            depth -= 1
            stack_top -= stack_sizes[depth]
        u = m - ncol
        if u > 0:
            stack_sizes[depth] = u * (u + 1) // 2    # packed lower triangle (see factor)
            depth += 1
            stack_top += stack_sizes[depth - 1]
            stack_max = max(stack_max, stack_top)
    return (perm, iperm, a_ptr, a_row, a_blk, diag_blk, first, rptr, rows, sparent, nchild, l_off,
            front_max, stack_max)


@njit(cache=True, nogil=True)
def factor(data, a_ptr, a_row, a_blk, diag_blk, first, rptr, rows, nchild, l_off, front, stack, L,
           loc, ints, dbls, chars, fns):
    """Multifrontal numeric factorization into ``L`` (the supernodes' dense panels).

    Parameters
    ----------
    data : (nnzb, 3, 3) float64
        The input's blocks (see :func:`analyse` for the pattern arrays).
    front, stack : float64
        Workspaces of :func:`analyse`'s ``front_max`` and ``stack_max`` doubles.
    L : float64 or float32
        Output, ``l_off[-1]`` entries: supernode ``s``'s panel is the column-major
        ``m x ncol`` matrix at ``l_off[s]`` (its first ``ncol`` rows the diagonal block),
        factored in double and stored in ``L``'s precision.
    loc : (n,) int64
        Workspace.
    ints, dbls, chars, fns
        Scalar argument buffers for the BLAS (int32 (8,), float64 (4,), uint8 (4,)) and the
        function-address table.

    Returns
    -------
    int
        0, or ``1 + s`` when supernode ``s``'s diagonal block is not positive definite.
    """
    ns = len(first) - 1
    fp = front.ctypes.data
    ip = ints.ctypes.data
    dp = dbls.ctypes.data
    cp = chars.ctypes.data
    stack_sizes = np.empty(ns, np.int64)
    stack_owner = np.empty(ns, np.int64)
    depth = 0
    top = 0
    for s in range(ns):
        f0 = first[s]
        f1 = first[s + 1]
        nn = f1 - f0
        r0 = rptr[s]
        nr = rptr[s + 1] - r0
        ncol = 3 * nn
        m = ncol + 3 * nr
        u = m - ncol
        for t in range(nn):
            loc[f0 + t] = t
        for t in range(nr):
            loc[rows[r0 + t]] = nn + t
        # zero the lower part of the front
        for c in range(m):
            for r in range(c, m):
                front[r + c * m] = 0.0
        # assemble the input's columns of this supernode
        for t in range(nn):
            j = f0 + t
            k = diag_blk[j]
            if k >= 0:
                for a in range(3):
                    for b in range(3):
                        front[3 * t + a + (3 * t + b) * m] += data[k, a, b]
            for q in range(a_ptr[j], a_ptr[j + 1]):
                li = loc[a_row[q]]
                k = a_blk[q]
                for a in range(3):
                    for b in range(3):
                        front[3 * li + a + (3 * t + b) * m] += data[k, b, a]
        # extend-add the children's update matrices (on top of the stack, last child last; each
        # its lower triangle packed by columns: entry (r, k), r >= k, at k u - k (k + 1) / 2 + r)
        for _ in range(nchild[s]):
            depth -= 1
            uc = stack_sizes[depth]
            top -= uc * (uc + 1) // 2
            c = stack_owner[depth]
            cr0 = rptr[c]
            cnr = rptr[c + 1] - cr0
            for bb in range(cnr):
                lb = 3 * loc[rows[cr0 + bb]]
                for b in range(3):
                    k = 3 * bb + b
                    col = top + k * uc - k * (k + 1) // 2
                    dst = (lb + b) * m
                    # the diagonal node block: its rows at and below the diagonal only
                    for a in range(b, 3):
                        front[lb + a + dst] += stack[col + 3 * bb + a]
                    for aa in range(bb + 1, cnr):
                        la = 3 * loc[rows[cr0 + aa]]
                        for a in range(3):
                            front[la + a + dst] += stack[col + 3 * aa + a]
        # factor the diagonal block, solve for the panel below it, update the rest
        ints[0] = ncol
        ints[1] = m
        ints[2] = 0
        ints[3] = u
        blas_call(fns[DPOTRF], (cp + CH_L, ip, fp, ip + 4, ip + 8))
        if ints[2] != 0:
            return 1 + s
        if u > 0:
            dbls[0] = 1.0
            dbls[1] = -1.0
            off = fp + 8 * ncol
            blas_call(fns[DTRSM], (cp + CH_R, cp + CH_L, cp + CH_T, cp + CH_N, ip + 12, ip, dp, fp, ip + 4,
                                   off, ip + 4))
            blas_call(fns[DSYRK], (cp + CH_L, cp + CH_N, ip + 12, ip, dp + 8, off, ip + 4, dp,
                                   off + 8 * ncol * m, ip + 4))
        # keep the panel; push the update matrix
        base = l_off[s]
        for c in range(ncol):
            for r in range(m):
                L[base + r + c * m] = front[r + c * m]
        if u > 0:
            for c in range(u):
                col = top + c * u - c * (c + 1) // 2
                for r in range(c, u):
                    stack[col + r] = front[ncol + r + (ncol + c) * m]
            stack_sizes[depth] = u
            stack_owner[depth] = s
            depth += 1
            top += u * (u + 1) // 2
    return 0


@njit(cache=True, nogil=True, inline="always")
def _panel(s, first, rptr, l_off, ints, lp, yp, size):
    """Supernode ``s``'s columns, first row index, row count and the addresses of its panel and
    of its part of ``y``; sets the BLAS size arguments (n, lda, rows below) in ``ints``."""
    ncol = 3 * (first[s + 1] - first[s])
    r0 = rptr[s]
    nr = rptr[s + 1] - r0
    ints[0] = ncol
    ints[1] = ncol + 3 * nr
    ints[3] = 3 * nr
    return ncol, r0, nr, lp + size * l_off[s], yp + size * 3 * first[s]


@njit(cache=True, nogil=True)
def solve(L, perm, first, rptr, rows, l_off, b, x, y, w, ints, scal, chars, trsv, gemv):
    """``x = A^-1 b`` with the factor ``L`` (forward and back substitution by supernode).

    ``L`` may be float64 or float32 (a preconditioner's copy: half the memory traffic); ``y``,
    ``w`` and ``scal`` are of its type and ``trsv``, ``gemv`` the addresses of the BLAS of that
    type (``?trsv``, ``?gemv``).

    Parameters
    ----------
    b : (3 n,) float64
        Right-hand side in the input's DOF order.
    x : (3 n,) float64
        Output (the solution, input DOF order).
    y, w
        Workspaces of ``3 n`` and ``3 max(rptr[s+1]-rptr[s])`` entries.
    ints, scal, chars
        Scalar argument buffers (int32 (8,), (4,) of ``L``'s type, uint8 (4,)).
    """
    n = len(perm)
    ns = len(first) - 1
    size = L.itemsize
    for i in range(n):
        o = 3 * perm[i]
        y[3 * i] = b[o]
        y[3 * i + 1] = b[o + 1]
        y[3 * i + 2] = b[o + 2]
    lp = L.ctypes.data
    yp = y.ctypes.data
    wp = w.ctypes.data
    ip = ints.ctypes.data
    dp = scal.ctypes.data
    cp = chars.ctypes.data
    ints[4] = 1
    scal[0] = 1.0
    scal[1] = -1.0
    scal[2] = 0.0
    # every update stays in y (no node lies beyond n); the whole tree, forward then back
    _forward_range(0, ns, first, rptr, rows, l_off, y, w, y, n, lp, yp, wp, ip, dp, cp, size, trsv, gemv, ints)
    _backward_range(0, ns, first, rptr, rows, l_off, y, w, lp, yp, wp, ip, dp, cp, size, trsv, gemv, ints)
    for i in range(n):
        o = 3 * perm[i]
        x[o] = y[3 * i]
        x[o + 1] = y[3 * i + 1]
        x[o + 2] = y[3 * i + 2]


@njit(cache=True)
def pivots(L, first, l_off):
    """The factor's diagonal (3 n,) in factor order: ``A``'s pivots are its squares."""
    ns = len(first) - 1
    out = np.empty(3 * first[ns])
    for s in range(ns):
        ncol = 3 * (first[s + 1] - first[s])
        m = (l_off[s + 1] - l_off[s]) // ncol
        for r in range(ncol):
            out[3 * first[s] + r] = L[l_off[s] + r + r * m]
    return out


@njit(cache=True, nogil=True, inline="always")
def _forward_range(lo, hi, first, rptr, rows, l_off, y, w, z, node_hi, lp, yp, wp, ip, dp, cp, size, trsv,
                   gemv, ints):
    """Forward substitution over supernodes ``lo..hi-1`` (a subtree, or the top of the tree): updates
    of nodes below ``node_hi`` go into ``y``, of the others into ``z`` (the ancestors another thread
    may also update; summed afterwards)."""
    for s in range(lo, hi):
        ncol, r0, nr, panel, ys = _panel(s, first, rptr, l_off, ints, lp, yp, size)
        blas_call(trsv, (cp + CH_L, cp + CH_N, cp + CH_N, ip, panel, ip + 4, ys, ip + 16))
        if nr > 0:
            blas_call(gemv, (cp + CH_N, ip + 12, ip, dp, panel + size * ncol, ip + 4, ys, ip + 16,
                             dp + 2 * size, wp, ip + 16))
            for t in range(nr):
                node = rows[r0 + t]
                o = 3 * node
                if node < node_hi:
                    y[o] -= w[3 * t]
                    y[o + 1] -= w[3 * t + 1]
                    y[o + 2] -= w[3 * t + 2]
                else:
                    z[o] += w[3 * t]
                    z[o + 1] += w[3 * t + 1]
                    z[o + 2] += w[3 * t + 2]


@njit(cache=True, nogil=True, inline="always")
def _backward_range(lo, hi, first, rptr, rows, l_off, y, w, lp, yp, wp, ip, dp, cp, size, trsv, gemv, ints):
    """Back substitution over supernodes ``hi-1`` down to ``lo`` (their ancestors already solved)."""
    for s in range(hi - 1, lo - 1, -1):
        ncol, r0, nr, panel, ys = _panel(s, first, rptr, l_off, ints, lp, yp, size)
        if nr > 0:
            for t in range(nr):
                o = 3 * rows[r0 + t]
                w[3 * t] = y[o]
                w[3 * t + 1] = y[o + 1]
                w[3 * t + 2] = y[o + 2]
            blas_call(gemv, (cp + CH_T, ip + 12, ip, dp + size, panel + size * ncol, ip + 4, wp, ip + 16, dp,
                             ys, ip + 16))
        blas_call(trsv, (cp + CH_L, cp + CH_T, cp + CH_N, ip, panel, ip + 4, ys, ip + 16))


@njit(cache=True, nogil=True, parallel=True)
def solve_par(L, perm, first, rptr, rows, l_off, b, x, y, Z, W, INTS, SCAL, chars, trsv, gemv,
              task_lo, task_hi, bin_ptr, top):
    """:func:`solve` with the independent subtrees of the elimination tree on several threads.

    The tasks ``task_lo[j]..task_hi[j]-1`` are disjoint subtrees (contiguous in postorder); bin
    ``k`` (tasks ``bin_ptr[k]..bin_ptr[k+1]-1``) runs on one thread with its own workspaces (row
    ``k`` of ``Z``, ``W``, ``INTS``, ``SCAL``). ``top`` lists, ascending, the supernodes outside
    every task: the ancestors of the tasks, solved on one thread after the subtrees going forward
    and before them going back. Each thread writes only its tasks' own entries of ``y``; its
    forward updates of ancestor entries go to its row of ``Z`` and are summed in a fixed order,
    so the result does not depend on the number of threads.
    """
    n = len(perm)
    nbins = len(bin_ptr) - 1
    size = L.itemsize
    lp = L.ctypes.data
    yp = y.ctypes.data
    cp = chars.ctypes.data
    for i in range(n):
        o = 3 * perm[i]
        y[3 * i] = b[o]
        y[3 * i + 1] = b[o + 1]
        y[3 * i + 2] = b[o + 2]
    for k in range(nbins):
        INTS[k, 4] = 1
        SCAL[k, 0] = 1.0
        SCAL[k, 1] = -1.0
        SCAL[k, 2] = 0.0
        for j in range(len(top)):
            s = top[j]
            for o in range(3 * first[s], 3 * first[s + 1]):
                Z[k, o] = 0.0
    for k in prange(nbins):
        wp = W.ctypes.data + k * W.strides[0]
        ip = INTS.ctypes.data + k * INTS.strides[0]
        dp = SCAL.ctypes.data + k * SCAL.strides[0]
        for j in range(bin_ptr[k], bin_ptr[k + 1]):
            _forward_range(task_lo[j], task_hi[j], first, rptr, rows, l_off, y, W[k], Z[k],
                           first[task_hi[j]], lp, yp, wp, ip, dp, cp, size, trsv, gemv, INTS[k])
    for j in range(len(top)):
        s = top[j]
        for o in range(3 * first[s], 3 * first[s + 1]):
            acc = 0.0
            for k in range(nbins):
                acc += Z[k, o]
            y[o] -= acc
    wp = W.ctypes.data
    ip = INTS.ctypes.data
    dp = SCAL.ctypes.data
    for j in range(len(top)):
        # the top supernodes' ancestors are top supernodes too: every update stays in y
        _forward_range(top[j], top[j] + 1, first, rptr, rows, l_off, y, W[0], Z[0], n, lp, yp, wp, ip,
                       dp, cp, size, trsv, gemv, INTS[0])
    for j in range(len(top) - 1, -1, -1):
        _backward_range(top[j], top[j] + 1, first, rptr, rows, l_off, y, W[0], lp, yp, wp, ip, dp, cp, size,
                        trsv, gemv, INTS[0])
    for k in prange(nbins):
        wp = W.ctypes.data + k * W.strides[0]
        ip = INTS.ctypes.data + k * INTS.strides[0]
        dp = SCAL.ctypes.data + k * SCAL.strides[0]
        for j in range(bin_ptr[k + 1] - 1, bin_ptr[k] - 1, -1):
            _backward_range(task_lo[j], task_hi[j], first, rptr, rows, l_off, y, W[k], lp, yp, wp, ip, dp, cp,
                            size, trsv, gemv, INTS[k])
    for i in range(n):
        o = 3 * perm[i]
        x[o] = y[3 * i]
        x[o + 1] = y[3 * i + 1]
        x[o + 2] = y[3 * i + 2]
