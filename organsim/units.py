"""Length units at the edges of organsim.

Inside organsim every length is in metres. Files whose format carries no unit
are read with an explicit ``units=`` argument; this module converts and checks
that the result is a plausible size for a human organ.
"""

from __future__ import annotations

import numpy as np

from .errors import UnitsError

__all__ = ["LENGTH_UNITS", "to_metres", "check_plausible_size", "DEFAULT_MESH_UNITS", "effective_units"]

#: Scale factor from each accepted unit name to metres.
LENGTH_UNITS: dict[str, float] = {
    "m": 1.0,
    "cm": 1e-2,
    "mm": 1e-3,
    "um": 1e-6,
}

#: Unit assumed by the command line for mesh files that carry none (medical
#: imaging software exports surfaces in millimetres).
DEFAULT_MESH_UNITS = "mm"

#: Largest extent (m) accepted for one organ or body part; larger is almost
#: surely a units mistake.
MAX_ORGAN_EXTENT_M = 1.0
#: Smallest extent (m) accepted (a 1 mm structure is already tiny).
MIN_ORGAN_EXTENT_M = 1e-3


def to_metres(units: str) -> float:
    """Return the factor that converts lengths in ``units`` to metres.

    Parameters
    ----------
    units : str
        One of ``"m"``, ``"cm"``, ``"mm"``, ``"um"``.

    Returns
    -------
    float
        Metres per unit.

    Examples
    --------
    >>> to_metres("mm")
    0.001
    """
    key = str(units).strip().lower()
    if key == "µm":
        key = "um"
    if key not in LENGTH_UNITS:
        raise UnitsError(
            f"unknown length unit {units!r}; expected one of {', '.join(LENGTH_UNITS)}"
            " (mm for files exported by imaging software: --units mm on the command line,"
            ' units = "mm" under [organ] in a scenario, units="mm" in Python)'
        )
    return LENGTH_UNITS[key]


def check_plausible_size(points_m: np.ndarray, *, source: str = "mesh",
                         units: str | None = None) -> None:
    """Raise :class:`UnitsError` if ``points_m`` is not organ-sized.

    Parameters
    ----------
    points_m : ndarray, shape (n, 3)
        Coordinates in metres.
    source : str
        Name of the file or object, used in the message.
    units : str, optional
        The unit the file was read with, used to suggest a fix.
    """
    pts = np.asarray(points_m, dtype=float)
    if pts.size == 0:
        return
    extent = float(np.max(pts.max(axis=0) - pts.min(axis=0)))
    read_as = f" read as {units}" if units else ""
    if extent > MAX_ORGAN_EXTENT_M:
        raise UnitsError(
            f"{source}: the object is {extent:.3g} m across{read_as}, implausible for an organ "
            f"(at most {MAX_ORGAN_EXTENT_M:g} m expected); the file is probably in smaller units:"
            " read it in the unit it was exported in (--units mm on the command line,"
            ' units = "mm" under [organ] in a scenario, units="mm" in Python)'
        )
    if extent < MIN_ORGAN_EXTENT_M:
        raise UnitsError(
            f"{source}: the object is {extent:.3g} m across{read_as}, implausible for an organ "
            f"(at least {MIN_ORGAN_EXTENT_M * 1e3:g} mm expected); the file is probably in larger"
            " units: read it in the unit it was exported in, m, cm or mm (--units m on the command"
            ' line, units = "m" under [organ] in a scenario, units="m" in Python)'
        )


def effective_units(path, units: str | None) -> str:
    """The unit a file is read with: ``units`` if given; metres for a VTU that organsim wrote
    (it carries organsim's region-name field); else the documented default, mm."""
    if units:
        return units
    from pathlib import Path

    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".vtu":
        with open(p, "rb") as fh:
            head = fh.read(1 << 16)
        if b'Name="region_names_json"' in head or b'Name="region_names"' in head:
            return "m"
    return DEFAULT_MESH_UNITS
