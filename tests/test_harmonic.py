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
    ase_freqs = np.sort(vib.get_frequencies().real)[-len(result.frequencies_cm1) :]
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
        result.intensities_km_mol[result.frequencies_cm1 > 400].sum(), rel=0.05
    )


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
    spectrum: gauche is analysed once and counted twice; the average keeps every conformer's bands."""
    from ase import units

    from specml.molecules.conformers import conformers_from_smiles
    from specml.spectra.harmonic import conformer_averaged_harmonic

    result = conformer_averaged_harmonic(conformers_from_smiles("CCO"), "xtb")
    assert len(result.results) == 2 and result.n_dropped["saddle_points"] == 0
    assert sorted(result.degeneracies) == [1, 2]  # trans is its own mirror image, gauche is not
    assert result.weights.sum() == pytest.approx(1.0)
    kt = units.kB * result.temperature_k
    ratio = result.weights[1] / result.weights[0]
    g = result.degeneracies
    expected = g[1] / g[0] * np.exp(-(result.energies_eV[1] - result.energies_eV[0]) / kt)
    assert ratio == pytest.approx(expected, rel=1e-9)
    frequencies, intensities = result.sticks()
    assert frequencies.size == 2 * 21
    total = sum(w * r.intensities_km_mol.sum() for w, r in zip(result.weights, result.results, strict=True))
    assert intensities.sum() == pytest.approx(total)
    assert np.all(np.diff(result.energies_eV) >= 0)  # lowest energy first


def test_expensive_reference_optimises_only_screened_conformers(monkeypatch):
    """A reference with a cheap pre-relaxation (DFT) optimises only the distinct minima the cheap
    screen keeps, one of each mirror pair: ethanol's three force-field conformers, two optimisations."""
    import specml.molecules.optimize as optimize
    from specml.molecules.conformers import conformers_from_smiles
    from specml.reference import make_reference
    from specml.spectra.harmonic import conformer_averaged_harmonic

    expensive = make_reference("gfn1")
    expensive.prerelax = "xtb"  # stands in for DFT: GFN1 optimisations after a GFN2 screen
    calls: list[bool] = []  # per optimisation: with the expensive reference?
    original = optimize.optimize_geometry

    def counted(atoms, reference, *args, **kwargs):
        calls.append(reference is expensive)
        return original(atoms, reference, *args, **kwargs)

    monkeypatch.setattr(optimize, "optimize_geometry", counted)
    ensemble = conformers_from_smiles("CCO")
    result = conformer_averaged_harmonic(ensemble, expensive)
    assert len(ensemble.structures) == 3 and sum(calls) == 2
    assert len(result.results) == 2 and sorted(result.degeneracies) == [1, 2]


