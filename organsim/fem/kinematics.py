"""Kinematics of linear tetrahedra (P1): shape-function gradients, deformation
gradients and the polar rotation.

Everything here is batched over elements: the shape-function gradients come
from a compiled kernel (they are rebuilt after every cut increment), the rest
is vectorised with numpy; the per-frame versions used inside the solver live in
:mod:`organsim.fem._kernels`.
"""

from __future__ import annotations

import numpy as np

from ..errors import MeshError
from ._mesh_kernels import shape_gradients as _compiled_shape_gradients

__all__ = ["shape_gradients", "deformation_gradients", "polar_rotation"]


def shape_gradients(points: np.ndarray, tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the four P1 shape functions of every tet in the rest configuration.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Rest node positions (m).
    tets : ndarray, shape (m, 4)
        Node ids per tet, positively oriented.

    Returns
    -------
    grads : ndarray, shape (m, 4, 3)
        ``grads[e, a]`` is the gradient of shape function ``a`` (1/m); they sum to zero.
    volumes : ndarray, shape (m,)
        Rest volume of each tet (m^3).

    Raises
    ------
    MeshError
        If a tet has zero or negative volume.

    Examples
    --------
    >>> import numpy as np
    >>> g, v = shape_gradients(np.array([[0., 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]),
    ...                        np.array([[0, 1, 2, 3]]))
    >>> g[0, 1], round(float(v[0]), 6)
    (array([1., 0., 0.]), 0.166667)
    """
    grads, vols = _compiled_shape_gradients(np.ascontiguousarray(points, dtype=np.float64),
                            np.ascontiguousarray(tets, dtype=np.int64))
    bad = ~(vols > 0)
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        raise MeshError(f"{int(bad.sum())} tet(s) have zero or negative rest volume (first: tet {k});"
                        " expected positively oriented tets; repair or re-mesh the input")
    return grads, vols


def deformation_gradients(positions: np.ndarray, tets: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Deformation gradient ``F = sum_a x_a (x) grad N_a`` of every tet.

    Parameters
    ----------
    positions : ndarray, shape (n, 3)
        Current node positions (m).
    tets : ndarray, shape (m, 4)
    grads : ndarray, shape (m, 4, 3)
        Rest shape-function gradients from :func:`shape_gradients`.

    Returns
    -------
    ndarray, shape (m, 3, 3)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0., 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]); t = np.array([[0, 1, 2, 3]])
    >>> g, _ = shape_gradients(X, t)
    >>> deformation_gradients(2 * X, t, g)[0].diagonal()
    array([2., 2., 2.])
    """
    return np.einsum("eai,eaj->eij", np.asarray(positions)[tets], grads)


def polar_rotation(F: np.ndarray, *, max_iter: int = 60) -> np.ndarray:
    """Rotation factor ``R`` of the polar decomposition ``F = R S`` (batched).

    Uses the scaled Newton iteration ``R <- (g R + R^-T / g) / 2``, which is
    analytic, so it also works for complex-step differentiation.

    Parameters
    ----------
    F : ndarray, shape (k, 3, 3)
        Non-singular matrices (real or complex).

    Returns
    -------
    ndarray, shape (k, 3, 3)
        Orthogonal factors (a reflection where ``det F < 0``).

    Examples
    --------
    >>> import numpy as np
    >>> polar_rotation(np.diag([2.0, 3.0, 4.0])[None])[0].round(12)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    R = np.array(F, copy=True)
    for _ in range(max_iter):
        d = np.linalg.det(R)
        g = np.abs(d.real) ** (-1.0 / 3.0)
        if not np.all(np.isfinite(g)):
            raise MeshError("polar decomposition of a singular deformation gradient;"
                            " an element is degenerate")
        Rn = 0.5 * (g[:, None, None] * R + np.swapaxes(np.linalg.inv(R), 1, 2) / g[:, None, None])
        delta = np.max(np.abs(Rn - R)) if len(R) else 0.0
        R = Rn
        if delta < 1e-15:
            break
    return R
