"""Where the shared XAS data lives for the tests (skipped when it is not there), and small test structures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ase import Atoms

XAS_DATA = Path(
    os.environ.get("SPECML_XAS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "xas")
)

needs_xas_data = pytest.mark.skipif(
    not (XAS_DATA / "cu_kedge_feff" / "spectra.npz").is_file(), reason=f"XAS data not found at {XAS_DATA}"
)


def cuprite_cell(a: float = 4.27) -> Atoms:
    """Cu2O (lattice constant ``a`` in Å): each Cu(I) is linear between two O at a*sqrt(3)/4 = 1.85 Å."""
    return Atoms(
        "O2Cu4",
        scaled_positions=[
            [0, 0, 0],
            [0.5, 0.5, 0.5],
            [0.25, 0.25, 0.25],
            [0.75, 0.75, 0.25],
            [0.75, 0.25, 0.75],
            [0.25, 0.75, 0.75],
        ],
        cell=[a, a, a],
        pbc=True,
    )
