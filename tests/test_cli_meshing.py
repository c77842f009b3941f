"""`organsim mesh` and `organsim info`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from organsim.cli import main
from organsim.mesh import LabelImage, TriSurface
from organsim.mesh.generators import box_tet_mesh

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def ball_nii(tmp_path):
    from organsim.io import write_image

    g = np.indices((40, 40, 40)) - 19.5
    lab = (np.sqrt((g ** 2).sum(0)) < 15).astype(np.uint8)
    lab[np.sqrt(((g - 4) ** 2).sum(0)) < 5] = 2
    img = LabelImage(lab, (1.5e-3,) * 3, (0.01, 0.02, -0.03), label_names={1: "organ", 2: "tumour"})
    return write_image(img, tmp_path / "ball.nii.gz")


@pytest.fixture()
def sphere_stl(tmp_path):
    pv = pytest.importorskip("pyvista")
    from organsim.io import write_surface

    s = TriSurface.from_pyvista(pv.Sphere(radius=0.03, theta_resolution=24, phi_resolution=24))
    return write_surface(s, tmp_path / "sphere.stl", units="mm")


def _read_mesh(path):
    from organsim.io import read_mesh

    return read_mesh(path, units="m")


def test_mesh_label_image(ball_nii, tmp_path, capsys):
    out = tmp_path / "ball.vtu"
    assert main(["mesh", str(ball_nii), "-o", str(out), "--edge-length", "6"]) == 0
    text = capsys.readouterr().out
    assert "meshing report" in text and "dihedral" in text and "wrote" in text
    mesh = _read_mesh(out)
    q = mesh.quality()
    assert q["n_inverted"] == 0 and q["min_dihedral_deg"] >= 10
    assert len(mesh.region_names) == 2
    # in metres: a 45 mm ball
    assert 0.035 < np.ptp(mesh.points, axis=0).max() < 0.055


def test_mesh_one_label_and_report_json(ball_nii, tmp_path):
    out = tmp_path / "tumour.vtu"
    rep = tmp_path / "report.json"
    assert main(["mesh", str(ball_nii), "-o", str(out), "--label", "2", "--edge-length", "3",
                 "--report-json", str(rep)]) == 0
    d = json.loads(rep.read_text())
    assert d["n_tets"] == _read_mesh(out).n_tets
    assert abs(d["volume_error"]) < 0.05
    assert list(d["regions"]) == ["label_2"] or len(d["regions"]) == 1


def test_mesh_surface_in_mm(sphere_stl, tmp_path, capsys):
    out = tmp_path / "sphere.vtu"
    assert main(["mesh", str(sphere_stl), "-o", str(out), "--edge-length", "10"]) == 0
    mesh = _read_mesh(out)
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.03 ** 3, rel=0.03)
    assert "surface volume" in capsys.readouterr().out


def test_mesh_volume_mesh(tmp_path):
    from organsim.io import write_mesh

    src = write_mesh(box_tet_mesh((5, 5, 3), 0.01), tmp_path / "box.msh", units="mm")
    out = tmp_path / "box.vtu"
    assert main(["mesh", str(src), "-o", str(out), "--edge-length", "8"]) == 0
    mesh = _read_mesh(out)
    assert mesh.volume == pytest.approx(0.04 * 0.04 * 0.02, rel=0.03)


def _fails(args, capsys, out: Path | None = None, match: str | None = None):
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1, err
    if match:
        assert match in err, err
    if out is not None:
        assert not out.exists()
        assert not any(p.name.startswith(out.name) for p in out.parent.iterdir() if p != out)
    return err


def test_mesh_errors_leave_nothing_behind(ball_nii, sphere_stl, tmp_path, capsys):
    out = tmp_path / "o.vtu"
    _fails(["mesh", str(tmp_path / "missing.nii.gz"), "-o", str(out)], capsys, out, "missing")
    _fails(["mesh", str(ball_nii), "-o", str(out), "--label", "7"], capsys, out, "label")
    _fails(["mesh", str(ball_nii), "-o", str(out), "--edge-length", "-2"], capsys, out,
           "edge-length")
    _fails(["mesh", str(sphere_stl), "-o", str(out), "--label", "1"], capsys, out, "--label")
    _fails(["mesh", str(sphere_stl), "-o", str(out), "--units", "furlong"], capsys, out, "unit")
    # implausible: the sphere read as metres is 60 m across
    _fails(["mesh", str(sphere_stl), "-o", str(out), "--units", "m"], capsys, out, "implausible")
    bad = tmp_path / "x.xyz"
    bad.write_text("hello")
    _fails(["mesh", str(bad), "-o", str(out)], capsys, out)
    empty = tmp_path / "e.stl"
    empty.write_bytes(b"")
    _fails(["mesh", str(empty), "-o", str(out)], capsys, out)
    _fails(["mesh", str(ball_nii), "-o", str(tmp_path / "nodir" / "o.vtu")], capsys)
    _fails(["mesh", str(ball_nii), "-o", str(tmp_path / "o.stl")], capsys, tmp_path / "o.stl",
           "volume mesh")


def test_mesh_open_surface_is_a_clear_error(tmp_path, capsys):
    pv = pytest.importorskip("pyvista")
    from organsim.io import write_surface

    # a curved sheet (like a valve leaflet): open by nature, no honest way to close it
    sheet = pv.Plane(i_size=0.05, j_size=0.04, i_resolution=12, j_resolution=10).triangulate()
    sheet.points[:, 2] = 20 * sheet.points[:, 0] ** 2
    path = write_surface(TriSurface.from_pyvista(sheet), tmp_path / "sheet.stl", units="mm")
    out = tmp_path / "sheet.vtu"
    _fails(["mesh", str(path), "-o", str(out)], capsys, out)


def test_info_volume_mesh_text_and_json(capsys):
    liver = REPO / "meshes" / "liver.vtu"
    assert main(["info", str(liver)]) == 0
    text = capsys.readouterr().out
    for word in ("volume mesh", "tets", "bounds", "parenchyma", "watertight yes", "dihedral",
                 "radius ratio", "inverted    0"):
        assert word in text, word
    assert main(["info", str(liver), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "volume mesh" and d["n_tets"] > 5000
    assert d["boundary"]["watertight"] and d["boundary"]["edge_manifold"]
    assert d["n_inverted"] == 0 and d["quality"]["min_dihedral_deg"] >= 10
    assert set(d["regions"]) == {"parenchyma", "tumour", "vessel", "ligament"}
    assert 0.1 < max(d["bounds"]["size_m"]) < 0.3  # organsim VTU: read as metres


def test_info_surface_and_image(sphere_stl, ball_nii, tmp_path, capsys):
    assert main(["info", str(sphere_stl), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "surface" and d["watertight"] and d["edge_manifold"]
    assert d["enclosed_volume_m3"] == pytest.approx(4 / 3 * np.pi * 0.03 ** 3, rel=0.03)
    assert main(["info", str(ball_nii)]) == 0
    text = capsys.readouterr().out
    assert "label image" in text and "voxels" in text
    assert main(["info", str(ball_nii), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {v["id"] for v in d["labels"].values()} == {1, 2}


def test_info_open_surface_flags(tmp_path, capsys):
    pv = pytest.importorskip("pyvista")
    from organsim.io import write_surface

    cup = pv.Sphere(radius=0.03).clip("z", origin=(0, 0, 0.01)).triangulate()
    path = write_surface(TriSurface.from_pyvista(cup), tmp_path / "bowl.ply", units="mm")
    assert main(["info", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert not d["watertight"] and d["n_boundary_edges"] > 0 and d["enclosed_volume_m3"] is None


def test_info_errors(tmp_path, capsys):
    _fails(["info", str(tmp_path / "nope.vtu")], capsys, match="nope.vtu")


@pytest.mark.parametrize("cmd", ["mesh", "info"])
def test_help_documents_units_default(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--units" in text and "mm" in text and "metres" in text


def test_cli_subprocess_info_and_mesh(tmp_path, ball_nii):
    r = subprocess.run([sys.executable, "-m", "organsim", "info", str(REPO / "meshes" / "kidney.vtu"),
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_tets"] > 1000
    out = tmp_path / "x.vtu"
    r = subprocess.run([sys.executable, "-m", "organsim", "mesh", str(ball_nii), "-o", str(out),
                        "--label", "9"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not out.exists()
