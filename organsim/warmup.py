"""Compile organsim's numeric kernels before they are needed (``organsim warmup``).

organsim's per-frame paths are numba kernels, compiled at their first call
and cached on disk. After a fresh install the first compilation takes a
minute or two on a laptop; afterwards loading the cache takes seconds. A live
session calls :func:`warm_up` before its window opens, so that no frame, and
no first cut with the mouse, waits for the compiler.

Where the cache lives: numba's ``NUMBA_CACHE_DIR`` when it is set; otherwise
next to organsim's sources, or, on a read-only install, a writable folder
chosen when organsim is imported (see :func:`organsim.kernel_cache_dir`).
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

__all__ = ["warm_up"]

log = logging.getLogger(__name__)

_DONE = False


def _stages():
    from .fem.body import Body
    from .fem.materials import Corotational, NeoHookean
    from .fem.simulation import Simulation
    from .mesh.generators import box_tet_mesh

    mesh = box_tet_mesh((4, 3, 3), 0.01)
    wall = np.flatnonzero(mesh.points[:, 0] == 0.0)

    def solver():
        for material, integrator in ((Corotational(3e3, 0.45), "realtime"),
                                     (NeoHookean(3e3, 0.45), "backward_euler")):
            sim = Simulation(Body(mesh, material, density=1000.0), dt=0.01, integrator=integrator)
            sim.fix(wall, name="wall")
            tip = int(np.argmax(mesh.points[:, 0]))
            sim.prescribe([tip], mesh.points[[tip]] + [0.0, 0.0, 0.002], name="hand")
            sim.step()
            sim.reaction("hand")
            sim.fields()
        sim._asm.projected_stiffness(sim.positions)   # what a refactorization may factor
        sim.refresh_preconditioner()                  # a deformed state's factor, rotated since
        sim.step()
        # the two-grid preconditioner "auto" takes for large meshes (its lattice, Galerkin and cycle kernels)
        sim = Simulation(Body(mesh, Corotational(3e3, 0.45), density=1000.0), dt=0.01, integrator="realtime",
                         preconditioner="multigrid")
        sim.fix(wall, name="wall")
        sim.step()
        from .fem.parallel import warm_up_kernels

        warm_up_kernels()   # the parallel forms, which only meshes of thousands of tets use

    def cutting():
        from .surgery.cutting import warm_up as cutting_warm_up

        cutting_warm_up()

    def viewer():
        from .viewer.scene import _vertex_normals

        _vertex_normals(mesh.points, mesh.boundary_faces)

    return [("solver", solver), ("cutting", cutting), ("viewer", viewer)]


def warm_up(*, progress: bool = False, force: bool = False) -> float:
    """Compile (or load from the cache) every kernel a live session uses.

    Parameters
    ----------
    progress : bool
        Say what is happening on stderr, with a progress bar.
    force : bool
        Run even if this process has warmed up already.

    Returns
    -------
    float
        Seconds it took.
    """
    global _DONE
    if _DONE and not force:
        return 0.0
    t0 = time.perf_counter()
    stages = _stages()
    bar = None
    if progress:
        from tqdm import tqdm

        print("organsim: preparing numeric kernels (compiled once after installing, about 1-2 minutes "
              "the first time; seconds afterwards)", file=sys.stderr, flush=True)
        bar = tqdm(total=len(stages), unit="stage", file=sys.stderr, leave=False)
    for name, run in stages:
        if bar is not None:
            bar.set_description(name)
        run()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    _DONE = True
    took = time.perf_counter() - t0
    log.info("numeric kernels ready in %.1f s", took)
    return took
