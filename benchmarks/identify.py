"""Benchmark (and fit) spectrum-to-structure identification on the NIST gas-phase IR files.

Every file in ../shared/data/nist-ir is a query; the candidates are all compounds of its
index.csv plus the decoys in benchmarks/data/identify_decoys.csv. Accuracy is
leave-one-compound-out: the scorer that ranks a query was fitted without any file of that
compound. ``--fit`` additionally fits on all files and writes the shipped default
parameters (specml/identification/default_parameters.json) with provenance.

    python benchmarks/identify.py [--fit] [--library PATH] [--reference pyscf:b3lyp/def2-svp | gfn2+gfn1 | xtb]
                                   [--available-only] [--out-stem PATH]

Results go to docs/results/identify.json for the default reference and to
docs/results/identify_<reference>.json for any other (``--out-stem /tmp/x``: /tmp/x.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specml.executor import make_executor  # noqa: E402
from specml.experiment import load_absorbance  # noqa: E402
from specml.identification import (  # noqa: E402
    DEFAULT_REFERENCE,
    SpectralLibrary,
    ensemble_name,
    fill_ensemble,
    identify,
    methods_for,
    resolve_candidates,
)
from specml.identification.calibration import (  # noqa: E402
    GRID_KEYS,
    L2_PENALTY,
    XTB_RECIPE,
    Query,
    ScoringRecipe,
    dft_recipe,
    fit,
    fit_weights,
    leave_one_compound_out,
    ranks,
    table_for,
    tables_for_recipe,
)
from specml.identification.ccl import missing_derivatives_caution  # noqa: E402
from specml.identification.library import ensemble_error  # noqa: E402
from specml.identification.scoring import DEFAULT_PARAMETERS_PATH, ScoringParameters  # noqa: E402
from specml.molecules import canonical_smiles, read_molecule_table  # noqa: E402
from specml.provenance import specml_commit  # noqa: E402

NIST = ROOT.parent / "shared" / "data" / "nist-ir"
DECOYS = ROOT / "benchmarks" / "data" / "identify_decoys.csv"
RESULTS = ROOT / "docs" / "results"


def load_queries() -> list[Query]:
    import csv

    with (NIST / "index.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    queries = []
    for row in rows:
        smiles = canonical_smiles(row["smiles"])
        # The group is the compound: files of the same molecule are held out together.
        queries.append(Query(row["file"], load_absorbance(NIST / row["file"]), smiles, smiles))
    return queries


def recipe_for(methods) -> ScoringRecipe:
    """XTB_RECIPE for xTB methods; for one DFT method, the DFT recipe with the frequency scales and
    the C-Cl force-constant factor of the fundamentals benchmark (docs/results/fundamentals.json),
    never fitted on these queries."""
    if not any(m.name.startswith("harmonic:") and "/" in m.name for m in methods):
        return XTB_RECIPE
    if len(methods) != 1:
        raise SystemExit("error: the DFT recipe scores one DFT method at a time")
    fundamentals = RESULTS / "fundamentals.json"
    level = methods[0].name.removeprefix("harmonic:")
    results = json.loads(fundamentals.read_text()) if fundamentals.is_file() else {}
    key = next((k for k in results.get("methods", {}) if k.lower() == f"pyscf:{level}"), None)
    correction = results.get("c_cl_correction", {}).get(key) if key else None
    if key is None or correction is None:
        raise SystemExit(
            f"error: no scale factors or C-Cl correction for {level} in {fundamentals.relative_to(ROOT)}; "
            f"run benchmarks/fundamentals.py --methods pyscf:{level} first"
        )
    entry = results["methods"][key]
    factors = entry["scale_factors"]
    return dft_recipe(
        factors["below_2000"],
        factors["above_2000"],
        f"{fundamentals.relative_to(ROOT)} ({entry['n_molecules']} species, least squares; c_CCl on "
        f"{', '.join(correction['fit_parents'])})",
        correction["c_ccl"],
    )


def confusion_figure(queries, candidates, cv, path: Path, method_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {c.smiles: c.name for c in candidates}
    rows = list(dict.fromkeys(q.smiles for q in queries))
    columns = list(dict.fromkeys(rows + [candidates[i].smiles for i in cv.top_candidate]))
    matrix = np.zeros((len(rows), len(columns)))
    for q, top in zip(queries, cv.top_candidate, strict=True):
        matrix[rows.index(q.smiles), columns.index(candidates[top].smiles)] += 1
    fig, ax = plt.subplots(figsize=(0.35 * len(columns) + 3, 0.35 * len(rows) + 2.5))
    ax.imshow(matrix, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(columns)), [names[s] for s in columns], rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), [names[s] for s in rows], fontsize=7)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(
                j, i, int(value), ha="center", va="center", fontsize=6, color="white" if i == j else "black"
            )
    ax.set_xlabel("top-1 candidate (decoys right of the diagonal block)")
    ax.set_ylabel("query compound")
    ax.set_title(f"Identification, leave-one-compound-out ({method_name})")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def limit_diagnostics(table, files: list[str]) -> dict:
    """What limits accuracy, at the grid point chosen on all data. NOT accuracies of the method.

    ``resubstitution``: weights fitted on the very queries they rank (no hold-out), an upper
    bound for this feature set; the gap to leave-one-compound-out is what does not transfer
    between compounds. ``rank_by_pearson``: rank of the true candidate by the PCC of its xTB
    spectrum alone, i.e. how often another molecule's prediction resembles the measurement more.
    """
    resubstitution = {}
    for penalty in (L2_PENALTY, 1e-3):
        weights, _ = fit_weights(table.features, table.truth, penalty, table.params.features)
        rank, _ = ranks(table.features, table.truth, weights)
        resubstitution[f"l2_penalty_{penalty:g}"] = {
            "top1": float(np.mean(rank == 1)),
            "top3": float(np.mean(rank <= 3)),
        }
    pearson = np.nan_to_num(table.features[..., 0], nan=-np.inf)
    by_pearson = [int((pearson[q] > pearson[q, t]).sum()) + 1 for q, t in enumerate(table.truth)]
    return {
        "note": "upper bounds and single-feature ranks for the discussion of limits; not LOCO accuracies",
        "resubstitution": resubstitution,
        "rank_by_pearson": dict(zip(files, by_pearson, strict=True)),
        "top1_by_pearson": float(np.mean(np.array(by_pearson) == 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fit", action="store_true", help="write the default scoring parameters JSON")
    parser.add_argument(
        "--library", type=Path, default=None, help="spectral library (default: the user cache)"
    )
    parser.add_argument(
        "--reference",
        default=DEFAULT_REFERENCE,
        help=f"e.g. xtb, gfn1, gfn2+gfn1 (default {DEFAULT_REFERENCE})",
    )
    parser.add_argument("--scheduler", default=None)
    parser.add_argument(
        "--conformers",
        action="store_true",
        help="candidates' harmonic spectra Boltzmann-averaged over their conformers (results "
        "docs/results/identify[_<reference>]_conformers)",
    )
    parser.add_argument(
        "--available-only",
        action="store_true",
        help="a preview while a library is being built: leave out candidates with no library entry "
        "(nothing is computed) and the queries whose compound is then missing",
    )
    parser.add_argument(
        "--out-stem",
        type=Path,
        default=None,
        help="write STEM.json and STEM_confusion.png instead of docs/results/identify[_<reference>]",
    )
    args = parser.parse_args()
    if args.fit and args.conformers:
        # One fitted scorer per method name, and the shipped one belongs to the default library.
        parser.error("--fit with --conformers would replace the default scorer; evaluate without --fit")

    methods = methods_for(args.reference, conformers=args.conformers)
    method_name = ensemble_name(methods)
    rows = read_molecule_table(NIST / "index.csv") + read_molecule_table(DECOYS)
    candidates, warnings = resolve_candidates(rows)
    queries = load_queries()

    library = SpectralLibrary(args.library)
    preview = None
    if args.available_only:
        all_candidates, all_queries = candidates, queries
        candidates = [
            c
            for c in candidates
            if all(library.get(c.smiles, m.name, m.settings) is not None for m in methods)
        ]
        known = {c.smiles for c in candidates}
        queries = [q for q in queries if q.smiles in known]
        preview = {
            "candidates_left_out": sorted(c.name for c in all_candidates if c.smiles not in known),
            "queries_left_out": sorted(q.name for q in all_queries if q.smiles not in known),
        }
        print(f"preview: {len(candidates)} candidates in the library, {len(queries)} of their queries")
    # Decoys counted after any preview filter: candidates that are no query's compound.
    n_decoys = len(candidates) - len({q.smiles for q in queries})
    start = time.perf_counter()
    executor = make_executor(args.scheduler)
    try:
        entries = fill_ensemble(library, candidates, methods, executor)
    finally:
        executor.close()
    fill_seconds = time.perf_counter() - start
    usable_candidates = [c for c in candidates if ensemble_error(entries[c.smiles]) is None]
    usable = [entries[c.smiles] for c in usable_candidates]
    failed = [(c.name, ensemble_error(entries[c.smiles])) for c in candidates if c not in usable_candidates]

    recipe = recipe_for(methods)
    # A candidate that needs the C-Cl correction but has no second derivatives is said, not hidden.
    uncorrected = missing_derivatives_caution(
        [(c.name, e) for c, members in zip(usable_candidates, usable, strict=True) for e in members],
        recipe.grid["c_ccl"][0],
    )
    if uncorrected:
        print(f"caution: {uncorrected}", flush=True)
    print(
        f"{len(queries)} queries, {len(usable)} candidates ({n_decoys} decoys); fitting "
        f"{recipe.n_fitted_parameters()} parameters over {len(list(recipe.points()))} grid points",
        flush=True,
    )
    start = time.perf_counter()
    tables = tables_for_recipe(queries, usable, recipe)
    feature_seconds = time.perf_counter() - start
    groups = [q.group for q in queries]
    cv = leave_one_compound_out(tables, groups)
    all_fit = fit(tables, np.ones(len(queries), dtype=bool), groups)
    print(f"LOCO top-1 {cv.top(1):.0%}, top-3 {cv.top(3):.0%}", flush=True)

    provenance = {
        "produced_by": "benchmarks/identify.py --fit",
        "date": datetime.date.today().isoformat(),
        "git_commit": specml_commit(),
        "method": method_name,
        "method_settings": {m.name: m.settings for m in methods},
        "training_data": "../shared/data/nist-ir (all files of index.csv)",
        "candidates": f"index.csv compounds + {DECOYS.relative_to(ROOT)}",
        "n_candidates": len(usable),
        "recipe": recipe.describe(),
        "l2_penalty": L2_PENALTY,
        "training_loss": all_fit.provenance["training_loss"],
        "selection": "grid point by leave-one-compound-out likelihood (nested inside every benchmark fold)",
        "cross_validated_nll": all_fit.provenance["cross_validated_nll"],
        "loco_top1": cv.top(1),
        "loco_top3": cv.top(3),
    }
    params = ScoringParameters.from_json({**all_fit.to_json(), "provenance": provenance})
    if args.fit:
        table = json.loads(DEFAULT_PARAMETERS_PATH.read_text()) if DEFAULT_PARAMETERS_PATH.is_file() else {}
        table[method_name] = params.to_json()
        DEFAULT_PARAMETERS_PATH.write_text(json.dumps(table, indent=2) + "\n")
        print(f"wrote {DEFAULT_PARAMETERS_PATH.relative_to(ROOT)}")

    # Warm timing: the full public path (read file, library lookups, scoring) per query.
    start = time.perf_counter()
    for query in queries[:5]:
        identify(
            query.spectrum,
            [(c.name, c.smiles) for c in candidates],
            reference=args.reference,
            conformers=args.conformers,
            library=library,
            parameters=params,
        )
    warm = (time.perf_counter() - start) / 5
    library.close()
    # Cold timing: one query against an empty user library: every candidate computed, or for a
    # method that ships with specml, read from the shipped files (a fresh installation).
    import tempfile

    executor = make_executor(args.scheduler, show_progress=False)
    with tempfile.TemporaryDirectory() as tmp, SpectralLibrary(Path(tmp) / "cold.sqlite") as empty:
        start = time.perf_counter()
        try:
            identify(
                queries[0].spectrum,
                [(c.name, c.smiles) for c in candidates],
                reference=args.reference,
                conformers=args.conformers,
                library=empty,
                parameters=params,
                executor=executor,
            )
        finally:
            executor.close()
        cold = time.perf_counter() - start

    names = {c.smiles: c.name for c in candidates}
    diagnostics = limit_diagnostics(table_for(tables, all_fit), [q.name for q in queries])
    per_query = [
        {
            "file": q.name,
            "compound": names[q.smiles],
            "rank": int(r),
            "top1": names[usable_candidates[t].smiles],
            "confidence_top1": round(float(p), 3),
        }
        for q, r, t, p in zip(queries, cv.rank, cv.top_candidate, cv.confidence, strict=True)
    ]
    correct = cv.rank == 1
    results = {
        "top1": cv.top(1),
        "top3": cv.top(3),
        "n_queries": len(queries),
        "n_candidates": len(usable),
        "n_decoys": n_decoys,
        "failed_candidates": failed,
        "cautions": [uncorrected] if uncorrected else [],
        "seconds_per_query_warm": warm,
        "seconds_per_query_cold": cold,
        "seconds_per_candidate_prediction": float(
            np.mean([m.seconds for ms in usable for m in ms if m.seconds])
        ),
        "seconds_library_fill_this_run": fill_seconds,
        "seconds_feature_grid": feature_seconds,
        "mean_confidence_correct": float(cv.confidence[correct].mean()) if correct.any() else None,
        "mean_confidence_wrong": float(cv.confidence[~correct].mean()) if (~correct).any() else None,
        "confusions": [r for r in per_query if r["rank"] != 1],
        "per_query": per_query,
        "n_fitted_parameters": recipe.n_fitted_parameters(),
        "recipe": recipe.describe(),
        "fitted_on_all": {k: params.to_json()[k] for k in GRID_KEYS + ("features", "weights")},
        "folds": cv.fold_parameters,
        "diagnostics": diagnostics,
        "cpu_note": "2 shared cores, contended by other jobs",
    }
    stem = (
        "identify" if args.reference == DEFAULT_REFERENCE else f"identify_{args.reference.replace('+', '_')}"
    ) + ("_conformers" if args.conformers else "")
    out = args.out_stem if args.out_stem is not None else RESULTS / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    results["reference"], results["method"] = args.reference, method_name
    results["conformers"] = args.conformers
    if preview is not None:  # --available-only: say what the numbers leave out
        results["preview"] = preview
    out.with_name(f"{out.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    confusion_figure(queries, usable_candidates, cv, out.with_name(f"{out.name}_confusion.png"), method_name)
    print(
        json.dumps(
            {
                k: results[k]
                for k in (
                    "top1",
                    "top3",
                    "n_queries",
                    "n_candidates",
                    "seconds_per_query_warm",
                    "seconds_per_query_cold",
                )
            }
        )
    )


if __name__ == "__main__":
    main()
