"""Skills-lab exercises for live attempts: ``organsim view EXERCISE --trainee NAME``.

Each exercise is a scenario whose timeline only sets the task up (a grasper
that keeps the tissue under tension, say); the trainee does the rest with the
mouse, and the attempt is scored with the scenario's metrics like any run.

``pattern-cutting``
    The pattern-cutting task of laparoscopic skills curricula (FLS): a thin
    gauze-like sheet (100 x 100 x 3 mm) held at its four edges, a marked
    circle of 25 mm radius with a 2 mm band either side, and a grasper that
    lifts the centre of the sheet to keep it under tension. Cut along the
    circle with the cut tool. Scored by time, mean deviation from the line
    and the length and area of the cut outside the band.
``retraction``
    A force task on the shipped liver: grasp the anterior edge of the right
    lobe and lift the marked point 20 mm (superiorly) to expose what lies
    under it, without pulling harder than the safe 3 N. Scored by time,
    whether and when the target was exposed, the force above the safe limit
    and the tissue stressed past damage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import OrganSimError
from .schema import Action, Fixation, Material, Organ, Output, Scenario, Scoring

__all__ = ["EXERCISES", "exercise", "exercise_names", "resolve_scenario"]


def _circle_mm(radius_mm: float, n: int = 48, z_mm: float = 0.0) -> tuple:
    a = np.linspace(0.0, 2 * np.pi, n + 1)
    return tuple((float(radius_mm * np.cos(t)), float(radius_mm * np.sin(t)), z_mm) for t in a)


def pattern_cutting() -> Scenario:
    """The gauze pattern-cutting exercise (see the module docstring)."""
    edge = 5.0
    return Scenario(
        name="pattern cutting (gauze)",
        description=("Pattern cutting on a gauze-like sheet (100 x 100 x 3 mm) held at its edges: "
                     "cut along the marked circle (25 mm radius; stay inside the 2 mm band) while "
                     "the grasper keeps the sheet under tension. Switch to the cut tool, drag "
                     "along the circle, and end the attempt when done."),
        organ=Organ(shipped="gauze"),
        materials={"default": Material(tissue="skin", model="corotational")},
        fixations=[Fixation(box_min_mm=(-51.0, -51.0, -4.0), box_max_mm=(-50.0 + edge, 51.0, 1.0)),
                   Fixation(box_min_mm=(50.0 - edge, -51.0, -4.0), box_max_mm=(51.0, 51.0, 1.0)),
                   Fixation(box_min_mm=(-51.0, -51.0, -4.0), box_max_mm=(51.0, -50.0 + edge, 1.0)),
                   Fixation(box_min_mm=(-51.0, 50.0 - edge, -4.0), box_max_mm=(51.0, 51.0, 1.0))],
        gravity=(0.0, 0.0, -9.81), settle_s=0.0,
        duration_s=60.0, dt_s=0.04, integrator="realtime", damping_mass=2.0, damping_stiffness=0.01,
        timeline=[Action(t=0.0, action="grasp", instrument="tension grasper", at_mm=(0.0, 0.0, 0.0),
                         radius_mm=5.0),
                  Action(t=0.0, action="pull", instrument="tension grasper",
                         path_mm=((0.0, 0.0, 6.0),), duration_s=0.5)],
        scoring=Scoring(planned_cut_mm=_circle_mm(25.0), cut_tolerance_mm=2.0, target_time_s=30.0,
                        safe_force_n=3.0, damage_stress_pa=200e3),
        output=Output(series=False, camera="superior"),
    )


def retraction() -> Scenario:
    """The liver retraction (force) exercise (see the module docstring)."""
    from .demos import demo_scenario

    demo = demo_scenario()
    return Scenario(
        name="retraction (liver)",
        description=("Grasp the anterior edge of the right lobe and lift the marked point 20 mm to "
                     "expose what lies under it; keep the force under 3 N. End the attempt when done."),
        organ=Organ(shipped="liver"), materials=demo.materials, fixations=demo.fixations,
        gravity=demo.gravity, settle_s=demo.settle_s, duration_s=60.0, dt_s=demo.dt_s,
        integrator=demo.integrator, damping_mass=demo.damping_mass,
        damping_stiffness=demo.damping_stiffness, timeline=[],
        scoring=Scoring(safe_force_n=3.0, damage_stress_pa=demo.scoring.damage_stress_pa,
                        target_time_s=10.0, expose_at_mm=(-92.0, -53.0, 33.0), expose_lift_mm=20.0,
                        expose_direction=(0.0, 0.0, 1.0)),
        output=Output(series=False, camera="surgeon"),
    )


#: Exercise name -> scenario builder.
EXERCISES = {"pattern-cutting": pattern_cutting, "retraction": retraction}


def exercise_names() -> list[str]:
    """Names of the built-in exercises.

    Examples
    --------
    >>> exercise_names()
    ['pattern-cutting', 'retraction']
    """
    return sorted(EXERCISES)


def exercise(name: str) -> Scenario:
    """The scenario of a built-in exercise."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if key not in EXERCISES:
        raise OrganSimError(f"no exercise named {name!r}; expected one of {', '.join(exercise_names())}"
                            " or a scenario .toml file")
    return EXERCISES[key]()


def resolve_scenario(arg: str | Path) -> Scenario:
    """A scenario from a TOML path or an exercise name (what ``organsim view`` accepts)."""
    p = Path(arg)
    if p.suffix.lower() == ".toml":
        from .loader import load_scenario

        return load_scenario(p)
    return exercise(str(arg))
