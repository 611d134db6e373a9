"""Raman from MD: polarizability autocorrelations (isotropic, anisotropic, VV, VH, total) against
the harmonic Raman of the same model.

The model is an analytic water (``reference_doubles.ToyWater``: springs, point charges and a
bond polarizability model), so thousands of MD steps take seconds and every number is the
model's own: its harmonic activities come from :func:`specml.spectra.raman.harmonic_raman`
through the reference interface, its MD from ASE's velocity Verlet. At 10 K the motion is
harmonic; each trajectory starts with every normal mode holding exactly kB T (random phases),
so that the time average of Q_k'^2 is kB T in every trajectory and the band areas equal the
activities without the spread of a thermal ensemble of mode energies.
"""

import numpy as np
import pytest
from ase import Atoms, units

from specml.dynamics.ase_md import ase_md_loop
from specml.errors import InputError
from specml.reference import make_reference
from specml.spectra.raman import harmonic_raman
from specml.spectra.raman_md import (
    KB_AMU_A2_FS2_PER_K,
    invariant_series,
    raman_from_polarizabilities,
    raman_from_trajectories,
)
from specml.units import SPEED_OF_LIGHT_CM_PER_FS

TOY = "ase:reference_doubles:ToyWater"
TEMPERATURE_K = 10.0
TIMESTEP_FS = 0.2  # velocity Verlet raises a frequency by (w dt)^2 / 24: 3.9 cm-1 at 4028 cm-1
RECORD_EVERY = 2
DEPTH_FS = 1500.0
#: Trajectories averaged. Random phases leave cross terms between modes that a finite trajectory
#: does not average out (the 3815 and 4028 cm-1 bands beat with a 157 fs period): with two
#: trajectories one band area was 3.6 % off on one machine and within 3 % on another.
N_TRAJECTORIES = 6
WINDOW_CM1 = 80.0  # half-width of the band integration windows (bands 1065, 3815 and 4028 cm-1)


def toy_water() -> Atoms:
    from reference_doubles import ToyWater

    r, angle = ToyWater.R_OH, np.radians(ToyWater.ANGLE_DEG)
    return Atoms(
        "OH2",
        positions=[
            [0, 0, 0],
            [r * np.sin(angle / 2), 0, r * np.cos(angle / 2)],
            [-r * np.sin(angle / 2), 0, r * np.cos(angle / 2)],
        ],
    )


@pytest.fixture(scope="module")
def harmonic():
    return harmonic_raman(toy_water(), TOY)


def equipartitioned_start(result, phases):
    """Positions and velocities (Å, Å/fs) with every mode at energy kB T and the given phases."""
    atoms = result.harmonic.atoms
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    cartesian = result.harmonic.mass_weighted_modes * inv_sqrt_m[None, :]  # Q = 1 -> Å
    omega = 2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS * result.frequencies_cm1  # rad/fs
    amplitude = np.sqrt(2 * KB_AMU_A2_FS2_PER_K * TEMPERATURE_K)  # of Q', amu^1/2 Å/fs
    q = amplitude / omega * np.cos(phases)
    q_dot = -amplitude * np.sin(phases)
    return (q @ cartesian).reshape(-1, 3), (q_dot @ cartesian).reshape(-1, 3)


@pytest.fixture(scope="module")
def md_polarizabilities(harmonic):
    from reference_doubles import ToyWater

    reference = make_reference(TOY)
    series = []
    for seed in range(N_TRAJECTORIES):
        phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(harmonic.frequencies_cm1))
        displacement, velocity = equipartitioned_start(harmonic, phases)
        atoms = toy_water()
        atoms.positions += displacement
        atoms.set_velocities(velocity / units.fs)  # Å/fs -> Å per ASE time unit (units.fs of them in 1 fs)
        frames, _ = ase_md_loop(
            atoms,
            ToyWater(),
            int(2.2 * DEPTH_FS / TIMESTEP_FS),
            timestep_fs=TIMESTEP_FS,
            friction_per_fs=None,  # NVE: the modes keep their energy
            record_interval=RECORD_EVERY,
            record_positions=True,
            uncertainty=None,
        )
        assert frames.positions is not None and not frames.stopped
        series.append(
            np.array([reference.polarizability(Atoms("OH2", positions=p)) for p in frames.positions])
        )
    return series


def band_areas(spectrum, centres):
    x, y = spectrum.wavenumber, spectrum.intensity
    return np.array(
        [np.trapezoid(y[np.abs(x - c) < WINDOW_CM1], x[np.abs(x - c) < WINDOW_CM1]) for c in centres]
    )


