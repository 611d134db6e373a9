"""Polarizabilities from the references and harmonic Raman (activities, depolarisation, cross sections)."""

from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from scipy.spatial.transform import Rotation

from specml.errors import InputError
from specml.molecules import optimize_geometry
from specml.reference import make_reference
from specml.spectra.raman import (
    depolarization_ratios,
    harmonic_raman,
    raman_activities,
    raman_cross_sections,
    raman_invariants,
)

SMALL_DFT = "pyscf:b3lyp/6-31g"


def rotated(atoms, rotation):
    copy = atoms.copy()
    copy.positions = (atoms.positions - atoms.get_center_of_mass()) @ rotation.T
    return copy


@pytest.mark.parametrize("spec", ["xtb", SMALL_DFT])
def test_polarizability_symmetric_positive_and_rotation_equivariant(spec):
    """A positive definite symmetric tensor that turns with the molecule: alpha(R x) = R alpha R^T."""
    reference = make_reference(spec)
    water = molecule("H2O")
    alpha = reference.polarizability(water)
    assert alpha.shape == (3, 3)
    np.testing.assert_allclose(alpha, alpha.T, atol=1e-8)
    # Planar water in GFN2-xTB's minimal basis hardly responds out of plane (4e-4 Å^3): positive
    # semidefinite there, the in-plane components well above zero.
    assert np.linalg.eigvalsh(alpha).min() > -1e-4
    assert np.trace(alpha) / 3 > 0.2
    rotation = Rotation.from_euler("xyz", [0.4, -1.1, 2.3]).as_matrix()
    turned = reference.polarizability(rotated(water, rotation))
    np.testing.assert_allclose(turned, rotation @ alpha @ rotation.T, atol=2e-3 * np.abs(alpha).max())


def test_methane_polarizability_is_isotropic():
    """Td symmetry: alpha = a 1. B3LYP/6-31G at ASE's geometry gives 1.78 Å^3 (measured 2.59: a
    basis without diffuse functions underestimates it); GFN2-xTB about 0.97 Å^3."""
    for spec, (lo, hi) in (("xtb", (0.5, 1.5)), (SMALL_DFT, (1.3, 2.6))):
        alpha = make_reference(spec).polarizability(molecule("CH4"))
        mean = np.trace(alpha) / 3
        assert lo < mean < hi, (spec, mean)
        np.testing.assert_allclose(alpha, mean * np.eye(3), atol=1e-4 * mean)


def test_xtb_water_polarizability_is_the_qualitative_gfn2_value():
    """GFN2-xTB water: about 0.37 Å^3 (measured 1.45): the stated limit of a minimal basis."""
    alpha = make_reference("xtb").polarizability(molecule("H2O"))
    assert np.trace(alpha) / 3 == pytest.approx(0.37, abs=0.02)


def test_polarizability_along_a_bond_exceeds_the_perpendicular():
    """H2 in B3LYP/6-31G: only s functions, so no response perpendicular to the bond, a positive one along it."""
    alpha = make_reference(SMALL_DFT).polarizability(molecule("H2"))  # bond along z
    assert alpha[2, 2] > 0.5
    assert abs(alpha[0, 0]) < 1e-6 and abs(alpha[1, 1]) < 1e-6


def test_reference_without_polarizability_is_a_clear_error():
    reference = make_reference("ase:ase.calculators.emt:EMT")
    with pytest.raises(InputError, match="no polarizability"):
        reference.polarizability(molecule("H2O"))


@pytest.fixture(scope="module")
def co2_xtb():
    reference = make_reference("xtb")
    return harmonic_raman(optimize_geometry(molecule("CO2"), reference, fmax=1e-4), reference)


