"""The meshing pipeline: label image or surface in, quality tet mesh and report out.

::

    mesh, report = mesh_image(image)               # label volume -> regions per tet
    mesh, report = mesh_surface(surface)           # repair, then tetrahedralize
    mesh, report = mesh_volume(tet_mesh)           # re-mesh a volume mesh's boundary
    print(report)

Default edge length: 1/25 of the object's largest extent (so an organ gets
roughly 10^4 to 10^5 tets whatever its size); pass ``edge_length=`` (m) to choose.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import numpy as np

from ..errors import MeshError
from ..units import check_plausible_size
from .labelimage import LabelImage
from .surface import TriSurface
from .tetmesh import TetMesh
from .tetrahedralize import (METHODS, _orient, _tetrahedralize, _volume_corrected_lattice,
                             crop_to_labels, label_mask, default_edge_length, present_labels,
                             quality_gate, with_image_regions)

__all__ = ["MeshingReport", "mesh_image", "mesh_surface", "mesh_volume", "drop_small_components"]

log = logging.getLogger(__name__)


@dataclass
class MeshingReport:
    """What the meshing pipeline did and what came out.

    Attributes
    ----------
    source : str
        What was meshed ("label image", a file name...).
    method : str
        Tetrahedralization method.
    edge_length_m : float
        Target edge length (m).
    repair : object or None
        The surface repair report (:class:`organsim.mesh.repair.RepairReport`), if a surface was repaired.
    timings_s : dict[str, float]
        Wall time per stage (s).
    n_points, n_tets, n_boundary_faces : int
    quality : dict
        :meth:`TetMesh.quality` of the result.
    volume_m3, reference_volume_m3 : float
        Mesh volume and the reference (voxel volume of the labels, or the
        repaired surface's enclosed volume).
    reference : str
        What the reference volume is.
    regions : dict[str, dict]
        Per region name: ``n_tets`` and ``volume_m3``.
    n_dropped_components : int
        Small disconnected pieces removed (segmentation specks).
    n_peeled : int
        Boundary tets removed by the quality gate (bad ones, and those at
        pinched edges where two thin parts touched).
    n_moved : int
        Interior nodes moved by the quality gate to fix bad tets.
    notes : list[str]
    """

    source: str
    method: str
    edge_length_m: float
    repair: Any = None
    timings_s: dict[str, float] = field(default_factory=dict)
    n_points: int = 0
    n_tets: int = 0
    n_boundary_faces: int = 0
    quality: dict = field(default_factory=dict)
    volume_m3: float = float("nan")
    reference_volume_m3: float = float("nan")
    reference: str = ""
    regions: dict[str, dict] = field(default_factory=dict)
    n_dropped_components: int = 0
    n_peeled: int = 0
    n_moved: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def volume_error(self) -> float:
        """Relative volume error of the mesh vs the reference (signed fraction)."""
        if not np.isfinite(self.reference_volume_m3) or self.reference_volume_m3 == 0:
            return float("nan")
        return float(self.volume_m3 / self.reference_volume_m3 - 1.0)

    def to_dict(self) -> dict:
        """A JSON-serializable dict."""
        d = {k: v for k, v in asdict(self).items() if k != "repair"}
        rep = self.repair
        if rep is None:
            d["repair"] = None
        elif is_dataclass(rep):
            d["repair"] = _jsonable(asdict(rep))
        elif hasattr(rep, "to_dict"):
            d["repair"] = _jsonable(rep.to_dict())
        else:
            d["repair"] = str(rep)
        d["volume_error"] = self.volume_error
        return _jsonable(d)

    def __str__(self) -> str:
        q = self.quality
        lines = [f"meshing report: {self.source}",
                 f"  method            {self.method}, target edge {self.edge_length_m * 1e3:.3g} mm"]
        if self.repair is not None:
            rep = _repair_lines(self.repair)
            lines.append("  repair            " + (rep[0] if rep else ""))
            lines.extend("                    " + r for r in rep[1:])
        lines += [
            f"  result            {self.n_points} points, {self.n_tets} tets,"
            f" {self.n_boundary_faces} boundary faces",
            f"  volume            {self.volume_m3 * 1e6:.6g} mL vs {self.reference} "
            f"{self.reference_volume_m3 * 1e6:.6g} mL ({100 * self.volume_error:+.2f} %)",
        ]
        if q:
            lines.append(f"  quality           dihedral {q['min_dihedral_deg']:.1f}..{q['max_dihedral_deg']:.1f}"
                         f" deg, radius ratio min {q['min_radius_ratio']:.3f} mean"
                         f" {q['mean_radius_ratio']:.3f}, {q['n_inverted']} inverted,"
                         f" mean edge {q['mean_edge_length_m'] * 1e3:.3g} mm")
        for name, r in self.regions.items():
            lines.append(f"  region {name:<10} {r['n_tets']} tets, {r['volume_m3'] * 1e6:.4g} mL")
        if self.n_dropped_components or self.n_peeled or self.n_moved:
            lines.append(f"  cleanup           {self.n_dropped_components} small pieces dropped,"
                         f" {self.n_moved} interior nodes moved,"
                         f" {self.n_peeled} bad or pinched boundary tets removed")
        lines.append("  timings           " + ", ".join(f"{k} {v:.2f} s" for k, v in self.timings_s.items()))
        lines.extend(f"  note              {n}" for n in self.notes)
        return "\n".join(lines)


def _repair_lines(rep) -> list[str]:
    """Short text lines for a repair report (its own ``__str__`` if it has one)."""
    if type(rep).__str__ is not object.__str__ or not is_dataclass(rep):
        return str(rep).rstrip().splitlines()
    d = asdict(rep)
    io_keys = ("points_in", "faces_in", "points_out", "faces_out")
    head = []
    if all(k in d for k in io_keys):
        head.append(f"{d['points_in']} points / {d['faces_in']} triangles in,"
                    f" {d['points_out']} / {d['faces_out']} out")
    flags = [k for k in ("watertight", "edge_manifold") if k in d]
    if flags:
        head.append(", ".join(f"{k.replace('_', '-')} {'yes' if d[k] else 'NO'}" for k in flags))
    changed = [f"{k.replace('_', ' ')} {v}" for k, v in d.items()
               if k not in io_keys and not k.endswith("_out") and isinstance(v, int)
               and not isinstance(v, bool) and v]
    lines = ["; ".join(head) if head else type(rep).__name__]
    if changed:
        lines.append("changes: " + ", ".join(changed))
    else:
        lines.append("changes: none needed")
    lines.extend(f"note: {n}" for n in d.get("notes", []) or [])
    return lines


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def drop_small_components(mesh: TetMesh, *, min_fraction: float = 0.01) -> tuple[TetMesh, int]:
    """Remove face-connected pieces smaller than ``min_fraction`` of the total volume.

    Parameters
    ----------
    mesh : TetMesh
    min_fraction : float
        Pieces with less than this fraction of the whole volume are dropped
        (specks of segmentation noise); at least the largest piece is kept.

    Returns
    -------
    mesh : TetMesh
    n_dropped : int
        Number of pieces removed.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from .tetmesh import TET_FACES

    m = mesh.n_tets
    if m == 0:
        return mesh, 0
    faces = np.sort(mesh.tets[:, TET_FACES].reshape(-1, 3), axis=1)
    owner = np.repeat(np.arange(m), 4)
    order = np.lexsort(faces.T[::-1])
    fs, os_ = faces[order], owner[order]
    same = np.all(fs[1:] == fs[:-1], axis=1)
    a, b = os_[:-1][same], os_[1:][same]
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(m, m))
    n, lab = connected_components(g, directed=False)
    if n == 1:
        return mesh, 0
    vol = np.bincount(lab, weights=mesh.volumes, minlength=n)
    keep_c = vol >= min_fraction * vol.sum()
    keep_c[np.argmax(vol)] = True
    sub, _ = mesh.submesh(keep_c[lab])
    return sub, int((~keep_c).sum())


