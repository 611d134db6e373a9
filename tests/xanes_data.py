"""Where the shared XAS data lives for the tests (skipped when it is not there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

XAS_DATA = Path(
    os.environ.get("SPECML_XAS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "xas")
)

needs_xas_data = pytest.mark.skipif(
    not (XAS_DATA / "cu_kedge_feff" / "spectra.npz").is_file(), reason=f"XAS data not found at {XAS_DATA}"
)
