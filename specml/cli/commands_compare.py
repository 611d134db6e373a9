"""``specml compare``: similarity of two spectra, as a table (or JSON) and an optional overlay plot."""

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
    emit_json,
    output_format,
    show_cautions,
    titled_table,
)
from specml.experiment.preprocess import DEFAULT_RANGE_CM1

COMPARE_JSON_HELP = (
    "Print the result as JSON instead of the table: {a, b, range_cm1: [lo, hi], step_cm1, pcc, "
    "wd_cm1, sis, cosine, cautions: [...], overlay: path or null} (docs/cli_output.md)."
)


def load_for_comparison(path: Path):
    """Experimental JCAMP -> baseline-corrected absorbance; CSV spectra as stored."""
    from specml.experiment.preprocess import load_absorbance
    from specml.experiment.readers import is_jcamp, read_spectrum

    checks.readable_file(path)
    return load_absorbance(path) if is_jcamp(path) else read_spectrum(path)


@app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="First spectrum (JCAMP-DX or CSV)."),
    b: Path = typer.Argument(..., help="Second spectrum (JCAMP-DX or CSV)."),
    out: Path | None = typer.Option(
        None, "--out", help="Overlay plot of the two spectra (PNG, PDF or SVG); none unless asked for."
    ),
    wn_range: tuple[float, float] = typer.Option(
        DEFAULT_RANGE_CM1, "--range", help="Wavenumber range LO HI in cm-1 (0 <= LO < HI)."
    ),
    step: float = typer.Option(1.0, "--step", help="Common grid step in cm-1 (> 0)."),
    json_out: bool = typer.Option(False, "--json", help=COMPARE_JSON_HELP),
) -> None:
    """Compare two IR spectra: PCC, Wasserstein distance (cm-1), SIS and cosine."""
    from specml.comparison.compare import check_comparison_settings, compare_spectra
    from specml.plotting import PLOT_SUFFIXES

    with checked_options():
        machine = output_format(json_out)
        lo, hi, step = check_comparison_settings(*wn_range, step)
        if out is not None:
            checks.output_file(out, "--out", PLOT_SUFFIXES)
        first, second = load_for_comparison(a), load_for_comparison(b)
    cautions = show_cautions(first, second)
    result = compare_spectra(first, second, lo, hi, step)
    if machine:
        emit_json(
            {
                "a": str(a),
                "b": str(b),
                "range_cm1": [lo, hi],
                "step_cm1": step,
                **result.as_dict(),
                "cautions": cautions,
                "overlay": str(out) if out is not None else None,
            }
        )
    else:
        console.print(_metrics_table(result, a, b))
    if out is not None:
        from specml.plotting import plot_comparison

        plot_comparison(result, out, title=f"{result.a.label} vs {result.b.label}")
        console.print(f"overlay written to {escape(str(out))}", highlight=False)


def _metrics_table(result, a: Path, b: Path) -> Table:
    axis = result.a.wavenumber
    table = titled_table(f"{a.name} vs {b.name} ({axis[0]:.0f}-{axis[-1]:.0f} cm-1)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("PCC", f"{result.pcc:.3f}")
    table.add_row("WD (cm-1)", f"{result.wd_cm1:.2f}")
    table.add_row("SIS", f"{result.sis:.3f}")
    table.add_row("cosine", f"{result.cosine:.3f}")
    return table