def test_co2_mutual_exclusion(co2_xtb):
    """Centrosymmetric CO2: the symmetric stretch is Raman active and IR inactive; the bends and
    the antisymmetric stretch are IR active and Raman inactive."""
    frequencies = co2_xtb.frequencies_cm1
    activities = co2_xtb.activities
    ir = co2_xtb.harmonic.intensities_km_mol
    assert len(frequencies) == 4
    bends, symmetric, antisymmetric = [0, 1], 2, 3
    assert activities[symmetric] > 1.0  # Å^4/amu
    assert ir[symmetric] < 1e-3 * ir.max()
    for mode in [*bends, antisymmetric]:
        assert activities[mode] < 1e-6 * activities[symmetric]
        assert ir[mode] > 10.0  # km/mol
    ratios = co2_xtb.depolarization_ratios
    assert 0.0 < ratios[symmetric] < 0.75
    assert np.isnan(ratios[antisymmetric])


@pytest.fixture(scope="module")
def water_dft():
    reference = make_reference(SMALL_DFT)
    return harmonic_raman(optimize_geometry(molecule("H2O"), reference, fmax=1e-4), reference)


def test_water_symmetric_modes_polarised_antisymmetric_depolarised(water_dft):
    """C2v water: the A1 bend and symmetric stretch are polarised, the B2 antisymmetric stretch has
    a' = 0 and so rho = 3 gamma'^2 / 4 gamma'^2 = 0.75."""
    bend, symmetric, antisymmetric = water_dft.depolarization_ratios
    assert bend < 0.75 - 0.05 and symmetric < 0.75 - 0.05
    assert antisymmetric == pytest.approx(0.75, abs=1e-3)
    assert np.all(water_dft.activities > 1.0)  # Å^4/amu; all three modes are Raman active


def test_invariants_equal_ases(water_dft):
    """ASE's Raman invariants (ase.vibrations.raman) on the same tensors give the same activities
    45 a'^2 + 7 gamma'^2 and depolarisation ratios (45 a'^2 + 4 gamma'^2 in the denominator)."""
    from ase.vibrations.raman import RamanData

    dalpha = water_dft.polarizability_derivatives
    a2, gamma2, _ = RamanData._invariants(None, dalpha)
    np.testing.assert_allclose(water_dft.activities, 45 * a2 + 7 * gamma2, rtol=1e-2)
    np.testing.assert_allclose(
        water_dft.depolarization_ratios, 3 * gamma2 / (45 * a2 + 4 * gamma2), rtol=1e-2
    )


def test_invariants_of_textbook_tensors():
    """An isotropic derivative has only a'; a traceless one only gamma' (rho = 3/4)."""
    a2, gamma2 = raman_invariants(2.0 * np.eye(3))
    assert a2 == pytest.approx(4.0) and gamma2 == pytest.approx(0.0)
    assert raman_activities(2.0 * np.eye(3)) == pytest.approx(180.0)
    assert depolarization_ratios(np.array([2.0 * np.eye(3)]))[0] == pytest.approx(0.0)
    traceless = np.diag([1.0, -1.0, 0.0])
    assert raman_invariants(traceless)[1] == pytest.approx(3.0)
    assert depolarization_ratios(np.array([traceless]))[0] == pytest.approx(0.75)


def test_cross_section_formula():
    """Check the CGS formula against the same quantity written in SI with explicit constants, and
    its laser-frequency and temperature dependence."""
    nu, activity, laser, temperature = 1000.0, 10.0, 532.0, 300.0  # cm-1, Å^4/amu, nm, K
    sigma = raman_cross_sections(np.array([nu]), np.array([activity]), laser, temperature)[0]
    h, c, kb, amu = 6.62607015e-34, 2.99792458e8, 1.380649e-23, 1.66053906660e-27
    nu_m, nu0_m = nu * 100, 1e9 / laser  # m^-1
    s_si = activity * 1e-40 / amu  # m^4/kg
    bose = 1 - np.exp(-h * c * nu_m / (kb * temperature))
    expected = (2 * np.pi) ** 4 / 45 * h / (8 * np.pi**2 * c * nu_m) * (nu0_m - nu_m) ** 4 * s_si / bose
    assert sigma == pytest.approx(expected * 1e4, rel=1e-9)  # m^2 -> cm^2
    assert 1e-32 < sigma < 1e-28  # cm^2/sr, the range of small molecules' Raman bands
    bluer = raman_cross_sections(np.array([nu]), np.array([activity]), 488.0, temperature)[0]
    assert bluer / sigma == pytest.approx(((1e7 / 488 - nu) / (1e7 / 532 - nu)) ** 4)
    cold = raman_cross_sections(np.array([nu]), np.array([activity]), laser, 1.0)[0]
    assert cold / sigma == pytest.approx(bose)
    none = raman_cross_sections(np.array([-50.0, 2e4]), np.array([1.0, 1.0]), laser, temperature)
    np.testing.assert_array_equal(none, 0.0)


