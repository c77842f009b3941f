"""Tumour resection with a safety margin, for liver resection planning.

The shipped liver carries a tumour region. The tumour is removed with a
margin (10 mm by default) by a cut that follows the margin surface (the
iso-surface at that distance from the tumour, split exactly through the tets,
no tissue lost in the split). The script prints the removed and remaining
volume, the remaining fraction of the organ and the margin actually achieved,
then lets the remaining liver settle under gravity, hanging from its ligament.

    python examples/04_tumour_resection.py                 # 10 mm margin
    python examples/04_tumour_resection.py --margin-mm 15
    python examples/04_tumour_resection.py --quick         # short run (tests)

Writes ``OUT/resection.pvd`` (frame 0: the liver before; then the remaining
organ settling; the ``resection_face`` cell array marks tets on the resection
surface) and ``OUT/specimen.vtu`` (the removed specimen).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--outdir", default="tumour_resection", help="output folder")
    ap.add_argument("--margin-mm", type=float, default=10.0, help="safety margin around the tumour (mm)")
    ap.add_argument("--quick", action="store_true", help="few frames (for tests)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from organsim.fem import selection
    from organsim.fem.body import Body
    from organsim.fem.simulation import Simulation
    from organsim.fem.tissues import tissue
    from organsim.io import write_mesh
    from organsim.io.series import SeriesWriter
    from organsim.mesh.shipped import load_shipped
    from organsim.surgery.cutting import face_keys, validate_mesh
    from organsim.surgery.resection import resect

    liver = load_shipped("liver")
    res = resect(liver, "tumour", margin_m=args.margin_mm * 1e-3)
    s = res.summary()
    print(f"tumour resection with a {args.margin_mm:.1f} mm margin")
    print(f"  removed volume     {s['removed_cm3']:8.2f} cm^3")
    print(f"  remaining volume   {s['remaining_cm3']:8.2f} cm^3")
    print(f"  remaining fraction {100 * s['remaining_fraction']:8.2f} %")
    print(f"  margin achieved    {s['margin_achieved_mm']:8.2f} mm (min), {s['margin_mean_mm']:.2f} mm (mean)")
    print(f"  volume error       {s['volume_error']:.1e} (relative, split round-off)")
    print(f"  tumour left        {res.mesh.region_volumes().get('tumour', 0.0) * 1e6:.3g} cm^3;"
          f" mesh valid: {validate_mesh(res.mesh)['ok']}")

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    write_mesh(res.removed, out / "specimen.vtu")
    (out / "resection.json").write_text(json.dumps(s, indent=2))

    preset = tissue("liver")
    sim = Simulation(Body(res.mesh, preset.material, density=preset.density), dt=0.02, damping=(2.0, 0.0))
    sim.fix(selection.region(res.mesh, "ligament"), name="ligament")
    tag = np.zeros(res.mesh.n_tets, dtype=np.int32)
    on_res = np.isin(face_keys(res.mesh.boundary_faces), res.cut_face_keys)
    tag[res.mesh.boundary_face_tets[on_res]] = 1
    n_frames = 3 if args.quick else 40
    with SeriesWriter(out / "resection.pvd") as series:
        series.write(0.0, liver, cell_data={"resection_face": np.zeros(liver.n_tets, dtype=np.int32)})
        for _ in range(n_frames):
            sim.step()
            series.write(sim.time, sim.mesh, points=sim.positions, cell_data={"resection_face": tag})
    print(f"  max displacement after {n_frames} frames: {np.abs(sim.displacements).max() * 1e3:.1f} mm")
    print(f"series: {out / 'resection.pvd'}; specimen: {out / 'specimen.vtu'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
