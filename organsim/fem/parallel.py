"""Race-free parallel schedules for the element kernels (both cores, ``numba.prange``).

One job: decide whether a kernel runs on several threads, and give it a schedule in
which no two elements that run at the same time write the same node. The elements of a
material group are cut in two halves at their median centroid; the elements of each half
that touch no node of the other run in parallel, and the separator between them (the
elements touching both) is cut the same way in turn (:func:`element_schedule`, a nested
dissection). A kernel then runs the colors (the levels) one after another and the chunks
of a color in parallel (:func:`organsim.fem._kernels.corot_kernel_par`): every force and
stiffness block is a sum taken in one fixed order, so the result does not depend on the
number of threads.

Groups of at least :data:`MIN_PARALLEL_ELEMENTS` tets always follow their schedule's
order, on one thread or several, so the results do not depend on the thread count;
smaller groups run the serial kernels in their own element order, exactly as before.

On a shared machine the second core is often busy, and a kernel that waits for a
descheduled thread at each color's barrier can then take several times as long as on
one core (measured: 126 ms against 31 ms serial on the 41k-tet liver, load 2 on 2
cores). :class:`Autotune` therefore times both ways as the simulation runs and uses
the faster, trying the other now and then; both give the same result, bit for bit.

numba's default ``workqueue`` threading layer must not be entered from two Python
threads at once; :data:`KERNEL_LOCK` serializes the parallel launches (the simulation,
a viewer and a browser session may step from different threads).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

# numba's OpenMP threading layer spins its idle threads for a while after each parallel
# region by default; on a machine whose cores are shared (the viewer, a browser session,
# other jobs) that spinning takes the CPU the work needs. Idle threads sleep instead
# unless the user chose otherwise (read when the layer starts, at the first parallel call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

__all__ = ["Autotune", "KERNEL_LOCK", "MIN_PARALLEL_ELEMENTS", "MIN_PARALLEL_ROWS", "element_schedule",
           "threads", "use_parallel"]

#: Groups with fewer tets than this run the serial kernel (a parallel launch costs
#: some tens of microseconds per color).
MIN_PARALLEL_ELEMENTS = 4096
#: Block matrices with fewer block rows than this use the serial matvec.
MIN_PARALLEL_ROWS = 4096
#: Serializes the parallel kernel launches (see the module docstring).
KERNEL_LOCK = threading.RLock()


def threads() -> int:
    """Number of threads numba's parallel kernels use (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``)."""
    import numba
    return int(numba.get_num_threads())


def use_parallel(size: int, minimum: int | None = None) -> bool:
    """Whether a kernel over ``size`` items runs in parallel: more than one thread, and ``size`` at
    least ``minimum`` (default :data:`MIN_PARALLEL_ELEMENTS`)."""
    return size >= (MIN_PARALLEL_ELEMENTS if minimum is None else minimum) and threads() > 1


class Autotune:
    """Chooses, call by call, between a kernel's serial and parallel forms by their measured wall time.

    Each form is tried a few times first; then the one with the lower median of its
    last ``window`` times runs, and every ``explore_every``-th call runs the other, so
    the choice follows the machine's load. With one thread the serial form always runs.

    Examples
    --------
    >>> tune = Autotune()
    >>> with tune.timed() as parallel:
    ...     pass                      # run the parallel form if ``parallel`` else the serial one
    """

    def __init__(self, window: int = 9, explore_every: int = 64, trials: int = 3):
        self.window = int(window)
        self.explore_every = int(explore_every)
        self.trials = int(trials)
        self.times = {False: deque(maxlen=self.window), True: deque(maxlen=self.window)}
        self.calls = 0

    def choose(self) -> bool:
        """Whether the next call runs the parallel form."""
        if threads() <= 1:
            return False
        self.calls += 1
        for form in (True, False):
            if len(self.times[form]) < self.trials:
                return form
        best = _median(self.times[True]) < _median(self.times[False])
        return (not best) if self.calls % self.explore_every == 0 else best

    def record(self, parallel: bool, seconds: float) -> None:
        """Record a call's wall time (s)."""
        self.times[bool(parallel)].append(float(seconds))

    def timed(self):
        """Context manager yielding the form to run (True: parallel) and recording its time."""
        return _Timed(self)

    @property
    def prefers_parallel(self) -> bool | None:
        """The form the medians favour now (None until both have been tried)."""
        if min(len(self.times[True]), len(self.times[False])) == 0:
            return None
        return _median(self.times[True]) < _median(self.times[False])


