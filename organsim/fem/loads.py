"""Nodal loads and lumped masses for linear tetrahedra (P1).

All functions are vectorized over faces or tets and return arrays over the
nodes of the mesh: ``(n, 3)`` forces in newtons, ``(n,)`` masses in kg.

Examples
--------
>>> import numpy as np
>>> pts = np.array([[0., 0, 0], [1, 0, 0], [0, 1, 0]])
>>> f = pressure_nodal_forces(pts, np.array([[0, 1, 2]]), 6.0)   # normal +z, area 1/2
>>> f[:, 2].tolist()
[-1.0, -1.0, -1.0]
"""

from __future__ import annotations

import numpy as np

from ..errors import SimulationError

__all__ = ["pressure_nodal_forces", "traction_nodal_forces", "lumped_mass", "gravity_forces",
           "pressure_load_stiffness"]


def _faces_arr(points: np.ndarray, faces) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SimulationError(f"points must have shape (n, 3), got {pts.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise SimulationError(f"faces must have shape (k, 3), got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(pts)):
        raise SimulationError(f"faces refer to node ids outside 0..{len(pts) - 1}")
    return pts, f


def _per_item(value, k: int, tail: tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape == tail:
        a = np.broadcast_to(a, (k, *tail))
    elif a.shape != (k, *tail):
        raise SimulationError(f"{what} must have shape {tail or '()'} or {(k, *tail)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise SimulationError(f"{what} contains NaN or infinite values")
    return a


def pressure_nodal_forces(points: np.ndarray, faces: np.ndarray, pressure_pa) -> np.ndarray:
    """Consistent nodal forces of a uniform pressure on triangles.

    A positive pressure pushes against each face's normal (right-hand rule on
    the vertex order), i.e. *into* the body for outward-oriented boundary faces
    such as ``mesh.boundary_faces``. For a linear triangle and a uniform
    pressure the consistent load is one third of ``-p A n`` at each vertex.
    Pass current positions for a follower (deformation-dependent) load.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Node positions (m), rest or current.
    faces : ndarray, shape (k, 3)
        Triangles (node ids), outward normals.
    pressure_pa : float or ndarray, shape (k,)
        Pressure (Pa) on all faces or per face.

    Returns
    -------
    ndarray, shape (n, 3)
        Nodal forces (N); zero at nodes not on ``faces``.
    """
    pts, f = _faces_arr(points, faces)
    p = _per_item(pressure_pa, len(f), (), "pressure_pa")
    x = pts[f]
    an = 0.5 * np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])  # area-weighted normal (k, 3)
    fe = -(p[:, None] * an) / 3.0
    out = np.zeros_like(pts)
    for a in range(3):
        np.add.at(out, f[:, a], fe)
    return out


def pressure_load_stiffness(points: np.ndarray, faces: np.ndarray, pressure_pa):
    """Derivative of :func:`pressure_nodal_forces` with respect to the positions.

    Follower pressure changes with the face's area and orientation; Newton's
    method converges quadratically only if the tangent includes this term.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (3n, 3n)
        ``d f / d x`` with point-major dof order (node i, component c) -> ``3 i + c``.
        Add its negative to a stiffness matrix ``K = d f_int / d x``.
    """
    import scipy.sparse as sp

    pts, f = _faces_arr(points, faces)
    k = len(f)
    p = _per_item(pressure_pa, k, (), "pressure_pa")
    x = pts[f]

    def skew(v):
        s = np.zeros((len(v), 3, 3))
        s[:, 0, 1], s[:, 0, 2] = -v[:, 2], v[:, 1]
        s[:, 1, 0], s[:, 1, 2] = v[:, 2], -v[:, 0]
        s[:, 2, 0], s[:, 2, 1] = -v[:, 1], v[:, 0]
        return s

    # an = 1/2 (x1 - x0) x (x2 - x0) = 1/2 (x0 x x1 + x1 x x2 + x2 x x0);
    # d an / d x_a = 1/2 skew(x_{a-1} - x_{a+1})   (cyclic), since d(a x b)/db = skew(a)
    blocks = np.empty((k, 3, 3, 3, 3))  # face, node a (force), node b (position), comp, comp
    for b in range(3):
        d = 0.5 * skew(x[:, (b - 1) % 3] - x[:, (b + 1) % 3])
        g = -(p[:, None, None] * d) / 3.0
        for a in range(3):
            blocks[:, a, b] = g
    rows = (3 * f[:, :, None, None, None] + np.arange(3)[None, None, None, :, None])
    cols = (3 * f[:, None, :, None, None] + np.arange(3)[None, None, None, None, :])
    rows = np.broadcast_to(rows, blocks.shape).ravel()
    cols = np.broadcast_to(cols, blocks.shape).ravel()
    n3 = 3 * len(pts)
    return sp.csr_matrix((blocks.ravel(), (rows, cols)), shape=(n3, n3))


