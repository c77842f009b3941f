"""Datasets of deformations: one organ under many random instrument loads, in one HDF5 file.

:func:`make_dataset` (``organsim dataset``) takes a scenario's organ, materials and
fixations and, for each sample, grasps a random point of the surface, pulls it a random
distance in a random direction and turns gravity to a random direction (same
magnitude), then solves for static equilibrium. The result is one chunked HDF5 file,
ready for a learning pipeline (a surrogate model of the organ's deformation)::

    /rest/points            (n, 3)    float64  rest node positions (m)
    /rest/tets              (m, 4)    int64    tetrahedra
    /rest/region_ids        (m,)      int32    region of each tet (names in the attrs)
    /samples/displacement   (N, n, 3) float32  node displacement at equilibrium (m)
    /samples/von_mises      (N, m)    float32  von Mises stress per tet (Pa)
    /samples/grasp_point    (N, 3)    float64  grasped surface point, at rest (m)
    /samples/pull           (N, 3)    float64  displacement imposed on the grasped patch (m)
    /samples/gravity        (N, 3)    float64  gravity vector (m/s^2)
    /samples/grasp_force    (N, 3)    float64  force the tissue pulls the grasper with (N)
    /samples/ok             (N,)      bool     the solve converged (failed samples are zeros)
    /samples/seed           (N,)      int64    each sample's random seed (reproducible)

Attributes of the root: ``organsim_version``, ``scenario`` (its TOML), ``scenario_sha256``,
``units``, ``region_names`` (JSON), ``errors`` (JSON list of the failed samples' errors).
One sample per chunk along the first axis, compressed: a training loop reads sample by
sample. The file is written next to its final name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ConvergenceError, OrganSimError
from .schema import Scenario

__all__ = ["make_dataset"]

log = logging.getLogger(__name__)


def _random_surface_point(mesh, rng) -> np.ndarray:
    """A point uniformly distributed over the boundary surface (m)."""
    tri = mesh.points[mesh.boundary_faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    f = rng.choice(len(tri), p=area / area.sum())
    a, b = rng.random(2)
    if a + b > 1.0:
        a, b = 1.0 - a, 1.0 - b
    return tri[f, 0] + a * (tri[f, 1] - tri[f, 0]) + b * (tri[f, 2] - tri[f, 0])


def _unit(rng) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _sample(scenario: Scenario, mesh, rng, *, max_pull: float, radius: float) -> dict:
    """One random load case solved to equilibrium."""
    from ..surgery.hold import Hold
    from .build import build_simulation

    g = float(np.linalg.norm(scenario.gravity))
    gravity = _unit(rng) * g if g > 0 else np.zeros(3)
    point = _random_surface_point(mesh, rng)
    pull = _unit(rng) * rng.uniform(0.0, max_pull)
    sim = build_simulation(replace(scenario, gravity=tuple(float(c) for c in gravity)), mesh)
    hold = Hold.take(sim, "grasp", point, radius)
    if hold is None:
        raise OrganSimError("no tissue within the grasp radius of the sampled point")
    hold.move_to(sim, point + pull)
    sim.solve_static(load_steps=2)
    return {"displacement": sim.displacements, "von_mises": np.asarray(sim.fields()["von_mises"]),
            "grasp_point": point, "pull": pull, "gravity": gravity, "grasp_force": hold.force(sim)}


def make_dataset(scenario: Scenario, n_samples: int, path: str | os.PathLike, *, seed: int = 0,
                 max_pull: float = 0.02, radius: float = 0.008, progress: bool = False) -> Path:
    """Solve ``n_samples`` random load cases of the scenario's organ and write them to HDF5.

    Parameters
    ----------
    scenario : Scenario
        Organ, materials and fixations (its timeline is not used).
    n_samples : int
    path : str or path-like
        The ``.h5`` file to write (layout in the module docstring).
    seed : int
        Base seed: sample ``k`` uses ``seed + k`` (recorded in ``/samples/seed``).
    max_pull : float
        Largest displacement imposed on the grasped patch (m).
    radius : float
        Grasp radius (m).
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
    """
    import h5py

    from .. import __version__
    from .build import load_organ
    from .loader import dumps

    if int(n_samples) < 1:
        raise OrganSimError(f"the number of samples must be at least 1, got {n_samples}")
    if not (np.isfinite(max_pull) and max_pull >= 0 and np.isfinite(radius) and radius > 0):
        raise OrganSimError(f"max_pull must be >= 0 and radius > 0 (m), got {max_pull!r}, {radius!r}")
    out = Path(path)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise OrganSimError(f"{out}: a dataset is an HDF5 file; name it .h5")
    if not out.parent.is_dir():
        raise OrganSimError(f"{out}: the folder {out.parent} does not exist; create it first")
    mesh = load_organ(scenario)
    text = dumps(scenario)
    n, m, N = mesh.n_points, mesh.n_tets, int(n_samples)
    tmp = out.with_name(f".{out.name}.partial")
    samples = range(N)
    if progress:
        from tqdm import tqdm

        samples = tqdm(samples, desc="dataset", unit="sample")
    errors = []
    try:
        with h5py.File(tmp, "w") as h5:
            h5.attrs.update({"organsim_version": __version__, "scenario": text,
                             "scenario_sha256": hashlib.sha256(text.encode()).hexdigest(),
                             "units": "m, m/s^2, N, Pa",
                             "region_names": json.dumps({str(k): v for k, v in mesh.region_names.items()})})
            rest = h5.create_group("rest")
            rest["points"] = mesh.points
            rest["tets"] = mesh.tets
            rest["region_ids"] = mesh.region_ids
            s = h5.create_group("samples")
            opts = {"compression": "gzip", "compression_opts": 4}
            disp = s.create_dataset("displacement", (N, n, 3), "f4", chunks=(1, n, 3), **opts)
            vm = s.create_dataset("von_mises", (N, m), "f4", chunks=(1, m), **opts)
            vec = {k: s.create_dataset(k, (N, 3), "f8") for k in ("grasp_point", "pull", "gravity", "grasp_force")}
            ok = s.create_dataset("ok", (N,), bool)
            seeds = s.create_dataset("seed", (N,), "i8")
            for k in samples:
                seeds[k] = seed + k
                try:
                    r = _sample(scenario, mesh, np.random.default_rng(seed + k), max_pull=max_pull,
                                radius=radius)
                except (ConvergenceError, OrganSimError) as exc:
                    errors.append({"sample": k, "error": str(exc)})
                    ok[k] = False
                    log.warning("dataset sample %d failed: %s", k, exc)
                    continue
                disp[k] = r["displacement"]
                vm[k] = r["von_mises"]
                for key, ds in vec.items():
                    ds[k] = r[key]
                ok[k] = True
            h5.attrs["errors"] = json.dumps(errors)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
