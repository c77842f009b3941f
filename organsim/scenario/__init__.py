"""organsim.scenario: procedures as TOML scenarios, their runs, metrics and reports.

>>> from organsim.scenario import load_scenario, run          # doctest: +SKIP
>>> results = run(load_scenario("examples/scenarios/retraction.toml"), "out")  # doctest: +SKIP
"""

from .history import TrainingHistory
from .loader import dumps, load_scenario, loads, save_scenario
from .metrics import SCORE_WEIGHTS, MetricsRecorder, composite_score, cut_deviation
from .schema import (
    Action, Fixation, Material, Organ, Output, Scenario, Scoring, check_regions,
)

__all__ = [
    "Scenario", "Organ", "Material", "Fixation", "Action", "Scoring", "Output",
    "load_scenario", "save_scenario", "loads", "dumps", "check_regions",
    "run", "Procedure", "Results", "write_results",
    "MetricsRecorder", "composite_score", "cut_deviation", "SCORE_WEIGHTS", "TrainingHistory",
]


def __getattr__(name):  # the runner pulls in the solver: import it on first use
    if name in ("run", "Results", "write_results"):
        from . import runner

        return getattr(runner, name)
    if name == "Procedure":
        from .procedure import Procedure

        return Procedure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
