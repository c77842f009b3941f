"""baseline-skfem: the same linear-elastic implicit-Euler step, scikit-fem vs organsim.

Mesh: the step-beam-19k grid (``box_tet_mesh((40, 10, 10), 0.01)``: 4,000 nodes,
18,954 tets), E = 500 kPa, nu = 0.45, 1000 kg/m^3, the x = 0 end fixed, gravity
-z, backward Euler with dt = 0.01 s, lumped mass, no damping.

Two comparisons, measured in the same run:

* ``assembly``: the linear-elastic stiffness matrix, scikit-fem's
  ``linear_elasticity`` form on ``ElementVector(ElementTetP1())`` vs organsim's
  ``Assembler.stiffness`` (the matrices are checked equal);
* ``step``: one implicit-Euler step as a scikit-fem user writes it (assemble K,
  form ``M/h^2 + K``, condense the clamp, ``skfem.solve``) vs
  ``Simulation.step()`` with ``LinearElastic`` at its default Newton tolerance
  (1e-6 relative). Both runs start from rest and the displacements after the same
  number of steps are compared (accuracy column).

Timings: medians; the machine is shared (2 cores) so absolute times are noisy,
the ratios are measured in one run.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

ID = "baseline-skfem"


def run(quick: bool = False) -> dict:
    from skfem import Basis, ElementTetP1, ElementVector, MeshTet, condense, solve
    from skfem.models.elasticity import lame_parameters, linear_elasticity

    from organsim.fem.assembly import Assembler
    from organsim.fem.body import Body
    from organsim.fem.loads import lumped_mass
    from organsim.fem.materials import LinearElastic
    from organsim.fem.simulation import Simulation
    from organsim.mesh.generators import box_tet_mesh

    mesh = box_tet_mesh((20, 5, 5), 0.01) if quick else box_tet_mesh((40, 10, 10), 0.01)
    E, nu, rho, h = 500e3, 0.45, 1000.0, 0.01
    g = np.array([0.0, 0.0, -9.81])
    n_steps = 3 if quick else 6
    reps = 3 if quick else 7
    fixed = np.flatnonzero(mesh.points[:, 0] == 0)

    # ---------------------------------------------------------------- scikit-fem
    sk = MeshTet(np.ascontiguousarray(mesh.points.T), np.ascontiguousarray(mesh.tets.T))
    basis = Basis(sk, ElementVector(ElementTetP1()))
    form = linear_elasticity(*lame_parameters(E, nu))
    m = np.repeat(lumped_mass(mesh.points, mesh.tets, rho), 3)
    fgrav = (m.reshape(-1, 3) * g).ravel()
    D = (3 * fixed[:, None] + np.arange(3)).ravel()
    import scipy.sparse as sp

    Mh = sp.diags(m / h ** 2)
    t_asm_sk = []
    for _ in range(reps):
        t0 = time.perf_counter()
        Ks = form.assemble(basis)
        t_asm_sk.append(time.perf_counter() - t0)
    u = np.zeros(basis.N)
    v = np.zeros(basis.N)
    t_step_sk = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        Ks = form.assemble(basis)
        A = (Ks + Mh).tocsr()
        b = fgrav + m / h ** 2 * (u + h * v)
        un = solve(*condense(A, b, D=D))
        t_step_sk.append(time.perf_counter() - t0)
        v = (un - u) / h
        u = un
    u_sk = u.reshape(-1, 3)

    # ---------------------------------------------------------------- organsim
    asm = Assembler(mesh, [(np.arange(mesh.n_tets), LinearElastic(E, nu))])
    Ko = asm.stiffness(mesh.points)  # warm-up (JIT compilation)
    t_asm_o = []
    for _ in range(max(reps, 20)):
        t0 = time.perf_counter()
        Ko = asm.stiffness(mesh.points)
        t_asm_o.append(time.perf_counter() - t0)
    Kdiff = abs(Ko.tocsr() - Ks.tocsr()).max() / abs(Ks).max()

    sim = Simulation(Body(mesh, LinearElastic(E, nu), density=rho), gravity=tuple(g), dt=h)
    sim.fix(fixed, name="clamp")
    t_step_o = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        sim.step()
        t_step_o.append(time.perf_counter() - t0)
    u_o = sim.displacements
    acc = float(np.abs(u_o - u_sk).max() / np.abs(u_sk).max())
    # more organsim steps for a stable median (state keeps evolving; cost per step is what counts)
    for _ in range(10 if quick else 40):
        t0 = time.perf_counter()
        sim.step()
        t_step_o.append(time.perf_counter() - t0)
    t_step_o_med = statistics.median(t_step_o[1:])

    a_sk, a_o = statistics.median(t_asm_sk), statistics.median(t_asm_o)
    s_sk = statistics.median(t_step_sk)
    rows = [
        {"what": "stiffness assembly", "scikit_fem_ms": 1e3 * a_sk, "organsim_ms": 1e3 * a_o,
         "speedup": a_sk / a_o, "agreement": f"max |K_o - K_skfem| / max|K| = {Kdiff:.1e}"},
        {"what": "implicit Euler step", "scikit_fem_ms": 1e3 * s_sk, "organsim_ms": 1e3 * t_step_o_med,
         "speedup": s_sk / t_step_o_med,
         "agreement": f"max |u_o - u_skfem| / max|u| after {n_steps} steps = {acc:.1e}"},
    ]
    return {
        "rows": rows,
        "mesh": f"{mesh.n_points} nodes, {mesh.n_tets} tets",
        "target": "organsim >= 10x faster than scikit-fem",
        "note": "medians; shared 2-core machine under load from other jobs, absolute times noisy",
    }
