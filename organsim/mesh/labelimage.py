"""Segmentation label volumes with their place in the patient.

World coordinates in organsim follow the DICOM patient convention **LPS**
(x towards the patient's Left, y towards Posterior, z towards Superior), in
metres. Formats stored in RAS (NIfTI) are converted when read. The world
position of voxel index ``ijk`` is::

    x = origin + direction @ (spacing * ijk)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ImageError

__all__ = ["LabelImage"]


@dataclass(frozen=True, eq=False)
class LabelImage:
    """A 3D integer label volume placed in world (LPS) coordinates.

    Parameters
    ----------
    labels : ndarray, shape (ni, nj, nk)
        Integer label per voxel, indexed ``[i, j, k]``; 0 is background.
    spacing : array_like, shape (3,)
        Voxel size along i, j, k (m).
    origin : array_like, shape (3,)
        World position (m, LPS) of the centre of voxel (0, 0, 0).
    direction : array_like, shape (3, 3), optional
        Columns are the world (LPS) unit vectors of the i, j, k axes.
    label_names : dict[int, str], optional
        Name of each label, e.g. ``{1: "liver", 2: "tumour"}``.

    Examples
    --------
    >>> import numpy as np
    >>> img = LabelImage(np.zeros((4, 4, 4), np.uint8), spacing=(1e-3,) * 3, origin=(0, 0, 0))
    >>> img.index_to_world([[1, 2, 3]]) * 1e3
    array([[1., 2., 3.]])
    """

    labels: np.ndarray
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    label_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lab = np.asarray(self.labels)
        if lab.ndim != 3:
            raise ImageError(f"a label image must be 3D, got shape {lab.shape}")
        if not np.issubdtype(lab.dtype, np.integer):
            if np.issubdtype(lab.dtype, np.floating) and np.all(np.isfinite(lab)) \
                    and np.all(lab == np.round(lab)):
                lab = lab.astype(np.int32)
            else:
                raise ImageError("label image voxels must be integer labels; got non-integer"
                                 " values (is this an intensity image rather than a segmentation?)")
        sp = np.asarray(self.spacing, dtype=np.float64).reshape(3)
        org = np.asarray(self.origin, dtype=np.float64).reshape(3)
        d = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
            raise ImageError(f"voxel spacing must be positive and finite, got {sp}")
        if not np.all(np.isfinite(org)) or not np.all(np.isfinite(d)):
            raise ImageError("image origin or direction contains NaN or infinite values")
        if abs(abs(np.linalg.det(d)) - 1.0) > 1e-3:
            raise ImageError(f"image direction must be orthonormal, got determinant {np.linalg.det(d):.3g}")
        for name, arr in (("spacing", sp), ("origin", org), ("direction", d)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "labels", lab)
        object.__setattr__(self, "label_names", {int(k): str(v) for k, v in dict(self.label_names).items()})

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4x4 index-to-world (LPS, m) matrix."""
        a = np.eye(4)
        a[:3, :3] = self.direction * self.spacing[None, :]
        a[:3, 3] = self.origin
        return a

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """World positions (m, LPS) of voxel indices, shape (n, 3) -> (n, 3)."""
        ijk = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        return self.origin + (ijk * self.spacing) @ self.direction.T

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Continuous voxel indices of world points (m, LPS), shape (n, 3) -> (n, 3)."""
        xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        return ((xyz - self.origin) @ self.direction) / self.spacing

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel (m^3)."""
        return float(np.prod(self.spacing))

    def present_labels(self) -> list[int]:
        """Sorted non-zero labels present in the volume."""
        return [int(v) for v in np.unique(self.labels) if v != 0]

    def label_volume(self, label: int | list[int]) -> float:
        """Volume (m^3) of the voxels carrying ``label`` (or any of a list)."""
        labs = np.atleast_1d(label)
        return float(np.isin(self.labels, labs).sum()) * self.voxel_volume

    def __repr__(self) -> str:
        return (f"LabelImage(shape={self.shape}, spacing_mm={tuple(float(v) for v in np.round(self.spacing * 1e3, 4))},"
                f" labels={self.present_labels()})")
