"""Per-conformer checkpoints of a conformer average: an interrupted average resumes per conformer.

With DFT, one conformer's optimisation and Hessian take minutes to an hour, and a flexible
molecule has several. :func:`specml.spectra.harmonic.conformer_averaged_harmonic` therefore
stores each expensive result as soon as it exists, one JSON file per conformer and stage in a
directory of its own:

- ``optimised_<i>.json``: the start structure of conformer ``i`` (positions in Å), its optimised
  positions and the reference energy there (eV);
- ``analysed_<i>.json``: the optimised positions and the second derivatives
  (:class:`~specml.spectra.second_derivatives.SecondDerivatives`, compact encoding).

A stored optimisation is used only for a start structure within :data:`SAME_START_A` of its own
(the cheap screen's minima may differ in the last digits between machines; distinct conformers
differ by more than 0.1 Å), and a stored analysis only for its very geometry; anything else is
recomputed, not reused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from specml.spectra.second_derivatives import SecondDerivatives

#: Largest coordinate difference (Å) for which a stored optimisation belongs to a start structure.
SAME_START_A = 1e-2
#: ... and for which stored second derivatives belong to a geometry (the stored optimised one).
SAME_GEOMETRY_A = 1e-8


def _same_positions(stored, atoms: Atoms, tolerance_A: float) -> bool:
    positions = np.asarray(stored, dtype=float)
    return positions.shape == atoms.positions.shape and bool(
        np.abs(positions - atoms.positions).max() <= tolerance_A
    )


class ConformerCheckpoint:
    """The stored optimisations and harmonic analyses of one molecule's conformers in ``directory``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def _read(self, name: str) -> dict | None:
        path = self.directory / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:  # a file cut short by a kill: recompute it
            return None

    def _write(self, name: str, record: dict) -> None:
        from specml.workflow.state import atomic_write_json

        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.directory / name, record)

    def optimised(self, index: int, start: Atoms) -> tuple[Atoms, float] | None:
        """The stored minimum (structure, energy in eV) of conformer ``index`` if it started at ``start``."""
        record = self._read(f"optimised_{index}.json")
        if record is None or not _same_positions(record["start_angstrom"], start, SAME_START_A):
            return None
        relaxed = start.copy()  # masses (isotopes) and info come with the start structure
        relaxed.positions = np.asarray(record["optimised_angstrom"], dtype=float)
        return relaxed, float(record["energy_eV"])

    def save_optimised(self, index: int, start: Atoms, relaxed: Atoms, energy_eV: float) -> None:
        self._write(
            f"optimised_{index}.json",
            {
                "start_angstrom": start.positions.tolist(),
                "optimised_angstrom": relaxed.positions.tolist(),
                "energy_eV": float(energy_eV),
            },
        )

    def analysed(self, index: int, atoms: Atoms) -> SecondDerivatives | None:
        """The stored second derivatives of conformer ``index`` if they belong to ``atoms``."""
        record = self._read(f"analysed_{index}.json")
        if record is None or not _same_positions(record["positions_angstrom"], atoms, SAME_GEOMETRY_A):
            return None
        return SecondDerivatives.from_json(record, len(atoms))

    def save_analysed(self, index: int, atoms: Atoms, derivatives: SecondDerivatives) -> None:
        # Positions at full precision: a rerun compares them with the stored optimised structure.
        self._write(
            f"analysed_{index}.json",
            {"positions_angstrom": atoms.positions.tolist(), **derivatives.to_json()},
        )
