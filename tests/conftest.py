"""Shared test fixtures."""

import os
from pathlib import Path

# One OpenMP/torch thread per process, set before torch is imported: on a shared 2-core
# machine a 2-thread training step measured 12-15x slower than a 1-thread one.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared reference data (``../shared`` from the repo root)."""
    if not SHARED_DIR.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DIR}")
    return SHARED_DIR
