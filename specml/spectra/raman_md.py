"""Raman spectra from polarizability time series (the MD route).

The polarizability alpha(t) (Å^3) splits into its mean a(t) = tr(alpha) / 3 and its traceless
part beta(t) = alpha - a 1, whose anisotropy is gamma^2 = 3/2 tr(beta beta). The autocorrelations
of their time derivatives, <a'(0) a'(t)> and 3/2 <tr beta'(0) beta'(t)>, go through the same
windowed transform as the dipoles of IR (:func:`~specml.spectra.autocorrelation.derivative_spectrum`).

Scale: in classical MD a normal mode Q_k has <Q_k'^2> = kB T (Q mass-weighted, amu^1/2 Å), so
the band of mode k in the transform S(nu) of <a'(0) a'(t)> has the area (a'_k)^2 kB T / (2 c)
over 0..inf cm-1. Multiplying by 2 c / (kB T) makes the spectra densities of the harmonic
invariants (Å^4/amu per cm-1), so that band areas are comparable with
:mod:`specml.spectra.raman` line by line:

    isotropic   45 a'^2          anisotropic   7 gamma'^2
    total = isotropic + anisotropic              (the activity 45 a'^2 + 7 gamma'^2)
    VV    = isotropic + 4/7 anisotropic          (45 a'^2 + 4 gamma'^2, parallel polarisations)
    VH    = 3/7 anisotropic                      (3 gamma'^2, crossed; VH / VV is rho)

With ``laser_nm`` each density becomes a differential cross section density (1e-30 cm^2/sr per
cm-1) by the formula of the harmonic lines (:func:`~specml.spectra.raman.raman_cross_sections`),
whose Bose factor 1 / (1 - exp(-h c nu / kB T)) is the harmonic quantum correction of a
classical trajectory; without ``quantum_correction`` its classical limit kB T / (h c nu) is
used instead. Without a laser, ``quantum_correction="harmonic"`` multiplies the densities by
x / (1 - exp(-x)), x = h c nu / kB T, the ratio of the two, as for IR.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from specml.errors import InputError
from specml.spectra.autocorrelation import (
    average_spectra,
    check_correction,
    correlation_settings,
    derivative_spectrum,
    harmonic_quantum_correction,
)
from specml.spectra.raman import raman_cross_sections
from specml.spectra.spectrum import Spectrum
from specml.units import SPEED_OF_LIGHT_CM_PER_FS

#: The spectra of one polarizability trajectory, by name.
RAMAN_COMPONENTS = ("isotropic", "anisotropic", "vv", "vh", "total")
#: Boltzmann constant in amu Å^2 fs^-2 K^-1 (kB / (1.66053906660e-27 kg * 1e-20 m^2 / 1e-30 s^2)).
KB_AMU_A2_FS2_PER_K = 1.380649e-23 / 1.66053906660e-17


def invariant_series(polarizabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean polarizability a(t) as (T, 1) and the traceless part scaled by sqrt(3/2) as (T, 9),
    whose autocorrelations summed over components are <a a> and <gamma^2>-like 3/2 <tr beta beta>."""
    alpha = np.asarray(polarizabilities, dtype=float)
    if alpha.ndim != 3 or alpha.shape[1:] != (3, 3):
        raise InputError(f"polarizabilities must have shape (T, 3, 3), got {alpha.shape}")
    alpha = 0.5 * (alpha + np.swapaxes(alpha, 1, 2))
    mean = np.trace(alpha, axis1=1, axis2=2) / 3.0
    traceless = alpha - mean[:, None, None] * np.eye(3)
    return mean[:, None], np.sqrt(1.5) * traceless.reshape(len(alpha), 9)