def traction_nodal_forces(points: np.ndarray, faces: np.ndarray, traction) -> np.ndarray:
    """Consistent nodal forces of a uniform traction vector on triangles.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Node positions (m).
    faces : ndarray, shape (k, 3)
        Triangles (node ids).
    traction : array_like, shape (3,) or (k, 3)
        Force per area (Pa) on all faces or per face.

    Returns
    -------
    ndarray, shape (n, 3)
        Nodal forces (N): ``t A / 3`` at each vertex of each face.

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[0., 0, 0], [1, 0, 0], [0, 1, 0]])
    >>> traction_nodal_forces(pts, np.array([[0, 1, 2]]), (3.0, 0, 0))[:, 0].tolist()
    [0.5, 0.5, 0.5]
    """
    pts, f = _faces_arr(points, faces)
    t = _per_item(traction, len(f), (3,), "traction")
    x = pts[f]
    area = 0.5 * np.linalg.norm(np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]), axis=1)
    fe = t * (area / 3.0)[:, None]
    out = np.zeros_like(pts)
    for a in range(3):
        np.add.at(out, f[:, a], fe)
    return out


def lumped_mass(points: np.ndarray, tets: np.ndarray, density) -> np.ndarray:
    """Row-sum lumped mass of linear tets: ``rho V / 4`` to each node of each tet.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Rest node positions (m).
    tets : ndarray, shape (m, 4)
        Positively oriented tets.
    density : float or ndarray, shape (m,)
        Mass density (kg/m^3), uniform or per tet.

    Returns
    -------
    ndarray, shape (n,)
        Nodal masses (kg); their sum is the body's mass.

    Examples
    --------
    >>> import numpy as np
    >>> lumped_mass(np.eye(4, 3), np.array([[3, 0, 1, 2]]), 600.0).tolist()
    [25.0, 25.0, 25.0, 25.0]
    """
    pts = np.asarray(points, dtype=np.float64)
    t = np.asarray(tets, dtype=np.int64)
    rho = _per_item(density, len(t), (), "density")
    if np.any(rho < 0):
        raise SimulationError("density must be >= 0 kg/m^3")
    p = pts[t]
    vol = np.einsum("ij,ij->i", p[:, 1] - p[:, 0],
                    np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0])) / 6.0
    if np.any(vol <= 0):
        raise SimulationError(f"{int(np.sum(vol <= 0))} tets have zero or negative volume; "
                              "fix the mesh orientation before computing masses")
    m = np.zeros(len(pts))
    me = rho * vol / 4.0
    for a in range(4):
        np.add.at(m, t[:, a], me)
    return m


def gravity_forces(points: np.ndarray, tets: np.ndarray, density,
                   gravity=(0.0, 0.0, -9.81)) -> np.ndarray:
    """Nodal weight of the lumped masses: ``m_i g``, shape (n, 3), N.

    Parameters
    ----------
    points, tets, density
        As in :func:`lumped_mass`.
    gravity : array_like, shape (3,)
        Gravitational acceleration (m/s^2).

    Examples
    --------
    >>> import numpy as np
    >>> round(float(gravity_forces(np.eye(4, 3), np.array([[3, 0, 1, 2]]), 600.0)[:, 2].sum()), 9)
    -981.0
    """
    g = np.asarray(gravity, dtype=np.float64)
    if g.shape != (3,) or not np.all(np.isfinite(g)):
        raise SimulationError(f"gravity must be 3 finite numbers (m/s^2), got {gravity!r}")
    return lumped_mass(points, tets, density)[:, None] * g[None, :]
