"""Instruments: poses, grasper, probe/retractor contact, scalpel, force reports."""

from __future__ import annotations

import numpy as np
import pytest

from organsim.errors import SimulationError
from organsim.fem.body import Body
from organsim.fem.materials import NeoHookean
from organsim.fem.simulation import Simulation
from organsim.mesh.generators import box_tet_mesh
from organsim.mesh.topology import all_parents_in
from organsim.surgery.contact import Box, Capsule, Sphere
from organsim.surgery.cutting import validate_mesh
from organsim.surgery.instruments import Grasper, Pose, Probe, Retractor, Scalpel, Trajectory, step

H = 0.005
BLOCK = box_tet_mesh((9, 5, 5), H)       # 4 x 2 x 2 cm, 768 tets


def _sim(mesh=BLOCK):
    sim = Simulation(Body(mesh, NeoHookean(2e4, 0.4), density=1000.0), dt=0.01, damping=(5.0, 0.0),
                     newton_tol=1e-5)
    sim.fix(np.flatnonzero(mesh.points[:, 2] == 0.0), name="base")
    return sim


def test_pose_and_trajectory_interpolate():
    R = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    p = Pose([1.0, 2.0, 3.0], R)
    q = np.array([[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(p.apply(q), [[1.0, 3.0, 3.0]])
    np.testing.assert_allclose(p.to_local(p.apply(q)), q)
    tr = Trajectory([0.0, 1.0], [[0, 0, 0], [1, 0, 0]], [np.eye(3), R])
    mid = tr.pose(0.5)
    np.testing.assert_allclose(mid.position, [0.5, 0, 0])
    ang = np.degrees(np.arccos((np.trace(mid.rotation) - 1) / 2))
    assert ang == pytest.approx(45.0)
    np.testing.assert_allclose(tr.pose(5.0).position, [1, 0, 0])     # clamped
    with pytest.raises(SimulationError):
        Trajectory([1.0, 0.0], [[0, 0, 0], [1, 0, 0]])
    with pytest.raises(SimulationError):
        Pose([0, 0, 0], np.diag([1.0, 1.0, -1.0]))


def test_shapes_signed_distance_and_projection():
    pts = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 0.5]])
    sd, proj, n = Sphere(1.0).query(pts)
    np.testing.assert_allclose(sd, [1.0, -0.5])
    np.testing.assert_allclose(proj[1], [0, 0, 1.0])
    sd, proj, n = Capsule(1.0, 4.0).query(np.array([[0.5, 0.0, 2.0]]))
    np.testing.assert_allclose(sd, [-0.5])
    np.testing.assert_allclose(proj, [[1.0, 0, 2.0]])
    sd, proj, n = Box((1.0, 2.0, 3.0)).query(np.array([[0.9, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    np.testing.assert_allclose(sd, [-0.1, 1.0])
    np.testing.assert_allclose(proj, [[1.0, 0, 0], [1.0, 0, 0]])
    np.testing.assert_allclose(n, [[1.0, 0, 0], [1.0, 0, 0]])


def test_grasper_holds_and_drags_material_points_and_reports_jaw_force():
    sim = _sim()
    g = Grasper("g", jaw_length=0.011, opening=0.004, jaw_width=0.012,
                pose=Pose([0.017, 0.01, 0.02]))
    n = g.close(sim)
    assert n > 0 and g.is_closed
    held = g.nodes.copy()
    x0 = sim.positions[held].copy()
    g.trajectory = Trajectory([0.0, 0.1], [[0.017, 0.01, 0.02], [0.017, 0.01, 0.023]])
    for _ in range(10):
        f = step(sim, [g])["g"]
    # the held points moved rigidly with the jaws (+3 mm in z)
    np.testing.assert_allclose(sim.positions[held] - x0, np.tile([0, 0, 0.003], (len(held), 1)), atol=1e-9)
    assert f.on_tissue[2] > 0                       # pulling the tissue up
    np.testing.assert_allclose(f.on_tool, -f.on_tissue)
    assert len(f.nodes) == len(held)
    # releasing: the tissue springs back towards rest
    g.open(sim)
    assert not g.is_closed
    for _ in range(20):
        f = step(sim, [g])["g"]
    assert f.magnitude == 0.0
    assert np.abs(sim.positions[held, 2] - BLOCK.points[held, 2]).max() < 0.003


def test_grasper_closing_on_nothing_grasps_nothing():
    sim = _sim()
    g = Grasper("g", pose=Pose([1.0, 1.0, 1.0]))
    assert g.close(sim) == 0 and not g.is_closed
    assert step(sim, [g])["g"].magnitude == 0.0


def test_probe_pushes_without_passing_through():
    sim = _sim()
    probe = Probe("probe", radius=0.004, trajectory=Trajectory(
        [0.0, 0.1], [[0.02, 0.01, 0.026], [0.02, 0.01, 0.016]]))
    for _ in range(15):
        f = step(sim, [probe])["probe"]
    # no surface node is inside the probe (beyond solver tolerance)
    q = probe.pose.to_local(sim.positions[sim.mesh.boundary_nodes])
    sd, _, _ = probe.shape.query(q)
    assert sd.min() > -1e-6
    assert len(f.nodes) > 0
    assert f.on_tissue[2] < 0                       # pushing down
    assert f.on_tool[2] > 0


def test_probe_moving_away_releases_contact():
    sim = _sim()
    probe = Probe("probe", radius=0.004, trajectory=Trajectory(
        [0.0, 0.1, 0.2], [[0.02, 0.01, 0.026], [0.02, 0.01, 0.017], [0.02, 0.01, 0.04]]))
    for _ in range(30):
        f = step(sim, [probe])["probe"]
    assert len(f.nodes) == 0 and f.magnitude == 0.0


def test_scalpel_cuts_while_retractor_holds_and_grasper_follows_the_topology_change():
    sim = _sim()
    g = Grasper("g", jaw_length=0.006, opening=0.004, jaw_width=0.012, pose=Pose([0.033, 0.01, 0.02]))
    assert g.close(sim) > 0
    sc = Scalpel("s", depth=0.03, trajectory=Trajectory(
        [0.0, 0.15], [[0.0123, -0.003, 0.008], [0.0123, 0.023, 0.008]]))
    retr = Retractor("r", half=(0.004, 0.002, 0.004), pose=Pose([0.001, 0.01, 0.03]))
    v0 = sim.mesh.volume
    for _ in range(20):
        forces = step(sim, [sc, g, retr])
    assert sim.mesh.n_tets > BLOCK.n_tets
    assert validate_mesh(sim.mesh)["ok"]
    assert abs(sim.mesh.volume - v0) <= 1e-9 * v0
    assert g.is_closed and g.nodes.max() < sim.mesh.n_points
    assert set(forces) == {"s", "g", "r"}
    assert np.all(np.isfinite(sim.positions))
    assert len(sc.cut_seconds) > 0


def test_node_sets_follow_copies_and_need_every_parent():
    import scipy.sparse as sp

    T = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [0.5, 0.5, 0]]))
    select = all_parents_in(T)
    np.testing.assert_array_equal(select(np.array([0.0, 1.0, 0.0])), [1, 3])
    np.testing.assert_array_equal(select(np.array([1.0, 1.0, 0.0])), [0, 1, 3, 4])


def test_duplicate_instrument_names_are_rejected():
    sim = _sim()
    with pytest.raises(SimulationError, match="unique"):
        step(sim, [Probe("a"), Probe("a")])


def test_probe_pushes_against_newly_cut_faces():
    # cut the block through along x = 0.0213 (full depth), then push a probe into the cut from above
    from organsim.surgery.cutting import cut

    blade = np.array([[0.0213, -0.003, 0.03], [0.0213, -0.003, -0.005]])
    res = cut(BLOCK, np.stack([blade, blade + [0, 0.026, 0]]))
    assert res.cut_face_mask.sum() > 0
    sim = _sim(res.mesh)
    cut_nodes = np.unique(res.cut_faces)
    # a probe lying in the gap (its axis along y), pushed sideways (+x) into the right-hand cut face
    axis_y = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T
    probe = Probe("probe", radius=0.002, trajectory=Trajectory(
        [0.0, 0.1], [[0.0183, 0.01, 0.012], [0.0223, 0.01, 0.012]], [axis_y, axis_y]))
    for _ in range(12):
        f = step(sim, [probe])["probe"]
    assert len(f.nodes) > 0
    assert np.isin(f.nodes, cut_nodes).all()          # the contact is on the cut faces
    assert f.on_tissue[0] > 0                         # pushing the cut face in +x


def test_grasper_with_jaws_smaller_than_the_mesh_pinches_the_nearest_surface_node():
    sim = _sim()
    # jaws 2 mm long centred 1 mm above the top face, between nodes of the 5 mm grid
    g = Grasper("g", jaw_length=0.004, opening=0.001, jaw_width=0.001, pose=Pose([0.0115, 0.0115, 0.021]))
    assert g.close(sim) == 1
    node = g.nodes[0]
    assert node in sim.mesh.boundary_nodes
    assert np.linalg.norm(sim.positions[node] - [0.0135, 0.0115, 0.021]) <= 0.004
