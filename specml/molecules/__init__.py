"""Molecules in: SMILES, structure files and databases, and their optimisation."""

from specml.molecules.inputs import (
    Molecule,
    atoms_from_smiles,
    canonical_smiles,
    load_molecules,
    molecule_from_smiles,
    read_molecule_table,
    read_structures,
)
from specml.molecules.optimize import optimize_geometry

__all__ = ["Molecule", "atoms_from_smiles", "canonical_smiles", "load_molecules", "molecule_from_smiles",
           "optimize_geometry", "read_molecule_table", "read_structures"]