def _median(times) -> float:
    """Median of a few floats (``np.median`` costs about 20 us a call: a millisecond per step
    over the step's tuned kernels)."""
    v = sorted(times)
    k = len(v) // 2
    return v[k] if len(v) % 2 else 0.5 * (v[k - 1] + v[k])


class _Timed:
    def __init__(self, tune: Autotune):
        self.tune = tune

    def __enter__(self) -> bool:
        self.parallel = self.tune.choose()
        self.t0 = time.perf_counter()
        return self.parallel

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.tune.record(self.parallel, time.perf_counter() - self.t0)


#: Depth of the schedule's bisection: a color has at most ``2 ** SCHEDULE_DEPTH`` chunks. Fixed,
#: not the thread count, so that the summation order (and so every result) is the same on any
#: number of threads. One level (two halves, then the separators) measured best on two
#: threads: on the patient liver a force pass took 2.3 ms at depth 1, 2.7 at depth 2 and 3.5
#: at depth 3 (smaller chunks, more colors); more than two threads then share two chunks.
SCHEDULE_DEPTH = 1
#: Element sets at most this large are not split further (one chunk).
SCHEDULE_LEAF = 256


@njit(cache=True)
def _interior(tets, elems, pos, half, n_nodes):
    """Which elements ``elems[pos]`` touch only nodes no element of the other half touches.

    ``half`` (k,) labels each element 0 or 1; the elements of one half flagged True share
    no node with any element of the other half.
    """
    seen = np.zeros(n_nodes, dtype=np.int8)      # bit 0: touched by half 0, bit 1: by half 1
    for k in range(pos.shape[0]):
        e = elems[pos[k]]
        bit = np.int8(1) << half[k]
        for a in range(4):
            seen[tets[e, a]] |= bit
    out = np.ones(pos.shape[0], dtype=np.bool_)
    for k in range(pos.shape[0]):
        e = elems[pos[k]]
        for a in range(4):
            if seen[tets[e, a]] == 3:
                out[k] = False
                break
    return out


@njit(cache=True)
def _centroids(points, tets, elems):
    """Centroids (p, 3) of the tets ``elems``."""
    out = np.empty((elems.shape[0], 3))
    for q in range(elems.shape[0]):
        e = elems[q]
        for d in range(3):
            out[q, d] = 0.25 * (points[tets[e, 0], d] + points[tets[e, 1], d] + points[tets[e, 2], d]
                                + points[tets[e, 3], d])
    return out


@njit(cache=True)
def _longest_axis_values(cent, pos):
    """The coordinates of the centroids ``cent[pos]`` along the axis they extend most on."""
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for k in range(pos.shape[0]):
        for d in range(3):
            c = cent[pos[k], d]
            lo[d] = min(lo[d], c)
            hi[d] = max(hi[d], c)
    axis = int(np.argmax(hi - lo))
    out = np.empty(pos.shape[0])
    for k in range(pos.shape[0]):
        out[k] = cent[pos[k], axis]
    return out


