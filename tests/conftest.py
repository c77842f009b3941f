"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")

# CI runs the property tests on a fixed seed, so a submission's result does not depend
# on which random examples one run happened to draw; locally they explore new examples.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
#: Real imaging-derived organ data, beside the checkout; never copied into the repo.
ORGANS_DIR = Path(os.environ.get("ORGANSIM_ORGANS_DIR", REPO.parent / "shared" / "data" / "organs"))
BENCH_DIR = REPO.parent / "shared" / "data" / "bench"


@pytest.fixture(scope="session")
def organs_dir() -> Path:
    """The shared real-data folder; skips the test where it is absent."""
    if not ORGANS_DIR.is_dir():
        pytest.skip(f"real organ data not found at {ORGANS_DIR}")
    return ORGANS_DIR


def organ_file(name: str) -> Path:
    """Path of one shared organ file; skips the test where it is absent."""
    p = ORGANS_DIR / name
    if not p.exists():
        pytest.skip(f"real organ data file not found: {p}")
    return p
