"""Interaction tests: key and mouse events sent through VTK's interactor, off-screen.

The events take the same path as a user's (``KeyPressEvent``, ``LeftButtonPressEvent``...
on the render window interactor). The simulation here is a small test-local
stand-in with the ``Simulation`` methods the viewer uses (``step``,
``prescribe``, ``release``, ``reaction``); where organsim's own solver is
installed, the grasp test also runs against it.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from organsim.mesh.generators import box_tet_mesh

pytestmark = pytest.mark.render


class SpringSim:
    """Stand-in simulation: prescribed nodes go to their targets, the rest relax to rest."""

    def __init__(self, mesh):
        self.mesh = mesh
        self.positions = mesh.points.copy()
        self.time = 0.0
        self.dt = 0.01
        self.constraints: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.steps = 0

    def prescribe(self, node_ids, positions, *, name):
        self.constraints[name] = (np.asarray(node_ids), np.asarray(positions, float))

    def release(self, name):
        self.constraints.pop(name)

    def reaction(self, name):
        nodes, target = self.constraints[name]
        return -100.0 * (target - self.mesh.points[nodes])

    def step(self, dt=None):
        self.positions += 0.5 * (self.mesh.points - self.positions)
        for nodes, target in self.constraints.values():
            self.positions[nodes] = target
        self.time += self.dt
        self.steps += 1


def send_key(viewer, key: str) -> None:
    it = viewer.plotter.iren.interactor
    it.SetKeySym(key)
    it.SetKeyCode(key if len(key) == 1 else " ")
    it.KeyPressEvent()
    it.CharEvent()
    it.KeyReleaseEvent()


def centre_pixel(viewer):
    """Display coordinates of the organ's centre."""
    pts = np.asarray(viewer.scene.surface.points)
    c = pts.mean(axis=0)
    ren = viewer.plotter.renderer
    ren.SetWorldPoint(*c, 1.0)
    ren.WorldToDisplay()
    x, y, _ = ren.GetDisplayPoint()
    return int(x), int(y)


@pytest.fixture(params=[False, True], ids=["serial", "overlap"])
def viewer(request):
    """An off-screen viewer with bound handlers, stepping in the frame or on its worker thread."""
    from organsim.viewer import Viewer

    sim = SpringSim(box_tet_mesh((9, 7, 5), 0.01, origin=(-0.04, -0.03, -0.02)))
    v = Viewer(sim, off_screen=True, window_size=(320, 240), overlap=request.param)
    v.scene.camera_preset("anterior")
    v.bind_offscreen()
    yield v
    v.close()


def test_keys_pause_toggle_stress_switch_tool_and_camera(viewer):
    sim = viewer.source.simulation
    viewer.frame()
    assert sim.steps == 1
    send_key(viewer, "space")
    assert viewer.paused
    viewer.frame()
    assert sim.steps == 1  # paused: no step
    send_key(viewer, "space")
    viewer.frame()
    assert sim.steps == 2
    send_key(viewer, "t")
    assert viewer.scene.show_stress and viewer.scene.stress_actor.GetVisibility()
    send_key(viewer, "t")
    assert not viewer.scene.show_stress
    assert viewer.interaction.tool == "grasp"
    send_key(viewer, "i")
    assert viewer.interaction.tool == "cut"
    send_key(viewer, "2")  # second preset: posterior
    assert viewer.scene.camera_name == "posterior"
    # '3' is ours (a camera preset), not VTK's stereo toggle
    send_key(viewer, "3")
    assert viewer.scene.camera_name == "superior"
    assert not viewer.plotter.render_window.GetStereoRender()


def test_mouse_drag_grasps_and_pulls_the_tissue(viewer):
    sim = viewer.source.simulation
    iren = viewer.plotter.iren
    x, y = centre_pixel(viewer)
    cam_before = np.array(viewer.plotter.camera.position)
    iren._mouse_left_button_press(x, y)
    assert "viewer_grasp" in sim.constraints, viewer.interaction.messages
    nodes, start = sim.constraints["viewer_grasp"]
    assert len(nodes) >= 1
    iren._mouse_move(x + 40, y + 30)  # drag right and up on screen
    viewer.frame()
    moved = sim.positions[nodes] - sim.mesh.points[nodes]
    # the grasped nodes followed the mouse: to the right (+x) and up (+z) in the anterior view
    assert moved[:, 0].mean() > 0.003 and moved[:, 2].mean() > 0.003
    assert abs(moved[:, 1].mean()) < 0.002  # in the view plane
    # the panel shows the grasper and its force
    lines = viewer.scene.panel_lines()
    assert any(line.startswith("grasper:") and "N" in line for line in lines)
    # the camera did not rotate while grasping
    np.testing.assert_allclose(viewer.plotter.camera.position, cam_before)
    iren._mouse_left_button_release(x + 40, y + 30)
    assert "viewer_grasp" not in sim.constraints
    for _ in range(30):
        viewer.frame()
    assert np.abs(sim.positions - sim.mesh.points).max() < 1e-4  # released: it relaxes back


