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
    assert (
        ethanol.rmsd(ethanol.structures[1], ethanol.structures[2]) > 0.1
    )  # mirror images: no rotation maps them
    assert ethanol.distinct([gauche, turned, ethanol.structures[0]], [0.0, 1e-6, 0.05]) == [0, 2]
    # the two gauche forms are one another's mirror images; trans is its own
    assert ethanol.mirror_image_groups(ethanol.structures, [0, 1, 2]) == [[0], [1, 2]]
    assert [ethanol.degeneracy(s) for s in ethanol.structures] == [1, 2, 2]
    with pytest.raises(MoleculeError, match="C1CC"):
        conformers_from_smiles("C1CC")
    kt = units.kB * 300.0
    # exp(-dE/kT) with dE = kT ln 2 halves the population
    np.testing.assert_allclose(boltzmann_weights([0.0, kt * np.log(2.0), 0.0], 300.0), [0.4, 0.2, 0.4])


def test_isotope_labels_set_masses_not_geometry():
    from specml.molecules.inputs import atoms_from_smiles

    cd4, ch4 = atoms_from_smiles("[2H]C([2H])([2H])[2H]"), atoms_from_smiles("C")
    deuterium = cd4.numbers == 1
    np.testing.assert_allclose(cd4.get_masses()[deuterium], 2.014, atol=1e-3)  # amu
    assert cd4.get_masses()[~deuterium] == pytest.approx(12.011)  # unlabelled: natural abundance
    assert not ch4.has("masses")  # no labels: ASE's defaults
    # The same molecule otherwise (atom order follows the SMILES): elements and all distances (Å).
    assert sorted(cd4.get_chemical_symbols()) == sorted(ch4.get_chemical_symbols())
    np.testing.assert_allclose(
        np.sort(cd4.get_all_distances(), axis=None), np.sort(ch4.get_all_distances(), axis=None), atol=1e-4
    )
    assert atoms_from_smiles("[13CH4]").get_masses()[0] == pytest.approx(13.003, abs=1e-3)
    assert atoms_from_smiles("[37Cl]Cl").get_masses()[0] == pytest.approx(36.966, abs=1e-3)
    assert canonical_smiles("C([2H])([2H])O") == "[2H]C([2H])O"


def test_isotope_masses_survive_files_and_copies(tmp_path):
    from specml.molecules.conformers import conformers_from_smiles
    from specml.molecules.inputs import atoms_from_smiles, center_of_mass_frame

    cd3od = atoms_from_smiles("[2H]OC([2H])([2H])[2H]")
    write(tmp_path / "cd3od.extxyz", cd3od)  # a masses column
    with connect(tmp_path / "cd3od.db") as con:
        con.write(cd3od)
    for path in ("cd3od.extxyz", "cd3od.db"):  # extxyz keeps 8 decimals
        np.testing.assert_allclose(
            load_molecules(tmp_path / path)[0].atoms.get_masses(), cd3od.get_masses(), atol=1e-7
        )
    np.testing.assert_array_equal(center_of_mass_frame(cd3od).get_masses(), cd3od.get_masses())
    ch3od = atoms_from_smiles("[2H]OC")
    for conformer in conformers_from_smiles("[2H]OC").structures:
        np.testing.assert_array_equal(conformer.get_masses(), ch3od.get_masses())
