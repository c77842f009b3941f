"""Strain and stress fields of a deformed tetrahedral body.

From the deformation gradient of each linear tet ``F`` (k, 3, 3) and a
material (any object with batched ``pk1(F)`` and ``energy(F)``, as in
:mod:`organsim.fem.materials`):

* Green–Lagrange strain ``E = (F^T F - I) / 2``;
* Cauchy stress ``sigma = P F^T / J`` with ``J = det F``;
* von Mises stress ``sqrt(3/2 s:s)`` with ``s`` the deviator of ``sigma``;
* strain energy density ``W(F)`` (J/m^3 of rest volume) and total energy (J);
* volume-weighted averages of per-tet values to the nodes.

Examples
--------
>>> import numpy as np
>>> F = np.eye(3)[None] * 1.1
>>> float(green_lagrange(F)[0, 0, 0].round(6))
0.105
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import SimulationError
from ..mesh.tetmesh import TetMesh

__all__ = ["deformation_gradients", "green_lagrange", "cauchy_stress", "von_mises",
           "strain_energy_density", "nodal_average", "material_per_tet", "compute_fields"]


def _rest_inverse(rest_points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    x = rest_points[tets]
    Dm = np.stack([x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]], axis=2)
    det = np.linalg.det(Dm)
    if np.any(np.abs(det) <= 1e-300):
        raise SimulationError("a tet has zero rest volume; the deformation gradient is undefined. "
                              "Remove degenerate tets from the mesh")
    return np.linalg.inv(Dm)


def deformation_gradients(rest_points: np.ndarray, tets: np.ndarray,
                          positions: np.ndarray) -> np.ndarray:
    """Deformation gradient of each linear tet, ``F = Ds Dm^-1``.

    Parameters
    ----------
    rest_points : ndarray, shape (n, 3)
        Rest positions (m).
    tets : ndarray, shape (m, 4)
    positions : ndarray, shape (n, 3)
        Current positions (m).

    Returns
    -------
    ndarray, shape (m, 3, 3)
        ``F[e, i, J] = d x_i / d X_J``.
    """
    rest = np.asarray(rest_points, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    t = np.asarray(tets, dtype=np.int64)
    if pos.shape != rest.shape:
        raise SimulationError(f"positions must have shape {rest.shape}, got {pos.shape}")
    x = pos[t]
    Ds = np.stack([x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]], axis=2)
    return Ds @ _rest_inverse(rest, t)


def green_lagrange(F: np.ndarray) -> np.ndarray:
    """Green–Lagrange strain ``(F^T F - I) / 2``, shape (k, 3, 3), dimensionless."""
    F = np.asarray(F, dtype=np.float64)
    return 0.5 * (np.swapaxes(F, -1, -2) @ F - np.eye(3))


def cauchy_stress(F: np.ndarray, material=None, *, P: np.ndarray | None = None,
                  inverted: str = "raise") -> np.ndarray:
    """Cauchy (true) stress ``sigma = P F^T / det F``, shape (k, 3, 3), Pa.

    Parameters
    ----------
    F : ndarray, shape (k, 3, 3)
        Deformation gradients.
    material : Material, optional
        Provides ``pk1(F)``; not needed when ``P`` is given.
    P : ndarray, shape (k, 3, 3), optional
        First Piola–Kirchhoff stress (Pa), if already computed.
    inverted : {"raise", "kirchhoff"}
        Inverted elements (``det F <= 0``), where the Cauchy stress is undefined: raise,
        or give them the Kirchhoff stress ``P F^T`` (the linear and corotational models
        pass through such states and recover).
    """
    F = np.asarray(F, dtype=np.float64)
    if inverted not in ("raise", "kirchhoff"):
        raise SimulationError(f"inverted must be 'raise' or 'kirchhoff', got {inverted!r}")
    if P is None:
        if material is None:
            raise SimulationError("cauchy_stress needs a material or the PK1 stress P")
        P = material.pk1(F)
    J = np.linalg.det(F)
    bad = ~(J > 0)
    if np.any(bad) and inverted == "raise":
        raise SimulationError(f"{int(np.sum(bad))} elements are inverted (det F <= 0); "
                              "the Cauchy stress is undefined there")
    return (P @ np.swapaxes(F, -1, -2)) / np.where(bad, 1.0, J)[:, None, None]


def von_mises(sigma: np.ndarray) -> np.ndarray:
    """von Mises equivalent stress ``sqrt(3/2 s:s)``, shape (k,), Pa.

    Examples
    --------
    >>> import numpy as np
    >>> float(von_mises(np.diag([2.0, 0, 0])[None])[0])    # uniaxial: equals the stress
    2.0
    """
    s = np.asarray(sigma, dtype=np.float64)
    dev = s - np.trace(s, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3.0
    return np.sqrt(1.5 * np.einsum("...ij,...ij->...", dev, dev))


def strain_energy_density(F: np.ndarray, material) -> np.ndarray:
    """Strain energy per unit rest volume ``W(F)``, shape (k,), J/m^3."""
    return np.asarray(material.energy(np.asarray(F, dtype=np.float64)), dtype=np.float64)


def nodal_average(values: np.ndarray, tets: np.ndarray, weights: np.ndarray, n_points: int) -> np.ndarray:
    """Weighted average of per-tet values to the nodes of each tet.

    Parameters
    ----------
    values : ndarray, shape (m, ...)
        Per-tet values (scalars, vectors or tensors).
    tets : ndarray, shape (m, 4)
    weights : ndarray, shape (m,)
        Usually the tet volumes (m^3).
    n_points : int

    Returns
    -------
    ndarray, shape (n_points, ...)
        At each node, ``sum_e w_e v_e / sum_e w_e`` over the tets touching it
        (zero at nodes touching no tet).
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(tets, dtype=np.int64)
    w = np.abs(np.asarray(weights, dtype=np.float64))
    tail = v.shape[1:]
    flat = v.reshape(len(v), -1) * w[:, None]
    num = np.zeros((n_points, flat.shape[1]))
    den = np.zeros(n_points)
    for a in range(4):
        np.add.at(num, t[:, a], flat)
        np.add.at(den, t[:, a], w)
    out = num / np.where(den > 0, den, 1.0)[:, None]
    return out.reshape((n_points, *tail))


