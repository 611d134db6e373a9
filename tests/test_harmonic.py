"""Harmonic IR against ASE's own finite-difference vibrations."""

import numpy as np
import pytest
from ase.vibrations import Vibrations

from specml.molecules import load_molecules, optimize_geometry
from specml.reference import make_reference
from specml.spectra.harmonic import harmonic_analysis


@pytest.fixture(scope="module")
def methanol_xtb():
    reference = make_reference("xtb")
    atoms = optimize_geometry(load_molecules("CO")[0].atoms, reference, fmax=1e-4)
    return atoms, reference, harmonic_analysis(atoms, reference)


def test_frequencies_agree_with_ase_vibrations(methanol_xtb, tmp_path):
    atoms, reference, result = methanol_xtb
    work = atoms.copy()
    work.calc = reference.calculator()
    vib = Vibrations(work, name=str(tmp_path / "vib"), delta=0.01, nfree=2)
    vib.run()
    ase_freqs = np.sort(vib.get_frequencies().real)[-len(result.frequencies_cm1):]
    high = ase_freqs > 500
    assert high.sum() == 11  # methanol: 12 modes, one torsion below 500 cm-1
    np.testing.assert_allclose(result.frequencies_cm1[high], ase_freqs[high], atol=1.0)


def test_methanol_modes_and_intensities_are_physical(methanol_xtb):
    _, _, result = methanol_xtb
    assert len(result.frequencies_cm1) == 3 * 6 - 6
    assert np.all(result.frequencies_cm1 > 0)  # a minimum: no imaginary modes
    # The C-O stretch (~1030 cm-1 in experiment) is the strongest band in 900-1200 cm-1.
    window = (result.frequencies_cm1 > 900) & (result.frequencies_cm1 < 1200)
    co = result.frequencies_cm1[window][np.argmax(result.intensities_km_mol[window])]
    assert 980 < co < 1100
    # O-H stretch is the highest mode.
    assert 3400 < result.frequencies_cm1[-1] < 3800
    spectrum = result.spectrum(fwhm=10)
    assert spectrum.metadata["resolution_cm1"] == 10
    # Lorentzian areas are the stick intensities (within the window's truncated tails).
    assert np.trapezoid(spectrum.intensity, spectrum.wavenumber) == pytest.approx(
        result.intensities_km_mol[result.frequencies_cm1 > 400].sum(), rel=0.05)


def test_linear_molecule_has_3n_minus_5_modes():
    reference = make_reference("xtb")
    atoms = optimize_geometry(load_molecules("O=C=O")[0].atoms, reference, fmax=1e-4)
    result = harmonic_analysis(atoms, reference)
    assert len(result.frequencies_cm1) == 4
    # CO2: the asymmetric stretch (2349 cm-1 in experiment; GFN2-xTB puts it near 2590) is the
    # highest and strongest band, the degenerate bend (667 cm-1) the lowest pair.
    assert np.argmax(result.intensities_km_mol) == 3
    assert 2200 < result.frequencies_cm1[3] < 2700
    assert result.frequencies_cm1[0] == pytest.approx(result.frequencies_cm1[1], abs=1.0)
    assert 500 < result.frequencies_cm1[0] < 800


def test_conformer_average_weights_ethanol_rotamers():
    """Ethanol: trans + two mirror-image gauche minima. Mirror images have one energy and one
    spectrum, so they share their population; the average keeps every conformer's bands."""
    from specml.molecules.conformers import conformers_from_smiles
    from specml.spectra.harmonic import conformer_averaged_harmonic

    result = conformer_averaged_harmonic(conformers_from_smiles("CCO"), "xtb")
    assert len(result.results) == 3 and result.n_dropped["saddle_points"] == 0
    assert result.weights.sum() == pytest.approx(1.0)
    energies = result.energies_eV - result.energies_eV.min()
    pair = [i for i in range(3) if i != int(np.argmax(energies))]  # the two of equal energy
    assert energies[pair[0]] == pytest.approx(energies[pair[1]], abs=1e-5)
    assert result.weights[pair[0]] == pytest.approx(result.weights[pair[1]], rel=1e-3)
    np.testing.assert_allclose(result.results[pair[0]].frequencies_cm1, result.results[pair[1]].frequencies_cm1,
                               atol=1.0)
    frequencies, intensities = result.sticks()
    assert frequencies.size == 3 * 21
    total = sum(w * r.intensities_km_mol.sum() for w, r in zip(result.weights, result.results))
    assert intensities.sum() == pytest.approx(total)
    assert np.all(np.diff(result.energies_eV) >= 0)  # lowest energy first
