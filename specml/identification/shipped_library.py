"""Predicted spectra that ship with specml: read-only, compact, with their provenance.

Each file under ``specml/data/library/`` (gzip-compressed JSON) holds the harmonic sticks of
one method for many molecules: optimised geometry, frequencies (cm-1) and IR intensities
(km/mol), the seconds each took, and the provenance of the whole set (method and settings,
program versions, specml commit, date). :class:`specml.identification.SpectralLibrary`
consults them after its own SQLite cache, so a shipped entry is never recomputed, and a build
that is interrupted and restarted on a fresh clone resumes from what was shipped.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from specml.errors import InputError
from specml.identification.compact_json import read_tagged_json, write_tagged_json

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "library"
FORMAT = "specml-library/1"


@functools.lru_cache(maxsize=4)
def shipped_entries(directory: Path = SHIPPED_DIR) -> dict:
    """``{entry key: LibraryEntry}`` of every shipped file in ``directory`` (read once per process),
    with the second derivatives of its companion file attached where there is one
    (:mod:`specml.identification.shipped_derivatives`; it lies in a subdirectory, out of this glob)."""
    from specml.identification.shipped_derivatives import attach_derivatives, companion_path

    entries = {}
    for path in sorted(Path(directory).glob("*.json.gz")):
        found = read_library_file(path)
        if companion_path(path).is_file():
            found = attach_derivatives(found, companion_path(path))
        for entry in found:
            entries[entry.key] = entry
    return entries


def read_library_file(path: str | Path) -> list:
    """The entries of one shipped library file."""
    from specml.identification.library import LibraryEntry

    data = read_tagged_json(path, FORMAT, "specml library file")
    method, settings = data["provenance"]["method"], data["provenance"]["settings"]
    return [
        LibraryEntry(
            row["smiles"],
            method,
            settings,
            "ok",
            np.asarray(row["frequencies_cm1"], float),
            np.asarray(row["intensities_km_mol"], float),
            "sticks",
            None,
            row["xyz"],
            row["seconds"],
        )
        for row in data["entries"]
    ]


def write_library_file(path: str | Path, entries: list, provenance: dict) -> Path:
    """Write the successful harmonic ``entries`` of one method (sorted by SMILES) atomically.

    ``provenance`` describes the set (program versions, commit, date, protocol); the method name
    and settings are taken from the entries, which must all share them.
    """
    good = sorted((e for e in entries if e.ok and e.kind == "sticks"), key=lambda e: e.smiles)
    if not good:
        raise InputError("no successful harmonic entries to write")
    methods = {(e.method, json.dumps(e.settings, sort_keys=True)) for e in good}
    if len(methods) != 1:
        raise InputError(f"a library file holds one method; got {len(methods)}")
    rows = [
        {
            "smiles": e.smiles,
            "frequencies_cm1": np.round(e.x, 2).tolist(),
            "intensities_km_mol": np.round(e.y, 3).tolist(),
            "xyz": e.xyz,
            "seconds": None if e.seconds is None else round(float(e.seconds), 1),
        }
        for e in good
    ]
    data = {
        "format": FORMAT,
        "provenance": {
            **provenance,
            "method": good[0].method,
            "settings": good[0].settings,
            "n_entries": len(rows),
        },
        "entries": rows,
    }
    write_tagged_json(path, data)
    shipped_entries.cache_clear()
    return Path(path)
