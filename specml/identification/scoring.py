"""Scoring a candidate's predicted spectrum against a query spectrum.

Theory is systematically off: harmonic xTB frequencies scatter by mode (several per cent,
more for strained rings, C-Cl and cumulated bonds), and predicted intensities have their own
scale. The scorer therefore

0. for DFT spectra, scales the force constants of C-Cl stretches by ``c_ccl`` first
   (:mod:`specml.identification.ccl`; B3LYP puts them a few per cent low);
1. maps predicted frequencies with a piecewise-linear scaling (one factor below and one
   above ``split_cm1``, where X-H and triple-bond stretches live);
2. gives every band of a candidate the width of a gas-phase band of *that* molecule: the
   P-R branch separation of its rotational contour, 2.358 sqrt(B T) cm-1 with B the mean
   rotational constant of the optimised geometry (about 160 cm-1 for water, 13 for
   toluene), scaled by the fitted ``contour_factor`` and combined in quadrature with the
   fitted comparison width ``fwhm_cm1`` (to which the query is broadened as well);
3. compresses intensities (``I**intensity_power``) because harmonic intensities are far
   less reliable than positions;
4. computes features: PCC (whole range and below/above ``split_cm1``), SIS, Wasserstein
   distance, functional-group agreement, and band matching with a tolerance: the share of
   the candidate's band intensity that finds query absorption within +-``tol`` (relative)
   of its position and the share of the query's absorption that finds a predicted band
   within the same tolerance (a maximum filter on a logarithmic axis, so the tolerance is
   a frequency ratio, like the xTB errors);
5. combines the features linearly with fitted weights; confidences are a softmax of the
   scores (the weights carry the softmax temperature, so they are the probabilities of
   the conditional-logit fit in :mod:`specml.identification.calibration`).

Where the query is saturated (transmittance below 1 %), its band tops are clipped: those
stretches, widened by the comparison width, are censored, left out of every metric for query
and candidates alike (:func:`saturated_window`).

The query is prepared once (:func:`prepare_query`) and every candidate is compared with
:func:`compare`; :func:`specml.identification.identify` and the calibration use these same
two functions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from specml.errors import InputError, SpectrumFormatError
from specml.identification.functional_groups import GroupAgreement, group_agreement
from specml.identification.library import LibraryEntry
from specml.spectra.spectrum import Spectrum

# Order matters: weight vectors are stored in this order.
FEATURES = (
    "pearson",
    "pearson_below_split",
    "pearson_above_split",
    "sis",
    "wasserstein_100cm1",
    "groups_missing",
    "groups_unexplained",
    "bands_found_narrow",
    "query_explained_narrow",
    "bands_found_wide",
    "query_explained_wide",
)
# Resolution (FWHM, cm-1) at which band evidence (functional groups, band matching) is judged:
# averages the rotational fine structure of gas-phase bands, still narrow against the windows.
GROUP_RESOLUTION_CM1 = 16.0
# P-R branch separation of a rotational contour: 2 sqrt(2 k T B / (h c)) = 2.358 sqrt(B T), B in cm-1.
PR_SEPARATION_COEFFICIENT = 2.358
ROTATIONAL_CONSTANT_CM1_AMU_A2 = 16.857629  # B (cm-1) = this / I (amu Å^2)
LOG_STEP = 5e-4  # relative step of the logarithmic axis used for the band-matching tolerance
DEFAULT_PARAMETERS_PATH = Path(__file__).with_name("default_parameters.json")


@dataclass(frozen=True)
class ScoringParameters:
    """Everything the scorer needs. Produced by ``benchmarks/identify.py --fit``; see its provenance."""

    scale_low: float  # frequency factor below split_cm1
    scale_high: float  # frequency factor at and above split_cm1
    fwhm_cm1: float  # comparison width: query broadened to it, added in quadrature to predicted bands
    weights: dict[str, float]  # feature -> weight (includes the softmax temperature)
    intensity_power: float = 1.0  # intensities**power before comparing; <1 lessens the strongest band's say
    contour_factor: float = (
        0.0  # x the molecule's rotational P-R separation as extra band width (sticks only)
    )
    tolerances: tuple[float, float] = (0.03, 0.10)  # relative band-matching tolerances (narrow, wide)
    features: tuple[str, ...] = FEATURES  # the features scored; the others weigh nothing
    temperature_k: float = 298.0  # of the rotational contour
    shape: str = "gaussian"
    split_cm1: float = 2000.0  # separates X-H / triple-bond stretches from the rest
    lo_cm1: float = 500.0  # comparison window and grid step (cm-1)
    hi_cm1: float = 4000.0
    step_cm1: float = 2.0
    # Force-constant factor of C-Cl stretches applied before the frequency scales (DFT; fixed from the
    # fundamentals benchmark, specml.identification.ccl); 1: no correction, no Hessian needed.
    c_ccl: float = 1.0
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.fwhm_cm1 <= 0 or self.step_cm1 <= 0 or self.hi_cm1 <= self.lo_cm1:
            raise InputError(
                f"scoring parameters: need fwhm_cm1 > 0, step_cm1 > 0 and hi_cm1 > lo_cm1 "
                f"(got {self.fwhm_cm1}, {self.step_cm1}, {self.lo_cm1}-{self.hi_cm1})"
            )
        if not 0 < self.intensity_power <= 1 or self.contour_factor < 0:
            raise InputError(
                f"scoring parameters: need 0 < intensity_power <= 1 and contour_factor >= 0 "
                f"(got {self.intensity_power}, {self.contour_factor})"
            )
        if not (np.isfinite(self.c_ccl) and self.c_ccl > 0):
            raise InputError(f"scoring parameters: need a positive, finite c_ccl (got {self.c_ccl})")
        unknown = (set(self.weights) | set(self.features)) - set(FEATURES)
        if unknown:
            raise InputError(f"scoring parameters: unknown features {sorted(unknown)}; known: {FEATURES}")
        object.__setattr__(self, "tolerances", tuple(float(t) for t in self.tolerances))
        object.__setattr__(self, "features", tuple(self.features))

    def weight_vector(self) -> np.ndarray:
        return np.array([self.weights.get(name, 0.0) if name in self.features else 0.0 for name in FEATURES])

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ScoringParameters:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


DEFAULT_METHOD = "harmonic:b3lyp/def2-svp"  # ensemble_name(methods_for(DEFAULT_REFERENCE))
#: The set a method without its own fit (ML-MD, another DFT level) is scored with: the xTB
#: ensemble's, whose frequency scales and widths were fitted for spectra that are not DFT's.
FALLBACK_METHOD = "harmonic:gfn2-xtb+harmonic:gfn1-xtb"  # ensemble_name(methods_for(XTB_ENSEMBLE))


def load_parameters(path: str | Path | None = None, method: str = DEFAULT_METHOD) -> ScoringParameters:
    """Fitted parameters for ``method`` from ``path`` (default: the shipped JSON).

    The JSON maps method names (e.g. ``"harmonic:gfn2-xtb"``, or members joined by ``+``) to
    parameter sets. A method without its own fit gets the set of :data:`FALLBACK_METHOD`;
    ``provenance["fallback"]`` records that.
    """
    path = Path(path) if path is not None else DEFAULT_PARAMETERS_PATH
    if not path.is_file():
        raise InputError(f"{path}: scoring parameters not found; run 'python benchmarks/identify.py --fit'")
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: scoring parameters are not valid JSON ({exc})") from exc
    try:
        if method in table:
            return ScoringParameters.from_json(table[method])
        if FALLBACK_METHOD not in table:
            raise InputError(f"{path}: no scoring parameters for {method!r} nor {FALLBACK_METHOD!r}")
        params = ScoringParameters.from_json(table[FALLBACK_METHOD])
    except TypeError as exc:  # a required field missing
        raise InputError(f"{path}: incomplete scoring parameters ({exc})") from exc
    return ScoringParameters.from_json(
        {
            **params.to_json(),
            "provenance": {
                **params.provenance,
                "fallback": f"fitted for {FALLBACK_METHOD}, used for {method}",
            },
        }
    )


def map_frequencies(
    frequencies_cm1: np.ndarray, scale_low: float, scale_high: float, split_cm1: float = 2000.0
) -> np.ndarray:
    """Piecewise-linear frequency correction: separate factors below/above ``split_cm1``."""
    f = np.asarray(frequencies_cm1, dtype=float)
    return np.where(f < split_cm1, f * scale_low, f * scale_high)


def rotational_contour_cm1(xyz: str | None, temperature_k: float = 298.0) -> float:
    """P-R branch separation (cm-1) of a gas-phase band of the molecule in ``xyz``.

    2.358 sqrt(B T) with B the geometric mean of the non-zero rotational constants (cm-1)
    of the structure. 0 when there is no structure (e.g. an ML-MD curve) or a single atom.
    """
    if not xyz:
        return 0.0
    from ase import Atoms

    lines = xyz.strip().splitlines()[2:]
    try:
        symbols = [line.split()[0] for line in lines]
        positions = [[float(v) for v in line.split()[1:4]] for line in lines]
        atoms = Atoms(symbols, positions=positions)
    except (ValueError, IndexError, KeyError) as exc:
        raise InputError(f"library geometry is not valid XYZ ({exc})") from exc
    if len(atoms) < 2:
        return 0.0
    moments = atoms.get_moments_of_inertia()
    moments = moments[moments > 1e-3 * moments.max()]  # a linear molecule has one zero moment
    b_mean = float(np.exp(np.mean(np.log(ROTATIONAL_CONSTANT_CM1_AMU_A2 / moments))))
    return PR_SEPARATION_COEFFICIENT * float(np.sqrt(b_mean * temperature_k))


def band_width_cm1(entry: LibraryEntry, params: ScoringParameters, base_cm1: float) -> float:
    """Width given to the entry's sticks: ``base_cm1`` and its scaled rotational contour in quadrature."""
    contour = params.contour_factor * rotational_contour_cm1(entry.xyz, params.temperature_k)
    return float(np.hypot(base_cm1, contour))


