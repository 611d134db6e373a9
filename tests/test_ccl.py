"""The C-Cl force-constant correction of identification (specml.identification.ccl) and the
second derivatives kept by library entries (SQLite and the shipped companion file)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from specml.errors import InputError
from specml.identification import SpectralLibrary, identify
from specml.identification.ccl import (
    ccl_corrected_harmonic,
    corrected_entry,
    has_c_cl_bond,
    missing_derivatives_caution,
)
from specml.identification.library import LibraryEntry, Method, atoms_to_xyz
from specml.identification.scoring import ScoringParameters
from specml.identification.shipped_derivatives import (
    companion_path,
    merge_into_derivatives_file,
    read_derivatives_file,
    read_provenance,
    write_derivatives_file,
)
from specml.identification.shipped_library import shipped_entries, write_library_file
from specml.molecules.inputs import atoms_from_smiles
from specml.spectra.broadening import broaden_sticks
from specml.spectra.harmonic import optimized_harmonic_analysis
from specml.spectra.second_derivatives import SecondDerivatives
from specml.spectra.spectrum import Spectrum
from specml.spectra.sqm import C_CL_TYPE, primitive_internals

XTB = Method.harmonic("xtb")


@pytest.fixture(scope="module")
def xtb_results():
    """GFN2-xTB harmonic analyses (finite-difference Hessians) of chloromethane and methane."""
    return {
        smiles: optimized_harmonic_analysis(atoms_from_smiles(smiles, seed=42), "xtb")
        for smiles in ("CCl", "C")
    }


def entry_of(smiles: str, result, with_derivatives: bool = True) -> LibraryEntry:
    derivatives = SecondDerivatives(result.hessian, result.dipole_derivatives) if with_derivatives else None
    return LibraryEntry(
        smiles,
        XTB.name,
        XTB.settings,
        "ok",
        result.frequencies_cm1,
        result.intensities_km_mol,
        xyz=atoms_to_xyz(result.atoms),
        seconds=1.0,
        second_derivatives=derivatives,
    )


@pytest.mark.parametrize("smiles", ["ClCC(F)Br", "ClP(Cl)Cl", "[SiH3]Cl", "ClC(Cl)=C(Cl)Cl"])
def test_the_c_cl_type_is_given_to_c_cl_bonds_only(smiles):
    atoms = atoms_from_smiles(smiles, seed=42)
    symbols = atoms.get_chemical_symbols()
    _, types, labels = primitive_internals(atoms)
    for kind, label in zip(types, labels, strict=True):
        if label.startswith("Distance"):
            a, b = (int(i) - 1 for i in label.split()[1].split("-"))
            assert (kind == C_CL_TYPE) == ({symbols[a], symbols[b]} == {"C", "Cl"}), label
        else:
            assert kind != C_CL_TYPE
    assert (C_CL_TYPE in types) == has_c_cl_bond(smiles)


def test_unit_c_ccl_leaves_every_frequency_unchanged(xtb_results):
    result = xtb_results["CCl"]
    same = ccl_corrected_harmonic(
        result.atoms, SecondDerivatives(result.hessian, result.dipole_derivatives), 1.0
    )
    np.testing.assert_allclose(same.frequencies_cm1, result.frequencies_cm1, atol=0.01)
    entry = entry_of("CCl", result)
    assert corrected_entry(entry, 1.0) is entry


def test_c_ccl_raises_the_c_cl_stretch_of_chloromethane_only(xtb_results):
    entry = entry_of("CCl", xtb_results["CCl"])
    stiffer = corrected_entry(entry, 1.1)
    # CH3Cl's C-Cl stretch is its lowest mode (~700 cm-1 with GFN2-xTB); the C-H stretches are the top three.
    assert 550 < entry.x[0] < 850
    assert stiffer.x[0] > entry.x[0] + 15
    c_h = entry.x > 2500
    assert c_h.sum() == 3
    np.testing.assert_allclose(stiffer.x[c_h], entry.x[c_h], atol=1.0)


def test_a_molecule_without_chlorine_is_untouched(xtb_results):
    methane = entry_of("C", xtb_results["C"], with_derivatives=False)  # needs no Hessian
    assert corrected_entry(methane, 1.1) is methane
    assert missing_derivatives_caution([("methane", methane)], 1.1) is None


def test_sqlite_entries_round_trip_their_second_derivatives(tmp_path, xtb_results):
    result = xtb_results["CCl"]
    with SpectralLibrary(tmp_path / "lib.sqlite", shipped=False) as library:
        library.put(entry_of("CCl", result))
        library.put(entry_of("C", xtb_results["C"], with_derivatives=False))
        stored = library.get("CCl", XTB.name, XTB.settings)
        assert library.get("C", XTB.name, XTB.settings).second_derivatives is None
    np.testing.assert_allclose(stored.second_derivatives.hessian, result.hessian, atol=1e-5)
    np.testing.assert_allclose(
        stored.second_derivatives.dipole_derivatives, result.dipole_derivatives, atol=1e-6
    )


def test_a_library_written_before_second_derivatives_still_opens(tmp_path, xtb_results):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the schema before the derivatives column
        db.execute(
            "CREATE TABLE entries (key TEXT PRIMARY KEY, smiles TEXT NOT NULL, method TEXT NOT NULL, settings TEXT "
            "NOT NULL, status TEXT NOT NULL, error TEXT, kind TEXT NOT NULL DEFAULT 'sticks', x TEXT, y TEXT, "
            "xyz TEXT, seconds REAL, created REAL NOT NULL)"
        )
    with SpectralLibrary(path, shipped=False) as library:
        library.put(entry_of("CCl", xtb_results["CCl"]))
        assert library.get("CCl", XTB.name, XTB.settings).second_derivatives is not None


def shipped_directory(tmp_path, xtb_results, companion_xyz=None):
    entry = entry_of("CCl", xtb_results["CCl"], with_derivatives=False)
    library_file = write_library_file(tmp_path / "harmonic_gfn2-xtb.json.gz", [entry], {"test": True})
    result = xtb_results["CCl"]
    records = {
        "CCl": (companion_xyz or entry.xyz, SecondDerivatives(result.hessian, result.dipole_derivatives))
    }
    write_derivatives_file(companion_path(library_file), records, {"test": True})
    shipped_entries.cache_clear()
    return tmp_path


def test_the_companion_file_gives_shipped_entries_their_second_derivatives(tmp_path, xtb_results):
    directory = shipped_directory(tmp_path, xtb_results)
    assert len(shipped_entries(directory)) == 1  # the companion file is not read as spectra
    with SpectralLibrary(tmp_path / "lib.sqlite", shipped=directory) as library:
        entry = library.get("CCl", XTB.name, XTB.settings)
    np.testing.assert_allclose(entry.second_derivatives.hessian, xtb_results["CCl"].hessian, atol=1e-5)


def test_a_companion_entry_of_another_geometry_is_refused(tmp_path, xtb_results):
    moved = xtb_results["CCl"].atoms.copy()
    moved.positions[0, 0] += 0.01
    directory = shipped_directory(tmp_path, xtb_results, companion_xyz=atoms_to_xyz(moved))
    with pytest.raises(InputError, match="another geometry"):
        shipped_entries(directory)
    shipped_entries.cache_clear()


def test_candidates_without_second_derivatives_are_flagged(tmp_path, xtb_results):
    result = xtb_results["CCl"]
    grid = np.arange(500.0, 4000.0, 1.0)
    query = Spectrum(
        grid,
        broaden_sticks(result.frequencies_cm1, result.intensities_km_mol, grid, 15.0, "gaussian"),
        metadata={"intensity_units": "absorbance"},
    )
    params = ScoringParameters(1.0, 1.0, 15.0, {"pearson": 10.0}, c_ccl=1.05)
    candidates = [("chloromethane", "CCl"), ("methane", "C")]
    for with_derivatives in (False, True):
        with SpectralLibrary(tmp_path / f"{with_derivatives}.sqlite", shipped=False) as library:
            library.put(entry_of("CCl", result, with_derivatives))
            library.put(entry_of("C", xtb_results["C"], with_derivatives=False))
            found = identify(query, candidates, reference="xtb", library=library, parameters=params)
        flagged = [c for c in found.cautions if "WITHOUT the C-Cl correction" in c]
        assert bool(flagged) != with_derivatives
        if flagged:
            assert "chloromethane (CCl)" in flagged[0] and "methane (C)" not in flagged[0]


def test_merging_into_the_companion_file_keeps_same_geometries_and_replaces_others(tmp_path, xtb_results):
    result = xtb_results["CCl"]
    derivatives = SecondDerivatives(result.hessian, result.dipole_derivatives)
    xyz = atoms_to_xyz(result.atoms)
    moved = result.atoms.copy()
    moved.positions[0, 0] += 0.01
    path = tmp_path / "derivatives" / "x.json.gz"
    assert merge_into_derivatives_file(path, {"CCl": (xyz, derivatives)}, {}, "first") == ["CCl"]
    assert merge_into_derivatives_file(path, {"CCl": (xyz, derivatives)}, {}, "again") == []
    assert merge_into_derivatives_file(path, {"CCl": (atoms_to_xyz(moved), derivatives)}, {}, "moved") == [
        "CCl"
    ]
    assert read_provenance(path)["sources"] == {"CCl": "moved"}
    assert read_derivatives_file(path)["CCl"][0] == atoms_to_xyz(moved)
