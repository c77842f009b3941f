"""Small organ meshes shipped with organsim: a liver, a kidney, a tissue block, a gauze sheet.

They are made by ``meshes/build.py`` through organsim's own pipeline
(:func:`organsim.mesh.pipeline.mesh_image`) from the seeded phantoms of
:mod:`organsim.phantoms`, and stored as VTU in metres with a ``region`` cell
array and region names. In an installed package they live in the
``organsim.meshes`` package data; in a source checkout, in ``meshes/``.
The gauze sheet of the pattern-cutting exercise is a regular grid, made when
it is loaded (no file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError
from .tetmesh import TetMesh

__all__ = ["load_shipped", "shipped_names", "shipped_path", "SHIPPED"]

#: Name -> file name of each shipped mesh.
SHIPPED: dict[str, str] = {"liver": "liver.vtu", "kidney": "kidney.vtu", "block": "block.vtu"}

_REPO_MESHES = Path(__file__).resolve().parents[2] / "meshes"


#: The gauze sheet: 100 x 100 mm, 3 mm thick, its top face at z = 0 (m).
GAUZE_SIZE_M = (0.1, 0.1, 0.003)


def gauze_sheet() -> TetMesh:
    """The pattern-cutting sheet: 100 x 100 x 3 mm, centred on x = y = 0, top at z = 0.

    A regular grid of 3.3 mm cells, one cell thick (5,400 tets), one region
    ``"gauze"``: a thin, gauze-like pad as held in a skills-lab frame.

    Examples
    --------
    >>> m = gauze_sheet()
    >>> m.n_tets, round(m.volume * 1e6, 3)
    (5400, 30.0)
    """
    from .generators import box_tet_mesh

    sx, sy, sz = GAUZE_SIZE_M
    m = box_tet_mesh((31, 31, 2), (sx / 30, sy / 30, sz), origin=(-sx / 2, -sy / 2, -sz))
    return TetMesh(m.points, m.tets, np.ones(m.n_tets, dtype=np.int32), {1: "gauze"})


#: Meshes made when loaded: name -> function.
GENERATED = {"gauze": gauze_sheet}


def shipped_names() -> list[str]:
    """Names accepted by :func:`load_shipped`.

    Examples
    --------
    >>> shipped_names()
    ['block', 'gauze', 'kidney', 'liver']
    """
    return sorted([*SHIPPED, *GENERATED])


def shipped_path(name: str) -> Path:
    """Path of the file of a shipped mesh (package data first, then the checkout's ``meshes/``)."""
    key = str(name).strip().lower()
    if key in GENERATED:
        raise InputFileError(f"the shipped mesh {name!r} is generated when loaded (no file);"
                             " use load_shipped")
    if key not in SHIPPED:
        raise InputFileError(f"no shipped mesh named {name!r}; expected one of"
                             f" {', '.join(shipped_names())}")
    fname = SHIPPED[key]
    try:
        from importlib import resources

        res = resources.files("organsim.meshes").joinpath(fname)
        if res.is_file():
            return Path(str(res))
    except (ModuleNotFoundError, TypeError, FileNotFoundError):
        pass
    p = _REPO_MESHES / fname
    if p.is_file():
        return p
    raise InputFileError(f"the shipped mesh file {fname} is missing (looked in the organsim.meshes"
                         f" package data and in {_REPO_MESHES}); reinstall organsim or run"
                         " python meshes/build.py in a source checkout")


def load_shipped(name: str) -> TetMesh:
    """Load a shipped organ mesh.

    Parameters
    ----------
    name : {"liver", "kidney", "block", "gauze"}
        ``"liver"``: about 10k tets, regions parenchyma, tumour, vessel,
        ligament; ``"kidney"``: parenchyma and pelvis; ``"block"``: a soft
        tissue slab (one region, "tissue"); ``"gauze"``: the pattern-cutting
        sheet (:func:`gauze_sheet`).

    Returns
    -------
    TetMesh
        In metres, with region ids and names.

    Examples
    --------
    >>> mesh = load_shipped("liver")
    >>> sorted(mesh.region_names.values())
    ['ligament', 'parenchyma', 'tumour', 'vessel']
    """
    import pyvista as pv

    key = str(name).strip().lower()
    if key in GENERATED:
        return GENERATED[key]()
    path = shipped_path(name)
    try:
        grid = pv.read(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputFileError(f"cannot read the shipped mesh {path}: {exc}; reinstall organsim"
                             " or rebuild it with python meshes/build.py") from exc
    return TetMesh.from_pyvista(grid)
