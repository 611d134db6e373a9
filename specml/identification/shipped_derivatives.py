"""Second derivatives of shipped library molecules, in a companion file next to the spectra.

``specml/data/library/derivatives/<method>.json.gz`` holds, per canonical SMILES, the Hessian
(eV/Å^2) and dipole derivatives (e) that gave the shipped sticks, with the geometry (xyz, Å) they
belong to. They let a frequency model that rescales force constants (the C-Cl correction of
:mod:`specml.identification.ccl`) be applied to shipped spectra without recomputing them. The
spectra file is written by a build as entries land, so the derivatives live apart from it; on
load each record's geometry must match the shipped entry's, or the file is refused: derivatives
of another geometry would silently give wrong frequencies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specml.errors import InputError
from specml.identification.compact_json import read_tagged_json, write_tagged_json
from specml.spectra.second_derivatives import SecondDerivatives

FORMAT = "specml-library-derivatives/1"
SUBDIRECTORY = "derivatives"  # below the shipped spectra; their "*.json.gz" glob does not descend
GEOMETRY_TOLERANCE_ANGSTROM = 1e-5  # the xyz text has 1e-6 Å
UNITS = {"hessian": "eV/Å^2 (upper triangle, row-major)", "dipole_derivatives": "e", "xyz": "Å"}


def companion_path(library_file: str | Path) -> Path:
    """The derivatives file that belongs to the shipped spectra file ``library_file``."""
    library_file = Path(library_file)
    return library_file.parent / SUBDIRECTORY / library_file.name


def xyz_geometry(xyz: str) -> tuple[list[str], np.ndarray]:
    """Symbols and positions (Å, (N, 3)) of an xyz text (count line, comment line, atoms)."""
    lines = xyz.strip().splitlines()[2:]
    symbols = [line.split()[0] for line in lines]
    positions = np.array([[float(v) for v in line.split()[1:4]] for line in lines]).reshape(-1, 3)
    return symbols, positions


def geometry_mismatch(xyz_a: str, xyz_b: str) -> str | None:
    """Why two xyz geometries differ (other atoms, or a position off by more than the tolerance), or None."""
    symbols_a, positions_a = xyz_geometry(xyz_a)
    symbols_b, positions_b = xyz_geometry(xyz_b)
    if symbols_a != symbols_b:
        return f"atoms {symbols_a} vs {symbols_b}"
    deviation = float(np.max(np.abs(positions_a - positions_b))) if len(symbols_a) else 0.0
    if deviation > GEOMETRY_TOLERANCE_ANGSTROM:
        return f"positions differ by up to {deviation:.2g} Å"
    return None


def read_derivatives_file(path: str | Path) -> dict[str, tuple[str, SecondDerivatives]]:
    """``{canonical SMILES: (xyz, SecondDerivatives)}`` of one companion file."""
    data = _load(path)
    records = {}
    for smiles, row in data["entries"].items():
        n_atoms = len(xyz_geometry(row["xyz"])[0])
        try:
            records[smiles] = (row["xyz"], SecondDerivatives.from_json(row, n_atoms))
        except InputError as exc:
            raise InputError(f"{path}: {smiles}: {exc}") from exc
    return records


def read_provenance(path: str | Path) -> dict:
    return _load(path)["provenance"]


def _load(path: str | Path) -> dict:
    return read_tagged_json(path, FORMAT, "specml derivatives file")


def write_derivatives_file(
    path: str | Path, records: dict[str, tuple[str, SecondDerivatives]], provenance: dict
) -> Path:
    """Write ``{canonical SMILES: (xyz, SecondDerivatives)}`` atomically, sorted by SMILES."""
    entries = {
        smiles: {"xyz": xyz, **derivatives.to_json()}
        for smiles, (xyz, derivatives) in sorted(records.items())
    }
    data = {"format": FORMAT, "provenance": {**provenance, "n_entries": len(entries)}, "entries": entries}
    return write_tagged_json(path, data)


def merge_into_derivatives_file(
    path: str | Path, records: dict[str, tuple[str, SecondDerivatives]], provenance: dict, source: str
) -> list[str]:
    """Add ``records`` to the companion file at ``path`` (created if missing): a molecule already
    there at the same geometry is kept as it is, one at another geometry is replaced. Each added
    molecule's ``source`` is recorded under ``provenance["sources"]``. Returns the SMILES added."""
    path = Path(path)
    existing = read_derivatives_file(path) if path.is_file() else {}
    sources = read_provenance(path).get("sources", {}) if path.is_file() else {}
    added = [
        smiles
        for smiles, (xyz, _) in records.items()
        if smiles not in existing or geometry_mismatch(existing[smiles][0], xyz) is not None
    ]
    if added:
        merged = {**existing, **{smiles: records[smiles] for smiles in added}}
        sources = {**sources, **dict.fromkeys(added, source)}
        write_derivatives_file(path, merged, {**provenance, "sources": sources})
    return added


def attach_derivatives(entries: list, path: str | Path) -> list:
    """``entries`` (shipped :class:`~specml.identification.library.LibraryEntry`) with the second
    derivatives of ``path`` attached. A record for a molecule that is not among ``entries`` is
    ignored; one whose geometry disagrees with its entry's raises :class:`InputError`."""
    from dataclasses import replace

    records = read_derivatives_file(path)
    attached = []
    for entry in entries:
        record = records.get(entry.smiles)
        if record is None:
            attached.append(entry)
            continue
        xyz, derivatives = record
        mismatch = geometry_mismatch(xyz, entry.xyz or "")
        if mismatch:
            raise InputError(
                f"{path}: the second derivatives of {entry.smiles} belong to another geometry than the "
                f"shipped spectrum ({mismatch}); recompute them (benchmarks/library_derivatives.py)"
            )
        attached.append(replace(entry, second_derivatives=derivatives))
    return attached
