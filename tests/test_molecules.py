"""Molecule input: SMILES, structure files, databases, and their errors."""

import numpy as np
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


def test_conformer_ensemble_keeps_mirror_images_and_merges_duplicates():
    from ase import units

    from specml.molecules.conformers import boltzmann_weights, conformers_from_smiles

    ethanol = conformers_from_smiles("CCO")
    assert len(ethanol.structures) == 3  # trans and the two mirror-image gauche forms
    assert len(conformers_from_smiles("c1ccccc1").structures) == 1
    gauche = ethanol.structures[1]
    turned = gauche.copy()
    turned.rotate(70, "z")
    turned.translate([1.0, -2.0, 0.5])
    assert ethanol.rmsd(gauche, turned) < 1e-3
    assert ethanol.rmsd(ethanol.structures[1], ethanol.structures[2]) > 0.1  # mirror images: no rotation maps them
    assert ethanol.distinct([gauche, turned, ethanol.structures[0]], [0.0, 1e-6, 0.05]) == [0, 2]
    with pytest.raises(MoleculeError, match="C1CC"):
        conformers_from_smiles("C1CC")
    kt = units.kB * 300.0
    # exp(-dE/kT) with dE = kT ln 2 halves the population
    np.testing.assert_allclose(boltzmann_weights([0.0, kt * np.log(2.0), 0.0], 300.0), [0.4, 0.2, 0.4])
