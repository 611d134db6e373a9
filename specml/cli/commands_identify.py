"""``specml identify`` and ``specml library build``: spectrum-to-structure from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from specml import checks
from specml.cli.app import (
    app,
    checked_options,
    console,
    emit_csv,
    emit_json,
    output_format,
    print_cautions,
    titled_table,
)
from specml.cli.commands_core import MODELS_OPTION_HELP, models_option
from specml.identification.library import DEFAULT_REFERENCE

REFERENCE_HELP = (
    "Reference method(s) for harmonic spectra: xtb (GFN2), gfn1, pyscf:..., or several joined by + "
    "(scored by the mean of their features)."
)

library_app = typer.Typer(help="The spectral library of predicted candidate spectra.", no_args_is_help=True)
app.add_typer(library_app, name="library")

GROUP_HELP = (
    "-G: candidate has group G but the spectrum shows no band; ?G: band present, group absent; "
    "bands found: share of the candidate's band intensity with query absorption within {tol:.0%}"
)

#: One ranked candidate: (table column, JSON/CSV field, table format). The table, --json and --csv
#: all come from :func:`ranking_rows`, so they always agree.
RANKING_COLUMNS = (
    ("#", "rank", "{}"),
    ("name", "name", "{}"),
    ("SMILES", "smiles", "{}"),
    ("score", "score", "{:.2f}"),
    ("confidence", "confidence", "{:.1%}"),
    ("PCC", "pcc", "{:.3f}"),
    ("WD / cm-1", "wd_cm1", "{:.0f}"),
    ("SIS", "sis", "{:.3f}"),
    ("bands found", "bands_found", "{:.0%}"),
    ("groups", "groups", "{}"),
)
RANKING_FIELDS = [field for _, field, _ in RANKING_COLUMNS]
IDENTIFY_JSON_HELP = (
    "Print the result as JSON instead of the tables: {query, method, ranking: [{"
    + ", ".join(RANKING_FIELDS)
    + ", missing_groups, unexplained_groups}], supported_groups, "
    "cautions, warnings: [{name, smiles, reason}], library: {path, cached, computed}}; "
    "confidence and bands_found are fractions (docs/cli_output.md)."
)
IDENTIFY_CSV_HELP = "Print the ranking as CSV instead of the tables: " + ",".join(RANKING_FIELDS) + "."

CONFORMERS_HELP = (
    "Harmonic spectra Boltzmann-averaged over each candidate's conformers at 298.15 K (a gas-phase "
    "mixture); a flexible candidate missing from the library costs one calculation per conformer."
)


@app.command()
def identify(
    spectrum: Path = typer.Argument(..., help="Experimental IR spectrum (JCAMP-DX or CSV)."),
    candidates: Path = typer.Option(..., "--candidates", "-c", help="CSV with name,smiles per candidate."),
    reference: str = typer.Option(DEFAULT_REFERENCE, "--reference", "-r", help=REFERENCE_HELP),
    models: Path | None = typer.Option(
        None, "--models", help=f"{MODELS_OPTION_HELP}: ML-MD spectra instead."
    ),
    preset: str = typer.Option(
        "default", "--preset", help="Workflow preset of the ML-MD settings (with --models)."
    ),
    library: Path | None = typer.Option(
        None,
        "--library",
        help="Spectral library (default $SPECML_LIBRARY or ~/.cache/specml/library.sqlite).",
    ),
    top: int | None = typer.Option(
        None,
        "--top",
        min=1,
        help="Rows of the ranking to show [default: 3 in the table, all with --json or --csv].",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Overlay plot of the query and the top 3 (PNG, PDF or SVG)."
    ),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler for missing predictions."),
    conformers: bool = typer.Option(
        False,
        "--conformers",
        help=CONFORMERS_HELP,
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Recompute candidates that failed before."
    ),
    json_out: bool = typer.Option(False, "--json", help=IDENTIFY_JSON_HELP),
    csv_out: bool = typer.Option(False, "--csv", help=IDENTIFY_CSV_HELP),
) -> None:
    """Rank candidate molecules by how well their predicted IR spectra match SPECTRUM."""
    from specml.executor import make_executor
    from specml.identification import SpectralLibrary, plot_identification
    from specml.identification import identify as run_identify

    with checked_options():
        machine = output_format(json_out, csv_out)
        _check_library_options(reference, models, preset, library, scheduler, conformers)
        checks.readable_file(spectrum, "query spectrum")
        checks.readable_file(candidates, "--candidates")
        if out is not None:
            from specml.plotting import PLOT_SUFFIXES

            checks.output_file(out, "--out", PLOT_SUFFIXES)
    executor = make_executor(scheduler)
    try:
        with SpectralLibrary(library) as store:
            result = run_identify(
                spectrum,
                candidates,
                reference=reference,
                models_dir=models,
                library=store,
                executor=executor,
                retry_failed=retry_failed,
                ml_preset=preset,
                conformers=conformers,
            )
    finally:
        executor.close()
    print_cautions(result.cautions)
    rows = ranking_rows(result, top or (3 if machine is None else len(result.ranking)))
    if machine == "json":
        emit_json(identification_json(result, rows, spectrum, store.path))
    elif machine == "csv":
        emit_csv(RANKING_FIELDS, [[row[field] for field in RANKING_FIELDS] for row in rows])
    else:
        _print_identification(result, rows, store.path)
    if out is not None:
        plot_identification(result, out, top=3)
        console.print(f"overlay written to {escape(str(out))}", highlight=False)


def _check_library_options(
    reference: str,
    models: Path | None,
    preset: str,
    library: Path | None,
    scheduler: str | None,
    conformers: bool = False,
) -> list:
    """The options ``identify`` and ``library build`` share (reference names, model folder, preset, paths);
    returns the methods they name."""
    from specml.executor import check_scheduler
    from specml.identification import methods_for
    from specml.workflow.config import get_workflow_config

    get_workflow_config(preset)  # an unknown preset is an error even where it is not used (no --models)
    if models is not None:
        models = models_option(models)
    methods = methods_for(reference, models, preset, conformers)  # raises for unknown references
    check_scheduler(scheduler)
    if library is not None:
        checks.output_file(library, "--library")
    return methods


def ranking_rows(result, top: int) -> list[dict]:
    """The ``top`` ranked candidates as plain values (fractions, cm-1), in :data:`RANKING_COLUMNS` order."""
    return [
        {
            "rank": i,
            "name": r.name,
            "smiles": r.smiles,
            "score": r.score,
            "confidence": r.confidence,
            "pcc": r.metrics["pearson"],
            "wd_cm1": r.metrics["wasserstein_cm1"],
            "sis": r.metrics["sis"],
            "bands_found": r.metrics["bands_found_narrow"],
            "groups": r.groups.summary(),
            "missing_groups": list(r.groups.missing),
            "unexplained_groups": list(r.groups.unexplained),
        }
        for i, r in enumerate(result.top(top), start=1)
    ]


def identification_json(result, rows: list[dict], query: Path, library_path: Path) -> dict:
    """What ``identify --json`` prints (schema in docs/cli_output.md)."""
    return {
        "query": str(query),
        "method": result.method,
        "ranking": rows,
        "supported_groups": result.supported_groups,
        "cautions": result.cautions,
        "warnings": warnings_json(result.warnings),
        "library": {
            "path": str(library_path),
            "cached": result.library_hits,
            "computed": result.library_misses,
        },
    }


def warnings_json(warnings) -> list[dict]:
    return [{"name": w.name, "smiles": w.smiles, "reason": w.reason} for w in warnings]


def _print_identification(result, rows: list[dict], library_path: Path) -> None:
    console.print(ranking_table(result.method, rows))
    groups = ", ".join(g for g, ok in result.supported_groups.items() if ok) or "none"
    console.print(
        f"bands support: {groups}   [dim]({GROUP_HELP.format(tol=result.parameters.tolerances[0])})[/]"
    )
    console.print(
        f"library: {result.library_hits} cached, {result.library_misses} computed "
        f"({escape(str(library_path))})",
        highlight=False,
    )
    if result.warnings:
        console.print(warnings_table(result.warnings))


def ranking_table(method: str, rows: list[dict]) -> Table:
    table = titled_table(f"Candidates for the query ({method})")
    for column, _, _ in RANKING_COLUMNS:
        table.add_column(column, justify="left" if column in ("name", "SMILES", "groups") else "right")
    for row in rows:
        table.add_row(*(escape(shown.format(row[field])) for _, field, shown in RANKING_COLUMNS))
    return table


def warnings_table(warnings) -> Table:
    table = titled_table("Skipped candidates", title_style="yellow")
    for column in ("name", "SMILES", "reason"):
        table.add_column(column)
    for w in warnings:
        table.add_row(escape(w.name), escape(w.smiles), escape(w.reason))
    return table


LIBRARY_JSON_HELP = (
    "Print a JSON object instead of the messages: {library, methods: [{method, ok, failed, "
    "already_present, computed}], skipped: [{name, smiles, reason}]} (docs/cli_output.md)."
)


@library_app.command("build")
def build(
    candidates: Path = typer.Argument(..., help="CSV with name,smiles per molecule."),
    reference: str = typer.Option(DEFAULT_REFERENCE, "--reference", "-r", help=REFERENCE_HELP),
    models: Path | None = typer.Option(
        None, "--models", help=f"{MODELS_OPTION_HELP}: ML-MD spectra instead."
    ),
    preset: str = typer.Option(
        "default", "--preset", help="Workflow preset of the ML-MD settings (with --models)."
    ),
    library: Path | None = typer.Option(None, "--library", help="Spectral library path."),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Dask scheduler address (tcp://host:port), or local:N for N local worker processes.",
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute entries that failed before."),
    conformers: bool = typer.Option(
        False,
        "--conformers",
        help=CONFORMERS_HELP,
    ),
    json_out: bool = typer.Option(False, "--json", help=LIBRARY_JSON_HELP),
) -> None:
    """Predict and store spectra of all CANDIDATES ahead of time (parallel through the executor)."""
    from specml.executor import make_executor
    from specml.identification import SpectralLibrary, fill_library, resolve_candidates
    from specml.identification.library import Warning_
    from specml.molecules import read_molecule_table

    with checked_options():
        machine = output_format(json_out)
        methods = _check_library_options(reference, models, preset, library, scheduler, conformers)
        usable, warnings = resolve_candidates(read_molecule_table(checks.readable_file(candidates)))
    executor = make_executor(scheduler)
    skipped, counts = list(warnings), []
    try:
        with SpectralLibrary(library) as store:
            for method in methods:
                hits, misses = store.hits, store.misses
                entries = fill_library(store, usable, method, executor, retry_failed)
                failed = [
                    (c.name, c.smiles, entries[c.smiles].error) for c in usable if not entries[c.smiles].ok
                ]
                counts.append(
                    {
                        "method": method.name,
                        "ok": len(usable) - len(failed),
                        "failed": len(failed),
                        "already_present": store.hits - hits,
                        "computed": store.misses - misses,
                    }
                )
                console.print(
                    f"{escape(str(store.path))} ({method.name}): {counts[-1]['ok']} ok, {len(failed)} "
                    f"failed, {counts[-1]['already_present']} already present, "
                    f"{counts[-1]['computed']} computed now",
                    highlight=False,
                )
                skipped += [Warning_(n, s, f"{method.name}: {e or 'failed'}") for n, s, e in failed]
    finally:
        executor.close()
    if machine:
        emit_json({"library": str(store.path), "methods": counts, "skipped": warnings_json(skipped)})
    elif skipped:
        console.print(warnings_table(skipped))
