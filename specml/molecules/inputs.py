"""Molecules in: SMILES (RDKit conformers), XYZ/extxyz files, ASE databases."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from ase import Atoms

from specml.errors import InputError, MoleculeError

STRUCTURE_SUFFIXES = {".xyz", ".extxyz", ".db", ".json", ".traj", ".pdb", ".sdf", ".mol"}


@dataclass
class Molecule:
    """A named molecule: its structure and, when known, its SMILES."""

    name: str
    atoms: Atoms
    smiles: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def formula(self) -> str:
        return self.atoms.get_chemical_formula()


def _parse_smiles(smiles: str):
    from rdkit import Chem, rdBase

    rdBase.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if smiles and smiles.strip() else None
    if mol is None:
        raise MoleculeError(f"invalid SMILES {smiles!r}")
    return mol


def canonical_smiles(smiles: str) -> str:
    """RDKit canonical SMILES; raises :class:`MoleculeError` for an invalid one."""
    from rdkit import Chem

    return Chem.MolToSmiles(_parse_smiles(smiles))


def hydrogenated_rdkit_molecule(smiles: str):
    """RDKit molecule of ``smiles`` with explicit hydrogens; raises :class:`MoleculeError` for an invalid one."""
    from rdkit import Chem

    return Chem.AddHs(_parse_smiles(smiles))


def atoms_from_smiles(smiles: str, seed: int = 42) -> Atoms:
    """3D structure from SMILES: RDKit ETKDG conformer relaxed with MMFF (UFF fallback)."""
    from rdkit.Chem import rdDistGeom

    mol = hydrogenated_rdkit_molecule(smiles)
    params: Any = rdDistGeom.ETKDGv3()  # Any: RDKit's stubs mistype EmbedParameters' properties
    params.randomSeed = seed
    if rdDistGeom.EmbedMolecule(mol, params) != 0:
        params.useRandomCoords = True
        if rdDistGeom.EmbedMolecule(mol, params) != 0:
            raise MoleculeError(f"RDKit could not embed a 3D conformer for SMILES {smiles!r}")
    relax_with_force_field(mol)
    return atoms_from_rdkit_conformer(mol, smiles)


def relax_with_force_field(mol) -> list[tuple[int, float]] | None:
    """Relax every conformer of an RDKit molecule in place with MMFF94, or UFF where MMFF lacks
    parameters; returns (not converged, energy in kcal/mol) per conformer, or None when neither
    force field covers the molecule (the conformers are left as embedded)."""
    from rdkit.Chem import rdForceFieldHelpers

    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        return rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    if rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
        return rdForceFieldHelpers.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    return None


def atoms_from_rdkit_conformer(mol, smiles: str, conf_id: int = -1) -> Atoms:
    """ASE Atoms of one conformer of an RDKit molecule, with its SMILES and any net charge in ``info``."""
    from rdkit import Chem

    atoms = Atoms(
        [a.GetSymbol() for a in mol.GetAtoms()],
        positions=mol.GetConformer(conf_id).GetPositions(),
        masses=isotope_masses(mol),
    )
    atoms.info["smiles"] = smiles
    charge = Chem.GetFormalCharge(mol)
    if charge:
        atoms.info["charge"] = charge
    return atoms


def isotope_masses(mol) -> np.ndarray | None:
    """Atomic masses (amu) of an RDKit molecule: the isotope's own mass (RDKit) where the SMILES
    labels one ([2H], [13C], [37Cl]), ASE's natural-abundance mean otherwise; None when no atom is
    labelled, so unlabelled molecules keep ASE's default masses (and no explicit masses array)."""
    from ase.data import atomic_masses
    from rdkit import Chem

    if not any(a.GetIsotope() for a in mol.GetAtoms()):
        return None
    table = Chem.GetPeriodicTable()
    return np.array(
        [
            table.GetMassForIsotope(a.GetSymbol(), a.GetIsotope())
            if a.GetIsotope()
            else atomic_masses[a.GetAtomicNum()]
            for a in mol.GetAtoms()
        ]
    )


