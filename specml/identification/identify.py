"""Identify a molecule from its IR spectrum: rank candidates by predicted-spectrum agreement."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specml.errors import InputError, SpectrumFormatError
from specml.identification.functional_groups import GroupAgreement
from specml.identification.library import (
    DEFAULT_REFERENCE,
    Candidate,
    SpectralLibrary,
    Warning_,
    ensemble_error,
    ensemble_name,
    fill_ensemble,
    methods_for,
    resolve_candidates,
)
from specml.identification.scoring import (
    ScoringParameters,
    compare_members,
    feature_vector,
    load_parameters,
    prepare_query,
    softmax,
)
from specml.spectra.spectrum import Spectrum


@dataclass
class RankedCandidate:
    name: str
    smiles: str
    score: float
    confidence: float  # softmax probability among the usable candidates
    metrics: dict
    groups: GroupAgreement
    predicted: Spectrum  # on the query's comparison grid, normalised


@dataclass
class Identification:
    query: Spectrum  # preprocessed (grid, resolution, normalised)
    ranking: list[RankedCandidate]
    warnings: list[Warning_]
    supported_groups: dict  # group -> band evidence present (None: window not measured)
    method: str
    parameters: ScoringParameters
    library_hits: int = 0
    library_misses: int = 0
    extra: dict = field(default_factory=dict)
    # about the query (condensed phase, saturated bands) and the scoring (C-Cl correction not applied)
    cautions: list[str] = field(default_factory=list)

    def top(self, k: int = 3) -> list[RankedCandidate]:
        return self.ranking[:k]


def identify(
    query: Spectrum | str | Path,
    candidates: Iterable[tuple[str, str]] | str | Path,
    reference=DEFAULT_REFERENCE,
    models_dir: str | Path | None = None,
    library: SpectralLibrary | None = None,
    parameters: ScoringParameters | None = None,
    executor=None,
    retry_failed: bool = False,
    ml_preset: str = "default",
    conformers: bool = False,
) -> Identification:
    """Rank ``candidates`` (``(name, smiles)`` rows or a CSV path) for the experimental ``query``.

    Predictions come from ``library`` (computed and stored on a miss): harmonic spectra with
    ``reference`` by default (members joined by ``+`` are scored together, by the mean of
    their features), ML-MD spectra when ``models_dir`` is given (MD settings of the
    workflow preset ``ml_preset``); with ``conformers``, harmonic spectra are Boltzmann-averaged
    over each candidate's conformers (:meth:`~specml.identification.library.Method.harmonic`). Candidates that
    cannot be used (invalid SMILES, unsupported element, failed calculation) end up in
    ``warnings`` and do not stop the ranking.
    """
    from specml.experiment.preprocess import load_absorbance
    from specml.molecules import read_molecule_table

    if not isinstance(query, Spectrum):
        query = load_absorbance(query)
    rows = read_molecule_table(candidates) if isinstance(candidates, (str, Path)) else list(candidates)
    methods = methods_for(reference, models_dir, ml_preset, conformers)
    method_name = ensemble_name(methods)
    params = parameters or load_parameters(method=method_name)
    prepared = prepare_query(query, params)  # a query without usable absorption fails before any prediction
    usable, warnings = resolve_candidates(rows)
    own_library = library is None
    if library is None:
        library = SpectralLibrary()
    hits0, misses0 = library.hits, library.misses
    try:
        entries = fill_ensemble(library, usable, methods, executor, retry_failed)
    finally:
        hits, misses = library.hits - hits0, library.misses - misses0
        if own_library:
            library.close()
    scored: list[tuple[Candidate, list]] = []
    for candidate in usable:
        error = ensemble_error(entries[candidate.smiles])
        if error is None:
            scored.append((candidate, entries[candidate.smiles]))
        else:
            warnings.append(Warning_(candidate.name, candidate.smiles, error))
    if not scored:
        raise InputError(
            "no candidate could be predicted; see the warnings: "
            + "; ".join(f"{w.name}: {w.reason}" for w in warnings[:3])
        )
    results = []
    for candidate, members in scored:
        try:
            on_grid, metrics = compare_members(prepared, members, params)
        except SpectrumFormatError as exc:  # e.g. no predicted band inside the measured range
            warnings.append(Warning_(candidate.name, candidate.smiles, str(exc)))
            continue
        features, agreement = feature_vector(metrics, candidate.smiles, prepared.supported)
        results.append((candidate, float(features @ params.weight_vector()), metrics, agreement, on_grid))
    if not results:
        raise InputError(
            "no candidate's predicted spectrum overlaps the query; see the warnings: "
            + "; ".join(f"{w.name}: {w.reason}" for w in warnings[:3])
        )
    confidence = softmax(np.array([r[1] for r in results]))
    ranking = [
        RankedCandidate(c.name, c.smiles, s, float(p), m, a, g)
        for (c, s, m, a, g), p in zip(results, confidence, strict=True)
    ]
    ranking.sort(key=lambda r: -r.score)
    from specml.experiment.yunits import saturation_caution

    saturation = saturation_caution(query, params.lo_cm1, params.hi_cm1)
    if saturation and prepared.censored.any():
        from specml.identification.scoring import saturation_margin_cm1

        saturation += (
            f"; left out of the comparison, with {saturation_margin_cm1(params):g} cm-1 on either side"
        )
    # The file's own cautions (e.g. a ##DELTAX a few percent off), then what the spectrum shows.
    from specml.identification.ccl import missing_derivatives_caution

    uncorrected = missing_derivatives_caution(
        [(candidate.name, entry) for candidate, members in scored for entry in members], params.c_ccl
    )
    shown = [note for note in (prepared.condensed_phase, saturation, uncorrected) if note]
    cautions = list(query.metadata.get("cautions", [])) + shown
    return Identification(
        prepared.spectrum,
        ranking,
        warnings,
        prepared.supported,
        method_name,
        params,
        hits,
        misses,
        cautions=cautions,
    )


def plot_identification(result: Identification, path: str | Path, top: int = 3) -> Path:
    """Overlay of the query with the ``top`` best candidates' predicted spectra (PNG)."""
    from specml.plotting import plot_spectra

    spectra = [result.query] + [r.predicted for r in result.top(top)]
    labels = ["query"] + [f"{i + 1}. {r.name} ({r.confidence:.0%})" for i, r in enumerate(result.top(top))]
    plot_spectra(spectra, path, title=f"Identification ({result.method})", normalize=True, labels=labels)
    return Path(path)
