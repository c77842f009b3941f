"""Scenario schema: validation names the key, the problem and what is allowed; TOML round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organsim.errors import ScenarioError
from organsim.scenario.loader import dumps, load_scenario, loads, save_scenario
from organsim.scenario.schema import (
    ACTION_KEYS, Action, Fixation, Material, Organ, Output, Scenario, Scoring, check_regions,
)

GOOD = """
name = "retraction"
duration_s = 1.0
dt_s = 0.02
[organ]
shipped = "liver"
[materials.parenchyma]
tissue = "liver"
[[fixations]]
region = "ligament"
[[timeline]]
t = 0.1
action = "grasp"
at_mm = [10.0, -50.0, 20.0]
[[timeline]]
t = 0.2
action = "pull"
path_mm = [[10.0, -70.0, 40.0]]
duration_s = 0.5
"""


def test_good_scenario_loads():
    s = loads(GOOD)
    assert s.name == "retraction" and s.n_steps == 50
    assert s.timeline[0].at_mm == (10.0, -50.0, 20.0)
    assert s.timeline[1].instrument_name == "grasper"
    assert s.fixations == [Fixation(region="ligament")]


def test_settle_s_defaults_to_starting_from_the_rest_mesh():
    assert loads(GOOD).settle_s == 0.0
    assert loads("settle_s = 0.5\n" + GOOD).settle_s == 0.5


def _err(text: str) -> str:
    with pytest.raises(ScenarioError) as ei:
        loads(text)
    return str(ei.value)


@pytest.mark.parametrize("text, key, words", [
    # unknown key -> the allowed keys are listed
    ('nmae = "x"', "nmae", ["unknown key", "allowed keys", "name", "timeline"]),
    ('[organ]\nshiped = "liver"', "organ.shiped", ["unknown key", "shipped, path, units"]),
    ('[[timeline]]\nt = 0.1\naction = "grasp"\nposition = [0, 0, 0]', "timeline[0].position",
     ["unknown key", "'grasp'", "at_mm"]),
    # wrong type
    ('duration_s = "long"', "duration_s", ["expected a number", "allowed"]),
    ('[[timeline]]\nt = 0.1\naction = "grasp"\nat_mm = [0, 0]', "timeline[0].at_mm",
     ["3 numbers", "[x, y, z]"]),
    ('[output]\nseries = "yes"', "output.series", ["true or false"]),
    ('[output]\nevery = 1.5', "output.every", ["integer"]),
    # out of range
    ("dt_s = 5.0", "dt_s", ["out of range", "allowed: 1e-05 to 0.1"]),
    ('[materials.parenchyma]\nnu = 0.7', "materials.parenchyma.nu", ["out of range", "0 to 0.4999"]),
    ("settle_s = -1.0", "settle_s", ["out of range", "allowed: 0 to 60"]),
    ('duration_s = 1.0\n[[timeline]]\nt = 2.0\naction = "release"', "timeline[0].t",
     ["after the end", "allowed: 0 to 1 s"]),
    # unknown tissue / model / action / shipped organ
    ('[materials.parenchyma]\ntissue = "livr"', "materials.parenchyma.tissue",
     ["unknown value 'livr'", "liver", "kidney"]),
    ('[materials.parenchyma]\nmodel = "hooke"', "materials.parenchyma.model", ["neo_hookean"]),
    ('[[timeline]]\nt = 0.1\naction = "stab"', "timeline[0].action", ["allowed", "grasp", "resect"]),
    ('[organ]\nshipped = "spleen"', "organ.shipped", ["liver, kidney, block"]),
    # missing / inconsistent
    ('[[timeline]]\nt = 0.1\naction = "cut"\npath_mm = [[0,0,0],[1,0,0]]', "timeline[0].depth_mm",
     ["missing", "depth_mm", "duration_s"]),
    ("[[fixations]]\nbox_min_mm = [0, 0, 0]", "fixations[0]", ["both box_min_mm and box_max_mm"]),
    ("[[fixations]]\nbox_min_mm = [0, 0, 0]\nbox_max_mm = [1, -1, 1]", "fixations[0].box_max_mm",
     ["must exceed"]),
    ('[organ]\nshipped = "liver"\npath = "x.vtu"', "organ", ["exactly one of shipped or path"]),
    ('[[timeline]]\nt = 0.5\naction = "release"\n[[timeline]]\nt = 0.1\naction = "release"',
     "timeline[1].t", ["time order"]),
    ("duration_s = nan", "duration_s", ["finite"]),
    ("name = ", "scenario", ["not valid TOML", "line"]),
])
def test_each_mistake_names_key_problem_and_allowed(text, key, words):
    msg = _err(text)
    assert f"{key}:" in msg or f"{key} " in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_camera_names_match_the_viewer_presets():
    from organsim.scenario.schema import CAMERAS
    from organsim.viewer.scene import CAMERA_PRESETS

    assert set(CAMERAS) == set(CAMERA_PRESETS)
    assert "allowed: anterior" in _err('[output]\ncamera = "top"')


def test_unknown_region_checked_against_the_mesh():
    s = loads(GOOD + '\n[[timeline]]\nt = 0.9\naction = "resect"\nregion = "tumor"\nmargin_mm = 5.0\n')
    names = {"parenchyma", "tumour", "vessel", "ligament"}
    with pytest.raises(ScenarioError, match=r"timeline\[2\].region: unknown region 'tumor'.*tumour"):
        check_regions(s, names)
    s.timeline.pop()
    check_regions(s, names)
    s.materials["liver_lobe"] = Material()
    with pytest.raises(ScenarioError, match=r"materials.liver_lobe: unknown region"):
        check_regions(s, names)


def test_files_and_relative_organ_path(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.toml")
    s = Scenario(name="file", organ=Organ(shipped=None, path="organ.vtu", units="mm"))
    p = save_scenario(s, tmp_path / "s.toml")
    back = load_scenario(p)
    assert back.organ.path == str((tmp_path / "organ.vtu").resolve())


# ------------------------------------------------------------------ round trip
finite = st.floats(min_value=-500.0, max_value=500.0, allow_nan=False, allow_infinity=False)
points = st.tuples(finite, finite, finite)
names = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")),
                max_size=20)


@st.composite
def actions(draw, t):
    kind = draw(st.sampled_from(list(ACTION_KEYS)))
    a = Action(t=t, action=kind)
    for key, required in ACTION_KEYS[kind].items():
        if not required and draw(st.booleans()):
            continue
        if key == "instrument":
            a.instrument = draw(st.sampled_from(["left", "right", "grasper 2"]))
        elif key == "at_mm":
            a.at_mm = draw(points)
        elif key == "path_mm":
            a.path_mm = tuple(draw(st.lists(points, min_size=2, max_size=5)))
        elif key == "direction":
            a.direction = draw(points.filter(lambda p: any(c != 0 for c in p)))
        elif key == "region":
            a.region = draw(st.sampled_from(["tumour", "vessel"]))
        elif key == "times_s":
            # when each point is reached: non-decreasing, the last at most duration_s
            fr = sorted(draw(st.lists(st.floats(min_value=0.0, max_value=1.0),
                                      min_size=len(a.path_mm), max_size=len(a.path_mm))))
            a.times_s = tuple(f * a.duration_s for f in fr)
        else:
            lo, hi = {"duration_s": (0.01, 10.0), "radius_mm": (0.1, 50.0),
                      "depth_mm": (0.0, 200.0), "distance_mm": (0.0, 300.0),
                      "margin_mm": (0.0, 50.0), "width_mm": (1.0, 100.0)}[key]
            setattr(a, key, draw(st.floats(min_value=lo, max_value=hi)))
    return a


@st.composite
def scenarios(draw):
    duration = draw(st.floats(min_value=0.1, max_value=100.0))
    times = sorted(draw(st.lists(st.floats(min_value=0.0, max_value=duration), max_size=6)))
    organ = draw(st.one_of(st.builds(Organ, shipped=st.sampled_from(["liver", "kidney", "block"]),
                                     path=st.none(), units=st.sampled_from(["mm", "m"])),
                           st.builds(Organ, shipped=st.none(), path=st.just("/data/organ.vtu"),
                                     units=st.sampled_from(["mm", "cm", "m"]))))
    mats = draw(st.dictionaries(st.sampled_from(["default", "parenchyma", "tumour", "vessel"]),
                                st.builds(Material, tissue=st.sampled_from(["liver", "tumour", "kidney"]),
                                          model=st.sampled_from(["neo_hookean", "corotational"]),
                                          nu=st.floats(min_value=0.0, max_value=0.49),
                                          E_pa=st.none() | st.floats(min_value=1.0, max_value=1e6),
                                          density=st.none() | st.floats(min_value=500.0, max_value=2000.0)),
                                min_size=1, max_size=3))
    lo = draw(points)
    fix = draw(st.lists(st.one_of(
        st.builds(Fixation, region=st.sampled_from(["ligament", "vessel"])),
        st.just(Fixation(box_min_mm=lo, box_max_mm=tuple(c + 1.0 for c in lo)))), max_size=3))
    return Scenario(
        name=draw(names), description=draw(names), organ=organ, materials=mats, fixations=fix,
        gravity=draw(points), settle_s=draw(st.floats(min_value=0.0, max_value=60.0)), duration_s=duration,
        dt_s=draw(st.floats(min_value=1e-5, max_value=min(0.1, duration))),
        integrator=draw(st.sampled_from(["backward_euler", "realtime"])),
        damping_mass=draw(st.floats(min_value=0.0, max_value=10.0)),
        damping_stiffness=draw(st.floats(min_value=0.0, max_value=1.0)),
        timeline=[draw(actions(t)) for t in times],
        scoring=Scoring(safe_force_n=draw(st.floats(min_value=0.0, max_value=100.0)),
                        planned_cut_mm=draw(st.none() | st.lists(points, min_size=2, max_size=4).map(tuple)),
                        target_time_s=draw(st.none() | st.floats(min_value=0.0, max_value=100.0))),
        output=Output(series=draw(st.booleans()), every=draw(st.integers(1, 50)),
                      report=draw(st.booleans()),
                      video=draw(st.none() | st.sampled_from(["run.mp4", "run.gif"])),
                      fps=draw(st.integers(1, 60)),
                      camera=draw(st.sampled_from(["surgeon", "anterior", "demo"]))),
    )


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_toml_round_trip_is_exact(s):
    text = dumps(s)
    back = loads(text)
    assert back == s
    assert dumps(back) == text
