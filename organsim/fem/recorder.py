"""Record a simulation's states as a VTU/PVD series ParaView opens.

Each frame holds, on the deformed mesh (coordinates in metres):

* point data: ``displacement`` (m), ``velocity`` (m/s), ``von_mises`` (Pa, nodal
  volume-weighted average), ``green_lagrange`` and ``cauchy`` (nodal averages, 3x3);
* cell data: ``region`` (id), ``green_lagrange`` (3x3), ``cauchy`` (3x3, Pa),
  ``von_mises`` (Pa), ``energy_density`` (J/m^3);
* field data: ``strain_energy`` (J) is logged with the frame's time.

The series goes through :class:`organsim.io.series.SeriesWriter`, which rewrites
the ``.pvd`` index after every frame, so a run that stops early still leaves a
series ParaView can open.

Examples
--------
>>> import tempfile, pathlib
>>> from organsim.mesh.generators import box_tet_mesh
>>> from organsim.fem.materials import NeoHookean
>>> mesh = box_tet_mesh((3, 2, 2), 0.01)
>>> out = pathlib.Path(tempfile.mkdtemp()) / "beam.pvd"
>>> with Recorder(out) as rec:
...     _ = rec.write_state(0.0, mesh, mesh.points, NeoHookean(3e3, 0.45))
>>> rec.n_frames
1
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import SimulationError
from ..mesh.tetmesh import TetMesh
from .fields import compute_fields

__all__ = ["Recorder", "state_arrays"]

log = logging.getLogger("organsim.fem")


def state_arrays(mesh: TetMesh, positions: np.ndarray, materials, *,
                 velocities: np.ndarray | None = None) -> tuple[dict, dict, float]:
    """Point and cell arrays of one state, as written by :class:`Recorder`.

    Parameters
    ----------
    mesh : TetMesh
        Rest mesh.
    positions : ndarray, shape (n, 3)
        Current positions (m).
    materials : Material or dict
        One material or ``{region: Material}``.
    velocities : ndarray, shape (n, 3), optional
        Nodal velocities (m/s); zeros when omitted.

    Returns
    -------
    point_data : dict
    cell_data : dict
    strain_energy : float
        Total strain energy (J).
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != mesh.points.shape:
        raise SimulationError(f"positions must have shape {mesh.points.shape}, got {pos.shape}")
    fl = compute_fields(mesh, pos, materials)
    vel = np.zeros_like(pos) if velocities is None else np.asarray(velocities, dtype=np.float64)
    point_data = {
        "displacement": pos - mesh.points,
        "velocity": vel,
        "von_mises": fl["nodal_von_mises"],
        "green_lagrange": fl["nodal_green_lagrange"].reshape(-1, 9),
        "cauchy": fl["nodal_cauchy"].reshape(-1, 9),
    }
    cell_data = {
        "green_lagrange": fl["green_lagrange"].reshape(-1, 9),
        "cauchy": fl["cauchy"].reshape(-1, 9),
        "von_mises": fl["von_mises"],
        "energy_density": fl["energy_density"],
    }
    return point_data, cell_data, fl["strain_energy"]


def _sim_materials(sim):
    body = getattr(sim, "body", None)
    if body is None or not hasattr(body, "materials"):
        raise SimulationError("the simulation has no body with materials; Recorder needs "
                              "sim.body.materials to compute stresses")
    return body.materials


class Recorder:
    """Write simulation states frame by frame to ``<stem>.pvd`` + ``<stem>/<stem>_NNNNNN.vtu``.

    Parameters
    ----------
    pvd_path : str or os.PathLike
        Output ``.pvd`` path; its folder is created if needed.
    every : int
        Write one frame every ``every`` calls of :meth:`record` (1 = all).

    Examples
    --------
    >>> rec = Recorder("out/liver.pvd")                           # doctest: +SKIP
    >>> for _ in range(100):                                      # doctest: +SKIP
    ...     sim.step(); rec.record(sim)
    >>> rec.close()                                               # doctest: +SKIP
    """

    def __init__(self, pvd_path: str | os.PathLike, *, every: int = 1) -> None:
        from ..io.series import SeriesWriter

        if int(every) < 1:
            raise SimulationError(f"every must be >= 1, got {every!r}")
        self.path = Path(pvd_path)
        self.every = int(every)
        self._writer = SeriesWriter(self.path)
        self._calls = 0
        self.energies: list[tuple[float, float]] = []

    @property
    def n_frames(self) -> int:
        """Frames written so far."""
        return self._writer.n_frames

    def write_state(self, time: float, mesh: TetMesh, positions: np.ndarray, materials, *,
                    velocities: np.ndarray | None = None) -> Path:
        """Write one state (always, regardless of ``every``).

        Parameters
        ----------
        time : float
            Frame time (s).
        mesh : TetMesh
            Rest mesh of this state (may change between frames after a cut).
        positions : ndarray, shape (n, 3)
            Current positions (m).
        materials : Material or dict
        velocities : ndarray, shape (n, 3), optional

        Returns
        -------
        pathlib.Path
            The VTU file written.
        """
        pd, cd, energy = state_arrays(mesh, positions, materials, velocities=velocities)
        path = self._writer.write(float(time), mesh, points=np.asarray(positions, dtype=np.float64),
                                  point_data=pd, cell_data=cd)
        self.energies.append((float(time), energy))
        log.debug("recorded t=%.4g s to %s (strain energy %.4g J)", time, path, energy)
        return path

    def record(self, sim) -> Path | None:
        """Write the simulation's current state (every ``every``-th call).

        ``sim`` is a :class:`organsim.fem.simulation.Simulation` (anything with ``time``,
        ``mesh``, ``positions``, ``velocities`` and ``body.materials``).

        Returns
        -------
        pathlib.Path or None
            The file written, or None when this call was skipped.
        """
        self._calls += 1
        if (self._calls - 1) % self.every:
            return None
        return self.write_state(sim.time, sim.mesh, sim.positions, _sim_materials(sim),
                                velocities=getattr(sim, "velocities", None))

    def close(self) -> None:
        """Finish the series (the ``.pvd`` is already complete after each frame)."""
        self._writer.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
