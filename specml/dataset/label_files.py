"""A label database as gzip-compressed extended-XYZ files, and back.

Every row keeps its key, status (``ok`` or ``failed`` with the error), provenance columns
(:data:`~specml.dataset.database.PROVENANCE_KEYS`, the label's fidelity ``reference`` among them),
any other column (a multi-fidelity twin's ``twin_of``) and the reference settings it was computed
with; labels are the standard ASE calculator results (``energy``, ``forces``, ``dipole``), so
any extxyz reader (ASE, ``mace_run_train``) takes the files as they are. Coordinates and forces
carry extxyz's 8 decimals, the precision the database stores them with
(:data:`~specml.dataset.database.LABEL_DECIMALS`), so a round trip is bit for bit; the error text
and the reference settings (JSON) are percent-encoded (extxyz comment lines take no quotes or
line breaks). Files are byte-for-byte reproducible (no time stamp in the gzip header, rows sorted
by key), so an unchanged set of rows rewrites an identical file.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from specml.atomic import atomic_write
from specml.dataset.database import PROVENANCE_KEYS, LabelDatabase
from specml.molecules.inputs import bare_copy

#: Row columns stored in ``atoms.info`` besides the provenance.
_ROW_KEYS = ("key", "status")
#: Columns and ``atoms.info`` entries that are not provenance (encoded apart or ASE's own).
_NOT_PROVENANCE = (*_ROW_KEYS, "error", "reference_settings", "id", "unique_id", "ctime", "mtime", "user")


def _images(database: LabelDatabase, keep: Callable[[dict], bool]) -> list[Atoms]:
    images = []
    for row in sorted(database.rows(), key=lambda r: r.key):
        if not keep(row.key_value_pairs):
            continue
        atoms = bare_copy(row.toatoms())
        atoms.info.update({k: row.get(k) for k in _ROW_KEYS + PROVENANCE_KEYS if row.get(k) is not None})
        pairs = row.key_value_pairs
        atoms.info.update(
            {k: pairs[k] for k in sorted(pairs) if k not in PROVENANCE_KEYS and k not in _NOT_PROVENANCE}
        )
        if row.get("error") is not None:
            atoms.info["error"] = quote(row.get("error"), safe="")
        atoms.info["reference_settings"] = quote(row.data.get("reference_settings", "{}"), safe="")
        if row.get("status") == "ok":
            atoms.calc = SinglePointCalculator(
                atoms, energy=float(row.energy), forces=np.array(row.forces), dipole=np.array(row.dipole)
            )
        images.append(atoms)
    return images


def write_label_file(database: LabelDatabase, path: Path, keep: Callable[[dict], bool]) -> int:
    """Write the rows whose key-value pairs pass ``keep`` to ``path`` (``.extxyz.gz``); returns
    how many. The file is rewritten only when its content changes."""
    images = _images(database, keep)
    text = io.StringIO()
    write(text, images, format="extxyz")
    data = gzip.compress(text.getvalue().encode(), mtime=0)
    if not path.exists() or path.read_bytes() != data:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return len(images)


def read_label_file(path: Path, database: LabelDatabase) -> int:
    """Add the rows of a :func:`write_label_file` file to ``database`` (rows already present are
    kept as they are); returns how many rows the file holds."""
    with gzip.open(path, "rt") as fh:
        images = read(fh, index=":", format="extxyz")
    for atoms in images:
        info = dict(atoms.info)
        provenance = {k: v for k, v in info.items() if k not in _NOT_PROVENANCE}
        settings = json.loads(unquote(str(info.get("reference_settings", "{}"))))
        if info.get("status") == "ok":
            results = atoms.calc.results
            database.add_label(
                info["key"],
                atoms,
                results["energy"],
                results["forces"],
                results["dipole"],
                provenance,
                settings,
            )
        else:
            database.add_failure(
                info["key"], atoms, unquote(str(info.get("error", ""))), provenance, settings
            )
    return len(images)
