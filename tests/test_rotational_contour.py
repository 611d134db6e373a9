"""Gas-phase band shapes from classical rigid rotors (specml.spectra.rotational_contour)."""

import numpy as np
import pytest
from ase import Atoms
from scipy.signal import find_peaks

from specml.spectra.rotational_contour import (
    band_axis_weights,
    band_profiles,
    contour_broadened_sticks,
    rotational_correlations,
)

ROTATIONAL_CONSTANT_CM1_AMU_A2 = 16.857629


def pr_separation_cm1(moment_amu_a2: float, temperature_k: float = 298.0) -> float:
    """Textbook P-R maximum separation of a linear molecule: 2.358 sqrt(B T), B in cm-1."""
    return 2.358 * np.sqrt(ROTATIONAL_CONSTANT_CM1_AMU_A2 / moment_amu_a2 * temperature_k)


def maxima(offsets, profile):
    peaks, _ = find_peaks(profile, prominence=0.05 * profile.max())
    return offsets[peaks]


def test_linear_molecule_parallel_band_is_a_pr_doublet_and_perpendicular_has_a_q_branch():
    co2 = (0.0, 43.1, 43.1)  # CO2, B = 0.39 cm-1
    offsets, profiles = band_profiles(co2, 298.0, fwhm_cm1=2.0)
    parallel, perpendicular = profiles[0], profiles[1]
    peaks = maxima(offsets, parallel)
    assert len(peaks) == 2 and peaks[0] == -peaks[1]
    assert peaks[1] - peaks[0] == pytest.approx(pr_separation_cm1(43.1), rel=0.1)  # 25.5 cm-1
    centre = len(offsets) // 2
    assert parallel[centre] < 0.2 * parallel.max()  # no Q branch
    assert perpendicular.argmax() == centre  # Q branch
    for profile in profiles:
        assert profile.sum() * (offsets[1] - offsets[0]) == pytest.approx(1.0)


def test_contour_width_scales_with_the_square_root_of_temperature_over_moment():
    def mean_offset(moments, temperature_k):  # of the P-R doublet, robust to sampling noise
        offsets, profiles = band_profiles(moments, temperature_k, fwhm_cm1=2.0)
        return float(np.sum(np.abs(offsets) * profiles[0]) / np.sum(profiles[0]))

    reference = mean_offset((0.0, 43.1, 43.1), 100.0)
    assert mean_offset((0.0, 43.1, 43.1), 400.0) / reference == pytest.approx(2.0, rel=0.1)
    assert mean_offset((0.0, 10.0, 10.0), 100.0) / reference == pytest.approx(np.sqrt(4.31), rel=0.1)


def test_prolate_top_parallel_band_has_pqr_with_the_linear_pr_separation():
    offsets, profiles = band_profiles((3.0, 40.0, 40.0), 298.0, fwhm_cm1=2.0)
    peaks = maxima(offsets, profiles[0])
    assert 0.0 in peaks and len(peaks) == 3
    assert np.ptp(peaks) == pytest.approx(pr_separation_cm1(40.0), rel=0.15)


def test_linear_rotor_correlations_decay_to_the_q_branch_share():
    times, correlation = rotational_correlations((0.0, 43.1, 43.1), 298.0, duration_fs=20000.0, n_rotors=200)
    assert times[0] == 0.0 and times[-1] == pytest.approx(20000.0, rel=0.01)
    assert np.allclose(correlation[:, 0], 1.0)
    late = correlation[:, -50:].mean(axis=1)
    # The molecular axis turns with the molecule: nothing is left (no Q branch). A dipole
    # perpendicular to it keeps its component along L, half on average: the Q branch share.
    assert late[0] == pytest.approx(0.0, abs=0.02)
    assert late[1] + late[2] == pytest.approx(1.0, abs=0.02)
    assert late[1] == pytest.approx(0.5, abs=0.1)


def test_axis_weights_follow_the_transition_dipole_in_the_principal_frame():
    # A linear molecule along z: a dipole change along z is a parallel (a-type) band.
    atoms = Atoms("OCO", positions=[[0, 0, -1.16], [0, 0, 0], [0, 0, 1.16]])
    weights = band_axis_weights(atoms, np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert weights[0] == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)
    assert weights[1, 0] == pytest.approx(0.0, abs=1e-9) and weights[1].sum() == pytest.approx(1.0)
    assert weights[2] == pytest.approx([1 / 3, 1 / 3, 1 / 3])  # no intensity: any split


