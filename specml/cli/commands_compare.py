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


#: Default compared range of Raman spectra (Raman shift, cm-1): low-frequency skeletal modes are
#: strong in Raman, unlike in IR, and Raman spectrometers measure down to ~100 cm-1.
DEFAULT_RAMAN_RANGE_CM1 = (100.0, 4000.0)


def load_for_comparison(path: Path, raman: bool = False):
    """Experimental JCAMP -> baseline-corrected absorbance (IR) or background-free Raman
    intensity (``raman``); CSV spectra as stored, of the technique asked for."""
    from specml.experiment.preprocess import load_absorbance, load_raman
    from specml.experiment.readers import is_jcamp, read_spectrum

    checks.readable_file(path)
    if is_jcamp(path):
        return load_raman(path) if raman else load_absorbance(path)
    return read_spectrum(path, technique="raman" if raman else "infrared")


@app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="First spectrum (JCAMP-DX or CSV)."),
    b: Path = typer.Argument(..., help="Second spectrum (JCAMP-DX or CSV)."),
    out: Path | None = typer.Option(
        None, "--out", help="Overlay plot of the two spectra (PNG, PDF or SVG); none unless asked for."
    ),
    wn_range: tuple[float, float] | None = typer.Option(
        None,
        "--range",
        help="Wavenumber (Raman shift) range LO HI in cm-1 (0 <= LO < HI); default 500 4000 (IR), 100 4000 "
        "(--raman).",
    ),
    step: float = typer.Option(1.0, "--step", help="Common grid step in cm-1 (> 0)."),
    raman: bool = typer.Option(
        False,
        "--raman",
        help="Compare two Raman spectra (JCAMP-DX with a Raman ##DATA TYPE, or CSV on a Raman shift axis, "
        "e.g. from specml raman).",
    ),
    json_out: bool = typer.Option(False, "--json", help=COMPARE_JSON_HELP),
) -> None:
    """Compare two IR (or, with --raman, Raman) spectra: PCC, Wasserstein distance (cm-1), SIS and cosine."""
    from specml.comparison.compare import check_comparison_settings, compare_spectra
    from specml.plotting import PLOT_SUFFIXES

    with checked_options():
        machine = output_format(json_out)
        default_range = DEFAULT_RAMAN_RANGE_CM1 if raman else DEFAULT_RANGE_CM1
        lo, hi, step = check_comparison_settings(*(wn_range or default_range), step)
        if out is not None:
            checks.output_file(out, "--out", PLOT_SUFFIXES)
        first, second = load_for_comparison(a, raman), load_for_comparison(b, raman)
    cautions = show_cautions(first, second)
    result = compare_spectra(first, second, lo, hi, step)
    if machine:
        emit_json(
            {
                "a": str(a),
                "b": str(b),
                "technique": "raman" if raman else "infrared",
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
