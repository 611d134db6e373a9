"""The FEFF Cu K-edge set: spectra, structures and the source's train/val/test split by material.

The set (``cu_kedge_feff/`` of the shared XAS data) holds ``spectra.npz`` (one normalised
spectrum per inequivalent Cu site on a common grid in eV relative to the site's edge ``e0``,
with the site's index in its structure, its multiplicity and the OmniXAS split label) and
``structures.extxyz`` (the Materials Project crystals, read with ASE).

Split rule: the source's label of each spectrum, unchanged (no material holds labels of two
splits; the loader checks). Spectra without a label (sites the source left out of its split)
are ``"unlabelled"``: out of train, val and test unless asked for (and then only those of
materials without val or test spectra), and still part of their material's site average.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specml.errors import InputError

SPLITS = ("train", "val", "test")
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class XanesDataset:
    """Site spectra and their structures.

    Attributes:
        energy: grid in eV relative to each site's edge ``e0`` (shared by all spectra).
        mu: normalised absorption, shape (n_spectra, n_energy).
        structures: ASE ``Atoms``, one per material.
        structure_index: row -> index into ``structures``.
        site_index: row -> index of the absorbing atom in its structure.
        multiplicity: row -> number of equivalent sites (weight in a site average).
        material_id: row -> Materials Project id.
        e0: row -> absolute edge energy in eV (FEFF's).
        split: row -> ``"train"``, ``"val"``, ``"test"`` or ``"unlabelled"``.
    """

    energy: np.ndarray
    mu: np.ndarray
    structures: list
    structure_index: np.ndarray
    site_index: np.ndarray
    multiplicity: np.ndarray
    material_id: np.ndarray
    e0: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return int(self.mu.shape[0])

    def subset(self, rows) -> XanesDataset:
        """The spectra at ``rows`` (indices or a boolean mask); structures are shared."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return XanesDataset(
            energy=self.energy,
            mu=self.mu[rows],
            structures=self.structures,
            structure_index=self.structure_index[rows],
            site_index=self.site_index[rows],
            multiplicity=self.multiplicity[rows],
            material_id=self.material_id[rows],
            e0=self.e0[rows],
            split=self.split[rows],
        )

    def part(self, name: str, include_unlabelled: bool = False) -> XanesDataset:
        """One split; ``include_unlabelled`` adds the unlabelled spectra to ``"train"`` except
        those of a material with val or test spectra (its other sites would leak into training)."""
        if name not in SPLITS:
            raise InputError(f"split {name!r} is not known; choose one of {', '.join(SPLITS)}")
        mask = self.split == name
        if include_unlabelled and name == "train":
            held_out = np.isin(self.material_id, self.material_id[np.isin(self.split, ("val", "test"))])
            mask |= (self.split == UNLABELLED) & ~held_out
        return self.subset(mask)

    def site(self, row: int):
        """``(atoms, absorbing_index)`` of spectrum ``row``."""
        return self.structures[int(self.structure_index[row])], int(self.site_index[row])

    def material_rows(self, material_id: str) -> np.ndarray:
        """Rows of every inequivalent site of ``material_id``."""
        rows = np.flatnonzero(self.material_id == material_id)
        if rows.size == 0:
            raise InputError(f"material {material_id!r} is not in the set")
        return rows

    def site_averaged(self, material_id: str) -> np.ndarray:
        """Multiplicity-weighted mean spectrum of a material's sites (on the relative grid)."""
        rows = self.material_rows(material_id)
        weights = self.multiplicity[rows].astype(float)
        return (weights[:, None] * self.mu[rows]).sum(axis=0) / weights.sum()


def material_splits(material_id: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each spectrum's split (its label, or ``"unlabelled"``); raises if a material has two labels."""
    by_material: dict[str, set[str]] = {}
    for material, label in zip(material_id, labels, strict=True):
        by_material.setdefault(str(material), set())
        if label:
            by_material[str(material)].add(str(label))
    clash = sorted(m for m, found in by_material.items() if len(found) > 1)
    if clash:
        raise InputError(f"materials in two splits: {', '.join(clash[:5])}")
    return np.array([str(label) if label else UNLABELLED for label in labels])


def load_feff_set(root: str | Path) -> XanesDataset:
    """Read ``root`` (the ``cu_kedge_feff`` folder, or the XAS data folder holding it)."""
    from ase.io import read

    root = Path(root)
    if (root / "cu_kedge_feff").is_dir():
        root = root / "cu_kedge_feff"
    spectra_path, structures_path = root / "spectra.npz", root / "structures.extxyz"
    for path in (spectra_path, structures_path):
        if not path.is_file():
            raise InputError(
                f"{path}: no such file (expected the FEFF set's spectra.npz and structures.extxyz)"
            )
    with np.load(spectra_path) as data:
        arrays = {key: data[key] for key in data.files}
    read_back = read(structures_path, index=":", format="extxyz")
    structures = read_back if isinstance(read_back, list) else [read_back]
    structure_index = arrays["structure_index"].astype(int)
    if structure_index.max() >= len(structures):
        raise InputError(f"{spectra_path}: structure index beyond the {len(structures)} structures")
    return XanesDataset(
        energy=arrays["energy_ev"].astype(float),
        mu=arrays["mu"].astype(np.float32),
        structures=structures,
        structure_index=structure_index,
        site_index=arrays["site_index"].astype(int),
        multiplicity=arrays["site_multiplicity"].astype(int),
        material_id=arrays["material_id"].astype(str),
        e0=arrays["e0_ev"].astype(float),
        split=material_splits(arrays["material_id"], arrays["omnixas_split"]),
    )