def _finish(mesh: TetMesh, report: MeshingReport, t0: float) -> tuple[TetMesh, MeshingReport]:
    t = time.perf_counter()
    mesh, report.n_dropped_components = drop_small_components(mesh)
    report.timings_s["cleanup"] = time.perf_counter() - t
    report.n_points, report.n_tets = mesh.n_points, mesh.n_tets
    report.n_boundary_faces = len(mesh.boundary_faces)
    report.quality = mesh.quality()
    report.volume_m3 = mesh.volume
    vols = mesh.region_volumes()
    report.regions = {name: {"n_tets": int(np.count_nonzero(mesh.region_ids == rid)),
                             "volume_m3": vols[name]}
                      for rid, name in sorted(mesh.region_names.items())}
    report.timings_s["total"] = time.perf_counter() - t0
    if abs(report.volume_error) > 0.02:
        report.notes.append(f"volume differs from the {report.reference} by"
                            f" {100 * report.volume_error:+.2f} % (more than 2 %): features"
                            " thinner than the edge length are lost; try a smaller edge length")
    log.info("%s", report)
    return mesh, report


def mesh_image(image: LabelImage, *, labels=None, edge_length: float | None = None,
               method: str = "lattice", smoothing: float = 1.0, preserve_volume: bool = True,
               source: str = "label image") -> tuple[TetMesh, MeshingReport]:
    """Tet mesh of the labelled organ of an image, one region per label, at its world position.

    Parameters
    ----------
    image : LabelImage
    labels : sequence of int, optional
        Labels to mesh (default: all non-zero labels). Region names come from
        ``image.label_names``.
    edge_length : float, optional
        Target edge length (m); default 1/25 of the largest extent of the labelled voxels.
    method : {"lattice", "tetwild", "tetgen"}
        ``"lattice"`` meshes the voxels directly (isosurface stuffing); the
        others extract and repair a surface first, then assign each tet the
        label at its centre.
    smoothing : float
        Gaussian sigma (voxels) applied to the label indicator (lattice only).
    preserve_volume : bool
        Lattice only: nudge the iso-level so that the mesh volume matches the
        voxel volume of the labels (at most two extra meshing passes).
    source : str
        Name for the report and error messages.

    Returns
    -------
    mesh : TetMesh
    report : MeshingReport

    Examples
    --------
    >>> from organsim.phantoms import block_phantom
    >>> mesh, report = mesh_image(block_phantom())
    >>> report.quality["min_dihedral_deg"] >= 10
    True
    """
    if method not in METHODS:
        raise MeshError(f"unknown meshing method {method!r}; expected one of {', '.join(METHODS)}")
    t0 = time.perf_counter()
    all_labels = present_labels(image)
    labs = [int(v) for v in (labels if labels is not None else all_labels)]
    if not labs:
        raise MeshError(f"{source}: the image holds no labelled voxel (all background); expected"
                        " a segmentation with at least one non-zero label")
    present = set(all_labels)
    missing = [L for L in labs if L not in present]
    if missing:
        raise MeshError(f"{source}: no voxel carries label(s) {missing}; present labels are"
                        f" {sorted(present)}: pass one of those with --label")
    image = crop_to_labels(image, labs)  # a small organ in a large scan: work on its box only
    mask_idx = np.argwhere(label_mask(image.labels, labs))
    extent = (mask_idx.max(0) - mask_idx.min(0) + 1) * image.spacing
    check_plausible_size(np.stack([np.zeros(3), extent]), source=source)
    if edge_length is None:
        edge_length = default_edge_length(float(extent.max()))
    elif isinstance(edge_length, bool) or not isinstance(edge_length, (int, float, np.floating)) \
            or not np.isfinite(edge_length) or edge_length <= 0:
        raise MeshError(f"edge_length must be a positive number of metres, got {edge_length!r}; for "
                        f"example edge_length=0.006 for 6 mm (or leave it out for the default)")
    report = MeshingReport(source=source, method=method, edge_length_m=float(edge_length),
                           reference="voxel volume")
    report.reference_volume_m3 = len(mask_idx) * image.voxel_volume
    if method == "lattice":
        from .tetrahedralize import FoldedMeshError

        # a lattice that folds at one edge length is refused by the gate; a few percent
        # off, the lattice falls differently on the organ: try that before giving up
        tries = [edge_length, 0.97 * edge_length, 1.03 * edge_length, 0.94 * edge_length]
        for k, h in enumerate(tries):
            t = time.perf_counter()
            if preserve_volume:
                mesh, level = _volume_corrected_lattice(image, labs, h, smoothing, None,
                                                        report.reference_volume_m3)
            else:
                from .tetrahedralize import _fit_and_name, _lattice_image

                mesh, level = _fit_and_name(_lattice_image(image, labs, h, smoothing, None),
                                            image, labs, smoothing, None), 0.0
            report.timings_s["tetrahedralize"] = time.perf_counter() - t
            t = time.perf_counter()
            try:
                mesh, info = quality_gate(mesh, source=source)
                break
            except FoldedMeshError as exc:
                if k == len(tries) - 1:
                    raise
                log.warning("%s; meshing again at %.2f mm", exc, tries[k + 1] * 1e3)
        if h != edge_length:
            report.notes.append(f"the lattice folded at {edge_length * 1e3:.2f} mm; meshed at "
                                f"{h * 1e3:.2f} mm instead")
            report.edge_length_m = float(h)
        if level:
            report.notes.append(f"iso-level shifted by {level:+.3f} to preserve the voxel volume")
        report.n_peeled = info["n_peeled"] + info["n_unpinched"]
        report.n_moved = info["n_moved"]
        report.timings_s["quality"] = time.perf_counter() - t
    else:
        from .extract import extract_surface
        from .repair import repair_surface

        t = time.perf_counter()
        surf = extract_surface(image, labs)
        report.timings_s["extract"] = time.perf_counter() - t
        t = time.perf_counter()
        # straight from extraction: no self-intersections to look for
        surf, report.repair = repair_surface(surf, fix_self_intersections=False)
        report.timings_s["repair"] = time.perf_counter() - t
        t = time.perf_counter()
        mesh, info = _tetrahedralize(surf, edge_length=edge_length, method=method)
        report.n_peeled = info["n_peeled"] + info["n_unpinched"]
        report.n_moved = info["n_moved"]
        report.timings_s["tetrahedralize"] = time.perf_counter() - t
        mesh = with_image_regions(mesh, image, labs)
    return _finish(mesh, report, t0)


