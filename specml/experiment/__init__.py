"""Experimental spectra: reading files, unit conversion and preprocessing for comparison.

Names are imported on first use, so that a light constant such as
``specml.experiment.preprocess.DEFAULT_RANGE_CM1`` does not load every reader.
"""

from specml._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "read_jcamp": "jcamp_reader",
        "correct_baseline": "preprocess",
        "load_absorbance": "preprocess",
        "load_raman": "preprocess",
        "match_resolution": "preprocess",
        "preprocess_pair": "preprocess",
        "to_common_grid": "preprocess",
        "read_spectrum": "readers",
        "to_absorbance": "yunits",
    },
)

__all__ = [
    "correct_baseline",
    "load_absorbance",
    "load_raman",
    "match_resolution",
    "preprocess_pair",
    "read_jcamp",
    "read_spectrum",
    "to_absorbance",
    "to_common_grid",
]