def test_contour_broadened_sticks_keep_each_band_area():
    grid = np.arange(400.0, 3000.0, 1.0)
    curve = contour_broadened_sticks(
        [700.0, 2350.0], [3.0, 5.0], [[0, 1, 0], [1, 0, 0]], (0.0, 43.1, 43.1), grid, fwhm_cm1=8.0
    )
    low, high = grid < 1500, grid >= 1500
    assert curve[low].sum() == pytest.approx(3.0, rel=1e-3)
    assert curve[high].sum() == pytest.approx(5.0, rel=1e-3)
    assert grid[high][curve[high].argmax()] != 2350.0  # the parallel band is a doublet: a dip at its centre


@pytest.fixture(scope="module")
def carbon_monoxide_xtb():
    from specml.molecules import load_molecules
    from specml.spectra.harmonic import optimized_harmonic_analysis

    return optimized_harmonic_analysis(load_molecules("[C-]#[O+]")[0].atoms, "xtb")


def test_carbon_monoxide_pr_separation_matches_the_nist_gas_spectrum(carbon_monoxide_xtb, shared_dir):
    from specml.experiment import load_absorbance
    from specml.experiment.preprocess import broaden_to

    measured = broaden_to(load_absorbance(shared_dir / "data/nist-ir/carbon monoxide.jdx"), 4.0)
    window = (measured.wavenumber > 2050) & (measured.wavenumber < 2250)
    measured_maxima = maxima(measured.wavenumber[window], measured.intensity[window])
    assert len(measured_maxima) == 2  # P and R branch, no Q: a parallel band of a linear molecule
    centre = carbon_monoxide_xtb.frequencies_cm1[-1]
    predicted = carbon_monoxide_xtb.spectrum(
        fwhm=4.0, shape="gaussian", lo=centre - 100, hi=centre + 100, step=0.5, rotational_temperature_k=298.0
    )
    predicted_maxima = maxima(predicted.wavenumber, predicted.intensity)
    assert len(predicted_maxima) == 2
    # 56.2 cm-1 measured; xTB's slightly different bond length gives 58.
    assert np.ptp(predicted_maxima) == pytest.approx(np.ptp(measured_maxima), rel=0.05)
    assert predicted.metadata["rotational_temperature_k"] == 298.0


def test_gas_phase_harmonic_spectrum_keeps_band_areas_and_needs_a_gaussian(carbon_monoxide_xtb):
    from specml.errors import InputError
    from specml.spectra.harmonic import ConformerHarmonic

    spectrum = carbon_monoxide_xtb.spectrum(
        fwhm=10.0, shape="gaussian", lo=1500, hi=3000, rotational_temperature_k=298.0
    )
    assert np.trapezoid(spectrum.intensity, spectrum.wavenumber) == pytest.approx(
        carbon_monoxide_xtb.intensities_km_mol.sum(), rel=1e-3
    )
    with pytest.raises(InputError, match="Gaussian"):
        carbon_monoxide_xtb.spectrum(fwhm=10.0, shape="lorentzian", rotational_temperature_k=298.0)
    with pytest.raises(InputError, match="positive"):
        carbon_monoxide_xtb.spectrum(fwhm=10.0, shape="gaussian", rotational_temperature_k=0.0)
    with pytest.raises(InputError, match="at least 1 cm-1"):
        carbon_monoxide_xtb.spectrum(fwhm=0.2, shape="gaussian", rotational_temperature_k=298.0)
    # Conformers: the population-weighted sum of each conformer's own gas-phase spectrum.
    pair = ConformerHarmonic(
        [carbon_monoxide_xtb, carbon_monoxide_xtb], np.zeros(2), np.array([0.3, 0.7]), 298.0, {}
    )
    mixed = pair.spectrum(fwhm=10.0, shape="gaussian", lo=1500, hi=3000, rotational_temperature_k=298.0)
    np.testing.assert_allclose(mixed.intensity, spectrum.intensity, rtol=1e-9, atol=1e-12)