def test_spectrum_areas_are_activities(co2_xtb):
    """A fine grid's integral of each broadened line recovers its activity (Gaussian, no tails lost)."""
    spectrum = co2_xtb.spectrum(fwhm=5.0, shape="gaussian", lo=100.0, hi=3500.0, step=0.5)
    area = np.trapezoid(spectrum.intensity, spectrum.wavenumber)
    assert area == pytest.approx(co2_xtb.activities[co2_xtb.frequencies_cm1 > 0].sum(), rel=1e-3)
    assert spectrum.metadata["intensity_units"] == "A^4/amu per cm-1"
    with_laser = co2_xtb.spectrum(fwhm=5.0, laser_nm=532.0, temperature_k=300.0)
    assert with_laser.metadata["laser_nm"] == 532.0


def test_mode_derivatives_equal_cartesian_derivatives_mapped_like_ase():
    """ASE's Raman maps Cartesian derivatives onto the modes (d alpha/dQ_k = sum_i L_ki / sqrt(m_i)
    d alpha/dx_i); the same from 6N Cartesian displacements equals specml's 2(3N-6) mode
    displacements within 1 %, and so do the activities from ASE's invariants."""
    from ase.vibrations.raman import RamanData

    from specml.spectra.harmonic import displaced_structures

    reference = make_reference("xtb")
    water = optimize_geometry(molecule("H2O"), reference, fmax=1e-4)
    result = harmonic_raman(water, reference)
    delta = 0.005
    alphas = np.array([reference.polarizability(a) for a in displaced_structures(water, delta)])
    alphas = alphas.reshape(3 * len(water), 2, 3, 3)
    dalpha_dx = (alphas[:, 0] - alphas[:, 1]) / (2 * delta)  # Å^2, (3N, 3, 3)
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(water.get_masses(), 3))
    mapped = np.einsum("ki,i,iab->kab", result.harmonic.mass_weighted_modes, inv_sqrt_m, dalpha_dx)
    scale = np.abs(mapped).max()
    np.testing.assert_allclose(result.polarizability_derivatives, mapped, atol=1e-2 * scale)
    a2, gamma2, _ = RamanData._invariants(None, mapped)
    np.testing.assert_allclose(result.activities, 45 * a2 + 7 * gamma2, rtol=1e-2)


def test_cli_raman_json_and_files(tmp_path):
    """``specml raman`` writes CSV, PNG and JSON; the JSON's activities and ratios are the table's."""
    import json

    from typer.testing import CliRunner

    from specml.cli import app

    result = CliRunner().invoke(
        app, ["raman", "O", "--out", str(tmp_path), "--laser-nm", "532", "-T", "300", "--json"]
    )
    assert result.exit_code == 0, result.output
    (water,) = json.loads(result.stdout)
    assert len(water["frequencies_cm1"]) == 3 and water["laser_nm"] == 532.0
    assert water["depolarization_ratios"][2] == pytest.approx(0.75, abs=1e-3)  # B2 stretch
    assert all(s > 0 for s in water["cross_sections_cm2_sr"])
    for path in water["files"].values():
        assert Path(path).stat().st_size > 0
    saved = json.loads(Path(water["files"]["json"]).read_text())
    assert saved["activities_a4_amu"] == water["activities_a4_amu"]
