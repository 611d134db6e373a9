"""Experimental spectra: reading files, unit conversion and preprocessing for comparison."""

from specml.experiment.jcamp_reader import read_jcamp
from specml.experiment.preprocess import (
    correct_baseline,
    load_absorbance,
    match_resolution,
    preprocess_pair,
    to_common_grid,
)
from specml.experiment.readers import read_spectrum
from specml.experiment.yunits import to_absorbance

__all__ = [
    "correct_baseline",
    "load_absorbance",
    "match_resolution",
    "preprocess_pair",
    "read_jcamp",
    "read_spectrum",
    "to_absorbance",
    "to_common_grid",
]
