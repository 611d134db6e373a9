"""SQM force fields (specml.spectra.sqm) on GFN2-xTB Hessians of small molecules."""

import numpy as np
import pytest

from specml.errors import InputError
from specml.molecules.inputs import atoms_from_smiles
from specml.spectra.harmonic import harmonic_from_derivatives, optimized_harmonic_analysis
from specml.spectra.sqm import C_CL_TYPE, COORDINATE_TYPES, internal_force_field, sqm_harmonic


@pytest.fixture(scope="module")
def xtb_results():
    """Optimised GFN2-xTB harmonic analyses (finite-difference Hessians) of a few small molecules."""
    return {
        smiles: optimized_harmonic_analysis(atoms_from_smiles(smiles, seed=42), "xtb")
        for smiles in ("O", "CO", "C", "CCl")
    }


def scaled(result, factors, masses=None):
    return sqm_harmonic(result.atoms, result.hessian, result.dipole_derivatives, factors, masses)


@pytest.mark.parametrize("smiles", ["O", "CO"])
def test_unit_factors_reproduce_the_unscaled_modes(xtb_results, smiles):
    result = xtb_results[smiles]
    same = scaled(result, dict.fromkeys(COORDINATE_TYPES, 1.0))
    np.testing.assert_allclose(same.frequencies_cm1, result.frequencies_cm1, atol=0.1)
    np.testing.assert_allclose(same.intensities_km_mol, result.intensities_km_mol, rtol=1e-4, atol=1e-4)


def test_one_common_factor_scales_every_frequency_by_its_root(xtb_results):
    result = xtb_results["CO"]
    c = 0.9
    uniform = scaled(result, dict.fromkeys(COORDINATE_TYPES, c))
    np.testing.assert_allclose(uniform.frequencies_cm1, np.sqrt(c) * result.frequencies_cm1, atol=0.1)


def test_the_c_cl_factor_moves_the_c_cl_stretch_only(xtb_results):
    result = xtb_results["CCl"]
    base = scaled(result, {})
    stiffer = scaled(result, {C_CL_TYPE: 1.1})
    other_halogens = scaled(result, {"stretch_halogen_or_heavier": 1.1})
    # CH3Cl's C-Cl stretch: the mode with the largest C-Cl energy share (~700 cm-1 with xTB).
    wavenumbers, distribution = internal_force_field(result.atoms, result.hessian).energy_distribution({})
    c_cl = int(np.argmax(distribution[:, COORDINATE_TYPES.index(C_CL_TYPE)]))
    assert 550 < wavenumbers[c_cl] < 850
    assert stiffer.frequencies_cm1[c_cl] > base.frequencies_cm1[c_cl] + 15
    # C-Cl has its own type: the factor of the other halogen bonds leaves it alone.
    np.testing.assert_allclose(other_halogens.frequencies_cm1, base.frequencies_cm1, atol=0.01)
    c_h = base.frequencies_cm1 > 2500
    assert c_h.sum() == 3
    np.testing.assert_allclose(stiffer.frequencies_cm1[c_h], base.frequencies_cm1[c_h], atol=1.0)


def test_energy_distribution_is_the_log_derivative(xtb_results):
    """d omega / d ln c = omega * distribution / 2, which the benchmark's fit relies on."""
    field = internal_force_field(xtb_results["CO"].atoms, xtb_results["CO"].hessian)
    step = 1e-4
    wavenumbers, distribution = field.energy_distribution({})
    for column, name in enumerate(COORDINATE_TYPES):  # central differences in ln c
        up, _ = field.energy_distribution({name: np.exp(step)})
        down, _ = field.energy_distribution({name: np.exp(-step)})
        np.testing.assert_allclose(
            (up - down) / (2 * step), 0.5 * wavenumbers * distribution[:, column], rtol=1e-4, atol=0.01
        )
    np.testing.assert_allclose(distribution.sum(axis=1), 1.0, atol=1e-8)


def test_isotopologue_masses_are_honoured(xtb_results):
    ch4 = xtb_results["C"]
    masses = ch4.atoms.get_masses()
    masses[[i for i, s in enumerate(ch4.atoms.get_chemical_symbols()) if s == "H"]] = 2.014102
    factors = {"stretch_xh_first_row": 0.92, "bend_h": 0.97}
    cd4 = scaled(ch4, factors, masses)
    atoms = ch4.atoms.copy()
    atoms.set_masses(masses)
    unscaled_cd4 = harmonic_from_derivatives(atoms, ch4.hessian, ch4.dipole_derivatives)
    # The scaled CD4/CH4 ratio of the highest (stretching) mode is the unscaled one's.
    ratio_scaled = cd4.frequencies_cm1[-1] / scaled(ch4, factors).frequencies_cm1[-1]
    ratio_unscaled = unscaled_cd4.frequencies_cm1[-1] / ch4.frequencies_cm1[-1]
    assert ratio_scaled == pytest.approx(ratio_unscaled, abs=2e-3)
    assert 0.70 < ratio_scaled < 0.75  # about 1/sqrt(2) for a C-D against a C-H stretch
    np.testing.assert_allclose(
        scaled(ch4, {}, masses).frequencies_cm1, unscaled_cd4.frequencies_cm1, atol=0.1
    )


def test_a_hessian_of_the_wrong_shape_is_refused(xtb_results):
    result = xtb_results["O"]
    with pytest.raises(InputError, match=r"must be \(9, 9\)"):
        internal_force_field(result.atoms, result.hessian[:6, :6])


def test_unknown_or_negative_factors_are_refused(xtb_results):
    field = internal_force_field(xtb_results["O"].atoms, xtb_results["O"].hessian)
    with pytest.raises(InputError, match="unknown SQM coordinate type"):
        field.scaled_hessian({"stretch_CH": 0.9})
    with pytest.raises(InputError, match="positive"):
        field.scaled_hessian({"bend_h": -1.0})
