"""Similarity metrics between two spectra on the same wavenumber grid.

Each metric accepts two :class:`Spectrum` on the same grid, or two raw intensity
arrays of equal length (``wasserstein`` then also needs the shared axis in cm-1).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cosine as cosine_distance
from scipy.stats import pearsonr, wasserstein_distance

from specml.errors import SpectrumFormatError
from specml.spectra.spectrum import Spectrum

# Chemprop-IR clips spectra at 1e-8 (after unit-sum normalisation) so that the log
# ratios in the SID stay finite where one spectrum is exactly zero.
SID_FLOOR = 1.0e-8


def _pair(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Intensities of ``a`` and ``b`` plus the shared axis (None for raw arrays)."""
    axis = None
    if isinstance(a, Spectrum) and isinstance(b, Spectrum):
        if a.wavenumber.shape != b.wavenumber.shape or not np.allclose(a.wavenumber, b.wavenumber):
            raise SpectrumFormatError(
                f"{a.label} and {b.label} are not on the same wavenumber grid; "
                "use specml.experiment.to_common_grid first"
            )
        axis = a.wavenumber
    a = a.intensity if isinstance(a, Spectrum) else np.asarray(a, dtype=float)
    b = b.intensity if isinstance(b, Spectrum) else np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise SpectrumFormatError(f"spectra must be 1-D of equal length, got {a.shape} and {b.shape}")
    if a.size < 2:
        raise SpectrumFormatError("spectra need at least two points to compare")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise SpectrumFormatError("spectra contain non-finite values")
    return a, b, axis


def pearson(a, b) -> float:
    """Pearson correlation coefficient of the intensities."""
    x, y, _ = _pair(a, b)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise SpectrumFormatError("Pearson correlation is undefined for a constant spectrum")
    return float(pearsonr(x, y).statistic)


def cosine(a, b) -> float:
    """Cosine similarity of the intensity vectors."""
    x, y, _ = _pair(a, b)
    if not np.any(x) or not np.any(y):
        raise SpectrumFormatError("cosine similarity is undefined for an all-zero spectrum")
    return float(1.0 - cosine_distance(x, y))


def wasserstein(a, b, wavenumber=None) -> float:
    """Earth mover's distance in cm-1 between the spectra as distributions over the axis.

    Negative intensities are clipped to zero before they are used as weights.
    """
    x, y, axis = _pair(a, b)
    if axis is None:
        if wavenumber is None:
            raise SpectrumFormatError("wasserstein on raw arrays needs the shared wavenumber axis")
        axis = np.asarray(wavenumber, dtype=float)
        if axis.shape != x.shape:
            raise SpectrumFormatError(f"wavenumber axis has {axis.size} points, spectra have {x.size}")
    wx, wy = np.clip(x, 0.0, None), np.clip(y, 0.0, None)
    if not wx.any() or not wy.any():
        raise SpectrumFormatError(
            "Wasserstein distance is undefined for a spectrum with no positive intensity"
        )
    return float(wasserstein_distance(axis, axis, u_weights=wx, v_weights=wy))


def _unit_sum(values: np.ndarray) -> np.ndarray:
    p = np.clip(values, 0.0, None)
    total = p.sum()
    if total == 0:
        raise SpectrumFormatError("spectral information similarity is undefined for an all-zero spectrum")
    p = np.maximum(p / total, SID_FLOOR)
    return p / p.sum()


def spectral_information_divergence(a, b) -> float:
    """SID = sum p ln(p/q) + q ln(q/p) of the unit-sum spectra (Chemprop-IR)."""
    x, y, _ = _pair(a, b)
    p, q = _unit_sum(x), _unit_sum(y)
    return float(np.sum(p * np.log(p / q) + q * np.log(q / p)))


def spectral_information_similarity(a, b) -> float:
    """SIS = 1 / (1 + SID): 1 for identical spectra, towards 0 for unrelated ones."""
    return 1.0 / (1.0 + spectral_information_divergence(a, b))