def explicit_masses(atoms: Atoms) -> np.ndarray | None:
    """The masses (amu) ``atoms`` sets itself (isotope labels, a file's masses column), None where
    ASE's natural-abundance defaults apply; saving None keeps an unlabelled structure as it was."""
    return atoms.get_masses() if atoms.has("masses") else None


def bare_copy(atoms: Atoms, positions: np.ndarray | None = None) -> Atoms:
    """Elements, positions (Å; ``positions`` instead when given) and explicit masses (amu) of
    ``atoms``, nothing else (no calculator, info or velocities). The masses carry isotope labels,
    which harmonic frequencies and MD depend on (a C-D stretch is ~1/1.36 of a C-H one)."""
    return Atoms(
        numbers=atoms.numbers,
        positions=atoms.positions if positions is None else positions,
        masses=explicit_masses(atoms),
    )


def molecule_from_smiles(smiles: str, name: str | None = None, seed: int = 42) -> Molecule:
    atoms = atoms_from_smiles(smiles, seed)
    return Molecule(name or smiles, atoms, smiles)


def read_structures(path: str | Path) -> list[Molecule]:
    """All structures in an XYZ/extxyz/ASE-db/… file (ASE I/O), named after the file."""
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MoleculeError(f"{path}: file is empty")
    try:
        if path.suffix == ".db":
            from ase.db import connect

            rows = list(connect(str(path)).select())
            images = [row.toatoms() for row in rows]
            names = [row.get("name") or f"{path.stem}-{row.id}" for row in rows]
        else:
            images = cast(list[Atoms], read(str(path), index=":"))  # index ":": a list
            names = [
                a.info.get("name") or (path.stem if len(images) == 1 else f"{path.stem}-{i}")
                for i, a in enumerate(images)
            ]
    except Exception as exc:  # ASE raises many types for malformed files
        raise MoleculeError(f"{path}: cannot read structures ({type(exc).__name__}: {exc})") from exc
    if not images:
        raise MoleculeError(f"{path}: no structures found")
    molecules = []
    for name, atoms in zip(names, images, strict=True):
        if len(atoms) == 0:
            raise MoleculeError(f"{path}: structure {name!r} has no atoms")
        clean = bare_copy(atoms)  # keeps a file's masses column (isotopes)
        clean.info.update({k: v for k, v in atoms.info.items() if k in ("name", "smiles", "charge")})
        molecules.append(Molecule(str(name), clean, atoms.info.get("smiles")))
    return molecules


def read_molecule_table(path: str | Path) -> list[tuple[str, str]]:
    """``(name, smiles)`` rows of a CSV with a ``smiles`` column (``name`` optional)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = {f.lower().strip(): f for f in (reader.fieldnames or [])}
            if "smiles" not in fields:
                raise InputError(
                    f"{path}: a molecule table needs a 'smiles' column (found {reader.fieldnames})"
                )
            rows = []
            for i, row in enumerate(reader):
                smiles = (row.get(fields["smiles"]) or "").strip()
                name = (row.get(fields.get("name", ""), "") or "").strip() or smiles or f"row{i + 1}"
                rows.append((name, smiles))
    except (UnicodeDecodeError, csv.Error) as exc:  # a binary file, NUL bytes
        raise InputError(f"{path}: not a CSV table of molecules ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise MoleculeError(f"{path}: no molecules listed")
    return rows


def load_molecules(spec: str | Path, seed: int = 42) -> list[Molecule]:
    """Molecules from a SMILES string, a CSV table of SMILES, or a structure file."""
    text = str(spec)
    path = Path(text)
    if path.suffix.lower() == ".csv":
        return [molecule_from_smiles(smiles, name, seed) for name, smiles in read_molecule_table(path)]
    if path.suffix.lower() in STRUCTURE_SUFFIXES or path.exists():
        return read_structures(path)
    return [molecule_from_smiles(text, None, seed)]


def center_of_mass_frame(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` translated so its centre of mass is at the origin."""
    out = atoms.copy()
    out.positions -= out.get_center_of_mass()
    return out


def bond_lengths_sane(atoms: Atoms, min_distance: float = 0.5) -> bool:
    """False when two atoms are closer than ``min_distance`` Å (a broken structure)."""
    if len(atoms) < 2:
        return True
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.inf)
    return bool(d.min() >= min_distance)
