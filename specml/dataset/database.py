"""Labelled structures in an ASE database, with provenance.

Every structure that was sent to the reference method gets exactly one row,
keyed by a unique ``key`` string: successful labels (energy, forces, dipole)
and failures alike (``status="failed"`` with the error), so an interrupted run
neither loses nor duplicates a label and failures are not retried forever.
SQLite by default; a ``postgresql://`` URL works too (ASE's backends).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from specml.models.data import DIPOLE_KEY, ENERGY_KEY, FORCES_KEY
from specml.molecules.inputs import bare_copy

#: Provenance columns stored as ASE key-value pairs (simple types only).
PROVENANCE_KEYS = ("molecule", "iteration", "kind", "temperature", "uncertainty", "reference")
#: Decimals kept of coordinates (Å) and forces (eV/Å): extended XYZ's fixed 8, so a database
#: restored from label files (:mod:`specml.dataset.label_files`) holds the same bits, and a
#: training snapshot of the original data resumes on the restored data (same data fingerprint).
LABEL_DECIMALS = 8


class LabelDatabase:
    """A thin layer over :func:`ase.db.connect` with specml's row conventions."""

    def __init__(self, location: str | Path):
        self.location = str(location)
        if "://" not in self.location:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
        # No ASE lock file: a process killed while holding it (SIGKILL) leaves it behind and
        # every later writer waits forever. SQLite and PostgreSQL lock by themselves, and
        # the kernel releases SQLite's locks when a process dies.
        self._db = connect(
            self.location, type="db" if "://" not in self.location else "postgresql", use_lock_file=False
        )

    def keys(self) -> set[str]:
        """Keys of every row, labelled or failed."""
        return {row.key for row in self._db.select(columns=["key_value_pairs"]) if "key" in row}

    def __contains__(self, key: str) -> bool:
        return self._db.count(key=key) > 0

    def count(self, **selection) -> int:
        return self._db.count(**selection)

    def rows(self, **selection):
        """The ASE database rows (labelled and failed) matching ``selection``."""
        return self._db.select(**selection)

    def add_label(
        self,
        key: str,
        atoms: Atoms,
        energy: float,
        forces: np.ndarray,
        dipole: np.ndarray,
        provenance: dict,
        reference_settings: dict,
    ) -> None:
        """Store one successful label (a no-op if ``key`` is already present); coordinates and
        forces are rounded to :data:`LABEL_DECIMALS` (5e-9 Å at most: far below any physical effect)."""
        if key in self:
            return
        stored = bare_copy(atoms)
        stored.positions = np.round(stored.positions, LABEL_DECIMALS)
        forces = np.round(np.asarray(forces, dtype=float), LABEL_DECIMALS)
        stored.calc = SinglePointCalculator(stored, energy=energy, forces=forces, dipole=dipole)
        self._db.write(
            stored,
            key=key,
            status="ok",
            **_provenance(provenance),
            data={"reference_settings": json.dumps(reference_settings, default=str)},
        )

    def add_failure(
        self, key: str, atoms: Atoms, error: str, provenance: dict, reference_settings: dict
    ) -> None:
        """Record a structure the reference could not label."""
        if key in self:
            return
        stored = bare_copy(atoms)
        stored.positions = np.round(stored.positions, LABEL_DECIMALS)
        self._db.write(
            stored,
            key=key,
            status="failed",
            error=str(error)[:500],
            **_provenance(provenance),
            data={"reference_settings": json.dumps(reference_settings, default=str)},
        )

    def labelled_atoms(self, exclude_kinds: tuple[str, ...] = ("test",), **selection) -> list[Atoms]:
        """Successful labels as Atoms with ``info['energy']``, ``arrays['forces']``, ``info['dipole']``
        (the training-data convention of :mod:`specml.models.data`), sorted by key.

        Sorted because rows arrive in the order the executor finishes them: in row order,
        the same labels gave another train/validation split and other models on every run."""
        images = []
        for row in sorted(self._db.select(status="ok", **selection), key=lambda r: r.key):
            if row.get("kind") in exclude_kinds:
                continue
            atoms = row.toatoms()
            atoms.info[ENERGY_KEY] = float(row.energy)
            atoms.arrays[FORCES_KEY] = np.array(row.forces)
            atoms.info[DIPOLE_KEY] = np.array(row.dipole)
            atoms.info.update({k: row.get(k) for k in PROVENANCE_KEYS if row.get(k) is not None})
            atoms.info["key"] = row.key
            atoms.calc = None
            images.append(atoms)
        return images

    def summary(self) -> dict:
        """Counts by status and kind."""
        counts: dict = {}
        for row in self._db.select(columns=["key_value_pairs"]):
            name = f"{row.get('status', '?')}:{row.get('kind', '?')}"
            counts[name] = counts.get(name, 0) + 1
        return counts


def _provenance(provenance: dict) -> dict:
    clean = {}
    for key, value in provenance.items():
        if value is None:
            continue
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        clean[key] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value, default=str)
    return clean
