"""Conformer ensembles from SMILES: RDKit ETKDG embeddings relaxed with MMFF, duplicates removed.

A gas-phase spectrum at room temperature is a Boltzmann mixture of a flexible molecule's
conformers (ethanol: trans and two mirror-image gauche forms). Mirror images are kept as
separate structures: they are distinct minima, and counting both gives the right weight. They
also share one energy and one spectrum, so an expensive method computes one of each pair
(:meth:`ConformerEnsemble.mirror_image_groups`) and counts it twice
(:meth:`ConformerEnsemble.degeneracy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms, units

from specml.errors import InputError, MoleculeError

if TYPE_CHECKING:
    from rdkit.Chem import Mol

#: Two structures closer than this (Å, all atoms, best symmetry-equivalent alignment) are one conformer.
SAME_CONFORMER_RMSD_A = 0.1
#: Embeddings per rotatable bond (and for the molecule itself): enough to find every rotamer of
#: the small molecules here (1-propanol: 9 distinct minima from 60 embeddings).
EMBEDDINGS_PER_ROTOR = 20
MAX_EMBEDDINGS = 100


@dataclass
class ConformerEnsemble:
    """Distinct force-field minima of one molecule, lowest force-field energy first.

    ``mol`` is the RDKit molecule (with hydrogens) whose atom order ``structures`` share; it is
    kept to compare structures later (:meth:`distinct`), e.g. after a re-optimisation that may
    have sent two conformers to the same minimum.
    """

    smiles: str
    mol: Mol
    structures: list[Atoms]

    def rmsd(self, a: Atoms, b: Atoms) -> float:
        """All-atom RMSD (Å) after the best rotation and symmetry-equivalent atom mapping (RDKit)."""
        from rdkit import Chem
        from rdkit.Chem import rdMolAlign
        from rdkit.Geometry import Point3D

        def with_positions(atoms: Atoms):
            mol = Chem.Mol(self.mol, confId=0)
            conformer = mol.GetConformer()
            for i, p in enumerate(atoms.positions):
                conformer.SetAtomPosition(i, Point3D(*map(float, p)))
            return mol

        return float(rdMolAlign.GetBestRMS(with_positions(a), with_positions(b)))

    def distinct(
        self, structures: list[Atoms], energies_eV, rmsd_threshold: float = SAME_CONFORMER_RMSD_A
    ) -> list[int]:
        """Indices of the distinct structures, lowest energy first: a structure within
        ``rmsd_threshold`` of a lower-energy one is a duplicate."""
        kept: list[int] = []
        for i in np.argsort(np.asarray(energies_eV, dtype=float), kind="stable"):
            if all(self.rmsd(structures[i], structures[k]) > rmsd_threshold for k in kept):
                kept.append(int(i))
        return kept

    def mirror_image_groups(
        self, structures: list[Atoms], indices: list[int], rmsd_threshold: float = SAME_CONFORMER_RMSD_A
    ) -> list[list[int]]:
        """``indices`` (distinct structures, in order) grouped into conformers and their mirror
        images: each group is a structure followed by the ones within ``rmsd_threshold`` of its
        reflection."""
        groups: list[list[int]] = []
        for i in indices:
            reflected = mirror_image(structures[i])
            for group in groups:
                if self.rmsd(reflected, structures[group[0]]) <= rmsd_threshold:
                    group.append(i)
                    break
            else:
                groups.append([i])
        return groups

    def degeneracy(self, atoms: Atoms, rmsd_threshold: float = SAME_CONFORMER_RMSD_A) -> int:
        """2 for a chiral conformer (its mirror image is another minimum of the same energy and
        spectrum), 1 for one that is its own mirror image; whether or not the ensemble found both."""
        return 1 if self.rmsd(mirror_image(atoms), atoms) <= rmsd_threshold else 2


def mirror_image(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` reflected through the yz plane (masses and info kept)."""
    reflected = atoms.copy()
    reflected.positions[:, 0] *= -1.0
    return reflected


def conformers_from_smiles(smiles: str, seed: int = 42, max_conformers: int = 10) -> ConformerEnsemble:
    """Up to ``max_conformers`` distinct MMFF (UFF fallback) minima of ``smiles``.

    Embeddings: ``EMBEDDINGS_PER_ROTOR`` x (1 + rotatable bonds), at most ``MAX_EMBEDDINGS``,
    ETKDGv3 with a fixed seed, so the ensemble is reproducible.
    """
    from rdkit.Chem import rdDistGeom, rdMolDescriptors

    from specml.molecules.inputs import (
        atoms_from_rdkit_conformer,
        hydrogenated_rdkit_molecule,
        relax_with_force_field,
    )

    mol = hydrogenated_rdkit_molecule(smiles)
    params: Any = rdDistGeom.ETKDGv3()  # Any: RDKit's stubs mistype EmbedParameters' properties
    params.randomSeed = seed
    params.pruneRmsThresh = -1.0  # RDKit prunes on heavy atoms only, which merges O-H rotamers
    n_embed = min(MAX_EMBEDDINGS, EMBEDDINGS_PER_ROTOR * (1 + rdMolDescriptors.CalcNumRotatableBonds(mol)))
    ids = list(rdDistGeom.EmbedMultipleConfs(mol, n_embed, params))
    if not ids:
        params.useRandomCoords = True
        ids = list(rdDistGeom.EmbedMultipleConfs(mol, n_embed, params))
    if not ids:
        raise MoleculeError(f"RDKit could not embed a 3D conformer for SMILES {smiles!r}")
    relaxed = relax_with_force_field(mol) or [(0, 0.0)] * len(ids)  # no force field: as embedded
    structures = [atoms_from_rdkit_conformer(mol, smiles, conf_id) for conf_id in ids]
    ensemble = ConformerEnsemble(smiles, mol, [])
    # Force-field energies are in kcal/mol; only their order matters here.
    kept = ensemble.distinct(structures, [energy for _, energy in relaxed])
    ensemble.structures = [structures[i] for i in kept[:max_conformers]]
    return ensemble


def boltzmann_weights(energies_eV, temperature_k: float, degeneracies=None) -> np.ndarray:
    """Normalised Boltzmann populations g exp(-(E - E_min) / kT) of the given energies (eV),
    each counted ``degeneracies`` times (g; default 1: e.g. 2 for a conformer with a mirror image)."""
    energies = np.asarray(energies_eV, dtype=float)
    if temperature_k <= 0:
        raise InputError(f"temperature must be positive, got {temperature_k} K")
    g = np.ones_like(energies) if degeneracies is None else np.asarray(degeneracies, dtype=float)
    weights = g * np.exp(-(energies - energies.min()) / (units.kB * temperature_k))
    return weights / weights.sum()
