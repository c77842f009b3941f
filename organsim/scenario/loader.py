"""Read and write scenario files (TOML).

>>> from organsim.scenario.schema import Scenario
>>> s = Scenario(name="demo")
>>> loads(dumps(s)) == s
True
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import ScenarioError
from .schema import Scenario, scenario_from_dict, scenario_to_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["load_scenario", "save_scenario", "loads", "dumps"]


def loads(text: str, *, source: str = "scenario") -> Scenario:
    """Parse and validate scenario TOML text.

    Raises
    ------
    ScenarioError
        On a TOML syntax error (with the line) or an invalid key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML ({exc}); fix the syntax at that line") from None
    try:
        return scenario_from_dict(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


def dumps(scenario: Scenario) -> str:
    """The scenario as TOML text."""
    import tomli_w

    return tomli_w.dumps(scenario_to_dict(scenario))


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read a scenario file; a relative ``organ.path`` is resolved against the file's folder.

    Examples
    --------
    >>> s = load_scenario("examples/scenarios/retraction.toml")   # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise ScenarioError(f"{p}: no such scenario file; give the path of a .toml scenario "
                            "(see examples/scenarios/)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{p}: not a text file; a scenario is a UTF-8 TOML file") from None
    s = loads(text, source=str(p))
    if s.organ.path is not None and not Path(s.organ.path).is_absolute():
        s.organ.path = str((p.parent / s.organ.path).resolve())
    return s


def save_scenario(scenario: Scenario, path: str | os.PathLike) -> Path:
    """Write a scenario as TOML (atomically: a temporary file, then a rename)."""
    p = Path(path)
    text = dumps(scenario)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p