@dataclass
class PreparedQuery:
    """The query on the comparison grid: compressed curves, dilated curves and group evidence."""

    grid: np.ndarray  # where the query was measured within [lo_cm1, hi_cm1]
    curve: np.ndarray  # at fwhm_cm1, max-normalised and compressed
    fine: np.ndarray  # at GROUP_RESOLUTION_CM1, max-normalised and compressed
    dilated: dict[float, np.ndarray]  # tolerance -> maximum of ``fine`` within +-tolerance
    supported: dict  # functional group -> band evidence present (None: window not measured)
    spectrum: Spectrum  # the query at fwhm_cm1 on the grid, max-normalised (for plots)
    censored: np.ndarray  # grid points next to saturated bands, left out of every metric
    condensed_phase: str | None = None  # why the query looks like a liquid/solid spectrum, if it does


def prepare_query(query: Spectrum, params: ScoringParameters) -> PreparedQuery:
    """Broaden, grid and compress the query once (foundation pipeline: ``broaden_to``, ``to_common_grid``)."""
    from specml.experiment import to_common_grid
    from specml.experiment.preprocess import broaden_to
    from specml.identification.functional_groups import supported_groups
    from specml.identification.sample_phase import condensed_phase_caution

    coarse, fine = (
        to_common_grid([broaden_to(query, width)], params.lo_cm1, params.hi_cm1, params.step_cm1)[0]
        for width in (params.fwhm_cm1, GROUP_RESOLUTION_CM1)
    )
    if not np.any(coarse.intensity > 0):
        raise SpectrumFormatError(
            f"{query.label}: no absorption within {params.lo_cm1:g}-{params.hi_cm1:g} cm-1"
        )
    coarse, fine = coarse.normalized(), fine.normalized()
    grid = coarse.wavenumber
    censored = saturated_window(grid, query, saturation_margin_cm1(params))
    supported = supported_groups(fine)  # a saturated band is strong evidence of its group: kept
    if censored.all():
        raise SpectrumFormatError(f"{query.label}: saturated wherever it absorbs; nothing left to compare")
    curve = np.where(censored, 0.0, _compress(coarse.intensity, params.intensity_power))
    fine_compressed = np.where(censored, 0.0, _compress(fine.intensity, params.intensity_power))
    return PreparedQuery(
        grid,
        curve,
        fine_compressed,
        {t: dilate(grid, fine_compressed, t) for t in params.tolerances},
        supported,
        coarse,
        censored,
        condensed_phase_caution(query, fine),
    )


