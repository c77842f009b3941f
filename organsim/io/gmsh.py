"""Gmsh files meshio does not handle: reading format v1, writing v4.1 with regions.

* **v1** (``$NOD``/``$ELM``) is still common in surgical-simulation data
  (SOFA's ``liver.msh``) and meshio cannot read it. Each element line is
  ``number type physical elementary n_nodes node ...``; node numbers need
  not be contiguous.
* **v4.1**: meshio 5.3's writer drops the physical tags of volume elements,
  so organsim writes ASCII v4.1 itself (one volume entity per region, with
  the region id as its physical tag and the region name in
  ``$PhysicalNames``). meshio and Gmsh read it back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError

__all__ = ["read_gmsh_v1", "write_gmsh41", "GMSH_V1_NODES_PER_TYPE"]

#: Nodes per element for the Gmsh element types (the same numbering in v1, v2 and v4).
GMSH_V1_NODES_PER_TYPE = {1: 2, 2: 3, 3: 4, 4: 4, 5: 8, 6: 6, 7: 5, 8: 3, 9: 6, 10: 9, 11: 10,
                          12: 27, 13: 18, 14: 14, 15: 1}
#: Gmsh element type -> meshio cell type name (the types organsim cares about).
_TYPE_NAMES = {1: "line", 2: "triangle", 3: "quad", 4: "tetra", 5: "hexahedron", 6: "wedge",
               7: "pyramid", 11: "tetra10", 15: "vertex"}


def read_gmsh_v1(path: Path) -> tuple[np.ndarray, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Read a Gmsh v1 ASCII mesh.

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    points : ndarray, shape (n, 3)
        Node coordinates, in the file's units, in the order of ``$NOD``.
    blocks : list of (cell type, connectivity (m, k) int64, region ids (m,) int64)
        One block per element type. The region id is the physical tag, or
        the elementary tag where the physical tag is 0.

    Raises
    ------
    InputFileError
        If a section is missing or truncated, or an element refers to an
        unknown node.
    """
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln.strip() for ln in fh]
    lines = [ln for ln in lines if ln]
    try:
        nod = lines.index("$NOD")
        elm = lines.index("$ELM")
    except ValueError as exc:
        raise InputFileError(f"{path}: not a Gmsh v1 file: $NOD and $ELM sections expected"
                             " (truncated file?); export it again") from exc
    try:
        n_nodes = int(lines[nod + 1])
        node_rows = lines[nod + 2:nod + 2 + n_nodes]
        n_elems = int(lines[elm + 1])
        elem_rows = lines[elm + 2:elm + 2 + n_elems]
    except (ValueError, IndexError) as exc:
        raise InputFileError(f"{path}: corrupt Gmsh v1 file: a node or element count is not a"
                             " number") from exc
    if len(node_rows) < n_nodes or "$ENDNOD" in node_rows or len(elem_rows) < n_elems \
            or "$ENDELM" in elem_rows or "$ENDELM" not in lines[elm:]:
        raise InputFileError(f"{path}: truncated Gmsh v1 file: it announces {n_nodes} nodes and"
                             f" {n_elems} elements but holds fewer; export it again")
    try:
        nodes = np.array([r.split()[:4] for r in node_rows], dtype=np.float64)
    except ValueError as exc:
        raise InputFileError(f"{path}: corrupt Gmsh v1 node line ({exc})") from exc
    if nodes.shape != (n_nodes, 4):
        raise InputFileError(f"{path}: corrupt Gmsh v1 file: each node line needs 'id x y z'")
    ids = nodes[:, 0].astype(np.int64)
    points = nodes[:, 1:]
    lookup = {int(k): i for i, k in enumerate(ids)}

    by_type: dict[int, tuple[list[list[int]], list[int]]] = {}
    for lineno, row in enumerate(elem_rows, start=elm + 3):
        tok = row.split()
        try:
            etype, phys, elem, n = int(tok[1]), int(tok[2]), int(tok[3]), int(tok[4])
            conn = [lookup[int(t)] for t in tok[5:5 + n]]
        except (ValueError, IndexError) as exc:
            raise InputFileError(f"{path}: line {lineno}: corrupt Gmsh v1 element"
                                 f" {row[:60]!r}") from exc
        except KeyError as exc:
            raise InputFileError(f"{path}: line {lineno}: element refers to node {exc.args[0]},"
                                 " which is not in $NOD; the file is corrupt") from exc
        if len(conn) != n or GMSH_V1_NODES_PER_TYPE.get(etype, n) != n:
            raise InputFileError(f"{path}: line {lineno}: element of type {etype} lists {len(conn)}"
                                 " nodes, which does not match its type")
        conns, regions = by_type.setdefault(etype, ([], []))
        conns.append(conn)
        regions.append(phys if phys != 0 else elem)
    blocks = [(_TYPE_NAMES.get(t, f"gmsh_type_{t}"), np.asarray(c, dtype=np.int64),
               np.asarray(r, dtype=np.int64)) for t, (c, r) in by_type.items()]
    return points, blocks


def write_gmsh41(path: Path, points: np.ndarray, tets: np.ndarray, region_ids: np.ndarray,
                 region_names: dict[int, str]) -> None:
    """Write linear tets as an ASCII Gmsh v4.1 file, one volume entity per region.

    Parameters
    ----------
    path : pathlib.Path
    points : ndarray, shape (n, 3)
        Node coordinates (written as given).
    tets : ndarray, shape (m, 4)
    region_ids : ndarray, shape (m,)
        Written as both the entity tag and the physical tag (must be >= 1).
        Tets are written grouped by region (one element block per region),
        keeping their order within each region.
    region_names : dict[int, str]
        Written as ``$PhysicalNames`` of dimension 3.
    """
    regions = np.unique(region_ids)
    if regions.size and regions.min() < 1:
        raise InputFileError(f"{path}: Gmsh needs region ids >= 1, got {regions.min()};"
                             " renumber the regions or write VTU")
    n, m = len(points), len(tets)
    out = ["$MeshFormat", "4.1 0 8", "$EndMeshFormat"]
    named = [(int(r), region_names[int(r)]) for r in regions if int(r) in region_names]
    if named:
        out += ["$PhysicalNames", str(len(named))]
        out += [f'3 {r} "{name.replace(chr(34), chr(39))}"' for r, name in named]
        out += ["$EndPhysicalNames"]
    out += ["$Entities", f"0 0 0 {len(regions)}"]
    for r in regions:
        pts = points[np.unique(tets[region_ids == r])]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        box = " ".join(f"{float(v):.17g}" for v in (*lo, *hi))
        out.append(f"{r} {box} 1 {r} 0")
    out += ["$EndEntities", "$Nodes", f"1 {n} 1 {n}",
            f"3 {regions[0] if regions.size else 1} 0 {n}"]
    text = "\n".join(out) + "\n"
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)
        np.savetxt(fh, np.arange(1, n + 1), fmt="%d")
        np.savetxt(fh, points, fmt="%.17g %.17g %.17g")
        fh.write(f"$EndNodes\n$Elements\n{len(regions)} {m} 1 {m}\n")
        tag = 1
        for r in regions:
            sel = tets[region_ids == r]
            fh.write(f"3 {r} 4 {len(sel)}\n")
            rows = np.column_stack([np.arange(tag, tag + len(sel)), sel + 1])
            np.savetxt(fh, rows, fmt="%d")
            tag += len(sel)
        fh.write("$EndElements\n")
