"""Built-in scenarios: the one-command demo, defined in Python.

``examples/scenarios/demo_liver.toml`` is this scenario saved to TOML
(a test checks they agree).
"""

from __future__ import annotations

from .schema import Action, Fixation, Material, Organ, Output, Scenario, Scoring

__all__ = ["demo_scenario"]


def demo_scenario() -> Scenario:
    """The demo: the shipped liver held by its ligament, incised, and the incision retracted open.

    Examples
    --------
    >>> s = demo_scenario()
    >>> [a.action for a in s.timeline]
    ['cut', 'grasp', 'pull']
    """
    return Scenario(
        name="liver demo: hold, incise, retract",
        description=("The shipped liver is held by its ligament and its posterior bare area and "
                     "rests under gravity (it settles before the procedure starts). A scalpel "
                     "makes a 6 cm incision, 20 mm deep, across the anterior surface of the right "
                     "lobe; a grasper then takes the lower lip of the incision and retracts it, "
                     "opening the cut (its faces are drawn in red)."),
        organ=Organ(shipped="liver"),
        materials={"default": Material(tissue="liver", model="corotational"),
                   "tumour": Material(tissue="tumour", model="corotational"),
                   "vessel": Material(tissue="vessel_wall", model="corotational")},
        # the ligament band plus the posterior "bare area" held against the diaphragm: hanging
        # from the thin ligament alone, soft liver tissue inverts elements within 0.1 s. The
        # vessel tree (much stiffer than parenchyma) carries part of the organ's weight: with
        # the vessels as soft as parenchyma, corotational elements at the ligament's edge
        # collapse under gravity.
        fixations=[Fixation(region="ligament"),
                   Fixation(box_min_mm=(-200.0, 52.0, -100.0), box_max_mm=(100.0, 100.0, 200.0))],
        # the imaged shape is taken as unloaded; under gravity the right lobe's inferior edge
        # sags about 2 cm. It settles before t = 0, so the procedure starts from rest.
        gravity=(0.0, 0.0, -9.81),
        settle_s=1.0,
        duration_s=2.4,
        dt_s=0.04,
        # a bounded number of Newton/CG iterations per step: the interactive mode
        integrator="realtime",
        damping_mass=2.0,
        damping_stiffness=0.01,
        timeline=[
            Action(t=0.0, action="cut", instrument="scalpel",
                   path_mm=((-120.0, -45.0, 45.0), (-92.0, -54.0, 46.0), (-65.0, -50.0, 45.0)),
                   depth_mm=20.0, duration_s=1.0),
            Action(t=1.1, action="grasp", instrument="grasper", at_mm=(-92.0, -53.0, 33.0),
                   radius_mm=8.0),
            # the hand moves 15 mm anterior and 7 mm down from where it took the (sagged) lip (the
            # lip's own weight already opens the cut; pulled further down, the tets at the
            # bottom of the incision flatten)
            Action(t=1.2, action="pull", instrument="grasper", path_mm=((-92.0, -65.0, 10.0),),
                   duration_s=0.8),
        ],
        scoring=Scoring(safe_force_n=3.0, damage_stress_pa=20e3, cut_tolerance_mm=2.0),
        output=Output(series=True, every=2, report=True, fps=25, camera="demo"),
    )
