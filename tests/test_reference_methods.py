"""Reference methods: one interface, correct units, specific errors."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from specml.errors import InputError, SCFConvergenceError, UnsupportedElementError
from specml.reference import ASECalculatorReference, PySCFReference, XTBReference, make_reference


def central_difference_force(energy, atoms, atom: int, axis: int, h: float) -> float:
    """-dE/dx of one coordinate (eV/Å) by central differences of ``energy(atoms) -> eV``."""
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[atom, axis] += h
    minus.positions[atom, axis] -= h
    return -(energy(plus) - energy(minus)) / (2 * h)


def test_make_reference_parses_specifications():
    assert isinstance(make_reference("xtb"), XTBReference)
    assert make_reference("gfn1-xtb").method == "GFN1-xTB"
    assert make_reference("ipea1").method == "IPEA1-xTB"
    dft = make_reference("pyscf:pbe0/def2-svp")
    assert isinstance(dft, PySCFReference) and (dft.functional, dft.basis) == ("pbe0", "def2-svp")
    assert isinstance(make_reference("ase:ase.calculators.emt:EMT"), ASECalculatorReference)
    with pytest.raises(InputError, match="unknown reference"):
        make_reference("cc-pvqz-magic")
    with pytest.raises(InputError, match="cannot import"):
        make_reference("ase:no_such_module:Calc")
    with pytest.raises(InputError, match="FUNCTIONAL/BASIS"):
        make_reference("pyscf:b3lyp")


def test_xtb_label_units_and_consistency():
    atoms = molecule("H2O")
    label = make_reference("xtb").label(atoms)
    assert label.forces.shape == (3, 3)
    # Forces are -dE/dx (eV/Å): check one coordinate by central differences.
    ref = make_reference("xtb")
    numeric = central_difference_force(lambda a: ref.label(a).energy, atoms, 0, 2, h=1e-4)
    assert label.forces[0, 2] == pytest.approx(numeric, abs=2e-3)
    # Water's dipole lies along its C2 axis (z in ase.build) and is about 2 D at GFN2-xTB level.
    assert abs(label.dipole[0]) < 1e-6 and abs(label.dipole[1]) < 1e-6
    assert 1.5 < np.linalg.norm(label.dipole) / 0.20819433622 < 3.0


def test_xtb_hamiltonians_are_distinct():
    """GFN2, GFN1 and IPEA1 are different parametrisations: the same water gets three energies."""
    energies = [make_reference(name).label(molecule("H2O")).energy for name in ("gfn2", "gfn1", "ipea1")]
    assert min(abs(a - b) for i, a in enumerate(energies) for b in energies[i + 1 :]) > 0.1  # eV


def test_xtb_scf_failure_is_specific_and_carries_structure():
    atoms = molecule("CH3OH")
    with pytest.raises(SCFConvergenceError) as info:
        XTBReference(max_iterations=2).label(atoms)
    assert info.value.atoms is not None
    np.testing.assert_allclose(info.value.atoms.positions, atoms.positions)


def test_xtb_limits_openmp_threads_only_during_a_calculation(monkeypatch):
    from tblite.ase import TBLite

    from specml.reference.xtb import _openmp_controller

    def team_sizes():
        return [lib["num_threads"] for lib in _openmp_controller().info()]

    assert team_sizes(), "tblite's OpenMP runtime was not found"
    inside = []
    original = TBLite.calculate

    def recording(self, *args, **kwargs):
        inside.append(team_sizes())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TBLite, "calculate", recording)
    with _openmp_controller().limit(limits=2):
        atoms = molecule("H2O")
        atoms.calc = XTBReference(threads=1).calculator()
        atoms.get_forces()
        assert inside == [[1] * len(inside[0])]
        assert team_sizes() == [2] * len(inside[0])  # the caller's setting is restored


def test_unsupported_element_is_reported_before_calculating():
    with pytest.raises(UnsupportedElementError, match="U") as info:
        make_reference("xtb").label(Atoms("U", positions=[[0, 0, 0]]))
    assert info.value.elements == ["U"]


def test_pyscf_forces_dipole_and_scf_failure():
    ref = PySCFReference(functional="lda", basis="sto-3g", density_fit=False)
    atoms = molecule("H2O")
    label = ref.label(atoms)
    numeric = central_difference_force(lambda a: ref.label(a).energy, atoms, 1, 1, h=1e-3)
    assert label.forces[1, 1] == pytest.approx(numeric, abs=5e-3)
    assert np.linalg.norm(label.dipole) > 0.1  # e·Å; STO-3G water has a sizeable dipole
    assert abs(label.dipole[0]) < 1e-6
    with pytest.raises(SCFConvergenceError, match="did not converge") as info:
        PySCFReference(functional="lda", basis="sto-3g", max_cycle=1, conv_tol=1e-14).label(atoms)
    assert info.value.atoms is not None


def test_pyscf_forces_include_the_grid_response():
    """On a coarse DFT grid the forces are still the energy's derivative: the grid moves with the atoms.

    Without the grid's response the error here is 2e-2 eV/Å (measured), enough to stall a tight
    geometry optimisation; with it, below 1e-4.
    """
    from specml.reference import PySCFCalculator

    def on_coarse_grid(atoms):
        atoms = atoms.copy()
        atoms.calc = PySCFCalculator(functional="lda", basis="sto-3g", grid_level=0)
        return atoms

    atoms = molecule("H2O")
    atoms.positions[0, 0] += 0.05  # off the symmetric geometry, so the x force is not zero by symmetry
    forces = on_coarse_grid(atoms).get_forces()
    numeric = central_difference_force(
        lambda a: on_coarse_grid(a).get_potential_energy(), atoms, 0, 0, h=1e-3
    )
    assert abs(forces[0, 0]) > 0.1
    assert forces[0, 0] == pytest.approx(numeric, abs=1e-4)


def test_pyscf_rejects_element_without_basis():
    with pytest.raises(UnsupportedElementError):
        PySCFReference(basis="sto-3g").label(Atoms("Rn", positions=[[0, 0, 0]]))


def test_any_ase_calculator_by_import_path():
    ref = make_reference('ase:ase.calculators.lj:LennardJones@{"sigma": 1.0}')
    assert ref.settings["sigma"] == 1.0
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 1.2]])
    # LJ has no dipole: the interface says so with a specific error instead of returning zeros.
    from specml.errors import ReferenceCalculationError

    with pytest.raises(ReferenceCalculationError, match="LennardJones|dipole"):
        ref.label(atoms)
