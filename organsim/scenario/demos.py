"""Built-in scenarios: the one-command demo, defined in Python.

``examples/scenarios/demo_liver.toml`` is this scenario saved to TOML
(a test checks they agree).
"""

from __future__ import annotations

from .schema import Action, Fixation, Material, Organ, Output, Scenario, Scoring

__all__ = ["demo_scenario"]


def demo_scenario() -> Scenario:
    """The demo: the shipped liver held by its ligament, retracted by a grasper, then incised.

    Examples
    --------
    >>> s = demo_scenario()
    >>> [a.action for a in s.timeline]
    ['grasp', 'pull', 'cut']
    """
    return Scenario(
        name="liver demo: hold, retract, incise",
        description=("The shipped liver hangs from its ligament under gravity. A grasper takes the "
                     "inferior edge of the right lobe and retracts it anteriorly and upwards; a "
                     "scalpel then makes a 5 cm incision, 15 mm deep, across the anterior surface "
                     "of the left lobe."),
        organ=Organ(shipped="liver"),
        materials={"default": Material(tissue="liver", model="corotational"),
                   "tumour": Material(tissue="tumour", model="corotational"),
                   "vessel": Material(tissue="vessel_wall", model="corotational")},
        fixations=[Fixation(region="ligament")],
        gravity=(0.0, 0.0, -9.81),
        duration_s=2.4,
        dt_s=0.04,
        # a bounded number of Newton/CG iterations per step: the interactive mode
        integrator="realtime",
        damping_mass=2.0,
        damping_stiffness=0.01,
        timeline=[
            Action(t=0.0, action="grasp", instrument="grasper", at_mm=(-100.0, -48.0, 5.0),
                   radius_mm=9.0),
            Action(t=0.1, action="pull", instrument="grasper", path_mm=((-100.0, -75.0, 30.0),),
                   duration_s=0.8),
            Action(t=1.0, action="cut", instrument="scalpel",
                   path_mm=((-45.0, -50.0, 55.0), (5.0, -48.0, 55.0)), depth_mm=15.0,
                   duration_s=1.2),
        ],
        scoring=Scoring(safe_force_n=3.0, damage_stress_pa=20e3, cut_tolerance_mm=2.0),
        output=Output(series=True, every=2, report=True, fps=25),
    )
