"""Prepare a patient's organ for simulation, starting from a segmentation label map.

A hospital's segmentation (NIfTI, NRRD, MetaImage or DICOM) becomes a quality
tetrahedral mesh with one region per label, at the patient's world position,
ready for ``organsim run`` or the viewer. Here the "patient" is a synthetic
liver segmentation from ``organsim.phantoms`` (seed 3), saved as NIfTI first so
the script starts where a user with a real file starts: ``read_image``.

    python examples/01_prepare_patient_organ.py            # 1.6 mm voxels, 10 mm edges
    python examples/01_prepare_patient_organ.py --quick    # coarse, a few seconds
    python examples/01_prepare_patient_organ.py --input my_liver_seg.nii.gz -o out/

Writes ``OUT/organ.vtu`` (metres, region ids and names), ``OUT/organ.png`` (a
rendered preview) and prints the meshing report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", help="a label map (NIfTI/NRRD/MHA/DICOM folder/VTI); default: a synthetic liver")
    ap.add_argument("-o", "--outdir", default="prepared_organ", help="output folder")
    ap.add_argument("--labels", default=None,
                    help="label names, e.g. '1:parenchyma,2:tumour' (NIfTI files carry none)")
    ap.add_argument("--edge-length-mm", type=float, default=None, help="target tet edge length (mm)")
    ap.add_argument("--quick", action="store_true", help="coarse image and mesh (for tests)")
    args = ap.parse_args(argv)

    from organsim.io import read_image, write_image, write_mesh
    from organsim.mesh.pipeline import mesh_image

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    if args.input is None:
        from organsim.phantoms import liver_phantom

        shape, spacing = ((64, 64, 64), 3.2) if args.quick else ((128, 128, 128), 1.6)
        seg = out / "patient_segmentation.nii.gz"
        write_image(liver_phantom(shape=shape, spacing_mm=spacing, seed=3), seg)
        print(f"synthetic patient segmentation: {seg}")
        names = {1: "parenchyma", 2: "tumour", 3: "vessel", 4: "ligament"}
    else:
        seg = Path(args.input)
        names = None
    if args.labels:
        names = {int(k): v for k, v in (item.split(":", 1) for item in args.labels.split(","))}

    image = read_image(seg, label_names=names)  # honours spacing, origin and direction: world LPS, metres
    print(f"read {seg.name}: {image.labels.shape} voxels, labels {image.label_names}")
    edge = args.edge_length_mm or (16.0 if args.quick else 10.0)
    t0 = time.perf_counter()
    mesh, report = mesh_image(image, edge_length=edge * 1e-3, source=seg.name)
    print(f"meshed in {time.perf_counter() - t0:.1f} s: {mesh}")
    q = report.quality
    print(f"  volume {report.volume_m3 * 1e6:.1f} mL (reference {report.reference_volume_m3 * 1e6:.1f} mL, "
          f"{report.reference})")
    print(f"  dihedral angles {q['min_dihedral_deg']:.1f} to {q['max_dihedral_deg']:.1f} deg, "
          f"{q['n_inverted']} inverted")
    for name, r in report.regions.items():
        print(f"  region {name}: {r['n_tets']} tets, {r['volume_m3'] * 1e6:.1f} mL")
    vtu = out / "organ.vtu"
    write_mesh(mesh, vtu)
    print(f"wrote {vtu} (open it in ParaView, or: organsim view {vtu})")

    from organsim.viewer import Viewer

    v = Viewer(mesh, off_screen=True, window_size=(800, 600))
    v.scene.camera_preset("anterior")
    v.screenshot(out / "organ.png")
    v.close()
    print(f"wrote {out / 'organ.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
