"""Compare two spectra: preprocess them onto one grid, then compute every metric."""

from __future__ import annotations

from dataclasses import dataclass

from specml import checks
from specml.comparison.metrics import cosine, pearson, spectral_information_similarity, wasserstein
from specml.experiment.preprocess import DEFAULT_RANGE_CM1, preprocess_pair
from specml.spectra.spectrum import Spectrum


@dataclass(frozen=True)
class ComparisonResult:
    """Similarity of two spectra and the preprocessed spectra the numbers refer to."""

    pcc: float
    wd_cm1: float
    sis: float
    cosine: float
    a: Spectrum
    b: Spectrum

    def as_dict(self) -> dict[str, float]:
        return {"pcc": self.pcc, "wd_cm1": self.wd_cm1, "sis": self.sis, "cosine": self.cosine}


def check_comparison_settings(lo: float, hi: float, step: float) -> tuple[float, float, float]:
    """``(lo, hi, step)`` in cm-1 if they make a comparison grid, else :class:`~specml.errors.InputError`."""
    lo, hi = checks.wavenumber_range("range", lo, hi)
    return lo, hi, checks.grid("step", lo, hi, step)


def compare_spectra(
    a: Spectrum,
    b: Spectrum,
    lo: float = DEFAULT_RANGE_CM1[0],
    hi: float = DEFAULT_RANGE_CM1[1],
    step: float = 1.0,
) -> ComparisonResult:
    """Resolution-match, co-grid and normalise ``a`` and ``b``, then compute all metrics."""
    lo, hi, step = check_comparison_settings(lo, hi, step)
    pa, pb = preprocess_pair(a, b, lo, hi, step)
    return ComparisonResult(
        pcc=pearson(pa, pb),
        wd_cm1=wasserstein(pa, pb),
        sis=spectral_information_similarity(pa, pb),
        cosine=cosine(pa, pb),
        a=pa,
        b=pb,
    )
