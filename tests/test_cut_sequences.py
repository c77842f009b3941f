"""Multi-stroke cut sequences nobody scripted: reversals, strokes ending inside, gliding along
the skin or an earlier cut, crossing earlier cuts, through vertices, cutting the organ in two.

After every stroke the mesh must stay a valid solid (``validate_mesh(...)["ok"]``: no
inverted, folded or orphan tets, a conforming boundary that is a closed 2-manifold, tet
volumes equal to the enclosed volume), every region keeps its volume, the transfer maps
the rest positions exactly, and the number of pieces never drops. Run on phantoms and on
real organs from ``../shared/data/organs`` (skipped where absent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.tetmesh import TetMesh
from organsim.surgery.cutting import Cutter, validate_mesh

H = 0.01
BOX = box_tet_mesh((6, 6, 6), H)                     # 0.05 m cube
ORGANS = Path(__file__).resolve().parents[2] / "shared" / "data" / "organs"


def _pieces(mesh: TetMesh) -> int:
    t = mesh.tets
    g = sp.coo_matrix((np.ones(3 * len(t)), (np.repeat(t[:, 0], 3), t[:, 1:].ravel())),
                      shape=(mesh.n_points, mesh.n_points))
    return connected_components(g, directed=False)[0]


def _stroke(cutter: Cutter, poses) -> None:
    for pose in poses:
        cutter.advance(np.asarray(pose, dtype=np.float64))
    cutter.finish()


def _check(before: TetMesh, cutter: Cutter, what: str) -> None:
    m = cutter.mesh
    v = validate_mesh(m)
    assert v["ok"], (what, v)
    for name, vol in before.region_volumes().items():
        assert abs(m.region_volumes().get(name, 0.0) - vol) <= 1e-9 * before.volume, (what, name)


def _with_regions(mesh: TetMesh) -> TetMesh:
    """Two regions split at the mid-plane in x, to check volume per region."""
    c = mesh.points[mesh.tets].mean(axis=1)
    mid = 0.5 * (mesh.points[:, 0].min() + mesh.points[:, 0].max())
    return TetMesh(mesh.points, mesh.tets, np.where(c[:, 0] < mid, 2, 1), {1: "right", 2: "left"})


# ------------------------------------------------------------------ named sequences
def test_a_blade_gliding_along_the_skin_puts_nothing_on_the_cut():
    # the swept surface lies in the top face: it touches the skin nodes, passes through none
    c = Cutter(BOX)
    ys = np.linspace(0.012, 0.038, 8)
    _stroke(c, [[[0.005, y, 0.05], [0.045, y, 0.05]] for y in ys])
    assert not c.on_cut.any()
    assert c.mesh.n_tets == BOX.n_tets
    # a stroke one node layer below then cuts only its own plane: no skin node is separated
    _stroke(c, [[[0.005, y, 0.04], [0.045, y, 0.04]] for y in ys])
    _check(BOX, c, "below the glide")
    top = np.isclose(c.mesh.points[:, 2], 0.05)
    assert np.count_nonzero(top) == np.count_nonzero(np.isclose(BOX.points[:, 2], 0.05))
    assert _pieces(c.mesh) == 1


def test_a_reversed_stroke_ending_inside_then_a_plane_cut_gives_two_pieces():
    c = Cutter(BOX)
    blade = np.array([[0.0237, -0.01, 0.07], [0.0237, -0.01, 0.027]])
    forward = [blade + [0, 0.002 * k, 0] for k in range(20)]
    back = [blade + [0, 0.002 * k, 0] for k in range(19, 9, -1)]
    _stroke(c, forward + back)
    _check(BOX, c, "forward and half back")
    assert _pieces(c.mesh) == 1
    plane = np.array([[0.0237, -0.01, 0.07], [0.0237, -0.01, -0.02]])
    _stroke(c, [plane + [0, 0.002 * k, 0] for k in range(36)])
    _check(BOX, c, "plane cut after")
    assert _pieces(c.mesh) == 2
    assert c.n_pending == 0


def test_a_blade_through_a_corner_vertex_opens_a_manifold_mouth():
    # the blade's plane passes through the box's corner and its edge ends near skin nodes
    c = Cutter(BOX)
    _stroke(c, [[[0.0, 0.0, 0.0], [0.03125, 0.046875, 0.0390625]],
                [[-0.015, -0.015, -0.015], [0.01625, 0.031875, 0.0240625]]])
    _check(BOX, c, "corner")


def test_a_stroke_along_an_earlier_cut_and_one_across_it_stay_valid():
    c = Cutter(BOX)
    blade = np.array([[0.025, -0.01, 0.06], [0.025, -0.01, 0.02]])
    path = [blade + [0, 0.004 * k, 0] for k in range(16)]
    _stroke(c, path)
    n_after_first = c.mesh.n_tets
    _stroke(c, path)                                  # exactly along the first cut
    _check(BOX, c, "along")
    assert c.mesh.n_tets == n_after_first
    across = np.array([[-0.01, 0.03, 0.06], [-0.01, 0.03, 0.015]])
    _stroke(c, [across + [0.004 * k, 0, 0] for k in range(16)])
    _check(BOX, c, "across")
    assert _pieces(c.mesh) == 1                       # both end 2 cm above the bottom


def test_a_tet_split_again_follows_its_faces_history_and_stays_conforming():
    # found by a random path: a pending tet re-split with a third point on a face whose
    # neighbour had refined its own two triangles left the two sides triangulating the face
    # differently (a crack no blade made; the volume check cannot see it)
    poses = np.array([[[0.02, 0.02, 0.03], [0.01400576222294251, 0.042365564567095684, -0.004280862461201003]],
                      [[0.011719265276829977, 0.0017679551110072918, 0.025223062197087465],
                       [-0.004456218045822122, 0.04058050205090407, -0.0018247593149999155]],
                      [[0.014584809584531904, -0.01909104450352942, 0.03735466474510946],
                       [-0.013468921721541042, 0.039308239163045884, 0.008794916132524224]],
                      [[0.029417727631966505, -0.03029243554664069, 0.04937960982406359],
                       [0.001363996325893558, 0.028106848119934615, 0.020819861211478354]]])
    t = np.linspace(0, 1, 5)[1:, None, None]
    fine = np.concatenate([poses[:1]] + [poses[i] + t * (poses[i + 1] - poses[i]) for i in range(3)])
    c = Cutter(BOX)
    for i, pose in enumerate(fine):
        c.advance(pose)
        v = validate_mesh(c.mesh)
        assert v["ok"] and v["n_internal_boundary_faces"] == 0, (i, v)
    c.finish()
    _check(BOX, c, "finish")


# ------------------------------------------------------------------ random sequences
def _box_of(mesh: TetMesh):
    lo, hi = mesh.points.min(axis=0), mesh.points.max(axis=0)
    return lo, hi


@st.composite
def strokes(draw, lo, hi, nodes):
    """One stroke: 3-10 poses of a blade segment, of a kind a trainee's hand produces."""
    span = hi - lo
    kind = draw(st.sampled_from(["straight", "reverse", "ends_inside", "glide", "through_node", "across"]))

    def point():
        if draw(st.booleans()):
            return nodes[draw(st.integers(0, len(nodes) - 1))].copy()
        return lo + np.array([draw(st.floats(-0.1, 1.1)) for _ in range(3)]) * span

    a, b = point(), point()
    if kind == "glide":                               # the blade flat on the top face
        a[2] = b[2] = hi[2]
    if kind == "across":                              # a blade longer than the organ
        a = np.array([draw(st.floats(0.2, 0.8)), draw(st.floats(0.2, 0.8)), 1.3]) * span + lo
        b = a.copy()
        b[2] = lo[2] - 0.3 * span[2]
    d = np.array([draw(st.floats(-1, 1)) for _ in range(3)]) * span * 0.8
    if kind == "glide":
        d[2] = 0.0
    k = draw(st.integers(3, 10))
    s = np.linspace(0.0, 1.0, k)
    if kind == "reverse":
        s = np.concatenate([s, s[::-1][1:k // 2 + 1]])
    if kind == "ends_inside":
        s = s * 0.5
    poses = [np.stack([a, b]) + si * d for si in s]
    if kind == "through_node":                        # the blade's edge passes exactly through nodes
        v = nodes[draw(st.integers(0, len(nodes) - 1))]
        poses = [p - p[1] + v + (si - 0.5) * d for p, si in zip(poses, s)]
    return poses


def _run_sequence(mesh: TetMesh, seq) -> None:
    c = Cutter(mesh)
    pieces = 1
    for i, poses in enumerate(seq):
        _stroke(c, poses)
        _check(mesh, c, f"stroke {i}")
        p = _pieces(c.mesh)
        assert p >= pieces, f"stroke {i} joined pieces"
        pieces = p
    # the cut mesh is the rest mesh: rest positions map exactly
    assert abs(c.mesh.volume - mesh.volume) <= 1e-9 * mesh.volume


def _ball() -> TetMesh:
    m = box_tet_mesh((7, 7, 7), H)
    rng = np.random.default_rng(0)
    inner = np.all((m.points > 1e-9) & (m.points < 6 * H - 1e-9), axis=1)
    pts = m.points + np.where(inner[:, None], rng.uniform(-0.25 * H, 0.25 * H, m.points.shape), 0.0)
    keep = np.linalg.norm(pts[m.tets].mean(axis=1) - 3 * H, axis=1) < 3 * H
    sub, _ = TetMesh(pts, m.tets).submesh(keep)
    return _with_regions(sub)


PHANTOMS = {"box": _with_regions(BOX), "ball": _ball()}


@pytest.mark.parametrize("name", sorted(PHANTOMS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_stroke_sequences_on_phantoms_keep_a_valid_solid(name, data):
    mesh = PHANTOMS[name]
    lo, hi = _box_of(mesh)
    seq = data.draw(st.lists(strokes(lo, hi, mesh.points), min_size=1, max_size=4))
    _run_sequence(mesh, seq)


def _real(name: str) -> TetMesh:
    from organsim.io.volumes import read_mesh

    path = ORGANS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (third-party organ data, see ../shared/data/organs/SOURCES.md)")
    return _with_regions(read_mesh(path, units="mm"))


_REAL_CACHE: dict = {}


def _real_organ(key: str) -> TetMesh:
    if key not in _REAL_CACHE:
        if key == "msml_liver_tet":
            _REAL_CACHE[key] = _real("msml_Liver5Low_tet.vtk")
        elif key == "sofa_liver":
            _REAL_CACHE[key] = _real("converted/sofa_liver_tet.vtu")
        elif key == "msml_liver_meshed":         # a CT liver surface meshed by organsim at its defaults
            from organsim.io.surfaces import read_surface
            from organsim.mesh.pipeline import mesh_surface

            path = ORGANS / "msml_LiverSurface.stl"
            if not path.exists():
                pytest.skip(f"{path} is absent (third-party organ data)")
            _REAL_CACHE[key] = _with_regions(mesh_surface(read_surface(path, units="mm"))[0])
        elif key == "kits19_kidneys":            # a CT label map (kidneys and tumour) meshed by organsim
            from organsim.io.images import read_image
            from organsim.mesh.pipeline import mesh_image

            path = ORGANS / "kits19_case_00002_segmentation.nii.gz"
            if not path.exists():
                pytest.skip(f"{path} is absent (third-party organ data)")
            _REAL_CACHE[key] = mesh_image(read_image(path))[0]      # its own regions
    return _REAL_CACHE[key]


@pytest.mark.slow
@pytest.mark.parametrize("key", ["msml_liver_tet", "sofa_liver", "msml_liver_meshed", "kits19_kidneys"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_stroke_sequences_on_real_organs_keep_a_valid_solid(key, data):
    mesh = _real_organ(key)
    lo, hi = _box_of(mesh)
    seq = data.draw(st.lists(strokes(lo, hi, mesh.points[mesh.boundary_nodes]),
                             min_size=2, max_size=4))
    _run_sequence(mesh, seq)
