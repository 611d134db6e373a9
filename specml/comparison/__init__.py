"""Comparing spectra: similarity metrics and a one-call comparison."""

from specml.comparison.compare import ComparisonResult, compare_spectra
from specml.comparison.metrics import (
    cosine,
    pearson,
    spectral_information_divergence,
    spectral_information_similarity,
    wasserstein,
)

__all__ = [
    "ComparisonResult",
    "compare_spectra",
    "cosine",
    "pearson",
    "spectral_information_divergence",
    "spectral_information_similarity",
    "wasserstein",
]
