"""The organsim error family.

Every error raised on purpose by organsim derives from :class:`OrganSimError`.
A message names what was wrong, what was expected and what to do about it, so
that the command line can print it as one line and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "OrganSimError",
    "InputFileError",
    "ImageError",
    "MeshError",
    "UnitsError",
    "MaterialError",
    "ConvergenceError",
    "SimulationError",
    "ScenarioError",
]


class OrganSimError(Exception):
    """Base class of every error organsim raises on purpose."""


class InputFileError(OrganSimError, ValueError):
    """A file is missing, empty, truncated, corrupt or of an unknown format."""


class ImageError(OrganSimError, ValueError):
    """A label image cannot be used (no voxel of the label, bad geometry...)."""


class MeshError(OrganSimError, ValueError):
    """A mesh is invalid or cannot be repaired, meshed or cut."""


class UnitsError(OrganSimError, ValueError):
    """A length unit is unknown, or a size is implausible for an organ."""


class MaterialError(OrganSimError, ValueError):
    """A material or tissue preset has invalid parameters."""


class ConvergenceError(OrganSimError, RuntimeError):
    """A solver could not reach a valid state; the simulation state is unchanged."""


class SimulationError(OrganSimError, RuntimeError):
    """A simulation is set up wrongly (free rigid-body modes, bad selection...)."""


class ScenarioError(OrganSimError, ValueError):
    """A scenario file or object is invalid; the message names the key."""
