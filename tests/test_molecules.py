"""Molecule input: SMILES, structure files, databases, and their errors."""

import pytest
from ase.build import molecule
from ase.db import connect
from ase.io import write

from specml.errors import InputError, MoleculeError
from specml.molecules import canonical_smiles, load_molecules, read_molecule_table


def test_smiles_gives_hydrogenated_3d_structure():
    mol = load_molecules("CCO")[0]
    assert mol.formula == "C2H6O"
    assert mol.atoms.get_all_distances().max() > 2.0


def test_invalid_smiles_names_the_input():
    with pytest.raises(MoleculeError, match="C1CC"):
        load_molecules("C1CC")
    with pytest.raises(MoleculeError):
        canonical_smiles("not-a-molecule((")


def test_structure_files_and_databases(tmp_path):
    xyz = tmp_path / "two.xyz"
    write(xyz, [molecule("H2O"), molecule("NH3")])
    mols = load_molecules(xyz)
    assert [m.formula for m in mols] == ["H2O", "H3N"]
    db = tmp_path / "mols.db"
    with connect(db) as con:
        con.write(molecule("CH4"), name="methane")
    assert load_molecules(db)[0].name == "methane"


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(MoleculeError, match="empty"):
        load_molecules(empty)
    with pytest.raises(InputError, match="no such file"):
        load_molecules(tmp_path / "missing.xyz")


def test_molecule_table(tmp_path, shared_dir):
    rows = read_molecule_table(shared_dir / "molecules" / "train24.csv")
    assert len(rows) == 24 and rows[1] == ("methanol", "CO")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,formula\nx,H2O\n")
    with pytest.raises(InputError, match="smiles"):
        read_molecule_table(bad)
