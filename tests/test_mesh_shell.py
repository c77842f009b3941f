"""Open surfaces meshed as shells of a given thickness."""

import numpy as np
import pytest
import pyvista as pv

from organsim.errors import MeshError
from organsim.mesh import TriSurface
from organsim.mesh.pipeline import mesh_surface
from organsim.mesh.shell import shell_label_image


def _disc(radius=0.02):
    """A flat disc, tilted so that it is not aligned with the voxel grid."""
    disc = pv.Disc(inner=0, outer=radius, r_res=8, c_res=48).triangulate()
    return TriSurface.from_pyvista(disc.rotate_x(37).rotate_y(21))


NORMAL = np.array(pv.Disc().triangulate().rotate_x(37).rotate_y(21).face_normals[0])


def test_shell_voxels_hold_the_slab_volume():
    thickness = 0.002
    img = shell_label_image(_disc(), thickness=thickness)
    # slab pi r^2 t plus the half-round rim pi^2 r (t/2)^2
    r = 0.02
    expected = np.pi * r**2 * thickness + np.pi**2 * r * (thickness / 2) ** 2
    assert img.label_volume(1) == pytest.approx(expected, rel=0.05)
    # every shell voxel is within t/2 of the disc's plane
    ijk = np.argwhere(img.labels == 1)
    z = img.index_to_world(ijk) @ NORMAL
    assert np.abs(z).max() <= thickness / 2 + 1e-12


def test_open_disc_meshes_as_a_quality_shell():
    mesh, report = mesh_surface(_disc(), thickness=0.002)
    q = mesh.quality()
    assert q["n_inverted"] == 0 and q["min_dihedral_deg"] >= 10.0
    assert mesh.volume == pytest.approx(np.pi * 0.02**2 * 0.002, rel=0.15)
    assert np.ptp(mesh.points @ NORMAL) == pytest.approx(0.002, rel=0.3)
    assert any("shell" in n for n in report.notes)


def test_open_surface_without_thickness_is_a_clear_error():
    with pytest.raises(MeshError, match="thickness"):
        mesh_surface(_disc(), source="disc.stl")


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan")])
def test_bad_thickness_is_refused(bad):
    with pytest.raises(MeshError, match="thickness"):
        shell_label_image(_disc(), thickness=bad)
