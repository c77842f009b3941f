"""Regenerate the shipped organ meshes from organsim's phantoms.

Run from the repository root::

    python meshes/build.py            # writes meshes/{liver,kidney,block}.vtu
    python meshes/build.py --check    # rebuild in memory and compare with the files

Every mesh goes through the same pipeline a patient scan would
(:func:`organsim.mesh.pipeline.mesh_image`, isosurface stuffing), from a
seeded, deterministic phantom. Output: VTU in metres with a ``region`` cell
array and ``region_names`` field data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: name -> (phantom function, phantom kwargs, edge length in m)
RECIPES = {
    "liver": ("liver_phantom", {"seed": 0}, 12e-3),
    "kidney": ("kidney_phantom", {"seed": 0}, 6e-3),
    "block": ("block_phantom", {}, 8e-3),
}


def build(name: str):
    """Mesh one shipped organ; returns (TetMesh, MeshingReport)."""
    from organsim import phantoms
    from organsim.mesh.pipeline import mesh_image

    func, kwargs, edge = RECIPES[name]
    image = getattr(phantoms, func)(**kwargs)
    return mesh_image(image, edge_length=edge, source=f"phantoms.{func}({kwargs})")


def write_vtu(mesh, path: Path) -> None:
    """Write atomically (temp file in the same folder, then rename), binary, compressed."""
    import os
    import tempfile

    grid = mesh.to_pyvista()
    fd, tmp = tempfile.mkstemp(suffix=".vtu", dir=path.parent)
    os.close(fd)
    try:
        grid.save(tmp, binary=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=sorted(RECIPES), help="meshes to build")
    parser.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = parser.parse_args(argv)
    status = 0
    for name in args.names:
        mesh, report = build(name)
        path = HERE / f"{name}.vtu"
        if args.check:
            from organsim.mesh.shipped import load_shipped

            old = load_shipped(name)
            same = (old.tets.shape == mesh.tets.shape and np.array_equal(old.tets, mesh.tets)
                    and np.allclose(old.points, mesh.points, rtol=0, atol=1e-12)
                    and np.array_equal(old.region_ids, mesh.region_ids))
            print(f"{name}: {'identical' if same else 'DIFFERENT'}")
            status |= 0 if same else 1
            continue
        write_vtu(mesh, path)
        print(report)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)\n")
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