def test_drag_on_background_turns_the_camera(viewer):
    sim = viewer.source.simulation
    iren = viewer.plotter.iren
    cam_before = np.array(viewer.plotter.camera.position)
    iren._mouse_left_button_press(5, 5)
    iren._mouse_move(60, 40)
    iren._mouse_left_button_release(60, 40)
    assert "viewer_grasp" not in sim.constraints
    assert np.linalg.norm(np.array(viewer.plotter.camera.position) - cam_before) > 1e-6


def test_cut_tool_moves_the_blade_along_the_dragged_surface_path(viewer):
    got = {"points": [], "ended": 0}

    def cut_begin(point, *, depth):
        got["points"].append(point)
        got["depth"] = depth
        return True

    viewer.source.cut_begin = cut_begin
    viewer.source.cut_move = lambda p: got["points"].append(p)
    viewer.source.cut_end = lambda: got.__setitem__("ended", got["ended"] + 1)
    send_key(viewer, "i")
    assert viewer.interaction.tool == "cut"
    iren = viewer.plotter.iren
    x, y = centre_pixel(viewer)
    iren._mouse_left_button_press(x - 30, y)
    for dx in range(-25, 31, 5):
        iren._mouse_move(x + dx, y)
    iren._mouse_left_button_release(x + 30, y)
    pts = np.array(got["points"])
    assert pts.shape[1] == 3 and len(pts) >= 5 and got["ended"] == 1
    # all on the anterior surface (y = -0.03), running left to right
    np.testing.assert_allclose(pts[:, 1], -0.03, atol=1e-6)
    assert pts[-1, 0] - pts[0, 0] > 0.02
    assert viewer.interaction.messages[0].startswith("cut stroke")


def test_reset_key_resets_the_source(viewer):
    calls = []
    viewer.source.simulation.reset = lambda: calls.append(1)
    send_key(viewer, "x")
    assert calls == [1]


def test_static_mesh_cannot_be_grasped(tmp_path):
    from organsim.viewer import Viewer

    v = Viewer(box_tet_mesh((5, 5, 5), 0.01), off_screen=True, window_size=(200, 150))
    v.scene.camera_preset("anterior")
    v.bind_offscreen()
    x, y = centre_pixel(v)
    v.plotter.iren._mouse_left_button_press(x, y)
    v.plotter.iren._mouse_left_button_release(x, y)
    assert "cannot grasp" in v.interaction.messages[0]
    v.close()


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [False, True])
def test_mouse_grasp_and_cut_drive_organsims_own_solver(overlap):
    """The same mouse events on a real procedure: the solver moves the tissue, the cutter cuts."""
    from organsim.scenario.procedure import HAND_GRASPER, Procedure
    from organsim.viewer import Viewer
    from tests.test_scenario_runner import block, scenario

    proc = Procedure(scenario([], duration=10.0), mesh=block(), fields_every=1000)
    v = Viewer(proc, off_screen=True, window_size=(320, 240), overlap=overlap)
    v.scene.camera_preset("superior")
    v.bind_offscreen()
    iren = v.plotter.iren
    x, y = centre_pixel(v)
    iren._mouse_left_button_press(x, y)
    assert HAND_GRASPER in proc.sim.constraint_names
    held = proc.tools[HAND_GRASPER].held
    iren._mouse_move(x + 30, y)
    for _ in range(3):
        v.frame()
    moved = proc.positions[held] - proc.mesh.points[held]
    assert moved[:, 0].mean() > 0.002  # dragged to the right in the top view: +x
    assert any(line.startswith(f"{HAND_GRASPER}:") for line in v.scene.panel_lines())  # its force
    iren._mouse_left_button_release(x + 30, y)
    assert HAND_GRASPER not in proc.sim.constraint_names
    # cut tool: drag across the top surface
    send_key(v, "i")
    n_tets = proc.mesh.n_tets
    iren._mouse_left_button_press(x - 50, y + 7)
    for dx in range(-45, 51, 5):
        iren._mouse_move(x + dx, y + 7)
        v.frame()  # the blade cuts as the simulation steps
    iren._mouse_left_button_release(x + 50, y + 7)
    v.frame()
    assert proc.mesh.n_tets > n_tets, v.interaction.messages
    assert proc.cut_face_mask is not None and proc.cut_face_mask.any()
    v.frame()  # the simulation continues on the cut mesh
    assert np.all(np.isfinite(proc.positions))
    v.close()


