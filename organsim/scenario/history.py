"""A trainee's history across attempts: a learning curve in a local SQLite file.

>>> h = TrainingHistory(":memory:")
>>> _ = h.add("ana", "pattern_cutting", score=52.0, metrics={"procedure_time_s": 80.0})
>>> _ = h.add("ana", "pattern_cutting", score=81.0, metrics={"procedure_time_s": 45.0})
>>> [a.score for a in h.attempts("ana", "pattern_cutting")]
[52.0, 81.0]
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..errors import OrganSimError
from .metrics import PROFICIENCY_CONSECUTIVE

__all__ = ["Attempt", "TrainingHistory", "default_history_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trainee TEXT NOT NULL,
    scenario TEXT NOT NULL,
    started TEXT NOT NULL,
    score REAL NOT NULL,
    proficient INTEGER NOT NULL DEFAULT 0,
    metrics TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_trainee ON attempts (trainee, scenario, id);
"""


def default_history_path() -> Path:
    """``$ORGANSIM_HOME/history.sqlite`` (default ``~/.organsim/history.sqlite``)."""
    home = Path(os.environ.get("ORGANSIM_HOME", Path.home() / ".organsim"))
    return home / "history.sqlite"


@dataclass(frozen=True)
class Attempt:
    """One recorded attempt."""

    number: int
    trainee: str
    scenario: str
    started: str
    score: float
    proficient: bool
    metrics: dict


class TrainingHistory:
    """Attempts of each trainee at each scenario, kept in an SQLite database.

    Parameters
    ----------
    path : str or Path
        Database file (created if missing), or ``":memory:"``.
    """

    def __init__(self, path: str | os.PathLike = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise OrganSimError(f"{self.path}: not a usable training history database ({exc}); "
                                "move it aside and a new one will be created") from None

    def add(self, trainee: str, scenario: str, *, score: float, metrics: dict,
            proficient: bool = False, started: str | None = None) -> Attempt:
        """Record an attempt and return it with its number (1 for the first)."""
        when = started or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with self._db:
            self._db.execute(
                "INSERT INTO attempts (trainee, scenario, started, score, proficient, metrics) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (trainee, scenario, when, float(score), int(bool(proficient)),
                 json.dumps(metrics, default=float)))
        return self.attempts(trainee, scenario)[-1]

    def attempts(self, trainee: str, scenario: str) -> list[Attempt]:
        """All attempts of a trainee at a scenario, oldest first."""
        rows = self._db.execute(
            "SELECT trainee, scenario, started, score, proficient, metrics FROM attempts "
            "WHERE trainee = ? AND scenario = ? ORDER BY id", (trainee, scenario)).fetchall()
        return [Attempt(i + 1, r[0], r[1], r[2], r[3], bool(r[4]), json.loads(r[5]))
                for i, r in enumerate(rows)]

    def learning_curve(self, trainee: str, scenario: str) -> tuple[list[int], list[float]]:
        """Attempt numbers and scores."""
        a = self.attempts(trainee, scenario)
        return [x.number for x in a], [x.score for x in a]

    def proficiency_reached(self, trainee: str, scenario: str,
                            consecutive: int = PROFICIENCY_CONSECUTIVE) -> int | None:
        """Attempt number at which proficiency was first reached (``consecutive``
        proficient attempts in a row), or None."""
        run = 0
        for a in self.attempts(trainee, scenario):
            run = run + 1 if a.proficient else 0
            if run >= consecutive:
                return a.number
        return None

    def trainees(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT trainee FROM attempts ORDER BY trainee")]

    def close(self) -> None:
        self._db.close()
