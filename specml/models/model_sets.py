"""Pretrained model sets: trained committees shipped with specml and named instead of a run
directory (``specml ir --models NAME CCO``).

A model set is a committee folder (``committee.json``, the potentials and the dipole model, as
:meth:`specml.models.Committee.save` writes it) plus ``model_set.json``: what it was trained on
(reference method, molecules), the domain that follows from that (elements, atoms and heavy
atoms per molecule, the temperatures its active learning explored) and its provenance (the run,
the benchmark figures). Shipped sets live in ``specml/data/models/NAME/``; ``specml models``
lists them. Predictions check a molecule against the domain (:func:`domain_reasons`) besides the
committee's own uncertainty, so a user hears that a 20-atom molecule or a 1000 K run lies
outside what the set was trained on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ase import Atoms
from ase.data import chemical_symbols

from specml.errors import ModelError
from specml.provenance import require_format

#: The file that makes a committee folder a model set.
MODEL_SET_FILE = "model_set.json"
#: Where shipped model sets live (one folder per set).
SHIPPED_MODEL_SETS = Path(__file__).resolve().parents[1] / "data" / "models"
FORMAT = 1


def available_model_sets(root: str | Path | None = None) -> dict[str, dict]:
    """Every model set under ``root`` (default: the shipped ones): {name: its ``model_set.json``}."""
    root = Path(root) if root is not None else SHIPPED_MODEL_SETS
    if not root.is_dir():
        return {}
    return {
        folder.name: json.loads((folder / MODEL_SET_FILE).read_text())
        for folder in sorted(root.iterdir())
        if (folder / MODEL_SET_FILE).is_file()
    }


def model_set_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder of model set ``name``; :class:`ModelError` naming the available ones otherwise."""
    root = Path(root) if root is not None else SHIPPED_MODEL_SETS
    folder = root / name
    if "/" in name or not (folder / MODEL_SET_FILE).is_file():
        known = ", ".join(available_model_sets(root)) or "none"
        raise ModelError(f"no model set named {name!r} (shipped model sets: {known})")
    return folder


def read_model_set(models_dir: str | Path) -> dict | None:
    """The ``model_set.json`` of a committee folder, or None for an ordinary trained committee."""
    path = Path(models_dir) / MODEL_SET_FILE
    if not path.is_file():
        return None
    return require_format(json.loads(path.read_text()), FORMAT, path, "model-set", ModelError)


def training_domain(molecules: Iterable[Atoms], temperatures_k: Sequence[float]) -> dict:
    """The domain of a committee trained on ``molecules`` with active learning at ``temperatures_k``."""
    molecules = list(molecules)
    if not molecules:
        raise ModelError("a model set needs the molecules it was trained on")
    atoms = [len(a) for a in molecules]
    heavy = [int((a.numbers > 1).sum()) for a in molecules]
    numbers = sorted({int(z) for a in molecules for z in a.numbers})
    return {
        "elements": [chemical_symbols[z] for z in numbers],
        "atoms_per_molecule": [min(atoms), max(atoms)],
        "heavy_atoms_per_molecule": [min(heavy), max(heavy)],
        "temperatures_k": [float(min(temperatures_k)), float(max(temperatures_k))],
    }


def write_model_set(
    committee_dir: str | Path,
    target: str | Path,
    description: str,
    reference: str,
    molecules: dict[str, Atoms],
    temperatures_k: Sequence[float],
    provenance: dict,
) -> Path:
    """Copy a trained committee to ``target`` as a model set: its files and a ``model_set.json``
    with the domain of ``molecules`` ({name: structure}) and ``temperatures_k``. Returns ``target``."""
    from specml.workflow.state import atomic_save_directory

    committee_dir, target = Path(committee_dir), Path(target)
    if not (committee_dir / "committee.json").is_file():
        raise ModelError(f"{committee_dir}: no trained committee (committee.json) to ship")
    info = {
        "format": FORMAT,
        "name": target.name,
        "description": description,
        "reference": reference,
        "domain": training_domain(molecules.values(), temperatures_k),
        "molecules": sorted(molecules),
        "provenance": provenance,
    }

    def save(tmp: Path) -> None:
        for path in sorted(committee_dir.iterdir()):
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        (tmp / MODEL_SET_FILE).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")

    if target.exists():
        shutil.rmtree(target)
    atomic_save_directory(save, target)
    return target


def domain_reasons(info: dict, atoms: Atoms, temperature_k: float) -> list[str]:
    """Why ``atoms`` at ``temperature_k`` lies outside the model set's training domain (empty if it
    does not); unknown elements are refused earlier, by the committee itself."""
    domain = info["domain"]
    reasons = []
    low, high = domain["atoms_per_molecule"]
    if not low <= len(atoms) <= high:
        reasons.append(f"{len(atoms)} atoms (trained on {low}-{high})")
    heavy = int((atoms.numbers > 1).sum())
    low, high = domain["heavy_atoms_per_molecule"]
    if not low <= heavy <= high:
        reasons.append(f"{heavy} heavy atoms (trained on {low}-{high})")
    low, high = domain["temperatures_k"]
    if temperature_k > high:
        reasons.append(f"{temperature_k:g} K (active learning explored {low:g}-{high:g} K)")
    return reasons


__all__ = [
    "MODEL_SET_FILE",
    "SHIPPED_MODEL_SETS",
    "available_model_sets",
    "domain_reasons",
    "model_set_dir",
    "read_model_set",
    "training_domain",
    "write_model_set",
]