def _dissect(cent: np.ndarray, tets: np.ndarray, elems: np.ndarray, pos: np.ndarray, depth: int,
             n_nodes: int) -> list[list[np.ndarray]]:
    """Colors (lists of node-disjoint chunks of positions ``pos``), to be run in this order.

    ``pos`` is cut in two halves at the median of its centroids along their longest extent;
    the elements of either half that touch no node of the other are dissected further (their
    colors pair up, chunk by chunk: the two sides share no node), and the separator (the
    elements that touch both halves) is dissected after them.
    """
    if depth == 0 or len(pos) <= SCHEDULE_LEAF:
        return [[pos]]
    v = _longest_axis_values(cent, pos)
    cut = np.partition(v, len(v) // 2)[len(v) // 2]
    half = (v >= cut).astype(np.int64)
    inner = _interior(tets, elems, pos, half, n_nodes)
    if not inner.any():
        return [[pos]]
    sides = [_dissect(cent, tets, elems, pos[inner & (half == h)], depth - 1, n_nodes) for h in (0, 1)]
    colors = [sum((side[k] for side in sides if k < len(side)), []) for k in range(max(map(len, sides)))]
    sep = pos[~inner]
    if len(sep):
        colors += _dissect(cent, tets, elems, sep, depth, n_nodes)
    return [[ch for ch in col if len(ch)] for col in colors if any(len(ch) for ch in col)]


def _morton(points: np.ndarray) -> np.ndarray:
    """Z-order key (int64) of each point (k, 3): 10 bits per axis of its position in the bounding box."""
    lo = points.min(axis=0)
    span = np.maximum(points.max(axis=0) - lo, 1e-300)
    q = np.clip(((points - lo) / span * 1023.0).astype(np.int64), 0, 1023)
    key = np.zeros(len(points), dtype=np.int64)
    for b in range(10):
        for d in range(3):
            key |= ((q[:, d] >> b) & 1) << (3 * b + d)
    return key


def element_schedule(points: np.ndarray, tets: np.ndarray, elems: np.ndarray, spatial_sort: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A colored chunk schedule of the elements ``elems`` for the parallel kernels.

    A nested dissection of the elements (:data:`SCHEDULE_DEPTH` levels of bisection at the
    median centroid; separators dissected in turn): the first color holds the
    ``2 ** SCHEDULE_DEPTH`` big interiors, each later color the separators of a level. On
    two threads, a force pass over the 41k-tet patient liver takes 2.3 ms against 3.6 ms
    serial, and a stiffness product 0.9 against 2.1 ms; a greedy coloring of 128 small
    chunks (34 colors, the last ten of one chunk) had taken about as long as serial.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Node positions (m); only their spatial order matters.
    tets : ndarray, shape (m, 4), int64
    elems : ndarray, shape (p,), int64
        The group's tets.
    spatial_sort : bool
        Order each chunk's elements along a Morton curve of their centroids (otherwise in
        their order in ``elems``).

    Returns
    -------
    order : ndarray, shape (p,), int64
        Positions in ``elems``, chunk by chunk, the chunks grouped by color.
    chunk_ptr : ndarray, shape (n_chunks + 1,), int64
        Chunk ``c`` is ``order[chunk_ptr[c]:chunk_ptr[c + 1]]``.
    color_ptr : ndarray, shape (n_colors + 1,), int64
        Color ``k`` is the chunks ``color_ptr[k]:color_ptr[k + 1]``; no two chunks of a
        color share a node.
    """
    elems = np.ascontiguousarray(elems, dtype=np.int64)
    tets = np.ascontiguousarray(tets, dtype=np.int64)
    p = len(elems)
    if p == 0:
        z = np.zeros(1, dtype=np.int64)
        return np.zeros(0, dtype=np.int64), z, z
    cent = _centroids(np.ascontiguousarray(points, dtype=np.float64), tets, elems)
    if spatial_sort:
        start = np.argsort(_morton(cent), kind="stable").astype(np.int64)
    else:
        start = np.arange(p, dtype=np.int64)
    colors = _dissect(cent, tets, elems, start, SCHEDULE_DEPTH, len(points))
    chunks = [ch for col in colors for ch in col]
    chunk_ptr = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(ch) for ch in chunks], out=chunk_ptr[1:])
    color_ptr = np.zeros(len(colors) + 1, dtype=np.int64)
    np.cumsum([len(col) for col in colors], out=color_ptr[1:])
    return np.concatenate(chunks), chunk_ptr, color_ptr


def warm_up_kernels() -> None:
    """Compile (or load from numba's cache) the parallel kernels on a tiny mesh (``organsim warmup``)."""
    from . import _kernels as kern
    from .assembly import Assembler
    from .materials import Corotational, NeoHookean
    from ..mesh.generators import box_tet_mesh

    # more tets than a schedule leaf (SCHEDULE_LEAF), so that the schedule's dissection runs too
    mesh = box_tet_mesh((5, 5, 4), 0.01)
    x = np.ascontiguousarray(mesh.points * 1.001)
    for mat in (Corotational(1e4, 0.3), NeoHookean(1e4, 0.3)):
        asm = Assembler(mesh, [(np.arange(mesh.n_tets), mat)])
        sched, *_ = asm._schedule(0)
        elems, _, lam, mu = asm.groups[0]
        f = np.zeros((mesh.n_points, 3))
        K = np.zeros((asm.pattern.nnzb, 3, 3))
        if mat.kind == "corotational":
            kern.corot_kernel_par(x, asm.tets, asm.grads, asm.vols, lam, mu, elems, asm.pattern.blockmap, f, K,
                                  True, True, asm._Rcache, False, *sched)
        else:
            kern.neohooke_kernel_par(x, asm.tets, asm.grads, asm.vols, lam, mu, elems, asm.pattern.blockmap, f, K,
                                     True, *sched)
        p = np.ones_like(x)
        asm.apply_stiffness(x, p, np.zeros_like(x))
        if mat.kind == "corotational":
            kern.corot_apply_par(asm.tets, asm.grads, asm.vols, lam, mu, elems, asm._Rcache, True, p,
                                 np.zeros_like(x), *sched)
        else:
            Fis, cms = asm._tangent_state(x)
            kern.neohooke_apply_par(asm.tets, asm.grads, asm.vols, lam, mu, elems, Fis, cms, p, np.zeros_like(x),
                                    *sched)
            kern.neohooke_projected_kernel_par(x, asm.tets, asm.grads, asm.vols, lam, mu, elems,
                                               asm.pattern.blockmap, np.zeros_like(K), *sched)
    kern.min_jacobian_par(x, asm.tets, asm.grads)
    pat = asm.pattern
    # the two-grid smoother's product (organsim.fem.multigrid: a symmetric matrix's upper triangle
    # in single precision), on one thread and on several
    from . import _multigrid_kernels as mgk
    from .multigrid import upper_triangle

    u_ptr, u_ind, u_dat = upper_triangle(pat.indptr, pat.indices, np.ones((pat.nnzb, 3, 3)))
    y = np.empty(3 * mesh.n_points)
    mgk.sym_bsr_matvec(u_ptr, u_ind, u_dat, x.ravel(), y)
    mgk.sym_bsr_matvec_par(u_ptr, u_ind, u_dat, x.ravel(), y, np.array([0, pat.n // 2, pat.n], dtype=np.int64),
                           np.empty((2, len(y))))
    R = np.repeat(np.eye(3)[None], mesh.n_points, axis=0)
    kern.nodal_rotations_par(x, asm.tets, asm.grads, asm.vols, elems, *sched, R, np.empty_like(R))
    # the supernodal factor and its solves as large meshes take them: realtime factors of a
    # million entries and more are kept in single precision, and solved on one thread or two
    from .supernodal import SupernodalCholesky

    K[pat.diag] += 1e3 * np.eye(3)   # the last group's tangent made definite
    for single in (True, False):
        for threads in (1, 2):   # (a session times both and keeps the faster)
            SupernodalCholesky(pat.indptr, pat.indices, K, single=single, threads=threads).solve(x.ravel())
