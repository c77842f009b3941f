"""Mutation fuzz of every organsim reader: corrupt files must give a value or a typed error.

Valid seed files of every format organsim reads are written to a temporary
folder from a small piece of the shipped ``block`` mesh (surfaces and volume
meshes, in mm) and a small ``block_phantom`` label image. Each case takes
one seed and mutates it: bit flips, truncation, inserted random bytes,
zeroed runs, a deleted run, tampered numbers (ASCII digits anywhere in text
formats, in the header of binary ones) and tampered 32-bit header fields;
gzip formats are also mutated inside the compressed stream. The mutated file
is read with the public reader (``read_surface``, ``read_mesh``,
``read_image``, ``read_any``, ``read_series``) in its own child process, so
a crash is seen as what it is. Outcomes, per format:

* ``ok``: a value came back; ``typed``: an :class:`~organsim.errors.OrganSimError`;
* ``untyped``: any other exception escaped the public reader (a bug);
* ``crash``: the child died on a signal (segfault, abort) or without a word;
* ``hang``: it ran past the time limit and was killed.

Usage::

    python -m benchmarks fuzz-readers             # 8400 cases (200 per seed file), recorded in results/
    python -m benchmarks fuzz-readers --n 20000   # more
    python -m benchmarks.bench_fuzz_readers --n 500 --keep /tmp/bad   # keep bad inputs

Cases are deterministic for a given ``seed`` (case ``i`` of seed file ``s``
always gets the same mutation), so a failure can be replayed with
``--only s --n ...``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ID = "fuzz-readers"
DEFAULT_N = 8400
QUICK_N = 300
OUTCOMES = ("ok", "typed", "untyped", "crash", "hang")


@dataclass
class Seed:
    """One valid file (plus the files it needs beside it) and how to read it."""

    name: str          # e.g. "surface.stl"
    main: str          # the file that is mutated, relative to the seed's folder
    reader: str        # key of READERS
    target: str = ""   # what is given to the reader (default: main)
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    text: bool = False  # a text format: numbers may be tampered anywhere

    @property
    def fmt(self) -> str:
        return self.name


# ======================================================================= seeds
def make_seeds(folder: Path) -> list[Seed]:
    """Write valid seed files of every format into ``folder``; return their descriptions."""
    import meshio
    import numpy as np
    import pyvista as pv
    import SimpleITK as sitk

    import organsim.io as oio
    from organsim.mesh.shipped import load_shipped
    from organsim.mesh.surface import TriSurface
    from organsim.phantoms import block_phantom

    folder.mkdir(parents=True, exist_ok=True)
    block = load_shipped("block")
    centre = block.points.mean(axis=0)
    tet_centres = block.points[block.tets].mean(axis=1)
    near = np.argsort(np.linalg.norm(tet_centres - centre, axis=1))[:48]
    mask = np.zeros(block.n_tets, dtype=bool)
    mask[near] = True
    mesh, _ = block.submesh(mask)
    surf = TriSurface(mesh.points, mesh.boundary_faces)
    pts_mm, faces = surf.points * 1e3, surf.faces
    image = block_phantom(size_mm=(16.0, 12.0, 8.0), spacing_mm=2.0, margin_voxels=1)

    out: dict[str, tuple[str, bool]] = {}  # file name -> (reader, text)

    def put(name: str, reader: str, text: bool = False) -> None:
        out[name] = (reader, text)

    # ------------------------------------------------------------ surfaces
    for ext in (".stl", ".obj", ".ply", ".off", ".vtp", ".vtk", ".glb"):
        oio.write_surface(surf, folder / f"surface{ext}", units="mm")
        put(f"surface{ext}", "surface", ext in (".obj", ".off"))
    with open(folder / "surface_ascii.stl", "w", encoding="ascii") as fh:
        fh.write("solid organsim\n")
        for tri in pts_mm[faces]:
            fh.write(" facet normal 0 0 0\n  outer loop\n")
            fh.writelines(f"   vertex {v[0]:.9g} {v[1]:.9g} {v[2]:.9g}\n" for v in tri)
            fh.write("  endloop\n endfacet\n")
        fh.write("endsolid organsim\n")
    put("surface_ascii.stl", "surface", True)
    meshio.write(folder / "surface_ascii.ply", meshio.Mesh(pts_mm, [("triangle", faces)]),
                 file_format="ply", binary=False)
    put("surface_ascii.ply", "surface", True)
    poly = pv.PolyData.from_regular_faces(pts_mm, faces)
    poly.cell_data["face_label"] = np.arange(len(faces), dtype=np.int32) % 3
    _legacy(poly, folder / "surface_ascii.vtk", binary=False)
    put("surface_ascii.vtk", "any", True)
    _legacy(poly, folder / "surface_v42.vtk", binary=True, version=42)
    put("surface_v42.vtk", "surface")
    _legacy(poly, folder / "surface_v42_ascii.vtk", binary=False, version=42)
    put("surface_v42_ascii.vtk", "surface", True)
    import trimesh

    tm = trimesh.Trimesh(pts_mm, faces, process=False)
    blob = next(iter(tm.export(file_type="gltf", embed_buffers=True).values()))
    (folder / "surface.gltf").write_bytes(blob if isinstance(blob, bytes) else blob.encode())
    put("surface.gltf", "surface", True)
    gii = _gifti(pts_mm * np.array([-1.0, -1.0, 1.0]), faces, encoding="Base64Binary")
    (folder / "surface.gii").write_bytes(gii)
    put("surface.gii", "surface", True)
    (folder / "surface_ascii.gii").write_bytes(_gifti(pts_mm, faces, encoding="ASCII"))
    put("surface_ascii.gii", "surface", True)
    (folder / "surface.gii.gz").write_bytes(gzip.compress(_gifti(pts_mm, faces,
                                                                 encoding="GZipBase64Binary")))
    put("surface.gii.gz", "surface")
    with open(folder / "surface.trian", "w", encoding="ascii") as fh:
        fh.write(f"{len(pts_mm)}\n")
        fh.writelines(f"{p[0]:.9g} {p[1]:.9g} {p[2]:.9g}\n" for p in pts_mm)
        fh.write(f"{len(faces)}\n")
        fh.writelines(f"{f[0]} {f[1]} {f[2]} -1 -1 -1\n" for f in faces)
    put("surface.trian", "surface", True)

    # ------------------------------------------------------------ meshes
    for ext in (".vtu", ".vtk", ".msh", ".mesh", ".xdmf"):
        oio.write_mesh(mesh, folder / f"mesh{ext}", units="mm")
        put(f"mesh{ext}", "mesh", ext in (".msh", ".mesh", ".xdmf"))
    oio.write_mesh(mesh, folder / "mesh_v22.msh", units="mm", msh_version="2.2")
    put("mesh_v22.msh", "mesh", True)
    tets = np.asarray(mesh.tets)
    rid = np.asarray(mesh.region_ids, dtype=np.int32)
    meshio.write(folder / "mesh_v22_binary.msh",
                 meshio.Mesh(mesh.points * 1e3, [("tetra", tets)],
                             cell_data={"gmsh:physical": [rid], "gmsh:geometrical": [rid]}),
                 file_format="gmsh22", binary=True)
    put("mesh_v22_binary.msh", "mesh")
    with open(folder / "mesh_v1.msh", "w", encoding="ascii") as fh:
        fh.write(f"$NOD\n{mesh.n_points}\n")
        fh.writelines(f"{i + 1} {p[0]:.9g} {p[1]:.9g} {p[2]:.9g}\n"
                      for i, p in enumerate(mesh.points * 1e3))
        fh.write(f"$ENDNOD\n$ELM\n{len(tets)}\n")
        fh.writelines(f"{i + 1} 4 {r} {r} 4 {t[0] + 1} {t[1] + 1} {t[2] + 1} {t[3] + 1}\n"
                      for i, (t, r) in enumerate(zip(tets, rid)))
        fh.write("$ENDELM\n")
    put("mesh_v1.msh", "mesh", True)
    grid = mesh.to_pyvista()
    grid.points = mesh.points * 1e3
    grid.field_data.clear()
    _legacy(grid, folder / "mesh_ascii.vtk", binary=False)
    put("mesh_ascii.vtk", "any", True)
    _legacy(grid, folder / "mesh_v42.vtk", binary=True, version=42)
    put("mesh_v42.vtk", "mesh")
    _legacy(grid, folder / "mesh_v42_ascii.vtk", binary=False, version=42)
    put("mesh_v42_ascii.vtk", "mesh", True)

    # ------------------------------------------------------------ images
    for ext in (".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".vti"):
        oio.write_image(image, folder / f"image{ext}")
        put(f"image{ext}", "image")
    arr = np.ascontiguousarray(image.labels.transpose(2, 1, 0).astype(np.uint8))
    simg = sitk.GetImageFromArray(arr)
    simg.SetSpacing(tuple(float(s) * 1e3 for s in image.spacing))
    simg.SetOrigin(tuple(float(o) * 1e3 for o in image.origin))
    sitk.WriteImage(simg, str(folder / "volume.mhd"))
    put("volume.mhd", "image", True)
    sitk.WriteImage(simg, str(folder / "image_ascii.nrrd"))
    _nrrd_ascii(folder / "image_ascii.nrrd", arr, simg)
    put("image_ascii.nrrd", "image", True)
    sitk.WriteImage(simg, str(folder / "detached.nhdr"))
    put("detached.nhdr", "image", True)
    vimg = pv.ImageData(dimensions=image.shape, spacing=tuple(image.spacing * 1e3),
                        origin=tuple(image.origin * 1e3))
    vimg.point_data["labels"] = image.labels.ravel(order="F").astype(np.int16)
    _legacy(vimg, folder / "image.vtk", binary=True)
    put("image.vtk", "image")
    _legacy(vimg, folder / "image_ascii.vtk", binary=False)
    put("image_ascii.vtk", "any", True)
    _dicom_series(folder / "dicom", arr.transpose(2, 1, 0), simg)
    put("dicom/IM_1.dcm", "image")

    # ------------------------------------------------------------ series
    with oio.SeriesWriter(folder / "series" / "run.pvd") as series:
        for step in range(2):
            series.write(0.01 * step, mesh, points=mesh.points + 1e-4 * step)
    put("series/run.pvd", "series", True)

    # ------------------------------------------------------------ describe
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file()}
    seeds = []
    for name, (reader, text) in out.items():
        main = name
        if name.startswith("dicom/"):
            deps = {k: v for k, v in files.items() if k.startswith("dicom/")}
        elif name.startswith("series/"):
            deps = {k: v for k, v in files.items() if k.startswith("series/")}
        else:
            stem = name.split(".", 1)[0]
            detached = name.endswith((".mhd", ".nhdr"))  # + their data file
            deps = {k: v for k, v in files.items()
                    if k == name or (detached and k.split(".", 1)[0] == stem)}
        seeds.append(Seed(name=name, main=main, reader=reader, files=deps, text=text))
    # a frame of the series is mutated too (the .pvd stays valid)
    frame = next(k for k in files if k.startswith("series/") and k.endswith(".vtu"))
    seeds.append(Seed(name="series/frame.vtu", main=frame, reader="series",
                      target="series/run.pvd",
                      files={k: v for k, v in files.items() if k.startswith("series/")}))
    return seeds


def _legacy(dataset, path: Path, *, binary: bool, version: int | None = None) -> None:
    """Write a legacy .vtk file (optionally in the classic 4.2 layout)."""
    from vtkmodules.vtkIOLegacy import vtkDataSetWriter

    w = vtkDataSetWriter()
    w.SetInputData(dataset)
    w.SetFileName(str(path))
    if binary:
        w.SetFileTypeToBinary()
    else:
        w.SetFileTypeToASCII()
    if version is not None:
        w.SetFileVersion(version)
    w.Write()


def _gifti(points, faces, *, encoding: str) -> bytes:
    import base64

    import numpy as np

    def data_array(intent: str, dtype: str, arr) -> str:
        if encoding == "ASCII":
            body = " ".join(str(v) for v in arr.ravel())
        else:
            raw = np.ascontiguousarray(arr).tobytes()
            if encoding == "GZipBase64Binary":
                raw = zlib.compress(raw)
            body = base64.b64encode(raw).decode()
        return (f'<DataArray Intent="{intent}" DataType="{dtype}" ArrayIndexingOrder='
                f'"RowMajorOrder" Dimensionality="2" Dim0="{arr.shape[0]}" Dim1="3" '
                f'Encoding="{encoding}" Endian="LittleEndian" ExternalFileName="" '
                f'ExternalFileOffset=""><Data>{body}</Data></DataArray>\n')

    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<GIFTI Version="1.0" NumberOfDataArrays="2">\n'
           + data_array("NIFTI_INTENT_POINTSET", "NIFTI_TYPE_FLOAT32",
                        np.asarray(points, dtype="<f4"))
           + data_array("NIFTI_INTENT_TRIANGLE", "NIFTI_TYPE_INT32",
                        np.asarray(faces, dtype="<i4"))
           + "</GIFTI>\n")
    return xml.encode()


def _nrrd_ascii(path: Path, arr, simg) -> None:
    """Rewrite a NRRD with ``encoding: ascii`` data (a text format for the fuzz)."""
    sp, org = simg.GetSpacing(), simg.GetOrigin()
    k, j, i = arr.shape
    head = ("NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n"
            f"sizes: {i} {j} {k}\nspace directions: ({sp[0]},0,0) (0,{sp[1]},0) (0,0,{sp[2]})\n"
            "kinds: domain domain domain\nencoding: ascii\n"
            f"space origin: ({org[0]},{org[1]},{org[2]})\n\n")
    path.write_text(head + " ".join(str(int(v)) for v in arr.ravel()) + "\n")


def _dicom_series(folder: Path, lab, simg) -> None:
    import numpy as np
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(np.ascontiguousarray(lab.transpose(2, 1, 0).astype(np.uint16)))
    img.SetSpacing(simg.GetSpacing())
    img.SetOrigin(simg.GetOrigin())
    uid = "1.2.826.0.1.3680043.2.1125.77"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(lab.shape[2]):
        sl = img[:, :, z]
        pos = img.TransformIndexToPhysicalPoint((0, 0, z))
        for tag, value in [("0008|0060", "CT"), ("0020|000d", uid + ".1"), ("0020|000e", uid),
                           ("0020|0032", "\\".join(f"{v:.6f}" for v in pos)),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(z + 1)),
                           ("0008|0018", f"{uid}.{z + 100}")]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM_{z + 1}.dcm"))
        writer.Execute(sl)


# =================================================================== mutations
_INTERESTING = (0, 1, 2, 3, 7, 8, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1,
                10 ** 6, 10 ** 9)


def mutate(data: bytes, rng: random.Random, *, text: bool) -> tuple[str, bytes]:
    """One random mutation of ``data``: (its name, the mutated bytes)."""
    kinds = ["bitflip", "bitflip", "truncate", "insert", "zero", "delete", "digits", "digits",
             "int32"]
    if data[:2] == b"\x1f\x8b":
        kinds += ["inner", "inner", "inner"]
    kind = rng.choice(kinds)
    b = bytearray(data)
    n = len(b)
    if n == 0:
        return "empty", b""
    if kind == "bitflip":
        for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
            j = rng.randrange(n)
            b[j] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        cut = rng.randrange(n) if rng.random() < 0.6 else rng.randrange(max(1, n - 64), n)
        b = b[:cut]
    elif kind == "insert":
        j = rng.randrange(n + 1)
        b[j:j] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 16, 64))))
    elif kind == "zero":
        j = rng.randrange(n)
        length = rng.choice((1, 4, 8, 64, 256))
        b[j:j + length] = bytes(len(b[j:j + length]))
    elif kind == "delete":
        j = rng.randrange(n)
        del b[j:j + rng.choice((1, 2, 8, 64))]
    elif kind == "digits":
        b = bytearray(_tamper_number(bytes(b), rng, text=text))
    elif kind == "int32":
        limit = min(n - 4, 1024)
        if limit <= 0:
            return mutate(data, rng, text=text)
        j = rng.randrange(limit + 1)
        order = rng.choice(("little", "big"))
        old = int.from_bytes(b[j:j + 4], order)
        new = rng.choice(_INTERESTING + (old + 1, max(old - 1, 0), old * 2, old * 16))
        b[j:j + 4] = (new % 2 ** 32).to_bytes(4, order)
    elif kind == "inner":
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return mutate(data, rng, text=text)
        name, mutated = mutate(inner, rng, text=text)
        return f"inner-{name}", gzip.compress(mutated, mtime=0)
    return kind, bytes(b)


def _tamper_number(data: bytes, rng: random.Random, *, text: bool) -> bytes:
    """Change one run of ASCII digits (anywhere in a text file, in the first 1 KiB otherwise)."""
    import re

    region = data if text else data[:1024]
    runs = [m.span() for m in re.finditer(rb"\d+", region)]
    if not runs:
        return data[:-1]
    s, e = rng.choice(runs)
    old = data[s:e]
    choice = rng.randrange(7)
    if choice == 0:    # one digit changed
        k = rng.randrange(len(old))
        new = old[:k] + str(rng.randrange(10)).encode() + old[k + 1:]
    elif choice == 1:
        new = b"0"
    elif choice == 2:
        new = old + b"0"                       # ten times more
    elif choice == 3:
        new = str(int(old) + rng.choice((1, -1))).encode() if old.isdigit() else old
    elif choice == 4:
        new = b"-" + old
    elif choice == 5:
        new = rng.choice((b"2147483647", b"4294967296", b"99999999999", b"9223372036854775807"))
    else:
        new = old[: max(1, len(old) // 2)]     # digits dropped
    return data[:s] + new + data[e:]


# =================================================================== running
READERS = {
    "surface": lambda p: __import__("organsim.io", fromlist=["x"]).read_surface(p, units="mm"),
    "mesh": lambda p: __import__("organsim.io", fromlist=["x"]).read_mesh(p, units="mm"),
    "image": lambda p: __import__("organsim.io", fromlist=["x"]).read_image(p),
    "any": lambda p: __import__("organsim.io", fromlist=["x"]).read_any(p, units="mm"),
    "series": lambda p: __import__("organsim.io", fromlist=["x"]).read_series(p),
}


def _preload() -> None:
    """Import everything the readers use, once, so that each forked case starts warm."""
    import logging

    import meshio.gmsh
    import meshio.medit
    import meshio.ply
    import meshio.xdmf  # noqa: F401
    import pyvista  # noqa: F401
    import SimpleITK  # noqa: F401
    import trimesh  # noqa: F401
    from vtkmodules import vtkFiltersCore, vtkFiltersGeometry, vtkIOXML  # noqa: F401

    import organsim.io  # noqa: F401

    logging.getLogger("organsim").setLevel(logging.CRITICAL)


def _child_main(path: str, reader: str, wfd: int) -> None:
    """In the child: read, report the outcome as one JSON line, exit without cleanup."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        from organsim.errors import OrganSimError

        try:
            READERS[reader](path)
            msg = {"outcome": "ok"}
        except OrganSimError as exc:
            msg = {"outcome": "typed", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        except BaseException as exc:  # noqa: BLE001 - every escape is what we look for
            import traceback

            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            msg = {"outcome": "untyped", "detail": f"{type(exc).__name__} at {where}: {exc}"[:300]}
        os.write(wfd, (json.dumps(msg) + "\n").encode())
    finally:
        os._exit(0)


def run_case(path: Path, reader: str, *, timeout: float) -> dict:
    """Read ``path`` with ``reader`` in an isolated child; return {"outcome", "detail"}."""
    if not hasattr(os, "fork"):
        return _run_case_subprocess(path, reader, timeout=timeout)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        _child_main(str(path), reader, wfd)
    os.close(wfd)
    chunks = []
    deadline = time.monotonic() + timeout
    hung = False
    with os.fdopen(rfd, "rb") as rf:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                hung = True
                break
            ready, _, _ = select.select([rf], [], [], left)
            if not ready:
                continue
            chunk = os.read(rf.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    if hung:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if hung:
        return {"outcome": "hang", "detail": f"killed after {timeout:g} s"}
    text = b"".join(chunks).decode(errors="replace").strip()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"outcome": "crash", "detail": f"signal {signal.Signals(sig).name}"}
    if not text:
        return {"outcome": "crash", "detail": f"exit status {os.WEXITSTATUS(status)}, no report"}
    return json.loads(text.splitlines()[-1])


_CHILD_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from benchmarks.bench_fuzz_readers import READERS
from organsim.errors import OrganSimError
try:
    READERS[sys.argv[2]](sys.argv[1]); msg = {{"outcome": "ok"}}
except OrganSimError as exc:
    msg = {{"outcome": "typed", "detail": str(exc)[:300]}}
except BaseException as exc:
    msg = {{"outcome": "untyped", "detail": (type(exc).__name__ + ": " + str(exc))[:300]}}
sys.__stdout__.write("\\nFUZZ " + json.dumps(msg) + "\\n")
"""


def _run_case_subprocess(path: Path, reader: str, *, timeout: float) -> dict:
    """Where there is no fork (Windows): one interpreter per case (slow, same answers)."""
    import subprocess

    script = _CHILD_SCRIPT.format(root=str(Path(__file__).resolve().parents[1]))
    try:
        proc = subprocess.run([sys.executable, "-c", script, str(path), reader],
                              check=False, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"outcome": "hang", "detail": f"killed after {timeout:g} s"}
    lines = [ln for ln in proc.stdout.decode(errors="replace").splitlines()
             if ln.startswith("FUZZ ")]
    if proc.returncode != 0 or not lines:
        return {"outcome": "crash", "detail": f"exit status {proc.returncode}"}
    return json.loads(lines[-1][5:])


def _write_seeds_isolated(folder: Path) -> list[Seed]:
    """Write the seeds in a child process, so the parent never starts ITK/VTK threads
    (a process that forks for every case should not hold thread pools)."""
    manifest = folder / "manifest.json"
    if hasattr(os, "fork"):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                seeds = make_seeds(folder / "seeds")
                manifest.write_text(json.dumps([_seed_json(s) for s in seeds]))
                code = 0
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if status != 0 or not manifest.exists():
            raise RuntimeError("writing the fuzz seed files failed (see the traceback above)")
        raw = json.loads(manifest.read_text())
        root = folder / "seeds"
        return [Seed(name=r["name"], main=r["main"], reader=r["reader"], target=r["target"],
                     text=r["text"], files={k: (root / k).read_bytes() for k in r["files"]})
                for r in raw]
    return make_seeds(folder / "seeds")


def _seed_json(s: Seed) -> dict:
    return {"name": s.name, "main": s.main, "reader": s.reader, "target": s.target,
            "text": s.text, "files": sorted(s.files)}


def fuzz(n: int = DEFAULT_N, *, seed: int = 0, timeout: float = 20.0, only: str | None = None,
         keep: Path | None = None, progress: bool = False) -> dict:
    """Run ``n`` mutated cases spread evenly over the seed files.

    Returns
    -------
    dict
        ``per_format``: {seed name: {outcome: count}}, ``totals``, ``seeds_ok``
        (every unmutated seed reads), ``problems`` (untyped/crash/hang cases,
        at most 200: seed, case index, mutation, detail), ``cases``, ``seconds``.
    """
    _preload()
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="organsim-fuzz-"))
    try:
        seeds = _write_seeds_isolated(work)
        if only:
            seeds = [s for s in seeds if only in s.name]
            if not seeds:
                raise SystemExit(f"no seed file matches {only!r}")
        per: dict[str, Counter] = {s.name: Counter() for s in seeds}
        problems: list[dict] = []
        seeds_ok = {}
        dirs = {}
        for k, s in enumerate(seeds):
            d = work / f"case{k}"
            for rel, blob in s.files.items():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                (d / rel).write_bytes(blob)
            dirs[s.name] = d
            res = run_case(d / (s.target or s.main), s.reader, timeout=timeout)
            seeds_ok[s.name] = res["outcome"] == "ok" or res.get("detail", "")
        for i in range(n):
            s = seeds[i % len(seeds)]
            case = i // len(seeds)
            rng = random.Random(f"{seed}:{s.name}:{case}")
            original = s.files[s.main]
            kind, blob = mutate(original, rng, text=s.text)
            d = dirs[s.name]
            main = d / s.main
            main.write_bytes(blob)
            try:
                res = run_case(d / (s.target or s.main), s.reader, timeout=timeout)
            finally:
                main.write_bytes(original)
            per[s.name][res["outcome"]] += 1
            if res["outcome"] not in ("ok", "typed"):
                if len(problems) < 200:
                    problems.append({"seed": s.name, "case": case, "mutation": kind,
                                     "outcome": res["outcome"], "detail": res.get("detail", "")})
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    safe = s.name.replace("/", "_")
                    (keep / f"{res['outcome']}_{case}_{safe}").write_bytes(blob)
            if progress and (i + 1) % 500 == 0:
                bad = sum(c[o] for c in per.values() for o in ("untyped", "crash", "hang"))
                print(f"  {i + 1}/{n} cases, {bad} problems, {time.perf_counter() - t0:.0f} s",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    totals = Counter()
    for c in per.values():
        totals.update(c)
    return {"per_format": {k: {o: v.get(o, 0) for o in OUTCOMES} for k, v in per.items()},
            "totals": {o: totals.get(o, 0) for o in OUTCOMES}, "seeds_ok": seeds_ok,
            "problems": problems, "cases": n, "seconds": time.perf_counter() - t0}


def run(quick: bool = False, n: int | None = None) -> dict:
    """Benchmark entry point: fuzz every reader and report counts per format."""
    n = n if n is not None else (QUICK_N if quick else DEFAULT_N)
    res = fuzz(n, progress=True)
    rows = [{"format": k, **v} for k, v in res["per_format"].items()]
    bad_seeds = [k for k, v in res["seeds_ok"].items() if v is not True]
    return {"rows": rows, "cases": res["cases"], "totals": res["totals"],
            "seconds": round(res["seconds"], 1), "seeds_not_ok": bad_seeds,
            "problems": res["problems"][:50]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fuzz_readers",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="number of cases")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the mutations")
    parser.add_argument("--only", help="only seed files whose name contains this")
    parser.add_argument("--keep", type=Path, help="folder to keep the inputs of bad cases in")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    args = parser.parse_args(argv)
    res = fuzz(args.n, seed=args.seed, only=args.only, keep=args.keep, timeout=args.timeout,
               progress=True)
    for name, counts in res["per_format"].items():
        print(f"{name:28s} " + "  ".join(f"{o} {counts[o]:4d}" for o in OUTCOMES))
    print("totals:", res["totals"], f"in {res['seconds']:.0f} s")
    for k, v in res["seeds_ok"].items():
        if v is not True:
            print(f"seed {k} does not read: {v}")
    for p in res["problems"][:40]:
        print(f"{p['outcome']:8s} {p['seed']} case {p['case']} ({p['mutation']}): {p['detail']}")
    return 1 if any(res["totals"][o] for o in ("untyped", "crash", "hang")) else 0


if __name__ == "__main__":
    sys.exit(main())
