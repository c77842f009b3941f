"""Integer keys of sorted node triples and compiled set operations on ascending key arrays.

A face (node triple) is encoded as one int64 with :data:`KEY_BASE` (as
:func:`organsim.mesh.topology.face_keys` does); the cutter keeps its cut-face tags as an
ascending array of such keys, merged, searched and renumbered by the helpers here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Base for encoding a sorted node pair or triple as one int64 (node ids < 2**21; cutting.face_keys).
KEY_BASE = 1 << 21


@njit(cache=True, nogil=True)
def _key3(a, b, c):
    """Order-independent int64 key of a node triple (as ``cutting.face_keys``)."""
    if a > b:
        a, b = b, a
    if b > c:
        b, c = c, b
    if a > b:
        a, b = b, a
    return a + KEY_BASE * (b + KEY_BASE * c)


@njit(cache=True, nogil=True)
def _in_sorted(keys, x):
    """Whether ``x`` is in the ascending array ``keys``."""
    i = np.searchsorted(keys, x)
    return i < keys.shape[0] and keys[i] == x


@njit(cache=True, nogil=True)
def _sorted_unique(a):
    """``np.unique(a)`` for a 1-D int64 array."""
    s = np.sort(a)
    n = 0
    for i in range(s.shape[0]):
        if n == 0 or s[i] != s[n - 1]:
            s[n] = s[i]
            n += 1
    return s[:n].copy()


@njit(cache=True, nogil=True)
def merge_keys(keys, extra):
    """``np.unique(np.concatenate([keys, extra]))`` for ``keys`` ascending and unique (int64)."""
    e = _sorted_unique(extra)
    out = np.empty(keys.shape[0] + e.shape[0], dtype=np.int64)
    i = 0
    j = 0
    n = 0
    while i < keys.shape[0] or j < e.shape[0]:
        if j >= e.shape[0] or (i < keys.shape[0] and keys[i] < e[j]):
            v = keys[i]
            i += 1
        elif i >= keys.shape[0] or e[j] < keys[i]:
            v = e[j]
            j += 1
        else:
            v = keys[i]
            i += 1
            j += 1
        out[n] = v
        n += 1
    return out[:n].copy()


@njit(cache=True, nogil=True)
def isin_sorted(x, keys):
    """``np.isin(x, keys)`` for ``keys`` ascending (int64)."""
    out = np.empty(x.shape[0], dtype=np.bool_)
    for i in range(x.shape[0]):
        out[i] = _in_sorted(keys, x[i])
    return out


@njit(cache=True, nogil=True)
def remap_keys(keys, renum):
    """Face keys under a node renumbering, those with a dropped node (``renum`` -1) left out.

    Parameters
    ----------
    keys : (k,) int64 face keys. renum : (n,) int64 new id of each node, -1 if dropped.

    Returns
    -------
    (k',) int64, ascending, unique.
    """
    out = np.empty(keys.shape[0], dtype=np.int64)
    n = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        a = renum[k % KEY_BASE]
        b = renum[(k // KEY_BASE) % KEY_BASE]
        c = renum[k // (KEY_BASE * KEY_BASE)]
        if a >= 0 and b >= 0 and c >= 0:
            out[n] = _key3(a, b, c)
            n += 1
    return _sorted_unique(out[:n])


@njit(cache=True, nogil=True)
def remap_ids(a, renum):
    """Node ids ``a`` (any shape, flattened) under ``renum``; -1 stays -1 (and dropped nodes become -1)."""
    out = np.empty(a.shape[0], dtype=np.int64)
    for i in range(a.shape[0]):
        out[i] = renum[a[i]] if a[i] >= 0 else -1
    return out