#: Saturated ranges are censored with a margin of this fraction of the comparison FWHM: broadening
#: spreads a clipped top over about a half width on either side (the kernel's half maximum).
SATURATION_PAD_FRACTION = 0.5


def saturation_margin_cm1(params: ScoringParameters) -> float:
    """How far (cm-1) on either side of a saturated range the comparison leaves out."""
    return SATURATION_PAD_FRACTION * params.fwhm_cm1


def saturated_window(grid: np.ndarray, query: Spectrum, width_cm1: float) -> np.ndarray:
    """Grid points within ``width_cm1`` of the query's saturated ranges (transmittance below 1 %,
    ``metadata["saturated_cm1"]``). There the measured heights are clipped: censored data, not
    small absorbance, so query and predictions are both left out there."""
    censored = np.zeros(grid.shape, dtype=bool)
    for lo, hi in query.metadata.get("saturated_cm1") or []:
        censored |= (grid >= lo - width_cm1) & (grid <= hi + width_cm1)
    return censored


def predicted_curves(
    entry: LibraryEntry, params: ScoringParameters, grid: np.ndarray, condensed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The entry on ``grid`` at the comparison width and at the band-evidence width (not normalised).

    ``condensed``: draw the sticks as a liquid or solid sample shows them
    (:func:`~specml.identification.sample_phase.condensed_phase_sticks`: no rotational
    contours, hydrogen-bonded O-H). A sampled curve (ML-MD) is drawn as it is.
    """
    from specml.spectra.broadening import broaden_sticks

    if entry.kind == "sticks":
        real = entry.x > 0  # imaginary modes (negative) carry no absorption
        positions = map_frequencies(entry.x[real], params.scale_low, params.scale_high, params.split_cm1)
        if condensed:
            from specml.identification.sample_phase import condensed_phase_sticks

            positions, intensities, extra = condensed_phase_sticks(positions, entry.y[real], entry.smiles)
        else:
            intensities = entry.y[real]
            contour = params.contour_factor * rotational_contour_cm1(entry.xyz, params.temperature_k)
            extra = np.full_like(positions, contour)
        curves = []
        for width in (params.fwhm_cm1, GROUP_RESOLUTION_CM1):
            curve = np.zeros_like(grid, dtype=float)
            for added in np.unique(extra):  # sticks sharing a width are broadened together
                group = extra == added
                curve += broaden_sticks(
                    positions[group], intensities[group], grid, float(np.hypot(width, added)), params.shape
                )
            curves.append(curve)
        return curves[0], curves[1]
    # A sampled curve (ML-MD): move each sample's area to its mapped position (a histogram on the
    # comparison step; the piecewise map folds the axis near split_cm1, so no point-wise remap),
    # then bring it to the widths like the query (foundation broadening).
    from specml.experiment.preprocess import broaden_to

    order = np.argsort(entry.x)
    x, y = entry.x[order], np.clip(entry.y[order], 0.0, None)
    axis = map_frequencies(x, params.scale_low, params.scale_high, params.split_cm1)
    step = params.step_cm1
    edges = np.arange(np.floor(axis.min() / step) * step, axis.max() + 2 * step, step)
    area, _ = np.histogram(axis, bins=edges, weights=y * np.gradient(x))
    sampled = Spectrum(
        0.5 * (edges[1:] + edges[:-1]), area / step, metadata={"source": "predicted", "label": entry.smiles}
    )
    comparison, evidence = (
        np.interp(grid, sampled.wavenumber, broaden_to(sampled, width).intensity, left=0.0, right=0.0)
        for width in (params.fwhm_cm1, GROUP_RESOLUTION_CM1)
    )
    return comparison, evidence


def compare(prepared: PreparedQuery, entry: LibraryEntry, params: ScoringParameters) -> tuple[Spectrum, dict]:
    """The prediction on the query's grid (normalised, for plots) and the metrics of the pair.

    Metrics are taken on ``intensity**intensity_power`` curves. PCC is also taken separately
    below and above ``split_cm1`` so that the fit can weigh the fingerprint region against
    the X-H stretches. Raises :class:`SpectrumFormatError` when the prediction has no
    intensity on the query's grid.
    """
    from specml.comparison.metrics import spectral_information_similarity, wasserstein
    from specml.identification.ccl import corrected_entry

    entry = corrected_entry(entry, params.c_ccl)  # unchanged unless c_ccl != 1 and it has a C-Cl bond
    grid = prepared.grid
    coarse, fine = predicted_curves(entry, params, grid, condensed=prepared.condensed_phase is not None)
    if not (coarse.max() > 0 and fine.max() > 0):
        raise SpectrumFormatError(
            f"{entry.smiles}: predicted spectrum has no bands within {grid[0]:g}-{grid[-1]:g} cm-1"
        )
    a = prepared.curve
    kept = ~prepared.censored
    b = np.where(kept, _compress(coarse / coarse.max(), params.intensity_power), 0.0)
    b_fine = np.where(kept, _compress(fine / fine.max(), params.intensity_power), 0.0)
    if not b_fine.any():
        raise SpectrumFormatError(f"{entry.smiles}: predicted bands only where the query is saturated")
    below = grid < params.split_cm1
    metrics = {
        "pearson": _pearson_or_zero(a[kept], b[kept]),
        "pearson_below_split": _pearson_or_zero(a[below & kept], b[below & kept]),
        "pearson_above_split": _pearson_or_zero(a[~below & kept], b[~below & kept]),
        "sis": float(spectral_information_similarity(a, b)),
        "wasserstein_cm1": float(wasserstein(a, b, grid)),
    }
    narrow, wide = params.tolerances
    for name, tol in (("narrow", narrow), ("wide", wide)):
        # Share of predicted band intensity with query absorption within +-tol, and vice versa.
        metrics[f"bands_found_{name}"] = float(np.sum(b_fine * prepared.dilated[tol]) / np.sum(b_fine))
        metrics[f"query_explained_{name}"] = float(
            np.sum(prepared.fine * dilate(grid, b_fine, tol)) / np.sum(prepared.fine)
        )
    metadata = {
        "source": "predicted",
        "method": entry.method,
        "smiles": entry.smiles,
        "label": entry.smiles,
        "resolution_cm1": params.fwhm_cm1,
    }
    return Spectrum(grid, coarse / coarse.max(), metadata=metadata), metrics


def compare_members(
    prepared: PreparedQuery, entries: list[LibraryEntry], params: ScoringParameters
) -> tuple[Spectrum, dict]:
    """:func:`compare` for a candidate predicted by several methods: the mean of their metrics
    (hence of their features, which are linear in the metrics) and of their curves."""
    pairs = [compare(prepared, entry, params) for entry in entries]
    metrics = {key: float(np.mean([m[key] for _, m in pairs])) for key in pairs[0][1]}
    if len(pairs) == 1:
        return pairs[0][0], metrics
    curve = np.mean([s.intensity for s, _ in pairs], axis=0)
    members = "+".join(entry.method for entry in entries)
    spectrum = Spectrum(
        prepared.grid, curve / curve.max(), metadata={**pairs[0][0].metadata, "method": members}
    )
    return spectrum, metrics


def dilate(grid: np.ndarray, values: np.ndarray, tolerance: float) -> np.ndarray:
    """Maximum of ``values`` within ``x/(1+tolerance)..x*(1+tolerance)`` at every ``x`` of ``grid``."""
    from scipy.ndimage import maximum_filter1d

    log_grid = np.exp(np.arange(np.log(grid[0]), np.log(grid[-1]) + 0.5 * LOG_STEP, LOG_STEP))
    size = 2 * int(round(np.log1p(tolerance) / LOG_STEP)) + 1
    return np.interp(
        grid, log_grid, maximum_filter1d(np.interp(log_grid, grid, values), size, mode="nearest")
    )


def _compress(values: np.ndarray, power: float) -> np.ndarray:
    return np.clip(values, 0.0, None) ** power


def _pearson_or_zero(x: np.ndarray, y: np.ndarray) -> float:
    """PCC, or 0 (no evidence either way) where a region is empty or flat in either spectrum."""
    from specml.comparison.metrics import pearson

    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(pearson(x, y))


def feature_vector(metrics: dict, smiles: str, supported: dict) -> tuple[np.ndarray, GroupAgreement]:
    """Features in :data:`FEATURES` order, and the functional-group agreement behind two of them."""
    agreement = group_agreement(supported, smiles)
    values = {
        **metrics,
        "wasserstein_100cm1": metrics["wasserstein_cm1"] / 100.0,  # weights of order one
        "groups_missing": len(agreement.missing),
        "groups_unexplained": len(agreement.unexplained),
    }
    return np.array([values[name] for name in FEATURES], dtype=float), agreement


def softmax(scores: np.ndarray) -> np.ndarray:
    from scipy.special import softmax as scipy_softmax

    return scipy_softmax(np.asarray(scores, dtype=float))
