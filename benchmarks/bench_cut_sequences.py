"""cut-sequences: random multi-pose blade strokes; how many leave an invalid solid, what they cost.

Seeded random strokes (2-5 blade poses spanning the organ's box and beyond, half of
the start points on grid planes, refined into 4 increments per pose step: 5-17
increments) through the 0.05 m box phantom (750 tets), an irregular ball phantom and
the shipped liver (~10k tets). After each whole stroke (``cut``) the mesh is checked
with ``validate_mesh``: valid tets, conserved volume, a conforming boundary that is a
closed 2-manifold. Recorded per mesh: invalid results by check, the cut area opened
(both sides), the smallest dihedral angle after each stroke (median, 5th percentile and
minimum over the strokes, beside the uncut mesh's) and the median cost of a stroke and of an
increment.

Each mesh is run twice in the same run: as shipped (``hinge_closing`` on) and with the
closing of crack faces through hinges switched off (``_MAX_HINGE_ROUNDS = 0``), for the
same-run comparison of validity, opened area and cost; and with the hinge closing on at a
``snap`` of 0.33 and 0.4 edge lengths (the default is 0.25): crossings nearer a vertex than
that are moved onto it, so a larger snap keeps the cut tets better shaped and places the cut
less exactly (less of the swept area opens).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks._femcore import load_average
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.shipped import load_shipped
from organsim.mesh.tetmesh import TetMesh
from organsim.surgery import cutting

ID = "cut-sequences"


def _ball(n: int = 7, h: float = 0.01) -> TetMesh:
    m = box_tet_mesh((n, n, n), h)
    rng = np.random.default_rng(0)
    inner = np.all((m.points > 1e-9) & (m.points < (n - 1) * h - 1e-9), axis=1)
    pts = m.points + np.where(inner[:, None], rng.uniform(-0.25 * h, 0.25 * h, m.points.shape), 0.0)
    mid = (n - 1) * h / 2
    sub, _ = TetMesh(pts, m.tets).submesh(np.linalg.norm(pts[m.tets].mean(axis=1) - mid, axis=1) < mid)
    return sub


def _stroke(rng, lo, hi, h):
    span = hi - lo
    k = rng.integers(2, 6)
    a0 = lo + rng.uniform(-0.25, 1.25, 3) * span
    b0 = lo + rng.uniform(-0.25, 1.25, 3) * span
    if rng.random() < 0.5:
        a0 = np.round(a0 / h) * h                    # on grid planes: grazing vertices
    poses = [np.stack([a0, b0])]
    for _ in range(k - 1):
        da = rng.uniform(-0.75, 0.75, 3) * span
        db = da if rng.random() < 0.5 else rng.uniform(-0.75, 0.75, 3) * span
        poses.append(poses[-1] + 0.6 * np.stack([da, db]))
    p = np.stack(poses)
    t = np.linspace(0, 1, 5)[1:, None, None]
    return np.concatenate([p[:1]] + [p[i] + t * (p[i + 1] - p[i]) for i in range(len(p) - 1)])


def _cut_area(res) -> float:
    s = res.surface()
    P = s.points[s.faces[s.face_labels == 1]]
    return float(0.5 * np.linalg.norm(np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]), axis=1).sum())


def run(quick: bool = False) -> dict:
    cutting.warm_up()
    load = load_average()
    rows = []
    for rounds in (cutting._MAX_HINGE_ROUNDS, 0):
        rows += _run(quick, rounds)
    for snap in (0.33, 0.4):   # the default snap is 0.25: shape of the cut tets against the cut's placement
        rows += _run(quick, cutting._MAX_HINGE_ROUNDS, snap)
    return {"rows": rows, "load_average_at_start": load,
            "notes": "seeded random strokes (rng 5); invalid_*: strokes whose result fails that check;"
                     " hinge_closing off = _MAX_HINGE_ROUNDS 0; shared 2-core machine, times noisy"}


def _run(quick: bool, hinge_rounds: int, snap: float = 0.25) -> list[dict]:
    saved = cutting._MAX_HINGE_ROUNDS
    cutting._MAX_HINGE_ROUNDS = int(hinge_rounds)
    meshes = {"box": box_tet_mesh((6, 6, 6), 0.01), "ball": _ball(), "liver": load_shipped("liver")}
    n = {"box": 20, "ball": 20, "liver": 5} if quick else {"box": 100, "ball": 100, "liver": 30}
    rows = []
    try:
        for name, mesh in meshes.items():
            rng = np.random.default_rng(5)
            lo, hi = mesh.points.min(axis=0), mesh.points.max(axis=0)
            h = float(np.median(np.linalg.norm(mesh.points[mesh.edges[:, 0]] - mesh.points[mesh.edges[:, 1]],
                                               axis=1)))
            bad = {"not_ok": 0, "not_closed_manifold": 0, "non_conforming": 0, "volume": 0}
            area, stroke_ms, inc_ms, incs, dihedral = 0.0, [], [], 0, []
            for _ in range(n[name]):
                path = _stroke(rng, lo, hi, h)
                t0 = time.perf_counter()
                res = cutting.cut(mesh, path, snap=snap)
                dt = time.perf_counter() - t0
                stroke_ms.append(1e3 * dt)
                inc_ms.append(1e3 * dt / len(path))
                incs += len(path)
                v = cutting.validate_mesh(res.mesh)
                bad["not_ok"] += not v["ok"]
                bad["not_closed_manifold"] += not v["closed_manifold"]
                bad["non_conforming"] += v["n_internal_boundary_faces"] > 0
                bad["volume"] += abs(res.mesh.volume - mesh.volume) > 1e-9 * mesh.volume
                area += _cut_area(res)
                dihedral.append(res.mesh.quality()["min_dihedral_deg"])
            rows.append({"mesh": name, "hinge_closing": "on" if hinge_rounds else "off", "snap": snap,
                         "tets": mesh.n_tets,
                         "strokes": n[name], "increments": incs,
                         **{f"invalid_{k}": c for k, c in bad.items()},
                         "opened_cut_area_cm2_both_sides": area * 1e4,
                         "min_dihedral_deg_median": float(np.median(dihedral)),
                         "min_dihedral_deg_p5": float(np.percentile(dihedral, 5)),
                         "min_dihedral_deg_min": float(np.min(dihedral)),
                         "uncut_min_dihedral_deg": mesh.quality()["min_dihedral_deg"],
                         "stroke_ms_median": float(np.median(stroke_ms)),
                         "increment_ms_median": float(np.median(inc_ms))})
    finally:
        cutting._MAX_HINGE_ROUNDS = saved
    return rows
