"""``specml identify`` and ``specml library build``: spectrum-to-structure from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from specml.cli.app import app, console
from specml.identification.library import DEFAULT_REFERENCE

REFERENCE_HELP = ("Reference method(s) for harmonic spectra: xtb (GFN2), gfn1, pyscf:..., or several joined by + "
                  "(scored by the mean of their features).")

library_app = typer.Typer(help="The spectral library of predicted candidate spectra.", no_args_is_help=True)
app.add_typer(library_app, name="library")

GROUP_HELP = ("-G: candidate has group G but the spectrum shows no band; ?G: band present, group absent; "
              "bands found: share of the candidate's band intensity with query absorption within {tol:.0%}")


@app.command()
def identify(
    spectrum: Path = typer.Argument(..., help="Experimental IR spectrum (JCAMP-DX or CSV)."),
    candidates: Path = typer.Option(..., "--candidates", "-c", help="CSV with name,smiles per candidate."),
    reference: str = typer.Option(DEFAULT_REFERENCE, "--reference", "-r", help=REFERENCE_HELP),
    models: Optional[Path] = typer.Option(None, "--models", help="Trained model directory: ML-MD spectra instead."),
    preset: str = typer.Option("default", "--preset", help="Workflow preset of the ML-MD settings (with --models)."),
    library: Optional[Path] = typer.Option(None, "--library", help="Spectral library (default $SPECML_LIBRARY or "
                                                                   "~/.cache/specml/library.sqlite)."),
    top: int = typer.Option(3, "--top", min=1, help="Rows of the ranking to print."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Overlay plot of the query and the top 3 (PNG)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler for missing predictions."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute candidates that failed before."),
) -> None:
    """Rank candidate molecules by how well their predicted IR spectra match SPECTRUM."""
    from specml.executor import make_executor
    from specml.identification import SpectralLibrary, identify as run_identify, plot_identification

    executor = make_executor(scheduler)
    try:
        with SpectralLibrary(library) as store:
            result = run_identify(spectrum, candidates, reference=reference, models_dir=models, library=store,
                                  executor=executor, retry_failed=retry_failed, ml_preset=preset)
    finally:
        executor.close()
    for caution in result.cautions:
        console.print(f"[yellow]caution:[/] {caution}")
    console.print(ranking_table(result, top))
    groups = ", ".join(g for g, ok in result.supported_groups.items() if ok) or "none"
    console.print(f"bands support: {groups}   [dim]({GROUP_HELP.format(tol=result.parameters.tolerances[0])})[/]")
    console.print(f"library: {result.library_hits} cached, {result.library_misses} computed ({store.path})")
    if result.warnings:
        console.print(warnings_table(result.warnings))
    if out is not None:
        plot_identification(result, out, top=3)
        console.print(f"overlay written to {out}")


def ranking_table(result, top: int) -> Table:
    table = Table(title=f"Candidates for the query ({result.method})")
    for column in ("#", "name", "SMILES", "score", "confidence", "PCC", "WD / cm-1", "SIS", "bands found",
                   "groups"):
        table.add_column(column, justify="right" if column not in ("name", "SMILES", "groups") else "left")
    for i, r in enumerate(result.top(top), start=1):
        table.add_row(str(i), r.name, r.smiles, f"{r.score:.2f}", f"{r.confidence:.1%}", f"{r.metrics['pearson']:.3f}",
                      f"{r.metrics['wasserstein_cm1']:.0f}", f"{r.metrics['sis']:.3f}",
                      f"{r.metrics['bands_found_narrow']:.0%}", r.groups.summary())
    return table


def warnings_table(warnings) -> Table:
    table = Table(title="Skipped candidates", title_style="yellow")
    for column in ("name", "SMILES", "reason"):
        table.add_column(column)
    for w in warnings:
        table.add_row(w.name, w.smiles, w.reason)
    return table


@library_app.command("build")
def build(
    candidates: Path = typer.Argument(..., help="CSV with name,smiles per molecule."),
    reference: str = typer.Option(DEFAULT_REFERENCE, "--reference", "-r", help=REFERENCE_HELP),
    models: Optional[Path] = typer.Option(None, "--models", help="Trained model directory: ML-MD spectra instead."),
    preset: str = typer.Option("default", "--preset", help="Workflow preset of the ML-MD settings (with --models)."),
    library: Optional[Path] = typer.Option(None, "--library", help="Spectral library path."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:port)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute entries that failed before."),
) -> None:
    """Predict and store spectra of all CANDIDATES ahead of time (parallel through the executor)."""
    from specml.executor import make_executor
    from specml.identification import SpectralLibrary, fill_library, methods_for, resolve_candidates
    from specml.identification.library import Warning_
    from specml.molecules import read_molecule_table

    usable, warnings = resolve_candidates(read_molecule_table(candidates))
    methods = methods_for(reference, models, preset)
    executor = make_executor(scheduler)
    skipped = list(warnings)
    try:
        with SpectralLibrary(library) as store:
            for method in methods:
                hits, misses = store.hits, store.misses
                entries = fill_library(store, usable, method, executor, retry_failed)
                failed = [(c.name, c.smiles, entries[c.smiles].error) for c in usable if not entries[c.smiles].ok]
                console.print(f"{store.path} ({method.name}): {len(usable) - len(failed)} ok, {len(failed)} failed, "
                              f"{store.hits - hits} already present, {store.misses - misses} computed now")
                skipped += [Warning_(n, s, f"{method.name}: {e or 'failed'}") for n, s, e in failed]
    finally:
        executor.close()
    if skipped:
        console.print(warnings_table(skipped))
