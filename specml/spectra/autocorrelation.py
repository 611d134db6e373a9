"""IR spectra from dipole time series (the MD route), and the transform Raman shares.

I(nu) ∝ FT[ <mu_dot(0) · mu_dot(t)> ], the autocorrelation of the dipole time
derivative computed with the Wiener-Khinchin theorem, truncated at a maximum
correlation depth, Hann-windowed and zero-padded before the transform
(:func:`derivative_spectrum`; :mod:`specml.spectra.raman_md` uses it for polarizabilities).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from specml.errors import InputError
from specml.spectra.spectrum import Spectrum
from specml.units import KB_CM1_PER_K, SPEED_OF_LIGHT_CM_PER_FS

QUANTUM_CORRECTIONS = (None, "harmonic")


def dipole_derivative(dipoles: np.ndarray, timestep_fs: float) -> np.ndarray:
    """d mu / dt (e·Å/fs) by second-order central differences."""
    return np.gradient(np.asarray(dipoles, dtype=float), timestep_fs, axis=0)


def autocorrelation(series: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of a (T, 3) series summed over components, lags 0..max_lag,
    via FFT with zero padding to 2T (Wiener-Khinchin, no circular wrap-around)."""
    series = np.asarray(series, dtype=float)
    n = series.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    power = np.abs(np.fft.rfft(series, n=size, axis=0)) ** 2
    acf = np.fft.irfft(power, n=size, axis=0)[: max_lag + 1].sum(axis=1)
    return acf / (n - np.arange(max_lag + 1))


def harmonic_quantum_correction(wavenumber_cm1: np.ndarray, temperature_k: float) -> np.ndarray:
    """Harmonic quantum correction factor x / (1 - exp(-x)), x = h c nu / (kB T)."""
    x = np.asarray(wavenumber_cm1, dtype=float) / (KB_CM1_PER_K * temperature_k)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(x > 1e-8, x / -np.expm1(-np.maximum(x, 1e-300)), 1.0)
    return factor


def ir_from_dipoles(
    dipoles: np.ndarray,
    timestep_fs: float,
    max_correlation_fs: float = 1000.0,
    lo: float = 0.0,
    hi: float = 4000.0,
    resolution_cm1: float = 0.5,
    quantum_correction: str | None = None,
    temperature_k: float | None = None,
    correct_finite_difference: bool = True,
    metadata: dict | None = None,
) -> Spectrum:
    """IR spectrum of one dipole trajectory.

    Args:
        dipoles: (T, 3) dipole moments in e·Å at a fixed ``timestep_fs`` spacing.
        max_correlation_fs: correlation depth; longer = sharper lines, noisier.
        lo: lower end of the output's wavenumber range, cm-1.
        hi: upper end of the output's wavenumber range, cm-1.
        resolution_cm1: output point spacing, reached by zero padding.
        quantum_correction: None or ``"harmonic"`` (needs ``temperature_k``).
        correct_finite_difference: divide out the central-difference transfer function
            (sin(w dt)/(w dt))^2 so intensities are exact for sampled sinusoids.
    """
    dipoles = np.asarray(dipoles, dtype=float)
    if dipoles.ndim != 2 or dipoles.shape[1] != 3:
        raise InputError(f"dipoles must have shape (T, 3), got {dipoles.shape}")
    check_correction(quantum_correction, temperature_k)
    acf = dipole_acf(dipoles, timestep_fs, max_correlation_fs)
    return _ir_spectrum(
        acf,
        timestep_fs,
        max_correlation_fs,
        dipoles.shape[0],
        (lo, hi),
        {
            "resolution_cm1": resolution_cm1,
            "correct_finite_difference": correct_finite_difference,
            "quantum_correction": quantum_correction,
            "temperature_k": temperature_k,
        },
        metadata,
    )


def ir_from_acf(
    acf: np.ndarray,
    timestep_fs: float,
    max_correlation_fs: float,
    n_frames: int,
    lo: float = 0.0,
    hi: float = 4000.0,
    metadata: dict | None = None,
) -> Spectrum:
    """IR spectrum from a :func:`dipole_acf` of an ``n_frames`` trajectory, with the default
    settings of :func:`ir_from_dipoles` (equal to it, bit for bit, on the same trajectory)."""
    return _ir_spectrum(acf, timestep_fs, max_correlation_fs, n_frames, (lo, hi), {}, metadata)