def _repair(surface: TriSurface, source: str):
    from .repair import repair_surface

    try:
        return repair_surface(surface)
    except MeshError as exc:
        msg = str(exc)
        raise MeshError(msg if msg.startswith(f"{source}:") else f"{source}: {msg}") from exc


def mesh_surface(surface: TriSurface, *, edge_length: float | None = None,
                 method: str = "lattice", repair: bool = True, thickness: float | None = None,
                 source: str = "surface") -> tuple[TetMesh, MeshingReport]:
    """Repair a surface (m), then tetrahedralize what it encloses.

    An open surface by nature (a valve leaflet, a membrane, a wall's mid-surface)
    encloses nothing; give its tissue ``thickness`` and the shell around it is
    meshed instead (:func:`organsim.mesh.shell.shell_label_image`, then the
    lattice mesher).

    Parameters
    ----------
    surface : TriSurface
        Organ surface in metres; it need not be clean (repair merges
        duplicates, fills holes, fixes orientation...).
    edge_length : float, optional
        Target edge length (m); default 1/25 of the largest extent.
    method : {"lattice", "tetwild", "tetgen"}
    repair : bool
        Run :func:`organsim.mesh.repair.repair_surface` first (recommended).
    thickness : float, optional
        Mesh the shell of this thickness (m) around the surface instead of its
        inside (open surfaces); the default edge length is then ``thickness / 2``.
    source : str
        Name for the report and error messages.

    Returns
    -------
    mesh : TetMesh
        One region (id 1, "tissue").
    report : MeshingReport

    Examples
    --------
    >>> import pyvista as pv
    >>> s = TriSurface.from_pyvista(pv.Sphere(radius=0.05))
    >>> mesh, report = mesh_surface(s, edge_length=0.01)
    >>> abs(report.volume_error) < 0.02
    True
    """
    if method not in METHODS:
        raise MeshError(f"unknown meshing method {method!r}; expected one of {', '.join(METHODS)}")
    t0 = time.perf_counter()
    if surface.n_faces == 0:
        raise MeshError(f"{source}: the surface has no triangles; expected a closed organ surface")
    check_plausible_size(surface.points, source=source)
    if thickness is not None:
        from .shell import shell_label_image

        t = time.perf_counter()
        image = shell_label_image(surface, thickness=thickness)
        t_shell = time.perf_counter() - t
        if edge_length is None:
            edge_length = 0.5 * float(thickness)
        mesh, report = mesh_image(image, edge_length=edge_length, method="lattice", source=source)
        report.timings_s = {"shell voxels": t_shell, **report.timings_s}
        report.notes.append(f"meshed as a shell {float(thickness) * 1e3:.3g} mm thick around the"
                            " surface; the reference volume is the shell's voxel volume")
        return mesh, report
    report = MeshingReport(source=source, method=method, edge_length_m=float("nan"),
                           reference="surface volume")
    if repair:
        t = time.perf_counter()
        surface, report.repair = _repair(surface, source)
        report.timings_s["repair"] = time.perf_counter() - t
    if not surface.is_watertight:
        raise MeshError(f"{source}: the surface is not closed after repair (it has open or"
                        " non-manifold edges), so it encloses no volume to mesh; close it in the"
                        " segmentation tool, mesh the label image instead, or mesh it as a shell"
                        " of the tissue's thickness (thickness=..., CLI --thickness MM)")
    vol = surface.signed_volume
    if vol <= 0:
        raise MeshError(f"{source}: the surface encloses no positive volume ({vol:.3g} m^3);"
                        " its normals may point inward: repair it first")
    if edge_length is None:
        edge_length = default_edge_length(float(np.ptp(surface.points, axis=0).max()))
    report.edge_length_m = float(edge_length)
    report.reference_volume_m3 = vol
    t = time.perf_counter()
    mesh, info = _tetrahedralize(surface, edge_length=edge_length, method=method)
    report.n_peeled = info["n_peeled"] + info["n_unpinched"]
    report.n_moved = info["n_moved"]
    report.timings_s["tetrahedralize"] = time.perf_counter() - t
    return _finish(mesh, report, t0)