@pytest.mark.slow
def test_interactive_window_runs_its_timer_on_a_virtual_display(tmp_path):
    """With a display (here Xvfb), show() opens a window whose timer steps the source."""
    import shutil
    import subprocess

    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run not installed (Debian: apt-get install xvfb)")
    script = tmp_path / "win.py"
    script.write_text(
        "import numpy as np\n"
        "from organsim.mesh.generators import box_tet_mesh\n"
        "from organsim.viewer import Viewer\n"
        "from organsim.viewer.sources import StaticSource\n"
        "m = box_tet_mesh((5, 5, 5), 0.01)\n"
        "src = StaticSource(m)\n"
        "calls = []\n"
        "src.advance = lambda: calls.append(1)\n"
        "v = Viewer(src, window_size=(320, 240))\n"
        "assert not v.off_screen\n"
        "v.show(max_frames=8)\n"
        "print('frames', v.frame_count, 'advanced', len(calls))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYVISTA_OFF_SCREEN"}
    r = subprocess.run(["xvfb-run", "-a", sys.executable, str(script)], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "frames 8 advanced 8" in r.stdout


def test_a_rejected_step_pauses_the_viewer_with_a_message(viewer):
    from organsim.errors import ConvergenceError

    def fail(dt=None):
        raise ConvergenceError("an element is inverted; the state is unchanged")

    viewer.source.simulation.step = fail
    viewer.frame()
    if viewer.overlap:   # the step ran during the frame's render: the next frame waits for it
        assert not viewer.paused
        viewer.frame()
    assert viewer.paused
    assert "stopped: an element is inverted" in viewer.interaction.messages[0]
    assert any("stopped" in line for line in viewer.scene.panel_lines())


def test_overlapped_frames_show_each_step_one_frame_later_and_lose_none():
    """overlap=True: frame k draws the state after k-1 steps (the k-th runs during its render);
    the images are those of the serial viewer one frame earlier and, settled, no step is lost."""
    from organsim.viewer import Viewer

    def run(overlap: bool, frames: int):
        sim = SpringSim(box_tet_mesh((9, 7, 5), 0.01, origin=(-0.04, -0.03, -0.02)))
        sim.prescribe([0], [[-0.05, -0.03, -0.02]], name="pull")   # something that moves
        v = Viewer(sim, off_screen=True, window_size=(160, 120), overlap=overlap, show_panel=False)
        v.scene.camera_preset("anterior")
        images, shown = [], []
        for _ in range(frames):
            v.frame()
            images.append(v.plotter.screenshot(None, return_img=True).copy())
            shown.append(np.asarray(v.scene.surface.points).copy())
        v.settle()
        steps, time = sim.steps, sim.time
        v.close()
        return images, shown, steps, time

    img_s, shown_s, steps_s, _ = run(False, 4)
    img_o, shown_o, steps_o, time_o = run(True, 5)
    assert steps_s == 4 and steps_o == 5 and time_o == pytest.approx(5 * 0.01)
    for k in range(4):   # overlapped frame k+1 draws what serial frame k drew
        assert np.array_equal(shown_o[k + 1], shown_s[k])
        assert np.array_equal(img_o[k + 1], img_s[k])
    assert not np.array_equal(shown_o[0], shown_o[1])   # and the drawn state does move


def test_a_drag_during_an_overlapped_step_moves_the_grasper_to_the_newest_target():
    """Mouse moves while a step is in flight wait for it; the next step pulls to the last one."""
    import threading

    from organsim.viewer import Viewer

    sim = SpringSim(box_tet_mesh((9, 7, 5), 0.01, origin=(-0.04, -0.03, -0.02)))
    gate = threading.Event()
    plain_step = sim.step

    def slow_step(dt=None):
        gate.wait(5.0)          # the step stays in flight until the test lets it go
        plain_step(dt)

    v = Viewer(sim, off_screen=True, window_size=(320, 240), overlap=True)
    v.scene.camera_preset("anterior")
    v.bind_offscreen()
    iren = v.plotter.iren
    x, y = centre_pixel(v)
    gate.set()
    iren._mouse_left_button_press(x, y)
    (held,) = [n for n, _ in sim.constraints.values()]
    gate.clear()
    sim.step = slow_step
    v.frame()                                  # a step is now in flight (held at the gate)
    for dx in (10, 20, 30):
        iren._mouse_move(x + dx, y)            # returns at once: the target waits for the step
    assert sim.steps == 0
    gate.set()
    v.frame()                                  # waits for the step, applies the newest target
    _, target = sim.constraints["viewer_grasp"]
    v.settle()                                 # the step started by that frame pulls there
    assert np.allclose(sim.positions[held], target)
    assert target[:, 0].mean() - sim.mesh.points[held][:, 0].mean() > 0.0   # to the right
    iren._mouse_move(x + 10, y)                # nothing in flight: applied at once
    _, nearer = sim.constraints["viewer_grasp"]
    assert nearer[:, 0].mean() < target[:, 0].mean()   # so the one applied was the newest (x + 30)
    iren._mouse_left_button_release(x + 10, y)
    assert "viewer_grasp" not in sim.constraints
    v.close()