def _ir_spectrum(
    acf: np.ndarray,
    timestep_fs: float,
    max_correlation_fs: float,
    n_frames: int,
    window_cm1: tuple[float, float],
    settings: dict,
    metadata: dict | None,
) -> Spectrum:
    """The IR spectrum of :func:`ir_from_dipoles` from its autocorrelation (``settings``: its options)."""
    quantum_correction, temperature_k = settings.get("quantum_correction"), settings.get("temperature_k")
    wavenumber, intensity = acf_transform(
        acf,
        timestep_fs,
        max_correlation_fs,
        settings.get("resolution_cm1", 0.5),
        settings.get("correct_finite_difference", True),
    )
    if quantum_correction == "harmonic":
        assert temperature_k is not None  # checked by ir_from_dipoles
        intensity = intensity * harmonic_quantum_correction(wavenumber, temperature_k)
    lo, hi = window_cm1
    keep = (wavenumber >= lo) & (wavenumber <= hi)
    info = {
        "source": "md",
        "intensity_units": "(e·Å/fs)^2·fs",
        **correlation_settings(timestep_fs, max_correlation_fs, n_frames, quantum_correction, temperature_k),
    }
    info.update(metadata or {})
    return Spectrum(wavenumber[keep], intensity[keep], metadata=info)


def check_correction(quantum_correction: str | None, temperature_k: float | None) -> None:
    """InputError unless ``quantum_correction`` is known and has the temperature it needs."""
    if quantum_correction not in QUANTUM_CORRECTIONS:
        raise InputError(f"quantum_correction must be one of {QUANTUM_CORRECTIONS}")
    if quantum_correction and not temperature_k:
        raise InputError("the harmonic quantum correction needs a temperature")


def correlation_settings(
    timestep_fs: float,
    max_correlation_fs: float,
    n_frames: int,
    quantum_correction: str | None,
    temperature_k: float | None,
) -> dict:
    """The metadata of a spectrum from :func:`derivative_spectrum`."""
    return {
        "quantum_correction": quantum_correction,
        "temperature_k": temperature_k,
        "timestep_fs": timestep_fs,
        "max_correlation_fs": max_correlation_fs,
        "window": "hann",
        "n_frames": int(n_frames),
        # A Hann window over +-T has a main-lobe FWHM of about 2/(T c) in cm-1.
        "resolution_cm1": 2.0 / (max_correlation_fs * SPEED_OF_LIGHT_CM_PER_FS),
    }


def dipole_acf(series: np.ndarray, timestep_fs: float, max_correlation_fs: float) -> np.ndarray:
    """The unbiased autocorrelation of d series/dt (a (T, n) series: dipoles, or Raman's
    polarizability invariants), summed over components, lags 0 to ``max_correlation_fs``: all
    that :func:`acf_transform` needs of a trajectory (its compact, storable form)."""
    series = np.asarray(series, dtype=float)
    if timestep_fs <= 0:
        raise InputError("timestep must be positive")
    max_lag = int(round(max_correlation_fs / timestep_fs))
    if series.shape[0] < 2 * max_lag:
        raise InputError(
            f"trajectory of {series.shape[0] * timestep_fs:.0f} fs is too short for a correlation depth of "
            f"{max_correlation_fs:.0f} fs (need at least twice the depth)"
        )
    return autocorrelation(dipole_derivative(series, timestep_fs), max_lag)


