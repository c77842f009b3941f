"""Which form of the stiffness the real-time CG multiplies by: applied element by element, or assembled.

The two give the same products to round-off; what differs is the cost. Matrix-free, a
step pays a force pass (plus, for neo-Hookean tets, their per-tet state) and then every
CG product walks the tets again. Assembled, the step pays the force-and-stiffness pass
and the gather of the free block once, and every product is a block matvec, about a fifth
of the cost of a matrix-free one. Which wins depends on how many products a step takes:
on the patient liver (1.1 CG iterations a step) matrix-free steps took 13.8 ms against
18.6 ms assembled; on the swinging 10k organ (4.7 a step) assembled took 6.7 ms against
7.7 ms; the 19k beam (1.8 a step) is even (``python -m benchmarks stiffness-forms``: the
forms stepped in turns on the shared 2-core machine). :class:`StiffnessFormChooser`
measures both on the simulation's own mesh and machine and picks the cheaper one for the
number of products the recent steps took.

Examples
--------
>>> chooser = StiffnessFormChooser()
>>> chooser.choose()            # no measurements yet: try matrix-free first
True
"""

from __future__ import annotations

import time
from collections import deque

__all__ = ["StiffnessFormChooser", "TimedProducts"]


def _median(values) -> float:
    v = sorted(values)
    k = len(v) // 2
    return v[k] if len(v) % 2 else 0.5 * (v[k - 1] + v[k])


class StiffnessFormChooser:
    """Chooses, step by step, between matrix-free and assembled stiffness products by measured cost.

    Each form is tried ``trials`` times first, after a first step each whose time is not
    counted (it loads the compiled kernels and allocates). Then the expected cost of a step in each
    form, ``setup + n * product`` (median setup time, median time per product, and ``n``
    the median number of products of the last ``window`` steps), picks the form; every
    ``explore_every``-th step runs the other one, so both measurements follow the
    machine's load and the motion, unless it is expected to cost ``explore_within`` times
    the chosen one or more (on the patient liver an assembled step costs 1.3-1.8 times a
    matrix-free one: a stutter in the frame rate that is not worth measuring again; the
    choice still follows the number of products).

    Parameters
    ----------
    window : int
        Steps whose measurements count.
    explore_every : int
        Every this many steps the form not chosen runs once.
    trials : int
        Steps each form runs first.
    explore_within : float
        The other form is run again only while its expected cost is below this factor
        times the chosen one's.
    """

    def __init__(self, window: int = 9, explore_every: int = 16, trials: int = 3, explore_within: float = 1.25):
        self.window = int(window)
        self.explore_every = int(explore_every)
        self.trials = int(trials)
        self.explore_within = float(explore_within)
        self.setup = {True: deque(maxlen=self.window), False: deque(maxlen=self.window)}
        self.product = {True: deque(maxlen=self.window), False: deque(maxlen=self.window)}
        self.products = deque(maxlen=self.window)
        self.steps = 0
        self._warm = {True: False, False: False}

    @property
    def steps_to_decide(self) -> int:
        """Steps before the first choice by cost: a warm-up step and the trials, of each form."""
        return 2 * (self.trials + 1)

    def expected_cost(self, matrix_free: bool) -> float | None:
        """Expected seconds of a step's stiffness work in that form (None until it was measured)."""
        if not self.setup[matrix_free] or not self.product[matrix_free]:
            return None
        n = _median(self.products) if self.products else 1.0
        return _median(self.setup[matrix_free]) + n * _median(self.product[matrix_free])

    def choose(self) -> bool:
        """Whether the next step applies the stiffness matrix-free (True) or assembles it (False)."""
        self.steps += 1
        for form in (True, False):
            if not self._warm[form] or len(self.setup[form]) < self.trials:
                return form
        cost = {form: self.expected_cost(form) for form in (True, False)}
        best = cost[True] <= cost[False]
        if self.steps % self.explore_every == 0 and cost[not best] < self.explore_within * cost[best]:
            return not best
        return best

    def record(self, matrix_free: bool, setup_s: float, product_s: float, products: int) -> None:
        """Record a step: its setup time (forces, stiffness or per-tet state, gather; s), the
        time of its CG products (s) and how many there were."""
        matrix_free = bool(matrix_free)
        if not self._warm[matrix_free]:
            self._warm[matrix_free] = True
            return
        self.setup[matrix_free].append(float(setup_s))
        if products > 0:
            self.product[matrix_free].append(float(product_s) / products)
            self.products.append(int(products))


class TimedProducts:
    """An operator ``A`` whose products ``A @ x`` are timed (``seconds``) and counted (``count``)."""

    def __init__(self, A):
        self.A = A
        self.shape = getattr(A, "shape", None)
        self.seconds = 0.0
        self.count = 0

    def __matmul__(self, x):
        t0 = time.perf_counter()
        y = self.A @ x
        self.seconds += time.perf_counter() - t0
        self.count += 1
        return y