def mesh_volume(mesh: TetMesh, *, edge_length: float | None = None, method: str = "lattice",
                source: str = "volume mesh") -> tuple[TetMesh, MeshingReport]:
    """Re-mesh a tet mesh from its boundary; regions carried over by nearest tet.

    Parameters
    ----------
    mesh : TetMesh
        A volume mesh (m), possibly of poor quality.
    edge_length : float, optional
        Target edge length (m); default 1/25 of the largest extent.
    method : {"lattice", "tetwild", "tetgen"}
    source : str

    Returns
    -------
    mesh : TetMesh
    report : MeshingReport
        Its reference volume is the input mesh's volume.
    """
    from scipy.spatial import cKDTree

    if mesh.n_tets == 0:
        raise MeshError(f"{source}: the volume mesh holds no tetrahedra")
    check_plausible_size(mesh.points, source=source)
    vols = mesh.volumes
    if np.any(vols < 0):
        mesh = TetMesh(mesh.points, _orient(np.asarray(mesh.points), np.asarray(mesh.tets)),
                       mesh.region_ids, mesh.region_names)
    surf = TriSurface(mesh.points, mesh.boundary_faces)
    used, inv = np.unique(surf.faces, return_inverse=True)
    surf = TriSurface(surf.points[used], inv.reshape(-1, 3))
    new, report = mesh_surface(surf, edge_length=edge_length, method=method, source=source)
    tree = cKDTree(mesh.points[mesh.tets].mean(1))
    _, nearest = tree.query(new.points[new.tets].mean(1))
    rid = mesh.region_ids[nearest]
    names = {k: v for k, v in mesh.region_names.items() if k in set(rid.tolist())}
    new = TetMesh(new.points, new.tets, rid, names)
    report.reference = "input mesh volume"
    report.reference_volume_m3 = mesh.volume
    vol = new.region_volumes()
    report.regions = {name: {"n_tets": int(np.count_nonzero(new.region_ids == r)),
                             "volume_m3": vol[name]} for r, name in sorted(new.region_names.items())}
    return new, report