def acf_transform(
    acf: np.ndarray,
    timestep_fs: float,
    max_correlation_fs: float,
    resolution_cm1: float = 0.5,
    correct_finite_difference: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Wavenumbers (cm-1, from 0) and the two-sided Fourier transform S (units of the series^2 /
    fs) of a :func:`dipole_acf`.

    The autocorrelation is Hann-windowed and zero-padded to a point spacing of
    ``resolution_cm1``; S integrates over all frequencies (1/fs) to C(0), so its integral over
    0..inf in cm-1 is C(0) / (2 c) with c in cm/fs.
    """
    max_lag = int(round(max_correlation_fs / timestep_fs))
    acf = np.asarray(acf, dtype=float)
    if acf.shape != (max_lag + 1,):
        raise InputError(
            f"autocorrelation of {acf.shape[0]} lags does not match a depth of {max_correlation_fs:g} fs "
            f"at {timestep_fs:g} fs ({max_lag + 1} lags)"
        )
    # One-sided Hann window: the right half of a Hann window of length 2*max_lag+1.
    acf = acf * np.hanning(2 * max_lag + 1)[max_lag:]
    # Zero padding sets the point spacing: d_nu = 1 / (N dt c).
    n_fft = max(2 * max_lag, int(np.ceil(1.0 / (resolution_cm1 * timestep_fs * SPEED_OF_LIGHT_CM_PER_FS))))
    n_fft = 1 << int(np.ceil(np.log2(n_fft)))
    # Real even extension: S(nu) = dt * (c0 + 2 sum_k c_k cos(2 pi nu k dt)).
    transform = np.fft.rfft(acf, n=n_fft).real
    intensity = timestep_fs * (2.0 * transform - acf[0])
    wavenumber = np.fft.rfftfreq(n_fft, d=timestep_fs) / SPEED_OF_LIGHT_CM_PER_FS
    if correct_finite_difference:
        wdt = 2 * np.pi * wavenumber * SPEED_OF_LIGHT_CM_PER_FS * timestep_fs
        intensity = intensity * np.where(
            wdt > 1e-12, (wdt / np.sin(np.clip(wdt, 1e-12, np.pi - 1e-6))) ** 2, 1.0
        )
    return wavenumber, intensity


def derivative_spectrum(
    series: np.ndarray,
    timestep_fs: float,
    max_correlation_fs: float = 1000.0,
    resolution_cm1: float = 0.5,
    correct_finite_difference: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`acf_transform` of the :func:`dipole_acf` of a (T, n) series: the transform the
    dipoles of IR and the polarizability invariants of Raman share."""
    acf = dipole_acf(series, timestep_fs, max_correlation_fs)
    return acf_transform(acf, timestep_fs, max_correlation_fs, resolution_cm1, correct_finite_difference)


def average_spectra(spectra: Sequence[Spectrum], metadata: dict | None = None) -> Spectrum:
    """Mean and standard deviation over spectra on the same axis (e.g. independent trajectories)."""
    if not spectra:
        raise InputError("no spectra to average")
    axis = spectra[0].wavenumber
    for s in spectra[1:]:
        if s.wavenumber.shape != axis.shape or not np.allclose(s.wavenumber, axis):
            raise InputError("spectra to average must share one wavenumber axis")
    stack = np.array([s.intensity for s in spectra])
    std = stack.std(axis=0, ddof=1) if len(spectra) > 1 else np.zeros_like(axis)
    info = {**spectra[0].metadata, "n_trajectories": len(spectra), **(metadata or {})}
    return Spectrum(axis, stack.mean(axis=0), std, info)


def ir_from_trajectories(
    trajectories: Sequence[np.ndarray | tuple[np.ndarray, int]],
    timestep_fs: float,
    max_correlation_fs: float = 1000.0,
    lo: float = 0.0,
    hi: float = 4000.0,
    metadata: dict | None = None,
) -> Spectrum:
    """Mean ± std IR spectrum over independent trajectories, each a ``(T, 3)`` dipole series (e·Å
    every ``timestep_fs``) or its ``(dipole_acf, n_frames)``: :func:`ir_from_dipoles` or
    :func:`ir_from_acf` per trajectory, then :func:`average_spectra`."""
    return average_spectra(
        [
            ir_from_acf(t[0], timestep_fs, max_correlation_fs, t[1], lo, hi)
            if isinstance(t, tuple)
            else ir_from_dipoles(t, timestep_fs, max_correlation_fs, lo, hi)
            for t in trajectories
        ],
        metadata,
    )