def test_md_raman_reproduces_the_harmonic_raman_of_the_same_model(harmonic, md_polarizabilities):
    """Band positions within the integrator's shift, band areas of the total spectrum equal to the
    activities 45 a'^2 + 7 gamma'^2 (Å^4/amu, absolute) and VH/VV equal to the depolarisation
    ratios, averaged over the trajectories with a standard deviation."""
    spectra = raman_from_trajectories(
        md_polarizabilities, TIMESTEP_FS * RECORD_EVERY, TEMPERATURE_K, DEPTH_FS, lo=200.0, hi=4500.0
    )
    total = spectra["total"]
    assert total.metadata["n_trajectories"] == N_TRAJECTORIES and total.std is not None
    assert total.metadata["technique"] == "raman" and total.metadata["intensity_units"] == "A^4/amu per cm-1"
    frequencies = harmonic.frequencies_cm1
    for nu in frequencies:
        near = np.abs(total.wavenumber - nu) < WINDOW_CM1
        peak = total.wavenumber[near][np.argmax(total.intensity[near])]
        assert peak == pytest.approx(nu, abs=5.0)
    areas = band_areas(total, frequencies)
    np.testing.assert_allclose(areas, harmonic.activities, rtol=0.03)
    np.testing.assert_allclose(
        areas / areas.sum(), harmonic.activities / harmonic.activities.sum(), atol=0.01
    )
    ratios = band_areas(spectra["vh"], frequencies) / band_areas(spectra["vv"], frequencies)
    np.testing.assert_allclose(ratios, harmonic.depolarization_ratios, atol=0.02)
    assert ratios[1] == pytest.approx(0.75, abs=0.01)  # the antisymmetric stretch is depolarised
    iso, aniso = (
        band_areas(spectra["isotropic"], frequencies),
        band_areas(spectra["anisotropic"], frequencies),
    )
    np.testing.assert_allclose(iso + aniso, areas, rtol=1e-9)
    assert iso[1] < 1e-3 * areas[1]  # a' = 0 for a non-totally-symmetric mode


def test_md_cross_sections_match_the_harmonic_cross_sections(harmonic, md_polarizabilities):
    """With a laser and the harmonic quantum correction each band's area is the harmonic
    differential cross section (the laser factor (nu0 - nu)^4 / nu and the Bose factor applied
    point by point); the classical spectrum differs by x / (1 - exp(-x)) at the band."""
    timestep = TIMESTEP_FS * RECORD_EVERY
    laser = dict(laser_nm=532.0, lo=200.0, hi=4500.0)
    quantum = raman_from_polarizabilities(
        md_polarizabilities[0], timestep, TEMPERATURE_K, DEPTH_FS, quantum_correction="harmonic", **laser
    )["total"]
    assert quantum.metadata["intensity_units"] == "1e-30 cm^2/sr per cm-1"
    expected = harmonic.cross_sections(532.0, TEMPERATURE_K) * 1e30
    np.testing.assert_allclose(band_areas(quantum, harmonic.frequencies_cm1), expected, rtol=0.05)
    classical = raman_from_polarizabilities(
        md_polarizabilities[0], timestep, TEMPERATURE_K, DEPTH_FS, **laser
    )
    bend = harmonic.frequencies_cm1[0]
    at = np.argmin(np.abs(quantum.wavenumber - bend))
    x = bend / (0.695034800 * TEMPERATURE_K)
    assert quantum.intensity[at] / classical["total"].intensity[at] == pytest.approx(x, rel=1e-3)


def test_invariant_series_of_textbook_tensors():
    """An isotropic tensor has no anisotropic part; diag(1, -1, 0) has gamma^2 = 3 = sum of squares."""
    iso, aniso = invariant_series(np.array([2.0 * np.eye(3), np.diag([1.0, -1.0, 0.0])]))
    np.testing.assert_allclose(iso[:, 0], [2.0, 0.0])
    np.testing.assert_allclose(np.sum(aniso**2, axis=1), [0.0, 3.0])


def test_bad_input_is_a_clear_error():
    alpha = np.tile(np.eye(3), (100, 1, 1))
    with pytest.raises(InputError, match=r"shape \(T, 3, 3\)"):
        raman_from_polarizabilities(np.ones((100, 3)), 0.5, 300.0, 10.0)
    with pytest.raises(InputError, match="temperature must be positive"):
        raman_from_polarizabilities(alpha, 0.5, 0.0, 10.0)
    with pytest.raises(InputError, match="too short"):
        raman_from_polarizabilities(alpha, 0.5, 300.0, 1000.0)
    with pytest.raises(InputError, match="no polarizability trajectories"):
        raman_from_trajectories([], 0.5, 300.0)
