"""Analytic checks of the spectra core: IR from dipoles, harmonic analysis, reference MD."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from scipy.signal import find_peaks

from specml.dynamics import run_ase_md
from specml.errors import InputError
from specml.spectra.autocorrelation import average_spectra, harmonic_quantum_correction, ir_from_dipoles
from specml.spectra.broadening import broaden_sticks
from specml.spectra.spectrum import Spectrum
from specml.units import SPEED_OF_LIGHT_CM_PER_FS


def sinusoid_dipoles(wavenumbers, amplitudes, n_steps=40000, dt=0.5):
    t = np.arange(n_steps) * dt
    mu = np.zeros((n_steps, 3))
    for axis, (nu, a) in enumerate(zip(wavenumbers, amplitudes, strict=True)):
        mu[:, axis % 3] += a * np.sin(2 * np.pi * nu * SPEED_OF_LIGHT_CM_PER_FS * t + 0.1 * axis)
    return mu


def band_area(spectrum, centre, half_width=100):
    keep = np.abs(spectrum.wavenumber - centre) < half_width
    return np.trapezoid(spectrum.intensity[keep], spectrum.wavenumber[keep])


def test_sinusoid_peaks_and_intensity_ratios():
    wavenumbers, amplitudes = [1000.0, 1700.0, 3000.0], [0.1, 0.05, 0.02]
    spectrum = ir_from_dipoles(sinusoid_dipoles(wavenumbers, amplitudes), 0.5)
    peaks, _ = find_peaks(spectrum.intensity, height=0.05 * spectrum.intensity.max())
    assert len(peaks) == 3
    assert np.all(np.abs(spectrum.wavenumber[peaks] - wavenumbers) < 2.0)
    # The derivative autocorrelation weights each line by (amplitude * angular frequency)^2.
    expected = (np.array(amplitudes) * np.array(wavenumbers)) ** 2
    areas = np.array([band_area(spectrum, nu) for nu in wavenumbers])
    np.testing.assert_allclose(areas / areas[0], expected / expected[0], rtol=0.01)


def test_two_lines_on_one_axis_keep_amplitude_ratio():
    # Same frequency scale, amplitudes 2:1 on one component: intensity ratio 4:1 for equal frequencies.
    dt = 0.5
    t = np.arange(40000) * dt
    mu = np.zeros((t.size, 3))
    mu[:, 0] = 0.2 * np.sin(2 * np.pi * 1200 * SPEED_OF_LIGHT_CM_PER_FS * t)
    mu[:, 1] = 0.1 * np.sin(2 * np.pi * 1200 * SPEED_OF_LIGHT_CM_PER_FS * t)
    both = ir_from_dipoles(mu, dt)
    only_x = ir_from_dipoles(mu * [1, 0, 0], dt)
    only_y = ir_from_dipoles(mu * [0, 1, 0], dt)
    assert band_area(only_x, 1200) / band_area(only_y, 1200) == pytest.approx(4.0, rel=1e-3)
    assert band_area(both, 1200) == pytest.approx(band_area(only_x, 1200) + band_area(only_y, 1200), rel=1e-6)


def test_correlation_depth_and_padding_settings():
    mu = sinusoid_dipoles([1500.0], [0.1], n_steps=20000)
    sharp = ir_from_dipoles(mu, 0.5, max_correlation_fs=2000, resolution_cm1=0.25)
    broad = ir_from_dipoles(mu, 0.5, max_correlation_fs=250)
    assert sharp.spacing_cm1 <= 0.25 + 1e-9
    assert sharp.intensity.max() > 4 * broad.intensity.max()  # longer depth -> narrower, taller line
    with pytest.raises(InputError, match="too short"):
        ir_from_dipoles(mu[:1000], 0.5, max_correlation_fs=1000)
    with pytest.raises(InputError, match="shape"):
        ir_from_dipoles(mu[:, :2], 0.5)


def test_quantum_correction_limits():
    factor = harmonic_quantum_correction(np.array([1e-3, 3000.0]), 300.0)
    assert factor[0] == pytest.approx(1.0, abs=1e-4)
    x = 3000.0 / (0.695034800 * 300.0)
    assert factor[1] == pytest.approx(x / (1 - np.exp(-x)))
    mu = sinusoid_dipoles([3000.0], [0.05])
    classical = ir_from_dipoles(mu, 0.5)
    corrected = ir_from_dipoles(mu, 0.5, quantum_correction="harmonic", temperature_k=300.0)
    assert band_area(corrected, 3000) / band_area(classical, 3000) == pytest.approx(factor[1], rel=0.01)
    with pytest.raises(InputError, match="temperature"):
        ir_from_dipoles(mu, 0.5, quantum_correction="harmonic")


def test_average_spectra_mean_and_std():
    x = np.linspace(500, 4000, 50)
    spectra = [Spectrum(x, np.full(50, v)) for v in (1.0, 2.0, 3.0)]
    mean = average_spectra(spectra)
    np.testing.assert_allclose(mean.intensity, 2.0)
    np.testing.assert_allclose(mean.std, 1.0)


def test_broadened_sticks_conserve_area():
    grid = np.arange(0, 4000, 0.5)
    for shape in ("lorentzian", "gaussian"):
        y = broaden_sticks([1500.0, 2500.0], [10.0, 5.0], grid, 8.0, shape)
        assert np.trapezoid(y, grid) == pytest.approx(15.0, rel=0.01)
        assert grid[np.argmax(y)] == pytest.approx(1500.0, abs=0.5)


class HarmonicWell(Calculator):
    """Atoms tethered to their start positions by isotropic springs, E = k/2 |r - r0|^2, with
    dipole q (r - r0): every Cartesian direction is an exact harmonic oscillator (no rotation)."""

    implemented_properties = ["energy", "forces", "dipole"]

    def __init__(self, origin, k=30.0, q=0.3, **kwargs):
        super().__init__(**kwargs)
        self.origin, self.k, self.q = np.asarray(origin, dtype=float), k, q

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions - self.origin
        self.results = {
            "energy": 0.5 * self.k * float((d**2).sum()),
            "forces": -self.k * d,
            "dipole": self.q * d.sum(axis=0),
        }


def test_md_runner_recovers_analytic_oscillator_frequency():
    from specml.units import HESSIAN_EIGENVALUE_TO_CM1

    atoms = Atoms("O", positions=[[0.05, -0.03, 0.02]])
    calc = HarmonicWell(origin=[[0.0, 0.0, 0.0]], k=30.0)
    analytic_cm1 = np.sqrt(30.0 / atoms.get_masses()[0]) * HESSIAN_EIGENVALUE_TO_CM1
    traj = run_ase_md(
        atoms,
        calc,
        temperature_k=300.0,
        n_steps=8000,
        thermalization_steps=400,
        timestep_fs=0.5,
        friction_per_fs=0.0005,
        seed=3,
    )
    spectrum = traj.ir_spectrum(max_correlation_fs=1000.0, lo=200, hi=4000)
    peak = spectrum.wavenumber[np.argmax(spectrum.intensity)]
    assert peak == pytest.approx(analytic_cm1, abs=2.0)
    assert traj.times_fs[0] == pytest.approx(0.5)


def test_md_runner_nve_conserves_energy_and_sanity_stop():
    from ase import units

    atoms = Atoms("OH", positions=[[0.1, 0, 0], [0, 0.1, 1.0]])
    calc = HarmonicWell(origin=[[0, 0, 0], [0, 0, 1.0]], k=30.0)
    traj = run_ase_md(atoms, calc, temperature_k=600.0, n_steps=2000, friction_per_fs=None, seed=1)
    kinetic = 1.5 * len(atoms) * units.kB * traj.temperatures_k  # ASE: T = 2 Ekin / (3 N kB)
    total = traj.potential_energies + kinetic
    # Velocity Verlet at w*dt ~ 0.2 keeps the energy error to ~(w dt)^2/8 of the oscillation.
    assert np.ptp(total) < 0.01 * np.ptp(traj.potential_energies)
    # A force ceiling of zero stops the run at the first step, without an exception.
    stopped = run_ase_md(atoms, calc, temperature_k=600.0, n_steps=50, seed=1, max_force_ev_per_a=0.0)
    assert stopped.stopped_at_step == 1 and "blow-up" in stopped.stop_reason


def test_md_runner_velocities_are_in_angstrom_per_fs():
    # A free atom started at 0.01 Å/fs moves 0.5 Å in 50 fs and keeps its velocity.
    atoms = Atoms("O", positions=[[0.0, 0.0, 0.0]])
    calc = HarmonicWell(origin=[[0.0, 0.0, 0.0]], k=0.0)
    traj = run_ase_md(
        atoms, calc, n_steps=100, timestep_fs=0.5, friction_per_fs=None, velocities=[[0.01, 0.0, 0.0]]
    )
    assert traj.final_positions[0] == pytest.approx([0.5, 0.0, 0.0], abs=1e-9)
    assert traj.final_velocities[0] == pytest.approx([0.01, 0.0, 0.0], abs=1e-12)


class FailingWell(HarmonicWell):
    """A harmonic well whose ``fail_at``-th call raises, like an SCF that does not converge."""

    def __init__(self, fail_at=None, **kwargs):
        super().__init__(**kwargs)
        self.fail_at, self.calls = fail_at, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("SCF not converged")
        super().calculate(atoms, properties, system_changes)


def test_md_resumes_after_a_failed_call_exactly_where_it_stopped(tmp_path):
    import time

    import torch

    from specml.errors import DynamicsError

    atoms = Atoms("OH", positions=[[0.05, 0, 0], [0, 0.05, 1.0]])
    well = {"origin": [[0, 0, 0], [0, 0, 1.0]], "k": 30.0}
    settings = {
        "temperature_k": 300.0,
        "n_steps": 300,
        "thermalization_steps": 40,
        "seed": 2,
        "calculator_identity": "well",
    }
    whole = run_ase_md(atoms, FailingWell(**well), **settings)
    snapshot = tmp_path / "md.pt"
    with pytest.raises(
        DynamicsError, match=r"step 200 of 340 failed: SCF not converged; the state after step 199"
    ):
        run_ase_md(
            atoms, FailingWell(fail_at=201, **well), checkpoint_path=snapshot, **settings
        )  # call 1: start
    assert snapshot.exists()
    interrupted_s = torch.load(snapshot, weights_only=False)["wall_time_s"]
    resumed_calc = FailingWell(**well)
    started = time.perf_counter()
    resumed = run_ase_md(atoms, resumed_calc, checkpoint_path=snapshot, **settings)
    # The wall time counts the interrupted run's loop too, and this call's loop at most its own length.
    assert 0 < interrupted_s < resumed.info["wall_time_s"] <= interrupted_s + (time.perf_counter() - started)
    assert resumed_calc.calls == 340 - 199 + 1  # the 199 completed steps are not run again
    np.testing.assert_array_equal(resumed.dipoles, whole.dipoles)  # same stream, same frames
    np.testing.assert_array_equal(resumed.times_fs, whole.times_fs)
    # A snapshot of another run (other seed) is not used.
    other_calc = FailingWell(**well)
    run_ase_md(atoms, other_calc, checkpoint_path=snapshot, **{**settings, "seed": 3})
    assert other_calc.calls == 341


def test_frequency_scaling_moves_bands_and_keeps_their_area():
    x = np.linspace(500.0, 4000.0, 3501)
    band = np.exp(-0.5 * ((x - 3000.0) / 10.0) ** 2)
    spectrum = Spectrum(x, band, std=0.1 * band, metadata={"resolution_cm1": 10.0})
    scaled = spectrum.scaled_wavenumbers(0.96)
    assert scaled.metadata["resolution_cm1"] == pytest.approx(9.6)
    assert scaled.wavenumber[np.argmax(scaled.intensity)] == pytest.approx(2880.0)
    assert np.trapezoid(scaled.intensity, scaled.wavenumber) == pytest.approx(np.trapezoid(band, x))
    assert np.allclose(scaled.std, 0.1 * scaled.intensity)
    assert scaled.scaled_wavenumbers(0.5).metadata["frequency_scale_factor"] == pytest.approx(0.48)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="positive"):
            spectrum.scaled_wavenumbers(bad)
