import numpy as np
import pytest

from organsim import LabelImage, MeshError, TetMesh, TriSurface, UnitsError
from organsim.units import check_plausible_size, to_metres


def unit_cube_mesh():
    import pyvista as pv

    grid = pv.ImageData(dimensions=(3, 3, 3), spacing=(0.05, 0.05, 0.05)).triangulate()
    return TetMesh.from_pyvista(grid)


def test_single_tet_volume_and_quality():
    m = TetMesh(np.eye(4, 3), np.array([[3, 0, 1, 2]]))
    assert m.volume == pytest.approx(1 / 6)
    q = m.quality()
    assert q["n_inverted"] == 0
    assert 0 < q["min_dihedral_deg"] < q["max_dihedral_deg"] < 180
    assert len(m.boundary_faces) == 4


def test_regular_tet_radius_ratio_is_one():
    p = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    m = TetMesh(p, np.array([[0, 1, 2, 3]]))
    if m.volumes[0] < 0:
        m = TetMesh(p, np.array([[0, 2, 1, 3]]))
    assert m.radius_ratios[0] == pytest.approx(1.0)
    assert m.dihedral_angles.min() == pytest.approx(np.degrees(np.arccos(1 / 3)))


def test_boundary_of_cube_is_closed_and_outward():
    m = unit_cube_mesh()
    assert m.volume == pytest.approx(0.1 ** 3)
    s = TriSurface(m.points, m.boundary_faces)
    assert s.is_watertight
    assert s.signed_volume == pytest.approx(m.volume)


def test_pyvista_round_trip_keeps_regions():
    m = unit_cube_mesh()
    rid = np.where(m.points[m.tets].mean(axis=1)[:, 0] > 0.05, 2, 1)
    m2 = TetMesh(m.points, m.tets, rid, {1: "parenchyma", 2: "tumour"})
    back = TetMesh.from_pyvista(m2.to_pyvista())
    assert np.array_equal(back.region_ids, rid)
    assert back.region_names == {1: "parenchyma", 2: "tumour"}


@pytest.mark.parametrize("ids", [(1, 3), (0, 7), (70000, 5), (-2, 4)])
def test_present_region_ids_and_names_of_the_regions_the_tets_carry(ids):
    """The regions a mesh's tets carry, found as it is built: the usual small ids are counted,
    large or negative ones (a label map's raw values) sorted; every present id gets a name."""
    m = unit_cube_mesh()
    lo, hi = ids
    rid = np.where(m.points[m.tets].mean(axis=1)[:, 0] > 0.05, hi, lo)
    m2 = TetMesh(m.points, m.tets, rid, {hi: "tumour"})
    assert m2.present_region_ids.tolist() == sorted({lo, hi})
    assert m2.region_names[hi] == "tumour" and m2.region_names[lo] == f"region_{lo}"
    with pytest.raises(ValueError):
        m2.present_region_ids[0] = 9
    one = TetMesh(m.points, m.tets)
    assert one.present_region_ids.tolist() == [1] and one.region_names == {1: "tissue"}


def test_tets_out_of_range_rejected():
    for bad in (-1, 4):
        with pytest.raises(MeshError, match="outside 0..3"):
            TetMesh(np.eye(4, 3), np.array([[0, 1, 2, bad]]))


def test_nan_points_rejected():
    p = np.eye(4, 3)
    p[0, 0] = np.nan
    with pytest.raises(MeshError, match="NaN"):
        TetMesh(p, np.array([[0, 1, 2, 3]]))


def test_mesh_is_read_only():
    m = unit_cube_mesh()
    with pytest.raises(ValueError):
        m.points[0, 0] = 1.0


def test_label_image_index_world_round_trip():
    d = np.array([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])
    img = LabelImage(np.zeros((5, 6, 7), np.uint8), spacing=(1e-3, 2e-3, 3e-3),
                     origin=(0.1, 0.2, 0.3), direction=d)
    w = img.index_to_world([[1, 2, 3]])
    assert np.allclose(w, [[0.1 - 1e-3, 0.2 - 4e-3, 0.3 + 9e-3]])
    assert np.allclose(img.world_to_index(w), [[1, 2, 3]])


def test_units():
    assert to_metres("mm") == 1e-3
    with pytest.raises(UnitsError, match="unknown length unit"):
        to_metres("furlong")
    with pytest.raises(UnitsError, match="units"):
        check_plausible_size(np.array([[0, 0, 0], [3000.0, 0, 0]]), source="liver.stl")
    check_plausible_size(np.array([[0, 0, 0], [0.2, 0, 0]]))


def test_every_public_name_resolves():
    import organsim

    for name in organsim.__all__:
        assert getattr(organsim, name) is not None, name


def test_linear_time_boundary_matches_sorting_all_faces():
    """The boundary kernel (faces bucketed by smallest vertex) against sorting every face key,
    on random sub-meshes of a box (holes, pockets, faces shared by two tets or one)."""
    from organsim.mesh.generators import box_tet_mesh
    from organsim.mesh.tetmesh import TET_FACES

    rng = np.random.default_rng(7)
    base = box_tet_mesh((6, 5, 4), 0.01)
    for trial in range(12):
        keep = rng.random(base.n_tets) < (0.3 + 0.06 * trial)
        perm = rng.permutation(base.n_points)            # node numbering should not matter
        m = TetMesh(base.points[np.argsort(perm)], perm[base.tets[keep]])
        faces = m.tets[:, TET_FACES].reshape(-1, 3)
        key = np.sort(faces, axis=1).astype(np.int64)
        n = np.int64(m.n_points)
        _, inv, counts = np.unique((key[:, 0] * n + key[:, 1]) * n + key[:, 2], return_inverse=True,
                                   return_counts=True)
        once = counts[inv.ravel()] == 1
        assert np.array_equal(m.boundary_faces, faces[once])
        assert np.array_equal(m.boundary_face_tets, np.repeat(np.arange(m.n_tets), 4)[once])
