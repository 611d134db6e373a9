"""Fitting the scorer: frequency map, line widths, intensity compression and feature weights.

What the fit may choose is a :class:`ScoringRecipe`: candidate values per setting (one value
means fixed) and candidate feature sets. xTB's recipe searches its frequency scales, widths and
intensity power and weighs all features; the DFT recipe fixes the frequency scales to those of
the fundamentals benchmark (independent data) and the rotational contour, and weighs few
features, so that far fewer parameters are fitted on the identification queries.

For every point of the recipe's grid the features of every (query, candidate) pair
are computed once, with the same :func:`~specml.identification.scoring.prepare_query` and
:func:`~specml.identification.scoring.compare` that :func:`specml.identification.identify`
uses. The weights are then fitted as a conditional-logit model:
P(candidate c | query) = softmax_c(w . x_qc), maximising the likelihood of the true
candidates with a small L2 penalty (which keeps the weights finite when the training
queries are perfectly separable). Because the model *is* a softmax over scores, its
probabilities are the confidences reported to users; no separate temperature fit is
needed. The grid point with the lowest penalised training loss wins.

Evaluation is leave-one-compound-out: all files of a held-out compound (e.g. ethanol and
ethanol2) are excluded from the fit that ranks them, including the choice of grid point.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from specml.identification.library import LibraryEntry
from specml.identification.scoring import (
    FEATURES,
    ScoringParameters,
    compare_members,
    feature_vector,
    prepare_query,
)
from specml.spectra.spectrum import Spectrum

# Candidate values searched. Centred on the spread of published xTB scale factors; the
# wider grids of earlier versions (scales 0.93-1.00, FWHM 48-160, power 1.0) never chose
# their outer values (docs/identify.md).
SCALE_LOW_GRID = (0.98, 1.00)
SCALE_HIGH_GRID = (0.95, 0.97)
FWHM_GRID_CM1 = (48.0, 96.0)  # comparison width, on top of each molecule's rotational contour
CONTOUR_GRID = (0.0, 1.0)  # 0: one width for all molecules; 1: + the P-R separation of each
POWER_GRID = (0.5, 0.25)  # 1.0 (raw intensities) lost clearly in a first fit (docs/identify.md)
GRID_KEYS = ("scale_low", "scale_high", "fwhm_cm1", "contour_factor", "intensity_power", "c_ccl")
L2_PENALTY = 0.05  # on the mean per-query log-likelihood scale


@dataclass(frozen=True)
class ScoringRecipe:
    """What a fit may choose: candidate values per :data:`GRID_KEYS` setting (a single value: fixed,
    not fitted) and candidate feature sets (each a tuple of :data:`FEATURES` names)."""

    grid: dict
    feature_sets: tuple = (FEATURES,)
    fixed_from: str = ""  # where single-valued settings come from, for the provenance

    def points(self, base: ScoringParameters | None = None):
        """Scoring parameters (zero weights) for every grid point and feature set."""
        template = base.to_json() if base else {}
        values = [self.grid[key] for key in GRID_KEYS]
        for combination in itertools.product(*values):
            for features in self.feature_sets:
                yield ScoringParameters.from_json(
                    {
                        **template,
                        **dict(zip(GRID_KEYS, combination, strict=True)),
                        "features": tuple(features),
                        "weights": {},
                    }
                )

    def n_fitted_parameters(self) -> int:
        """Settings chosen among several values, the choice of feature set, and the weights."""
        chosen = sum(len(self.grid[key]) > 1 for key in GRID_KEYS) + (len(self.feature_sets) > 1)
        return chosen + max(len(features) for features in self.feature_sets)

    def describe(self) -> dict:
        return {
            "grid": {key: list(self.grid[key]) for key in GRID_KEYS},
            "feature_sets": [list(f) for f in self.feature_sets],
            "fixed_from": self.fixed_from,
            "n_fitted_parameters": self.n_fitted_parameters(),
        }


XTB_RECIPE = ScoringRecipe(
    {
        "scale_low": SCALE_LOW_GRID,
        "scale_high": SCALE_HIGH_GRID,
        "fwhm_cm1": FWHM_GRID_CM1,
        "contour_factor": CONTOUR_GRID,
        "intensity_power": POWER_GRID,
        "c_ccl": (1.0,),  # xTB entries keep no C-Cl correction
    }
)
# DFT: widths on top of each molecule's rotational contour (its P-R separation, contour 1, fixed:
# physics, not a fit), and three features: the spectra's shape (PCC) and band matching both ways.
DFT_FWHM_GRID_CM1 = (16.0, 32.0, 64.0)
DFT_POWER_GRID = (0.5, 1.0)
DFT_FEATURE_SETS = (("pearson",), ("pearson", "bands_found_narrow", "query_explained_narrow"))


def dft_recipe(scale_low: float, scale_high: float, source: str, c_ccl: float = 1.0) -> ScoringRecipe:
    """The recipe for DFT spectra, its frequency scales (below/above 2000 cm-1) and C-Cl force-constant
    factor (:mod:`specml.identification.ccl`; 1: none) taken from ``source``: fixed, never fitted here."""
    return ScoringRecipe(
        {
            "scale_low": (scale_low,),
            "scale_high": (scale_high,),
            "fwhm_cm1": DFT_FWHM_GRID_CM1,
            "contour_factor": (1.0,),
            "intensity_power": DFT_POWER_GRID,
            "c_ccl": (c_ccl,),
        },
        DFT_FEATURE_SETS,
        fixed_from=source,
    )


@dataclass
class Query:
    """A labelled training/evaluation spectrum. ``group`` ties files of the same compound together."""

    name: str
    spectrum: Spectrum
    smiles: str
    group: str


@dataclass
class FeatureTable:
    """Features for one grid point: ``features[q, c]`` for queries x candidates, NaN rows for unusable pairs."""

    params: ScoringParameters
    features: np.ndarray  # (n_queries, n_candidates, n_features)
    truth: np.ndarray  # (n_queries,) index of the true candidate


def build_feature_table(
    queries: list[Query], candidates: list[list[LibraryEntry]], params: ScoringParameters
) -> FeatureTable:
    """Features of every (query, candidate) pair at one grid point; NaN where a pair cannot be compared.

    ``candidates[c]`` holds the candidate's entries, one per method scored together.
    """
    from specml.errors import SpectrumFormatError

    smiles = [c[0].smiles for c in candidates]
    features = np.full((len(queries), len(candidates), len(FEATURES)), np.nan)
    for q, query in enumerate(queries):
        prepared = prepare_query(query.spectrum, params)
        for c, members in enumerate(candidates):
            try:
                _, metrics = compare_members(prepared, members, params)
            except SpectrumFormatError:  # no predicted band inside the query's range
                continue
            features[q, c], _ = feature_vector(metrics, smiles[c], prepared.supported)
    truth = np.array([smiles.index(q.smiles) for q in queries])
    return FeatureTable(params, features, truth)


def _loss_and_grad(w: np.ndarray, x: np.ndarray, truth: np.ndarray, penalty: float):
    scores = x @ w  # (q, c)
    scores = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(truth))
    nll = -np.log(p[rows, truth] + 1e-300).mean()
    expected = np.einsum("qc,qcf->qf", p, x)
    grad = (expected - x[rows, truth]).mean(axis=0)
    return nll + penalty * w @ w, grad + 2 * penalty * w


def fit_weights(
    features: np.ndarray, truth: np.ndarray, penalty: float = L2_PENALTY, used: tuple[str, ...] | None = None
) -> tuple[np.ndarray, float]:
    """Conditional-logit weights (scipy L-BFGS) and the penalised loss they reach. With ``used``
    (names of :data:`FEATURES`, the columns' order), the other features get weight 0: their columns
    are zeroed, so neither the loss nor its gradient sees them."""
    x = np.nan_to_num(features, nan=0.0)
    if used is not None:
        x = x * np.isin(FEATURES, used)
    # Standardise features for the optimiser, then map weights back to raw features.
    mean, std = x.reshape(-1, x.shape[-1]).mean(axis=0), x.reshape(-1, x.shape[-1]).std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    result = minimize(
        _loss_and_grad, np.zeros(x.shape[-1]), args=(z, truth, penalty), jac=True, method="L-BFGS-B"
    )
    return result.x / std, float(result.fun)


def cross_validated_nll(
    table: FeatureTable, train: np.ndarray, groups: np.ndarray, penalty: float = L2_PENALTY
) -> float:
    """Mean held-out negative log-likelihood of the truth, leaving one compound of ``train`` out at a time."""
    losses = []
    for group in dict.fromkeys(groups[train]):
        held = train & (groups == group)
        weights, _ = fit_weights(
            table.features[train & ~held], table.truth[train & ~held], penalty, table.params.features
        )
        _, probabilities = ranks(table.features[held], table.truth[held], weights)
        losses.extend(-np.log(probabilities[np.arange(held.sum()), table.truth[held]] + 1e-12))
    return float(np.mean(losses))


def fit(
    tables: list[FeatureTable], train: np.ndarray, groups: list[str], penalty: float = L2_PENALTY
) -> ScoringParameters:
    """Best grid point and its weights, using only the queries selected by the boolean mask ``train``.

    The grid point is chosen by its leave-one-compound-out likelihood *within* ``train``
    (nested cross-validation); the weights are then fitted on all of ``train``. Choosing by
    the training loss instead favoured grid points that fit the training compounds but
    ranked held-out ones worse (docs/identify.md).
    """
    group_of = np.asarray(groups)
    scores = [cross_validated_nll(table, train, group_of, penalty) for table in tables]
    table = tables[int(np.argmin(scores))]
    weights, loss = fit_weights(table.features[train], table.truth[train], penalty, table.params.features)
    return ScoringParameters.from_json(
        {
            **table.params.to_json(),
            "weights": dict(zip(FEATURES, map(float, weights), strict=True)),
            "provenance": {"training_loss": loss, "cross_validated_nll": float(min(scores))},
        }
    )


def ranks(features: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of the true candidate per query, and the softmax confidences (q, c)."""
    scores = np.nan_to_num(features, nan=0.0) @ weights
    scores = np.where(np.isnan(features).any(axis=-1), -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.array([int(np.where(order[q] == truth[q])[0][0]) + 1 for q in range(len(truth))])
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return rank, shifted / shifted.sum(axis=1, keepdims=True)


@dataclass
class CrossValidation:
    rank: np.ndarray  # per query, 1-based rank of the truth
    top_candidate: np.ndarray  # per query, index of the top-ranked candidate
    confidence: np.ndarray  # per query, confidence of the top-ranked candidate
    fold_parameters: list[dict] = field(default_factory=list)

    def top(self, k: int) -> float:
        return float(np.mean(self.rank <= k))


def leave_one_compound_out(
    tables: list[FeatureTable], groups: list[str], penalty: float = L2_PENALTY
) -> CrossValidation:
    groups_arr = np.array(groups)
    n = len(groups)
    rank = np.zeros(n, dtype=int)
    top_candidate = np.zeros(n, dtype=int)
    confidence = np.zeros(n)
    folds = []
    for group in dict.fromkeys(groups):
        held = groups_arr == group
        params = fit(tables, ~held, groups, penalty)
        table = table_for(tables, params)
        r, p = ranks(table.features[held], table.truth[held], params.weight_vector())
        rank[held] = r
        top_candidate[held] = p.argmax(axis=1)
        confidence[held] = p.max(axis=1)
        folds.append(
            {
                "held_out": group,
                **{k: params.to_json()[k] for k in GRID_KEYS},
                "features": list(params.features),
                "weights": params.weights,
            }
        )
    return CrossValidation(rank, top_candidate, confidence, folds)


def table_for(tables: list[FeatureTable], params: ScoringParameters) -> FeatureTable:
    """The feature table computed at ``params``' grid point and feature set."""
    return next(
        t
        for t in tables
        if all(getattr(t.params, k) == getattr(params, k) for k in GRID_KEYS)
        and t.params.features == params.features
    )


def tables_for_recipe(
    queries: list[Query], candidates: list[list[LibraryEntry]], recipe: ScoringRecipe
) -> list[FeatureTable]:
    """Feature tables of every grid point and feature set. Features are computed once per grid
    point; a feature set only changes which of them the weights may use."""
    tables, computed = [], {}
    for params in recipe.points():
        key = tuple(getattr(params, k) for k in GRID_KEYS)
        if key not in computed:
            computed[key] = build_feature_table(queries, candidates, params)
        table = computed[key]
        tables.append(FeatureTable(params, table.features, table.truth))
    return tables