def material_per_tet(mesh: TetMesh, materials) -> list[tuple[object, np.ndarray]]:
    """Group tets by material.

    Parameters
    ----------
    mesh : TetMesh
    materials : Material or dict
        One material, or ``{region name or id: Material}`` covering every region.

    Returns
    -------
    list of (material, tet ids (t,) int64)
    """
    if not isinstance(materials, Mapping):
        return [(materials, np.arange(mesh.n_tets, dtype=np.int64))]
    name_to_id = {v: k for k, v in mesh.region_names.items()}
    groups: dict[int, object] = {}
    for key, mat in materials.items():
        rid = key if isinstance(key, (int, np.integer)) else name_to_id.get(key)
        if rid is None:
            raise SimulationError(f"material given for unknown region {key!r}; the mesh has "
                                  f"{dict(sorted(mesh.region_names.items()))}")
        groups[int(rid)] = mat
    out = []
    for rid in np.unique(mesh.region_ids):
        if int(rid) not in groups:
            raise SimulationError(f"no material for region {int(rid)} "
                                  f"({mesh.region_names.get(int(rid), '?')}); give one per region")
        out.append((groups[int(rid)], np.flatnonzero(mesh.region_ids == rid)))
    return out


def compute_fields(mesh: TetMesh, positions: np.ndarray, materials) -> dict:
    """All strain and stress fields of a deformed body.

    Parameters
    ----------
    mesh : TetMesh
        The rest mesh.
    positions : ndarray, shape (n, 3)
        Current node positions (m).
    materials : Material or dict
        One material or ``{region name or id: Material}``.

    Returns
    -------
    dict
        ``F`` (m,3,3); ``green_lagrange`` (m,3,3); ``cauchy`` (m,3,3) Pa; ``von_mises`` (m,) Pa;
        ``energy_density`` (m,) J/m^3; ``strain_energy`` float J; ``nodal_von_mises`` (n,) Pa;
        ``nodal_green_lagrange`` (n,3,3); ``nodal_cauchy`` (n,3,3) Pa (volume-weighted averages).
        An element inverted at the moment (``det F <= 0``, which linear and corotational
        bodies pass through and recover from) gets its Kirchhoff stress ``P F^T`` as ``cauchy``.

    Examples
    --------
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> m = box_tet_mesh((2, 2, 2), 1.0)
    >>> class Lin:   # any object with batched pk1 and energy works
    ...     def pk1(self, F): return F - np.eye(3)
    ...     def energy(self, F): return 0.5 * ((F - np.eye(3)) ** 2).sum(axis=(1, 2))
    >>> compute_fields(m, m.points, Lin())["strain_energy"]
    0.0
    """
    F = deformation_gradients(mesh.points, mesh.tets, positions)
    P = np.empty_like(F)
    W = np.empty(mesh.n_tets)
    for mat, sel in material_per_tet(mesh, materials):
        P[sel] = mat.pk1(F[sel])
        W[sel] = mat.energy(F[sel])
    # a corotational or linear body may hold a few momentarily inverted elements: Kirchhoff stress there
    sigma = cauchy_stress(F, P=P, inverted="kirchhoff")
    E = green_lagrange(F)
    vm = von_mises(sigma)
    vol = mesh.volumes
    n = mesh.n_points
    return {
        "F": F,
        "green_lagrange": E,
        "cauchy": sigma,
        "von_mises": vm,
        "energy_density": W,
        "strain_energy": float(np.dot(W, vol)),
        "nodal_von_mises": nodal_average(vm, mesh.tets, vol, n),
        "nodal_green_lagrange": nodal_average(E, mesh.tets, vol, n),
        "nodal_cauchy": nodal_average(sigma, mesh.tets, vol, n),
    }
