"""Line shapes: turning stick spectra into continuous ones, and smoothing sampled
spectra to a coarser resolution. All widths are full widths at half maximum in cm-1."""

from __future__ import annotations

import numpy as np

from specml import checks

LINE_SHAPES = ("lorentzian", "gaussian")


def check_line_settings(fwhm_cm1: float, shape: str) -> tuple[float, str]:
    """``(fwhm_cm1, shape)`` if the width is in (0, 20000] cm-1 and the shape is one of
    :data:`LINE_SHAPES`; else :class:`~specml.errors.InputError`."""
    fwhm = checks.positive("line width (FWHM)", fwhm_cm1, "cm-1", checks.MAX_WAVENUMBER_CM1)
    return fwhm, checks.choice("line shape", shape, LINE_SHAPES)


def line_shape(offset: np.ndarray, fwhm: float, shape: str = "lorentzian") -> np.ndarray:
    """Area-normalised line shape at ``offset`` (cm-1) from the line centre."""
    if fwhm <= 0:
        raise ValueError(f"line width must be positive, got {fwhm}")
    if shape == "lorentzian":
        gamma = 0.5 * fwhm
        return gamma / np.pi / (offset**2 + gamma**2)
    if shape == "gaussian":
        sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        return np.exp(-0.5 * (offset / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
    raise ValueError(f"unknown line shape {shape!r}; choose one of {LINE_SHAPES}")


def broaden_sticks(positions, intensities, grid, fwhm: float, shape: str = "lorentzian") -> np.ndarray:
    """Sum of line shapes centred at ``positions`` with areas ``intensities``, on ``grid``."""
    positions = np.asarray(positions, dtype=float)
    intensities = np.asarray(intensities, dtype=float)
    grid = np.asarray(grid, dtype=float)
    if positions.size == 0:
        return np.zeros_like(grid)
    return (line_shape(grid[:, None] - positions[None, :], fwhm, shape) * intensities[None, :]).sum(axis=1)


def gaussian_smooth(wavenumber, intensity, fwhm: float) -> np.ndarray:
    """Convolve a sampled spectrum with a Gaussian of ``fwhm`` cm-1 (axis may be uneven).

    Uses scipy's ``gaussian_filter1d`` on a uniform resampling of the axis at the
    finest spacing, then maps back; on an even axis that resampling is the identity.
    """
    from scipy.ndimage import gaussian_filter1d

    x = np.asarray(wavenumber, dtype=float)
    y = np.asarray(intensity, dtype=float)
    if fwhm <= 0:
        return y.copy()
    step = float(np.min(np.diff(x)))
    uniform = np.arange(x[0], x[-1] + 0.5 * step, step)
    sigma_points = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / step
    smoothed = gaussian_filter1d(np.interp(uniform, x, y), sigma_points, mode="nearest")
    return np.interp(x, uniform, smoothed)
