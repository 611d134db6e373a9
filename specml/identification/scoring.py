"""Scoring a candidate's predicted spectrum against a query spectrum.

Theory is systematically off: harmonic xTB frequencies scatter, DFT ones are too high,
and predicted intensities have their own scale. The scorer therefore (1) maps predicted
frequencies with a piecewise-linear scaling (one factor below and one above
``split_cm1``, where X-H and triple-bond stretches live), (2) broadens the sticks with a
fitted FWHM, (3) compares on the foundation preprocessing grid with PCC, Wasserstein
distance and SIS, plus functional-group agreement, and (4) combines these features
linearly with fitted weights. Confidences are a softmax of the combined scores; the
weights carry the softmax temperature, so they are calibrated probabilities by
construction of the fit (conditional logit, :mod:`specml.identification.calibration`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from specml.errors import InputError
from specml.identification.functional_groups import group_agreement
from specml.identification.library import LibraryEntry
from specml.spectra.broadening import broaden_sticks
from specml.spectra.spectrum import Spectrum

# Order matters: weight vectors are stored in this order.
FEATURES = ("pearson", "pearson_below_split", "pearson_above_split", "sis", "wasserstein_100cm1",
            "groups_missing", "groups_unexplained")
# Resolution (FWHM, cm-1) at which band evidence for functional groups is judged: averages
# rotational fine structure of gas-phase bands, still narrow against the window widths.
GROUP_RESOLUTION_CM1 = 16.0
DEFAULT_PARAMETERS_PATH = Path(__file__).with_name("default_parameters.json")


@dataclass(frozen=True)
class ScoringParameters:
    """Everything the scorer needs. Produced by ``benchmarks/identify.py --fit``; see its provenance."""

    scale_low: float  # frequency factor below split_cm1
    scale_high: float  # frequency factor at and above split_cm1
    fwhm_cm1: float  # line width given to predicted sticks
    weights: dict[str, float]  # feature -> weight (includes the softmax temperature)
    intensity_power: float = 1.0  # intensities**power before comparing; <1 lessens the strongest band's say
    shape: str = "gaussian"
    split_cm1: float = 2000.0  # separates X-H / triple-bond stretches from the rest
    lo_cm1: float = 500.0  # comparison window and grid step (cm-1)
    hi_cm1: float = 4000.0
    step_cm1: float = 2.0
    provenance: dict = field(default_factory=dict)

    def weight_vector(self) -> np.ndarray:
        return np.array([self.weights.get(name, 0.0) for name in FEATURES])

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ScoringParameters":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


def load_parameters(path: str | Path | None = None, method: str = "harmonic:xtb") -> ScoringParameters:
    """Fitted parameters for ``method`` from ``path`` (default: the shipped JSON).

    The JSON maps method names (e.g. ``"harmonic:xtb"``) to parameter sets. A method without
    its own fit gets the ``"harmonic:xtb"`` set; ``provenance["fallback"]`` records that.
    """
    path = Path(path) if path is not None else DEFAULT_PARAMETERS_PATH
    if not path.is_file():
        raise InputError(f"{path}: scoring parameters not found; run 'python benchmarks/identify.py --fit'")
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: scoring parameters are not valid JSON ({exc})") from exc
    if method in table:
        return ScoringParameters.from_json(table[method])
    if "harmonic:xtb" not in table:
        raise InputError(f"{path}: no scoring parameters for {method!r}")
    params = ScoringParameters.from_json(table["harmonic:xtb"])
    return ScoringParameters.from_json({**params.to_json(),
                                        "provenance": {**params.provenance, "fallback": f"fitted for harmonic:xtb, "
                                                                                       f"used for {method}"}})


def map_frequencies(frequencies_cm1: np.ndarray, scale_low: float, scale_high: float,
                    split_cm1: float = 2000.0) -> np.ndarray:
    """Piecewise-linear frequency correction: separate factors below/above ``split_cm1``."""
    f = np.asarray(frequencies_cm1, dtype=float)
    return np.where(f < split_cm1, f * scale_low, f * scale_high)


def predicted_spectrum(entry: LibraryEntry, params: ScoringParameters) -> Spectrum:
    """A library entry as a spectrum with the fitted frequency map and line width."""
    if entry.kind == "sticks":
        real = entry.x > 0  # imaginary modes (negative) carry no absorption
        positions = map_frequencies(entry.x[real], params.scale_low, params.scale_high, params.split_cm1)
        grid = np.arange(params.lo_cm1 - 100.0, params.hi_cm1 + 100.0 + 0.5 * params.step_cm1, params.step_cm1)
        intensity = broaden_sticks(positions, entry.y[real], grid, params.fwhm_cm1, params.shape)
    else:  # a sampled curve (ML-MD): map its axis
        grid = map_frequencies(entry.x, params.scale_low, params.scale_high, params.split_cm1)
        order = np.argsort(grid)
        grid, intensity = grid[order], entry.y[order]
        keep = np.concatenate([[True], np.diff(grid) > 0])
        grid, intensity = grid[keep], intensity[keep]
    metadata = {"source": "predicted", "method": entry.method, "smiles": entry.smiles, "label": entry.smiles,
                "intensity_units": "km/mol per cm-1" if entry.kind == "sticks" else "a.u."}
    if entry.kind == "sticks":
        return Spectrum(grid, intensity, metadata={**metadata, "resolution_cm1": params.fwhm_cm1})
    from specml.experiment.preprocess import broaden_to

    # A sampled curve is brought to the fitted line width like the sticks (foundation broadening).
    return broaden_to(Spectrum(grid, intensity, metadata=metadata), params.fwhm_cm1)


def prepare_query(query: Spectrum, reference_prediction: Spectrum, params: ScoringParameters) -> Spectrum:
    """The query on the comparison grid, at the predicted resolution, normalised (foundation pipeline)."""
    from specml.experiment import preprocess_pair

    prepared, _ = preprocess_pair(query, reference_prediction, params.lo_cm1, params.hi_cm1, params.step_cm1)
    return prepared


def query_supported_groups(query: Spectrum, params: ScoringParameters) -> dict:
    """Functional groups supported by the query's bands, judged at ``GROUP_RESOLUTION_CM1``.

    Not at the (wide) fitted comparison FWHM, where a strong C=O band bleeds into the C=C
    window and C-H stretches into the aromatic one; not at the raw resolution either, where
    gas-phase rotational lines make window maxima noisy.
    """
    from specml.experiment import to_common_grid
    from specml.experiment.preprocess import broaden_to
    from specml.identification.functional_groups import supported_groups

    smoothed = broaden_to(query, GROUP_RESOLUTION_CM1)
    fine = to_common_grid([smoothed], params.lo_cm1, params.hi_cm1, params.step_cm1)[0].normalized()
    return supported_groups(fine)


def compare(prepared_query: Spectrum, prediction: Spectrum, params: ScoringParameters) -> tuple[Spectrum, dict]:
    """Prediction on the query's grid and the spectral metrics of the pair.

    ``prepared_query`` is already at the comparison grid and resolution, so ``preprocess_pair``
    leaves it unchanged and only processes the prediction. Metrics are taken on
    ``intensity**intensity_power``: harmonic intensities are far less reliable than positions,
    so a compressed scale keeps one mispredicted strong band from deciding the match. PCC is
    also taken separately below and above ``split_cm1`` so that the fit can weigh the
    fingerprint region against the X-H stretches.
    """
    from specml.comparison.metrics import spectral_information_similarity, wasserstein
    from specml.experiment import preprocess_pair

    grid = prepared_query.wavenumber
    query, predicted = preprocess_pair(prepared_query, prediction, float(grid[0]), float(grid[-1]), params.step_cm1)
    a, b = (_compressed(s, params.intensity_power) for s in (query, predicted))
    below = grid < params.split_cm1
    metrics = {
        "pearson": _pearson_or_zero(a.intensity, b.intensity),
        "pearson_below_split": _pearson_or_zero(a.intensity[below], b.intensity[below]),
        "pearson_above_split": _pearson_or_zero(a.intensity[~below], b.intensity[~below]),
        "sis": float(spectral_information_similarity(a, b)),
        "wasserstein_cm1": float(wasserstein(a, b)),
    }
    return predicted, metrics


def _compressed(spectrum: Spectrum, power: float) -> Spectrum:
    return Spectrum(spectrum.wavenumber, np.clip(spectrum.intensity, 0.0, None) ** power, metadata=spectrum.metadata)


def _pearson_or_zero(x: np.ndarray, y: np.ndarray) -> float:
    """PCC, or 0 (no evidence either way) where a region is empty or flat in either spectrum."""
    from specml.comparison.metrics import pearson

    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(pearson(x, y))


def feature_vector(metrics: dict, smiles: str, supported: dict) -> tuple[np.ndarray, object]:
    """Features in :data:`FEATURES` order, and the functional-group agreement behind the last two."""
    agreement = group_agreement(supported, smiles)
    return np.array([
        metrics["pearson"],
        metrics["pearson_below_split"],
        metrics["pearson_above_split"],
        metrics["sis"],
        metrics["wasserstein_cm1"] / 100.0,  # per 100 cm-1 so weights are of order one
        len(agreement.missing),
        len(agreement.unexplained),
    ]), agreement


def softmax(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()