def test_conformer_average_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Each conformer's optimisation and analysis is kept as it finishes: a rerun recomputes only
    what is missing (here: one analysis, as after a kill) and gives the same mixture."""
    import specml.molecules.optimize as optimize
    import specml.spectra.harmonic as harmonic
    from specml.molecules.conformers import conformers_from_smiles

    ensemble = conformers_from_smiles("CCO")
    first = harmonic.conformer_averaged_harmonic(ensemble, "xtb", checkpoint=tmp_path)
    stored = sorted(p.name for p in tmp_path.iterdir())
    assert stored == ["analysed_0.json", "analysed_1.json"] + [f"optimised_{i}.json" for i in range(3)]
    (tmp_path / "analysed_1.json").unlink()
    (tmp_path / "analysed_0.json").write_text('{"positions_angstrom": [[0.0')  # cut short by a kill
    calls = {"optimize": 0, "analyse": 0}
    real_optimize, real_analyse = optimize.optimize_geometry, harmonic.harmonic_analysis

    def counted(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(optimize, "optimize_geometry", counted("optimize", real_optimize))
    monkeypatch.setattr(harmonic, "harmonic_analysis", counted("analyse", real_analyse))
    again = harmonic.conformer_averaged_harmonic(ensemble, "xtb", checkpoint=tmp_path)
    assert calls == {"optimize": 0, "analyse": 2}  # the optimisations all came from the checkpoint
    third = harmonic.conformer_averaged_harmonic(ensemble, "xtb", checkpoint=tmp_path)
    assert calls == {"optimize": 0, "analyse": 2}  # and now the analyses too
    for result in (again, third):
        np.testing.assert_allclose(result.weights, first.weights, rtol=1e-9)
        for a, b in zip(result.results, first.results, strict=True):
            np.testing.assert_allclose(a.frequencies_cm1, b.frequencies_cm1, atol=0.01)
            np.testing.assert_allclose(a.intensities_km_mol, b.intensities_km_mol, rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def methane_isotopologues():
    """GFN2-xTB harmonic analyses of CH4 and CD4: one potential, two sets of masses."""
    from specml.molecules.inputs import atoms_from_smiles
    from specml.spectra.harmonic import optimized_harmonic_analysis

    return (
        optimized_harmonic_analysis(atoms_from_smiles("C"), "xtb"),
        optimized_harmonic_analysis(atoms_from_smiles("[2H]C([2H])([2H])[2H]"), "xtb"),
    )


def test_deuteration_scales_frequencies_by_reduced_mass(methane_isotopologues):
    """Same Hessian, other masses: frequencies follow sqrt(mass) ratios (masses in amu)."""
    ch4, cd4 = methane_isotopologues
    m_c, m_h, m_d = 12.011, 1.008, 2.014102
    deuterium = cd4.atoms.numbers == 1
    np.testing.assert_allclose(cd4.atoms.get_masses()[deuterium], m_d, atol=1e-5)  # survives optimisation
    # Highest band (C-H / C-D stretch): the C-H oscillator's sqrt(mu_CD / mu_CH) = 1.362, within 1 %
    # (the carbon takes part in the asymmetric stretch, so it is not a pure C-H oscillator).
    oscillator = np.sqrt((m_d * m_c / (m_d + m_c)) / (m_h * m_c / (m_h + m_c)))
    assert ch4.frequencies_cm1[-1] / cd4.frequencies_cm1[-1] == pytest.approx(oscillator, rel=0.01)
    # Symmetric stretch (the lowest of the four stretches): the carbon stays at rest, so the
    # ratio is exactly sqrt(m_D / m_H).
    ch_stretch, cd_stretch = (r.frequencies_cm1[r.frequencies_cm1 > 2000].min() for r in (ch4, cd4))
    assert ch_stretch / cd_stretch == pytest.approx(np.sqrt(m_d / m_h), rel=1e-3)


def test_ase_md_moves_the_isotope_masses(methane_isotopologues):
    """Same velocities (Å/fs), H or D: the kinetic temperature scales with the mass, m_D / m_H."""
    from specml.dynamics import run_ase_md

    temperatures = []
    for result in methane_isotopologues:
        atoms = result.atoms
        hydrogens = atoms.numbers == 1
        bonds = atoms.positions[hydrogens] - atoms.positions[~hydrogens]
        # Breathing motion of the hydrogens, 0.01 Å/fs each (carbon at rest: no net momentum).
        velocities = np.zeros_like(atoms.positions)
        velocities[hydrogens] = 0.01 * bonds / np.linalg.norm(bonds, axis=1, keepdims=True)
        traj = run_ase_md(
            atoms,
            make_reference("xtb").calculator(),
            n_steps=1,
            timestep_fs=0.01,
            friction_per_fs=None,
            velocities=velocities,
        )
        temperatures.append(traj.temperatures_k[0])
    assert temperatures[1] / temperatures[0] == pytest.approx(2.014102 / 1.008, rel=1e-3)


def test_batched_md_starts_keep_isotope_masses():
    from specml.molecules.inputs import atoms_from_smiles
    from specml.workflow.md_tasks import Replica, _start

    cd4 = atoms_from_smiles("[2H]C([2H])([2H])[2H]")
    start = _start(Replica("CD4", cd4, 300.0, seed=0))
    np.testing.assert_array_equal(start.get_masses(), cd4.get_masses())  # BatchedMD reads these


def test_optimisation_leaves_a_saddle_point():
    """GFN2-xTB from RDKit's acetone conformer stops on a methyl-torsion saddle point (-63 cm-1);
    one step along that mode and a new optimisation reach the minimum."""
    from specml.molecules import atoms_from_smiles
    from specml.spectra.harmonic import optimized_harmonic_analysis

    stuck = optimized_harmonic_analysis(atoms_from_smiles("CC(C)=O", seed=42), "xtb", max_saddle_escapes=0)
    assert stuck.frequencies_cm1[0] < -30
    result = optimized_harmonic_analysis(atoms_from_smiles("CC(C)=O", seed=42), "xtb")
    assert result.atoms.info["saddle_escapes"] >= 1
    assert result.frequencies_cm1[0] > 0  # a minimum: every mode real
    assert len(result.frequencies_cm1) == 24


def test_a_nearly_linear_molecule_keeps_both_components_of_its_bend():
    """An optimised linear molecule is straight only to ~1e-4 Å; it still has 3N-5 modes with a
    doubly degenerate bend (CO2: 4 modes, the two bends equal)."""
    from ase import Atoms

    from specml.spectra.harmonic import harmonic_from_derivatives

    reference = make_reference("xtb")
    co2 = optimize_geometry(
        Atoms("CO2", positions=[[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]]), reference, fmax=1e-4
    )
    co2.positions[0, 0] += 1e-4  # Å: as straight as a DFT optimisation leaves it
    exact = harmonic_analysis(co2, reference)
    assert len(exact.frequencies_cm1) == 4
    bend = exact.frequencies_cm1[:2]
    assert abs(bend[0] - bend[1]) < 1.0 and 500 < bend[0] < 800  # cm-1
    again = harmonic_from_derivatives(co2, exact.hessian, exact.dipole_derivatives)
    np.testing.assert_allclose(again.frequencies_cm1, exact.frequencies_cm1)
