"""Preparing spectra for comparison: baseline, resolution matching and a common grid.

All widths and steps are in cm-1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from specml.errors import SpectrumFormatError
from specml.experiment.readers import read_spectrum
from specml.experiment.yunits import to_absorbance
from specml.spectra.broadening import gaussian_smooth
from specml.spectra.spectrum import Spectrum

DEFAULT_RANGE_CM1 = (500.0, 4000.0)
# Baseline wander slower than this (cm-1) is removed; gas-phase bands incl. their P/R
# branches are narrower (< ~150 cm-1), so they stay in the signal.
BASELINE_SCALE_CM1 = 400.0
BASELINE_METHODS = ("arpls", "asls", "iarpls", "airpls", "drpls", "aspls")


def baseline_lam(spectrum: Spectrum, scale_cm1: float = BASELINE_SCALE_CM1) -> float:
    """Whittaker smoothing parameter for a baseline that varies over ``scale_cm1``.

    A second-difference Whittaker smoother passes periods longer than about
    2*pi*lam**(1/4) points, so lam = (scale / (2*pi*spacing))**4: the same physical
    stiffness for 0.24 cm-1 and 4 cm-1 data.
    """
    points = scale_cm1 / spectrum.spacing_cm1
    return float((points / (2.0 * np.pi)) ** 4)


def correct_baseline(spectrum: Spectrum, method: str = "arpls", **kwargs) -> Spectrum:
    """Subtract a pybaselines baseline (default arPLS) and clip at zero.

    ``kwargs`` go to the pybaselines method; ``lam`` defaults to :func:`baseline_lam`.
    """
    from pybaselines import Baseline  # about 1 s to import: only where a baseline is fitted

    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown baseline method {method!r}; choose one of {BASELINE_METHODS}")
    kwargs.setdefault("lam", baseline_lam(spectrum))
    fitter = getattr(Baseline(spectrum.wavenumber), method)
    baseline, _params = fitter(spectrum.intensity, **kwargs)
    corrected = np.clip(spectrum.intensity - baseline, 0.0, None)
    out = replace(spectrum, intensity=corrected)
    return out.with_metadata(baseline=method)


def load_absorbance(path: str | Path) -> Spectrum:
    """Read an experimental spectrum and return non-negative, baseline-corrected absorbance."""
    return baseline_corrected(to_absorbance(read_spectrum(path)), f"{path}: no absorption")


def load_raman(path: str | Path) -> Spectrum:
    """Read an experimental Raman spectrum (JCAMP-DX whose ##DATA TYPE names Raman, or CSV) on its
    Raman shift axis (cm-1), its fluorescence background removed like an IR baseline; intensity in
    the file's units (``metadata["intensity_units"]``, usually arbitrary)."""
    spectrum = read_spectrum(path, technique="raman")
    units = spectrum.metadata.get("intensity_units") or spectrum.metadata.get("yunits") or "arbitrary"
    spectrum = spectrum.with_metadata(intensity_units=str(units), x_quantity="Raman shift / cm-1")
    return baseline_corrected(spectrum, f"{path}: no Raman scattering")


def baseline_corrected(spectrum: Spectrum, empty: str) -> Spectrum:
    """``spectrum`` with its baseline removed (:func:`correct_baseline`) unless that was done before;
    SpectrumFormatError ``"<empty> left after baseline correction"`` where nothing positive is left."""
    # A spectrum saved after this function (Spectrum.to_csv keeps the metadata) is not corrected twice.
    corrected = spectrum if spectrum.metadata.get("baseline") else correct_baseline(spectrum)
    if not np.any(corrected.intensity > 0):
        raise SpectrumFormatError(f"{empty} left after baseline correction")
    return corrected


def resolution_of(spectrum: Spectrum) -> float:
    """Line-shape FWHM in cm-1: ``metadata["resolution_cm1"]``, else the point spacing."""
    try:
        value = float(spectrum.metadata.get("resolution_cm1", 0.0))
    except (TypeError, ValueError):
        value = 0.0
    return value if value > 0 else spectrum.spacing_cm1


def broaden_to(spectrum: Spectrum, target_fwhm: float) -> Spectrum:
    """Gaussian-broaden ``spectrum`` so that its resolution becomes ``target_fwhm`` cm-1.

    Gaussian widths add in quadrature, so the kernel is sqrt(target^2 - own^2).
    A spectrum already at or beyond the target is returned unchanged.
    """
    own = resolution_of(spectrum)
    if target_fwhm <= own:
        return spectrum
    kernel = float(np.sqrt(target_fwhm**2 - own**2))
    smoothed = gaussian_smooth(spectrum.wavenumber, spectrum.intensity, kernel)
    std = None
    if spectrum.std is not None:
        std = gaussian_smooth(spectrum.wavenumber, spectrum.std, kernel)
    out = replace(spectrum, intensity=smoothed, std=std)
    return out.with_metadata(resolution_cm1=float(target_fwhm))


def match_resolution(a: Spectrum, b: Spectrum) -> tuple[Spectrum, Spectrum]:
    """Broaden the sharper of two spectra to the resolution of the other."""
    target = max(resolution_of(a), resolution_of(b))
    return broaden_to(a, target), broaden_to(b, target)


def common_grid(spectra: list[Spectrum], lo: float, hi: float, step: float) -> np.ndarray:
    """Evenly spaced axis (multiples of ``step``) over the overlap of all spectra and [lo, hi]."""
    if step <= 0:
        raise ValueError(f"grid step must be positive, got {step}")
    start = max([lo] + [float(s.wavenumber[0]) for s in spectra])
    stop = min([hi] + [float(s.wavenumber[-1]) for s in spectra])
    grid = np.arange(np.ceil(start / step) * step, stop + 1e-9 * step, step)
    if grid.size < 2:
        labels = ", ".join(s.label for s in spectra)
        raise SpectrumFormatError(f"spectra do not overlap within {lo:g}-{hi:g} cm-1 ({labels})")
    return grid


def to_common_grid(
    spectra: list[Spectrum],
    lo: float = DEFAULT_RANGE_CM1[0],
    hi: float = DEFAULT_RANGE_CM1[1],
    step: float = 1.0,
) -> list[Spectrum]:
    """Interpolate spectra onto one grid over their overlap within [lo, hi] cm-1.

    A spectrum sampled (or resolved) finer than the grid is first smoothed to a FWHM of
    2*step so that downsampling does not alias narrow lines into noise.
    """
    grid = common_grid(spectra, lo, hi, step)
    out = []
    for spectrum in spectra:
        smooth = broaden_to(spectrum, 2.0 * step) if spectrum.spacing_cm1 < step else spectrum
        intensity = np.interp(grid, smooth.wavenumber, smooth.intensity)
        std = None if smooth.std is None else np.interp(grid, smooth.wavenumber, smooth.std)
        out.append(Spectrum(grid, intensity, std, smooth.metadata).with_metadata(grid_step_cm1=step))
    return out


def preprocess_pair(
    experimental: Spectrum,
    predicted: Spectrum,
    lo: float = DEFAULT_RANGE_CM1[0],
    hi: float = DEFAULT_RANGE_CM1[1],
    step: float = 1.0,
) -> tuple[Spectrum, Spectrum]:
    """Resolution-matched, co-gridded, max-normalised versions of two spectra."""
    a, b = match_resolution(experimental, predicted)
    a, b = to_common_grid([a, b], lo, hi, step)
    for s in (a, b):
        if not np.any(s.intensity != 0):
            raise SpectrumFormatError(f"{s.label}: spectrum is zero over {lo:g}-{hi:g} cm-1")
    return a.normalized(), b.normalized()
