"""``organsim mesh`` and ``organsim info``: meshing and inspecting organ files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import InputFileError, MeshError
from . import HelpFormatter
from ..units import DEFAULT_MESH_UNITS, LENGTH_UNITS, effective_units

__all__ = ["register", "cmd_mesh", "cmd_info", "describe"]

_UNITS_HELP = (f"length unit of surface and volume-mesh files, whose formats carry none"
               f" (one of {', '.join(LENGTH_UNITS)}). Default: {DEFAULT_MESH_UNITS}, as imaging"
               " software exports, except VTU files written by organsim (recognised by their"
               " region_names_json (or older region_names) field), which are in metres. Label images carry their own"
               " spacing and ignore it.")


def register(subparsers) -> None:
    """Add the ``mesh`` and ``info`` subcommands."""
    p = subparsers.add_parser(
        "mesh", help="mesh a label image, surface or volume mesh into a clean tet mesh",
        description="Turn a segmentation label image (NIfTI, NRRD, MHA, DICOM folder, VTI), an"
                    " organ surface (STL, OBJ, PLY, OFF, VTP/VTK, GLB) or a volume mesh (VTU, MSH,"
                    " MEDIT, XDMF) into a quality tetrahedral mesh; prints the repair and quality"
                    " report. The output is written atomically (in metres): nothing is left at"
                    " OUT if meshing fails.",
        formatter_class=HelpFormatter)
    p.add_argument("input", metavar="INPUT", help="label image, surface or volume mesh file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.vtu",
                   help="output volume mesh (.vtu recommended)")
    p.add_argument("--label", type=int, action="append", metavar="L",
                   help="label image only: a label to mesh (repeat for several); each becomes a"
                        " region. Default: every non-zero label")
    p.add_argument("--edge-length", type=float, metavar="MM",
                   help="target edge length in millimetres (default: 1/25 of the object's"
                        " largest extent)")
    p.add_argument("--units", default=None, help=_UNITS_HELP)
    p.add_argument("--method", default="lattice", choices=["lattice", "tetwild", "tetgen"],
                   help="mesher: lattice = isosurface stuffing (built in, BSD); tetwild = fTetWild"
                        " (needs pytetwild, MPL-2.0); tetgen = TetGen (needs tetgen, AGPL-3.0)")
    p.add_argument("--thickness", type=float, metavar="MM",
                   help="surfaces only: mesh the shell of this tissue thickness around the"
                        " surface instead of its inside (for surfaces open by nature: valve"
                        " leaflets, membranes, wall mid-surfaces)")
    p.add_argument("--smoothing", type=float, default=1.0,
                   help="label image + lattice only: Gaussian smoothing of the labels, in voxels")
    p.add_argument("--report-json", metavar="FILE",
                   help="also write the meshing report as JSON to FILE")
    p.add_argument("--recalibrate", action="store_true",
                   help="time the real-time step on this machine again (about 2 s) before saying how large"
                        " a mesh it runs at 60 and 30 Hz; the calibration is otherwise measured once and"
                        " cached with the compiled kernels")
    p.add_argument("--no-realtime-estimate", action="store_true",
                   help="do not say how large a mesh this machine runs in real time")
    p.set_defaults(func=cmd_mesh)

    q = subparsers.add_parser(
        "info", help="counts, bounds, volume, regions, closedness and quality of a file",
        description="Describe a volume mesh, surface or label image: counts, bounds, volume,"
                    " regions, watertight and manifold flags (of the boundary surface for a"
                    " volume mesh), element quality (min/max dihedral angle, radius ratio) and"
                    " inverted elements.",
        formatter_class=HelpFormatter)
    q.add_argument("file", metavar="FILE")
    q.add_argument("--json", action="store_true", help="print JSON instead of text")
    q.add_argument("--units", default=None, help=_UNITS_HELP)
    q.set_defaults(func=cmd_info)


def _read(path: str, units: str):
    from .. import io

    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{path}: no such file or folder; check the path")
    return io.read_any(p, units=effective_units(p, units))


def cmd_mesh(args) -> int:
    """Run ``organsim mesh``."""
    from .. import io
    from ..mesh.labelimage import LabelImage
    from ..mesh.pipeline import mesh_image, mesh_surface, mesh_volume
    from ..mesh.surface import TriSurface
    from ..mesh.tetmesh import TetMesh

    out = Path(args.output)
    if out.exists() and out.is_dir():
        raise InputFileError(f"{out}: the output path is a folder; expected a file name like"
                             " organ.vtu")
    if not out.parent.exists():
        raise InputFileError(f"{out}: the output folder {out.parent} does not exist; create it"
                             " first")
    try:
        from ..io.atomic import full_suffix
        from ..io.volumes import MESH_WRITE_EXTENSIONS
    except ImportError:  # pragma: no cover - the io package always has them
        MESH_WRITE_EXTENSIONS = None
    if MESH_WRITE_EXTENSIONS is not None and full_suffix(out) not in MESH_WRITE_EXTENSIONS:
        raise InputFileError(f"{out}: cannot write a volume mesh as"
                             f" {full_suffix(out) or '(no extension)'!r}; use one of"
                             f" {', '.join(MESH_WRITE_EXTENSIONS)} (.vtu recommended)")
    edge = None
    if args.edge_length is not None:
        if not np.isfinite(args.edge_length) or args.edge_length <= 0:
            raise MeshError(f"--edge-length must be a positive number of millimetres, got"
                            f" {args.edge_length}")
        if args.edge_length < 0.5:
            raise MeshError(f"--edge-length {args.edge_length:g} mm is far smaller than a tet mesh of an"
                            f" organ can be (0.5 mm at least); --edge-length is in millimetres: did you"
                            f" mean --edge-length {args.edge_length * 1e3:g}?")
        edge = args.edge_length * 1e-3
    thickness = None
    if args.thickness is not None:
        if not np.isfinite(args.thickness) or args.thickness <= 0:
            raise MeshError(f"--thickness must be a positive number of millimetres, got"
                            f" {args.thickness}")
        thickness = args.thickness * 1e-3
    obj = _read(args.input, args.units)
    name = Path(args.input).name
    if thickness is not None and not isinstance(obj, TriSurface):
        raise MeshError(f"{name}: --thickness applies to surfaces only; this file is a"
                        f" {'label image' if isinstance(obj, LabelImage) else 'volume mesh'}")
    if isinstance(obj, LabelImage):
        mesh, report = mesh_image(obj, labels=args.label, edge_length=edge, method=args.method,
                                  smoothing=args.smoothing, source=name)
    else:
        if args.label:
            raise MeshError(f"{name}: --label applies to label images only; this file is a"
                            f" {'surface' if isinstance(obj, TriSurface) else 'volume mesh'}")
        if isinstance(obj, TriSurface):
            mesh, report = mesh_surface(obj, edge_length=edge, method=args.method,
                                        thickness=thickness, source=name)
        elif isinstance(obj, TetMesh):
            mesh, report = mesh_volume(obj, edge_length=edge, method=args.method, source=name)
        else:  # pragma: no cover - read_any returns one of the three
            raise InputFileError(f"{name}: unsupported content {type(obj).__name__}")
    io.write_mesh(mesh, out)
    print(report)
    print(f"wrote {out} ({mesh.n_points} points, {mesh.n_tets} tets, metres)")
    estimate = None
    if not getattr(args, "no_realtime_estimate", False):
        from ..fem.calibration import calibrate, format_estimate, realtime_estimate

        estimate = realtime_estimate(mesh.n_tets, getattr(report, "edge_length_m", None),
                                     calibrate(force=getattr(args, "recalibrate", False)))
        print(format_estimate(estimate))
    if args.report_json:
        rep = Path(args.report_json)
        tmp = rep.with_name(rep.name + ".tmp")
        d = report.to_dict()
        if estimate is not None:
            d["realtime_estimate"] = estimate
        tmp.write_text(json.dumps(d, indent=2))
        tmp.replace(rep)
    return 0


def _surface_flags(points, faces) -> dict:
    from ..mesh.surface import TriSurface

    s = TriSurface(points, faces)
    _, counts = s.edge_face_counts if s.n_faces else (None, np.zeros(0, int))
    return {
        "watertight": bool(s.is_watertight),
        "edge_manifold": bool(s.is_edge_manifold),
        "n_boundary_edges": int(np.count_nonzero(counts == 1)),
        "n_nonmanifold_edges": int(np.count_nonzero(counts > 2)),
    }


def _bounds(points) -> dict:
    if len(points) == 0:
        return {"min_m": None, "max_m": None, "size_m": None}
    lo, hi = points.min(0), points.max(0)
    return {"min_m": lo.tolist(), "max_m": hi.tolist(), "size_m": (hi - lo).tolist()}


def describe(obj) -> dict:
    """A JSON-serializable description of a TetMesh, TriSurface or LabelImage."""
    from ..mesh.labelimage import LabelImage
    from ..mesh.surface import TriSurface
    from ..mesh.tetmesh import TetMesh

    if isinstance(obj, TetMesh):
        vols = obj.region_volumes()
        q = obj.quality()
        d = {"kind": "volume mesh", "n_points": obj.n_points, "n_tets": obj.n_tets,
             "n_boundary_faces": int(len(obj.boundary_faces)), "bounds": _bounds(obj.points),
             "volume_m3": obj.volume,
             "regions": {name: {"id": rid, "n_tets": int(np.count_nonzero(obj.region_ids == rid)),
                                "volume_m3": vols[name]}
                         for rid, name in sorted(obj.region_names.items())},
             "boundary": _surface_flags(obj.points, obj.boundary_faces),
             "quality": q, "n_inverted": q["n_inverted"]}
        return d
    if isinstance(obj, TriSurface):
        flags = _surface_flags(obj.points, obj.faces)
        return {"kind": "surface", "n_points": obj.n_points, "n_faces": obj.n_faces,
                "bounds": _bounds(obj.points), "area_m2": obj.area,
                "enclosed_volume_m3": obj.signed_volume if flags["watertight"] else None,
                **flags}
    if isinstance(obj, LabelImage):
        labels = {}
        for L in obj.present_labels():
            n = int(np.count_nonzero(obj.labels == L))
            labels[obj.label_names.get(L, f"label_{L}")] = {"id": L, "n_voxels": n,
                                                           "volume_m3": n * obj.voxel_volume}
        idx = np.argwhere(obj.labels != 0)
        return {"kind": "label image", "shape": list(obj.shape),
                "spacing_m": obj.spacing.tolist(), "origin_m": obj.origin.tolist(),
                "direction": obj.direction.tolist(), "labels": labels,
                "labelled_bounds": _bounds(obj.index_to_world(idx)) if len(idx) else None}
    raise InputFileError(f"cannot describe a {type(obj).__name__}")


def _fmt_bounds(b) -> str:
    if not b or b["min_m"] is None:
        return "empty"
    lo = ", ".join(f"{v * 1e3:.1f}" for v in b["min_m"])
    hi = ", ".join(f"{v * 1e3:.1f}" for v in b["max_m"])
    sz = " x ".join(f"{v * 1e3:.1f}" for v in b["size_m"])
    return f"({lo}) .. ({hi}) mm, size {sz} mm"


def _text(name: str, d: dict) -> str:
    lines = [f"{name}: {d['kind']}"]
    if d["kind"] == "volume mesh":
        q, b = d["quality"], d["boundary"]
        lines += [f"  counts      {d['n_points']} points, {d['n_tets']} tets,"
                  f" {d['n_boundary_faces']} boundary faces",
                  f"  bounds      {_fmt_bounds(d['bounds'])}",
                  f"  volume      {d['volume_m3'] * 1e6:.6g} mL"]
        for name_, r in d["regions"].items():
            lines.append(f"  region      {r['id']}:{name_}  {r['n_tets']} tets,"
                         f" {r['volume_m3'] * 1e6:.4g} mL")
        lines += [f"  boundary    watertight {'yes' if b['watertight'] else 'no'},"
                  f" edge-manifold {'yes' if b['edge_manifold'] else 'no'}"
                  f" ({b['n_boundary_edges']} open, {b['n_nonmanifold_edges']} non-manifold edges)",
                  f"  quality     dihedral {q['min_dihedral_deg']:.2f}..{q['max_dihedral_deg']:.2f} deg,"
                  f" radius ratio min {q['min_radius_ratio']:.3f} mean {q['mean_radius_ratio']:.3f},"
                  f" mean edge {q['mean_edge_length_m'] * 1e3:.3g} mm",
                  f"  inverted    {d['n_inverted']}"]
    elif d["kind"] == "surface":
        vol = d["enclosed_volume_m3"]
        lines += [f"  counts      {d['n_points']} points, {d['n_faces']} triangles",
                  f"  bounds      {_fmt_bounds(d['bounds'])}",
                  f"  area        {d['area_m2'] * 1e4:.5g} cm^2",
                  "  volume      " + (f"{vol * 1e6:.6g} mL" if vol is not None else "n/a (not closed)"),
                  f"  closed      watertight {'yes' if d['watertight'] else 'no'},"
                  f" edge-manifold {'yes' if d['edge_manifold'] else 'no'}"
                  f" ({d['n_boundary_edges']} open, {d['n_nonmanifold_edges']} non-manifold edges)"]
    else:
        sp = " x ".join(f"{v * 1e3:.4g}" for v in d["spacing_m"])
        lines += [f"  grid        {' x '.join(map(str, d['shape']))} voxels of {sp} mm",
                  f"  origin      ({', '.join(f'{v * 1e3:.2f}' for v in d['origin_m'])}) mm (LPS)",
                  f"  labelled    {_fmt_bounds(d['labelled_bounds'])}"]
        for name_, r in d["labels"].items():
            lines.append(f"  label       {r['id']}:{name_}  {r['n_voxels']} voxels,"
                         f" {r['volume_m3'] * 1e6:.4g} mL")
    return "\n".join(lines)


def cmd_info(args) -> int:
    """Run ``organsim info``."""
    obj = _read(args.file, args.units)
    d = describe(obj)
    if args.json:
        from ..mesh.pipeline import _jsonable

        json.dump(_jsonable({"file": str(args.file), **d}), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_text(Path(args.file).name, d))
    return 0
