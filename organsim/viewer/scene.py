"""The rendered scene: organ surface, cut faces, instruments, stress map, panel.

A :class:`Scene` owns a few pyvista actors that it creates once and updates
in place every frame (new node positions are written into the same
:class:`pyvista.PolyData`; instruments move by their actor's matrix), so a
frame costs a vectorized copy and a render, never new actors.
"""

from __future__ import annotations

import logging
import time as _time

import numpy as np

from ..mesh.tetmesh import TetMesh
from .sources import FrameSource, InstrumentView

__all__ = ["REGION_COLORS", "CUT_FACE_COLOR", "CAMERA_PRESETS", "LIGHTS", "Scene", "surface_of",
           "instrument_shape", "set_lights"]

log = logging.getLogger(__name__)

#: Colour (RGB 0-255) of each named region; unnamed regions cycle through FALLBACK_COLORS.
REGION_COLORS: dict[str, tuple[int, int, int]] = {
    "parenchyma": (139, 62, 47),    # liver brown
    "liver": (139, 62, 47),
    "tissue": (196, 120, 110),
    "gauze": (236, 232, 220),       # off-white cotton gauze
    "tumour": (236, 220, 150),      # pale yellow
    "tumor": (236, 220, 150),
    "vessel": (70, 95, 190),        # venous blue
    "ligament": (235, 200, 185),    # pale fibrous pink
    "kidney": (150, 70, 60),
    "cortex": (150, 70, 60),
    "medulla": (120, 50, 50),
    "block": (214, 150, 140),
    "sheet": (214, 150, 140),
}
FALLBACK_COLORS = [(120, 160, 90), (200, 140, 60), (150, 100, 170), (90, 160, 160)]
#: Colour of faces created by a cut (raw tissue).
CUT_FACE_COLOR: tuple[int, int, int] = (215, 30, 60)
#: Background colour (RGB 0-1).
BACKGROUND = (0.93, 0.94, 0.96)
#: Scene lights: (position in the camera frame (x right, y up, z towards the viewer), intensity);
#: ``None`` is a headlight (at the camera, looking at the focal point). One key light a little
#: above and right of the camera: a headlight alone leaves an instrument shaft that points at the
#: camera almost black. Each added light costs about 1.5 ms per 800x600 frame in software rendering.
LIGHTS: tuple[tuple[tuple[float, float, float] | None, float], ...] = (((0.2, 0.4, 1.0), 1.0),)

#: Camera presets: name -> (direction from the focal point to the camera, view-up),
#: in organsim's LPS world frame (x to the patient's left, y posterior, z superior).
CAMERA_PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "posterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "inferior": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
    "right": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "surgeon": ((-0.35, -0.8, 0.5), (0.0, 0.0, 1.0)),
    "demo": ((0.1, -1.0, 0.25), (0.0, 0.0, 1.0)),
}

_SHAPE_CACHE: dict[str, object] = {}


def surface_of(mesh: TetMesh, cut_face_mask: np.ndarray | None = None):
    """Boundary surface of a tet mesh as arrays ready to draw.

    Parameters
    ----------
    mesh : TetMesh
    cut_face_mask : ndarray of bool, shape (k,), optional
        True for boundary faces made by a cut.

    Returns
    -------
    nodes : ndarray, shape (s,)
        Mesh node id of each surface vertex.
    faces : ndarray, shape (k, 3)
        Triangles in surface-vertex ids, outward.
    face_region : ndarray, shape (k,)
        Region id of the tet behind each face.
    face_cut : ndarray of bool, shape (k,)
    """
    bf = mesh.boundary_faces
    nodes, inv = np.unique(bf, return_inverse=True)
    faces = inv.reshape(-1, 3)
    face_region = mesh.region_ids[mesh.boundary_face_tets]
    if cut_face_mask is None:
        face_cut = np.zeros(len(bf), dtype=bool)
    else:
        face_cut = np.asarray(cut_face_mask, dtype=bool)
        if face_cut.shape != (len(bf),):
            log.warning("cut_face_mask has shape %s, expected (%d,); ignoring it",
                        face_cut.shape, len(bf))
            face_cut = np.zeros(len(bf), dtype=bool)
    return nodes, faces, face_region, face_cut


def region_color(name: str, rid: int) -> tuple[int, int, int]:
    """Display colour (RGB 0-255) of a region."""
    key = name.lower()
    if key in REGION_COLORS:
        return REGION_COLORS[key]
    for k, c in REGION_COLORS.items():
        if k in key:
            return c
    return FALLBACK_COLORS[abs(int(rid)) % len(FALLBACK_COLORS)]


