"""Keep freed memory in the process for reuse: large arrays allocated again without page faults.

One job: set the C allocator's policy for the large, short-lived arrays a cut increment or a
step allocates. glibc's ``malloc`` hands each block above its *mmap threshold* fresh pages from
the kernel and returns them when freed. The threshold rises to the size of the last such block
freed, but a cut makes the mesh a little larger at each increment, so each increment's arrays are
a little larger than the last ones freed: every increment then faults in all of its arrays
again (about a thousand page faults per 8 MB). On the 99k-tet patient liver that made the first
changed increments of a cut 15-18 ms against 8-9 ms for the later ones, and an allocator policy
that never adapts (any ``MALLOC_*_`` environment variable fixes it) 23 ms for every increment.
A later session's alternating runs with and without the policy (whole increments, median)
differed by less than the machine's drift within the hour (10.0 / 11.3 against 12.3 / 12.8 ms),
so the gain is the first increments' spike, not a lower median.

:func:`retain_freed_memory` sets a fixed mmap threshold of 32 MiB (blocks below it come from the
heap and are reused) and keeps up to 256 MiB of freed memory at the heap's top. The command
line calls it at start; a script that cuts or steps large meshes may call it once. It changes
the whole process's allocator (on glibc only; elsewhere it does nothing) and may keep up to
about 256 MiB more resident after large arrays are freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["retain_freed_memory"]

#: ``mallopt`` parameters (glibc's ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks below this come from the heap (glibc's largest adaptive threshold on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: Freed memory kept at the heap's top before it is returned to the system.
TRIM_THRESHOLD = 256 << 20


def retain_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Make the C allocator reuse freed memory for large arrays instead of mapping fresh pages.

    Parameters
    ----------
    mmap_threshold : int
        Bytes; blocks at least this large are mapped from the system, smaller ones come
        from the heap.
    trim_threshold : int
        Bytes of free memory at the heap's top kept before it is returned to the system.

    Returns
    -------
    bool
        Whether the policy was set (False where the C library is not glibc).

    Examples
    --------
    The command line's policy, in MiB:

    >>> from organsim.memory import MMAP_THRESHOLD, TRIM_THRESHOLD
    >>> MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20
    (32, 256)
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                int(trim_threshold)))
