"""Spectrum to structure: rank candidate molecules by agreement of predicted and measured IR spectra."""

from specml.identification.functional_groups import (
    FUNCTIONAL_GROUPS,
    band_evidence,
    group_agreement,
    groups_in_molecule,
    supported_groups,
)
from specml.identification.identify import Identification, RankedCandidate, identify, plot_identification
from specml.identification.library import (
    DEFAULT_REFERENCE,
    DFT_REFERENCE,
    XTB_ENSEMBLE,
    Candidate,
    LibraryEntry,
    Method,
    SpectralLibrary,
    default_library_path,
    ensemble_name,
    fill_ensemble,
    fill_library,
    methods_for,
    resolve_candidates,
)
from specml.identification.scoring import ScoringParameters, load_parameters

__all__ = [
    "DEFAULT_REFERENCE",
    "DFT_REFERENCE",
    "FUNCTIONAL_GROUPS",
    "Candidate",
    "Identification",
    "LibraryEntry",
    "Method",
    "RankedCandidate",
    "ScoringParameters",
    "SpectralLibrary",
    "XTB_ENSEMBLE",
    "band_evidence",
    "default_library_path",
    "ensemble_name",
    "fill_ensemble",
    "fill_library",
    "group_agreement",
    "groups_in_molecule",
    "identify",
    "load_parameters",
    "methods_for",
    "plot_identification",
    "resolve_candidates",
    "supported_groups",
]
