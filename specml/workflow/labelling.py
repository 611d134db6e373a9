"""Reference labelling through the executor, written to the database as results arrive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from specml.dataset.database import LabelDatabase
from specml.errors import SpecmlError
from specml.executor import Executor
from specml.workflow.state import atomic_write_structures, read_structures_file


@dataclass
class Candidate:
    """A structure to label: a unique key, the structure and its provenance."""

    key: str
    atoms: Atoms
    provenance: dict


def write_candidates(path: Path, candidates: list[Candidate]) -> None:
    """Candidates as one extxyz file (key and provenance in each frame's info), written atomically."""
    images = []
    for c in candidates:
        atoms = c.atoms.copy()
        atoms.info.update(c.provenance)
        atoms.info["key"] = c.key
        images.append(atoms)
    atomic_write_structures(path, images)


def read_candidates(path: Path) -> list[Candidate]:
    """The candidates :func:`write_candidates` stored in ``path``."""
    return [Candidate(a.info.pop("key"), a, dict(a.info)) for a in read_structures_file(path)]


def _label_task(args):
    reference, atoms = args
    label = reference.label(atoms)
    return label.energy, label.forces, label.dipole


def label_candidates(
    candidates: list[Candidate],
    database: LabelDatabase,
    reference,
    executor: Executor,
    logger=None,
    description: str = "labelling",
) -> dict:
    """Label every candidate whose key is not yet in ``database``.

    Each result is written as soon as it arrives, so an interruption loses at most the
    calculations in flight; failures (SCF not converged, ...) are recorded, not raised.
    Returns counts of ``new``, ``failed`` and ``skipped`` (already present).
    """
    present = database.keys()
    todo = [c for c in candidates if c.key not in present]
    counts = {"new": 0, "failed": 0, "skipped": len(candidates) - len(todo)}
    settings = {"method": reference.describe(), **reference.settings}
    tasks = [(reference, c.atoms) for c in todo]
    for result in executor.imap(_label_task, tasks, description=description):
        candidate = todo[result.index]
        provenance = {**candidate.provenance, "reference": reference.describe()}
        if result.ok:
            energy, forces, dipole = result.value
            database.add_label(candidate.key, candidate.atoms, energy, forces, dipole, provenance, settings)
            counts["new"] += 1
        else:
            error = result.error
            message = str(error) if isinstance(error, SpecmlError) else f"{type(error).__name__}: {error}"
            database.add_failure(candidate.key, candidate.atoms, message, provenance, settings)
            counts["failed"] += 1
            if logger:
                logger.warning("reference failed for %s: %s", candidate.key, message)
    return counts
