"""Deform the shipped liver under gravity, held by its ligament, and write a PVD series.

The liver hangs from its "ligament" region (fixed); every region gets its tissue
preset (parenchyma: liver, tumour: hepatocellular carcinoma, vessel: vessel wall),
neo-Hookean with nu = 0.45. The script runs a short implicit-Euler dynamic
simulation from rest (the organ sags and swings under gravity with light Rayleigh
damping), then the static equilibrium, and records every frame with displacement,
velocity, strain, Cauchy and von Mises stress to ``out/liver_gravity.pvd``.

Run::

    python examples/02_liver_gravity.py            # 0.5 s of motion, then equilibrium
    python examples/02_liver_gravity.py --quick    # a few frames (used by the tests)

Open ``out/liver_gravity.pvd`` in ParaView, colour by ``von_mises``, and play.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from organsim.fem.body import Body
from organsim.fem.recorder import Recorder
from organsim.fem.selection import region
from organsim.fem.simulation import Simulation
from organsim.fem.tissues import tissue
from organsim.mesh.shipped import load_shipped

PRESET_OF_REGION = {"parenchyma": "liver", "ligament": "liver", "tumour": "tumour",
                    "vessel": "vessel_wall"}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few frames only (for tests)")
    parser.add_argument("--out", default="out/liver_gravity.pvd", help="output .pvd path")
    parser.add_argument("--seconds", type=float, default=0.5, help="simulated time before the static solve")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("example")

    mesh = load_shipped("liver")
    materials, density = {}, {}
    for rid, name in mesh.region_names.items():
        preset = tissue(PRESET_OF_REGION.get(name, "liver"), model="neo_hookean", nu=0.45)
        materials[rid] = preset.material
        density[rid] = preset.density
        log.info("region %-10s -> %-12s rho %.0f kg/m3  (%s)", name, preset.name, preset.density,
                 preset.source.split(";")[0])
    body = Body(mesh, materials, density=density)
    dt = 1.0 / 60.0
    sim = Simulation(body, gravity=(0.0, 0.0, -9.81), dt=dt, integrator="backward_euler",
                     damping=(2.0, 0.0))
    sim.fix(region(mesh, "ligament"), name="ligament")

    n_steps = 3 if args.quick else int(round(args.seconds / dt))
    out = Path(args.out)
    with Recorder(out) as rec:
        rec.record(sim)
        for _ in range(n_steps):
            info = sim.step()
            rec.record(sim)
        log.info("t = %.3f s: max displacement %.1f mm (last step %d Newton iterations)", sim.time,
                 1e3 * np.linalg.norm(sim.displacements, axis=1).max(), info.newton_iterations)
        if not args.quick:
            st = sim.solve_static(load_steps=2)
            rec.write_state(sim.time + dt, sim.mesh, sim.positions, materials)
            log.info("static equilibrium in %d Newton iterations: max displacement %.1f mm",
                     st.newton_iterations, 1e3 * np.linalg.norm(sim.displacements, axis=1).max())
    r = sim.reaction("ligament").sum(axis=0)
    log.info("the ligament pulls up with %.3f N (liver weight %.3f N); wrote %s", r[2],
             body.mass * 9.81, out)
    return out


if __name__ == "__main__":
    main()