def text_actor(plotter, name: str, position: tuple[float, float], *, top: bool = False,
               font_size: int = 14):
    """A plain text actor at a normalized-viewport position (cheap to update every frame:
    a fixed font size, unlike pyvista's corner annotations, which refit the font each render)."""
    import vtk

    actor = vtk.vtkTextActor()
    actor.SetInput("")
    prop = actor.GetTextProperty()
    prop.SetFontSize(font_size)
    prop.SetColor(0.05, 0.05, 0.05)
    prop.SetFontFamilyToArial()
    if top:
        # the position is the text's top-left corner (VTK 9.6 deprecates alignment points in
        # favour of text-property justification, which does not anchor a vtkTextActor the
        # same way; fall back to it where the method is gone)
        if hasattr(actor, "SetAlignmentPoint"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                actor.SetAlignmentPoint(6)
        else:  # pragma: no cover
            prop.SetVerticalJustificationToTop()
    coord = actor.GetPositionCoordinate()
    coord.SetCoordinateSystemToNormalizedViewport()
    coord.SetValue(*position)
    plotter.add_actor(actor, reset_camera=False, name=name)
    return actor


def set_lights(plotter) -> None:
    """Replace the plotter's lights with the scene's (:data:`LIGHTS`).

    pyvista's default light kit has five lights; software OpenGL (llvmpipe) shades
    every covered pixel once per light, so on the liver at 800x600 the kit costs about
    6 ms more per frame than a single light (14 against 8 ms).
    """
    import pyvista as pv

    plotter.remove_all_lights()
    for position, intensity in LIGHTS:
        if position is None:
            light = pv.Light(light_type="headlight", intensity=intensity)
        else:
            light = pv.Light(light_type="camera light", position=position, intensity=intensity)
        plotter.add_light(light)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (k, 3) arrays (np.cross costs more in overhead than in work
    at the sizes drawn every frame)."""
    out = np.empty_like(a)
    out[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    out[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    out[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return out


def _face_incidence(faces: np.ndarray, n_points: int):
    """Sparse (s, k) matrix summing face values onto their three vertices."""
    import scipy.sparse as sp

    k = len(faces)
    return sp.csr_matrix((np.ones(3 * k), (faces.ravel(), np.repeat(np.arange(k), 3))),
                         shape=(n_points, k))


def _vertex_normals(points: np.ndarray, faces: np.ndarray, incidence=None) -> np.ndarray:
    """Area-weighted unit vertex normals, shape (s, 3); vectorized.

    ``incidence`` is :func:`_face_incidence` of ``faces``, when cached by the caller.
    """
    p0 = points[faces[:, 0]]
    fn = _cross(points[faces[:, 1]] - p0, points[faces[:, 2]] - p0)
    if incidence is None:
        incidence = _face_incidence(faces, len(points))
    n = incidence @ fn
    ln = np.sqrt(np.einsum("ij,ij->i", n, n))[:, None]
    return n / np.where(ln > 0, ln, 1.0)


def instrument_shape(kind: str):
    """Polydata of an instrument in its local frame: tip at the origin, handle along +z (m).

    Shapes are schematic laparoscopic tools: a 5 mm shaft 15 cm long with a
    working end (jaws, ball tip, paddle or blade).
    """
    import pyvista as pv

    if kind in _SHAPE_CACHE:
        return _SHAPE_CACHE[kind].copy()
    shaft = pv.Cylinder(center=(0, 0, 0.095), direction=(0, 0, 1), radius=0.0025, height=0.15,
                        resolution=16)
    if kind == "grasper":
        jaw1 = pv.Box(bounds=(-0.0025, -0.0008, -0.0015, 0.0015, 0.0, 0.02))
        jaw2 = pv.Box(bounds=(0.0008, 0.0025, -0.0015, 0.0015, 0.0, 0.02))
        shape = shaft.merge([jaw1, jaw2])
    elif kind == "probe":
        shape = shaft.merge(pv.Sphere(radius=0.004, center=(0, 0, 0.004)))
    elif kind == "retractor":
        paddle = pv.Box(bounds=(-0.015, 0.015, -0.0012, 0.0012, 0.0, 0.03))
        shape = shaft.merge(paddle)
    elif kind == "scalpel":
        blade = pv.Triangle([[0.0, 0.0, 0.0], [0.0, 0.008, 0.025], [0.0, -0.001, 0.025]])
        shape = shaft.merge(blade.extrude((0.0008, 0, 0), capping=True).translate((-0.0004, 0, 0)))
    else:
        shape = shaft.merge(pv.Sphere(radius=0.003))
    shape = shape.extract_surface(algorithm="dataset_surface").triangulate()
    _SHAPE_CACHE[kind] = shape
    return shape.copy()


def _pose_matrix(tip: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """4x4 matrix mapping the local frame (+z handle) to a tip position and axis."""
    z = np.asarray(axis, dtype=float)
    nz = float(np.sqrt(z @ z))
    z = np.array([0.0, 0.0, 1.0]) if nz == 0 else z / nz
    ref = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = _cross(ref[None], z[None])[0]
    x /= np.sqrt(x @ x)
    y = _cross(z[None], x[None])[0]
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, tip
    return m


class Scene:
    """Organ, cut faces, instruments, stress map and text panel on a plotter.

    Parameters
    ----------
    plotter : pyvista.Plotter
    source : FrameSource
        What to draw; read on every :meth:`update`.
    stress_field : str
        Nodal field shown by the stress view (``"von_mises"``, Pa).
    stress_range : (float, float), optional
        Fixed colour range (Pa) of the stress view; by default it follows the
        running maximum so the scale does not flicker.

    Examples
    --------
    >>> import pyvista as pv
    >>> from organsim.mesh.generators import box_tet_mesh
    >>> from organsim.viewer.sources import StaticSource
    >>> pl = pv.Plotter(off_screen=True, window_size=(200, 150))
    >>> scene = Scene(pl, StaticSource(box_tet_mesh((4, 4, 4), 0.01)))
    >>> scene.update()
    """

    def __init__(self, plotter, source: FrameSource, *, stress_field: str = "von_mises",
                 stress_range: tuple[float, float] | None = None, show_panel: bool = True) -> None:
        import pyvista as pv

        self.plotter = plotter
        self.source = source
        self.stress_field = stress_field
        self.stress_range = stress_range
        self.show_stress = False
        self.extra_lines: list[str] = []
        self._stress_max = 1.0
        self._topology = None
        self.surface = pv.PolyData()
        self.surface_nodes = np.zeros(0, dtype=np.int64)
        self._faces = np.zeros((0, 3), dtype=np.int64)
        self._incidence = None
        plotter.set_background(BACKGROUND)
        set_lights(plotter)
        self._rebuild_surface()
        self.tissue_actor = plotter.add_mesh(
            self.surface, scalars="rgb", rgb=True, show_scalar_bar=False, name="organ",
            specular=0.35, specular_power=20.0, diffuse=0.85, ambient=0.15, reset_camera=False)
        # the stress view shares the same polydata; its own mapper colours by the field
        self.stress_actor = plotter.add_mesh(
            self.surface, scalars="stress", cmap="inferno", clim=(0.0, 1.0), name="stress",
            show_scalar_bar=True, scalar_bar_args={"title": "von Mises (kPa)",
                                                   "vertical": False, "fmt": "%.1f",
                                                   "position_x": 0.55, "position_y": 0.02,
                                                   "height": 0.1, "width": 0.42,
                                                   "title_font_size": 12, "label_font_size": 11,
                                                   "color": "black"},
            specular=0.3, diffuse=0.85, ambient=0.15, reset_camera=False)
        self.stress_actor.SetVisibility(False)
        # our own vertex normals are set on the polydata: interpolate them (pyvista's default
        # without its smooth_shading filter is flat shading)
        for actor in (self.tissue_actor, self.stress_actor):
            actor.prop.interpolation = "gouraud"
        bars = plotter.scalar_bars
        self._scalar_bar = bars["von Mises (kPa)"] if "von Mises (kPa)" in bars else None
        if self._scalar_bar is not None:
            self._scalar_bar.SetVisibility(False)
        self.instrument_actors: dict[str, object] = {}
        # last drawn (pose, active) of each instrument: actor properties are set on change only
        self._instrument_state: dict[str, tuple] = {}
        self.path_poly = pv.PolyData()
        self.path_actor = None
        # the planned cut and its tolerance band, drawn on the tissue (sources with planned_band())
        self.band_poly = pv.PolyData()
        self.band_actor = None
        self.line_poly = pv.PolyData()
        self.line_actor = None
        self._band_shown = None
        self.panel = text_actor(plotter, "panel", (0.008, 0.99), top=True) if show_panel else None
        self._panel_text = None
        self._panel_t = -np.inf
        #: seconds between panel text refreshes during playback
        self.panel_interval_s = 0.25
        self.help_text = None
        self.camera_preset("surgeon")

    # ---------------------------------------------------------------- surface
    def _rebuild_surface(self) -> None:
        import pyvista as pv

        src = self.source
        mesh = src.mesh
        nodes, faces, face_region, face_cut = surface_of(mesh, src.cut_face_mask)
        self.surface_nodes = nodes
        self._faces = faces
        self._incidence = _face_incidence(faces, len(nodes))
        pos = np.asarray(src.positions)[nodes]
        new = pv.PolyData.from_regular_faces(pos.copy(), faces)
        rgb = np.empty((len(faces), 3), dtype=np.uint8)
        for rid in np.unique(face_region):
            rgb[face_region == rid] = region_color(mesh.region_names.get(int(rid), ""), int(rid))
        rgb[face_cut] = CUT_FACE_COLOR
        new.cell_data["rgb"] = rgb
        new.cell_data["region"] = face_region.astype(np.int32)
        new.cell_data["cut"] = face_cut.astype(np.uint8)
        new.point_data["stress"] = np.zeros(len(nodes))
        new.point_data["Normals"] = _vertex_normals(pos, faces, self._incidence)
        new.point_data.active_normals_name = "Normals"
        self.surface.copy_from(new)
        self._topology = (id(mesh), getattr(src, "topology_version", 0))

    def update(self, *, force_panel: bool = True) -> None:
        """Read the source's current state into the actors (no render).

        Parameters
        ----------
        force_panel : bool
            Rewrite the text panel now; otherwise at most every ``panel_interval_s``.
        """
        src = self.source
        mesh = src.mesh
        if (id(mesh), getattr(src, "topology_version", 0)) != self._topology:
            self._rebuild_surface()
        pos = np.asarray(src.positions)[self.surface_nodes]
        self.surface.points[:] = pos
        self.surface.point_data["Normals"][:] = _vertex_normals(pos, self._faces, self._incidence)
        if self.show_stress:
            self._update_stress()
        self.surface.Modified()
        self._update_instruments(src.instruments())
        self._update_band()
        if self.panel is not None:
            # redrawing text costs more than the organ in software rendering: refresh the
            # panel a few times a second, not every frame
            now = _time.perf_counter()
            if force_panel or now - self._panel_t >= self.panel_interval_s:
                text = "\n".join(self.panel_lines())
                if text != self._panel_text:
                    self.panel.SetInput(text)
                    self._panel_text = text
                self._panel_t = now

    def _update_stress(self) -> None:
        field = self.source.nodal_field(self.stress_field)
        s = np.zeros(len(self.surface_nodes)) if field is None else np.asarray(field)[self.surface_nodes] / 1e3
        self.surface.point_data["stress"][:] = s
        if self.stress_range is not None:
            lo, hi = self.stress_range[0] / 1e3, self.stress_range[1] / 1e3
        else:
            self._stress_max = max(self._stress_max, float(s.max()) if s.size else 0.0)
            lo, hi = 0.0, self._stress_max
        self.stress_actor.mapper.scalar_range = (lo, hi)

    def set_stress_view(self, on: bool) -> None:
        """Show the stress colour map and its scale bar instead of the region colours."""
        self.show_stress = bool(on)
        if self.show_stress:
            self._update_stress()
        self.stress_actor.SetVisibility(self.show_stress)
        self.tissue_actor.SetVisibility(not self.show_stress)
        if self._scalar_bar is not None:
            self._scalar_bar.SetVisibility(self.show_stress)

    # ------------------------------------------------------------ instruments
    def _update_instruments(self, views: list[InstrumentView]) -> None:
        seen = set()
        for v in views:
            seen.add(v.name)
            actor = self.instrument_actors.get(v.name)
            if actor is None:
                actor = self.plotter.add_mesh(instrument_shape(v.kind), color=(0.72, 0.74, 0.78),
                                              specular=0.8, specular_power=30, smooth_shading=False,
                                              name=f"instrument:{v.name}", reset_camera=False)
                self.instrument_actors[v.name] = actor
            tip, axis = np.asarray(v.tip, float), np.asarray(v.axis, float)
            pose = (tuple(tip), tuple(axis))
            last = self._instrument_state.get(v.name)
            if last is None or last[0] != pose:
                actor.user_matrix = _pose_matrix(tip, axis)
            if last is None or last[1] != bool(v.active):
                actor.prop.color = (0.35, 0.75, 0.45) if v.active else (0.72, 0.74, 0.78)
            self._instrument_state[v.name] = (pose, bool(v.active))
            actor.SetVisibility(True)
        for name, actor in self.instrument_actors.items():
            if name not in seen:
                actor.SetVisibility(False)

    def _update_band(self) -> None:
        """Draw the source's planned cut (a line) and its tolerance band (a translucent strip).

        Only the part still uncut is drawn (the source's ``shown`` flags): the strip and the
        line join consecutive shown samples.
        """
        band = getattr(self.source, "planned_band", None)
        got = band() if callable(band) else None
        if got is None:
            return
        import pyvista as pv

        centre, left, right = (np.asarray(a, dtype=float) for a in got[:3])
        k = len(centre)
        shown = np.asarray(got[3], dtype=bool) if len(got) > 3 else np.ones(k, dtype=bool)
        if self.band_actor is None or not np.array_equal(shown, self._band_shown):
            # a strip of quads between the band's edges, and the line down its middle,
            # over each pair of consecutive shown samples
            i = np.flatnonzero(shown[:-1] & shown[1:])
            quads = np.c_[np.full(len(i), 4), i, i + 1, k + i + 1, k + i].ravel()
            segs = np.c_[np.full(len(i), 2), i, i + 1].ravel()
            self.band_poly.copy_from(pv.PolyData(np.vstack([left, right]), faces=quads))
            self.line_poly.copy_from(pv.PolyData(centre.copy(), lines=segs))
            self._band_shown = shown
            if self.band_actor is None:
                self.band_actor = self.plotter.add_mesh(self.band_poly, color=(1.0, 0.85, 0.1),
                                                        opacity=0.45, name="band", lighting=False,
                                                        reset_camera=False)
                self.line_actor = self.plotter.add_mesh(self.line_poly, color=(0.05, 0.25, 0.75),
                                                        line_width=3, name="planned", lighting=False,
                                                        reset_camera=False)
        self.band_poly.points[:] = np.vstack([left, right])
        self.band_poly.Modified()
        self.line_poly.points[:] = centre
        self.line_poly.Modified()

    def set_path(self, points: np.ndarray | None, *, color=(0.1, 0.6, 0.2)) -> None:
        """Draw (or hide) a polyline, e.g. a planned cut or the path being drawn (m)."""
        import pyvista as pv

        if points is None or len(points) < 2:
            if self.path_actor is not None:
                self.path_actor.SetVisibility(False)
            return
        line = pv.lines_from_points(np.asarray(points, dtype=float))
        self.path_poly.copy_from(line)
        if self.path_actor is None:
            self.path_actor = self.plotter.add_mesh(self.path_poly, color=color, line_width=4,
                                                    name="path", reset_camera=False)
        self.path_actor.SetVisibility(True)

    # ------------------------------------------------------------------ panel
    def panel_lines(self) -> list[str]:
        src = self.source
        lines = [f"t = {src.time:6.2f} s"]
        lines += self.extra_lines
        for v in src.instruments():
            if v.kind == "scalpel":  # no cutting-force model: say what it does, not 0 N
                lines.append(f"{v.name}: {'cutting' if v.active else 'idle'}")
                continue
            f = float(np.linalg.norm(v.force))
            lines.append(f"{v.name}: {f:5.2f} N{' (active)' if v.active else ''}")
        lines += list(src.panel_lines())
        return lines

    # ----------------------------------------------------------------- camera
    def camera_preset(self, name: str) -> None:
        """Point the camera from a named direction (see :data:`CAMERA_PRESETS`) at the organ."""
        from ..errors import OrganSimError

        if name not in CAMERA_PRESETS:
            raise OrganSimError(f"unknown camera preset {name!r}; expected one of "
                                f"{', '.join(CAMERA_PRESETS)}")
        direction, up = CAMERA_PRESETS[name]
        pts = np.asarray(self.surface.points)
        if len(pts):
            # frame the bulk of the organ: a small piece far away (cut free and falling)
            # must not shrink the view
            lo, hi = np.percentile(pts, [5.0, 95.0], axis=0)
            center = 0.5 * (lo + hi)
            size = 1.1 * float(np.linalg.norm(hi - lo)) or 1.0
        else:
            center, size = np.zeros(3), 1.0
        d = np.asarray(direction, float)
        d /= np.linalg.norm(d)
        cam = self.plotter.camera
        cam.focal_point = tuple(center)
        cam.position = tuple(center + d * 1.7 * size)
        cam.up = up
        cam.view_angle = 30.0
        self.plotter.renderer.ResetCameraClippingRange()
        self.camera_name = name
