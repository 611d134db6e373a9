"""Molecules in: SMILES, structure files and databases, and their optimisation.

Names are imported on first use: reading a candidate table needs RDKit, not ASE's optimisers
(which load SciPy's).
"""

from specml._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Molecule": "inputs",
        "atoms_from_smiles": "inputs",
        "canonical_smiles": "inputs",
        "load_molecules": "inputs",
        "molecule_from_smiles": "inputs",
        "read_molecule_table": "inputs",
        "read_structures": "inputs",
        "optimize_geometry": "optimize",
    },
)

__all__ = [
    "Molecule",
    "atoms_from_smiles",
    "canonical_smiles",
    "load_molecules",
    "molecule_from_smiles",
    "optimize_geometry",
    "read_molecule_table",
    "read_structures",
]