def raman_from_polarizabilities(
    polarizabilities: np.ndarray,
    timestep_fs: float,
    temperature_k: float,
    max_correlation_fs: float = 1000.0,
    lo: float = 0.0,
    hi: float = 4000.0,
    resolution_cm1: float = 0.5,
    quantum_correction: str | None = None,
    laser_nm: float | None = None,
    metadata: dict | None = None,
) -> dict[str, Spectrum]:
    """Raman spectra (:data:`RAMAN_COMPONENTS`) of one trajectory of polarizabilities.

    Args:
        polarizabilities: (T, 3, 3) in Å^3 every ``timestep_fs``.
        temperature_k: the temperature of the MD (K); it sets the scale (see the module).
        laser_nm: with a laser wavelength, cross section densities instead of activity densities.
        quantum_correction: None or ``"harmonic"``.
    """
    if not temperature_k or temperature_k <= 0:
        raise InputError(f"temperature must be positive (K), got {temperature_k}")
    check_correction(quantum_correction, temperature_k)
    if laser_nm is not None and laser_nm <= 0:
        raise InputError(f"laser wavelength must be positive (nm), got {laser_nm}")
    isotropic_series, anisotropic_series = invariant_series(polarizabilities)
    scale = 2.0 * SPEED_OF_LIGHT_CM_PER_FS / (KB_AMU_A2_FS2_PER_K * temperature_k)
    wavenumber, iso = derivative_spectrum(isotropic_series, timestep_fs, max_correlation_fs, resolution_cm1)
    _, aniso = derivative_spectrum(anisotropic_series, timestep_fs, max_correlation_fs, resolution_cm1)
    iso, aniso = 45.0 * scale * iso, 7.0 * scale * aniso
    densities = {
        "isotropic": iso,
        "anisotropic": aniso,
        "vv": iso + 4.0 / 7.0 * aniso,
        "vh": 3.0 / 7.0 * aniso,
        "total": iso + aniso,
    }
    factor, units = _intensity_factor(wavenumber, temperature_k, quantum_correction, laser_nm)
    keep = (wavenumber >= lo) & (wavenumber <= hi)
    info = {
        "source": "md raman",
        "technique": "raman",
        "intensity_units": units,
        **correlation_settings(
            timestep_fs, max_correlation_fs, len(isotropic_series), quantum_correction, temperature_k
        ),
        "laser_nm": laser_nm,
        **(metadata or {}),
    }
    return {
        name: Spectrum(wavenumber[keep], (density * factor)[keep], metadata={**info, "component": name})
        for name, density in densities.items()
    }


def _intensity_factor(
    wavenumber: np.ndarray, temperature_k: float, quantum_correction: str | None, laser_nm: float | None
) -> tuple[np.ndarray, str]:
    """What turns the classical activity densities into the spectrum asked for, and its units."""
    quantum = harmonic_quantum_correction(wavenumber, temperature_k)
    if laser_nm is None:
        factor = quantum if quantum_correction == "harmonic" else np.ones_like(wavenumber)
        return factor, "A^4/amu per cm-1"
    # The cross section of a unit activity at each wavenumber, its Bose factor included.
    factor = raman_cross_sections(wavenumber, np.ones_like(wavenumber), laser_nm, temperature_k) * 1e30
    if quantum_correction is None:
        factor = factor / quantum  # the classical limit kB T / (h c nu) of the Bose factor
    return factor, "1e-30 cm^2/sr per cm-1"


def raman_from_trajectories(
    polarizability_series: Sequence[np.ndarray],
    timestep_fs: float,
    temperature_k: float,
    max_correlation_fs: float = 1000.0,
    lo: float = 0.0,
    hi: float = 4000.0,
    quantum_correction: str | None = None,
    laser_nm: float | None = None,
    metadata: dict | None = None,
) -> dict[str, Spectrum]:
    """Mean ± std Raman spectra over independent trajectories (one (T, 3, 3) series each, Å^3
    every ``timestep_fs``): :func:`raman_from_polarizabilities` per trajectory, then
    :func:`~specml.spectra.autocorrelation.average_spectra` per component."""
    if not polarizability_series:
        raise InputError("no polarizability trajectories")
    per_trajectory = [
        raman_from_polarizabilities(
            series,
            timestep_fs,
            temperature_k,
            max_correlation_fs,
            lo,
            hi,
            quantum_correction=quantum_correction,
            laser_nm=laser_nm,
        )
        for series in polarizability_series
    ]
    return {
        name: average_spectra([spectra[name] for spectra in per_trajectory], metadata)
        for name in RAMAN_COMPONENTS
    }
