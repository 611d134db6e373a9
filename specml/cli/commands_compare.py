"""``specml compare``: similarity of two spectra, as a table and an overlay plot."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from specml.cli.app import app, console
from specml.comparison import compare_spectra
from specml.errors import InputError
from specml.experiment.preprocess import DEFAULT_RANGE_CM1, load_absorbance
from specml.experiment.readers import is_jcamp, read_spectrum
from specml.plotting import plot_comparison
from specml.spectra.spectrum import Spectrum


def load_for_comparison(path: Path) -> Spectrum:
    """Experimental JCAMP -> baseline-corrected absorbance; CSV spectra as stored."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return load_absorbance(path) if is_jcamp(path) else read_spectrum(path)


@app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="First spectrum (JCAMP-DX or CSV)."),
    b: Path = typer.Argument(..., help="Second spectrum (JCAMP-DX or CSV)."),
    out: Path = typer.Option(Path("overlay.png"), "--out", help="Overlay plot (PNG)."),
    wn_range: tuple[float, float] = typer.Option(
        DEFAULT_RANGE_CM1, "--range", help="Wavenumber range LO HI in cm-1."
    ),
    step: float = typer.Option(1.0, "--step", help="Common grid step in cm-1."),
) -> None:
    """Compare two IR spectra: PCC, Wasserstein distance (cm-1), SIS and cosine."""
    lo, hi = sorted(wn_range)
    result = compare_spectra(load_for_comparison(a), load_for_comparison(b), lo, hi, step)
    table = Table(title=f"{a.name} vs {b.name} ({result.a.wavenumber[0]:.0f}-{result.a.wavenumber[-1]:.0f} cm-1)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("PCC", f"{result.pcc:.3f}")
    table.add_row("WD (cm-1)", f"{result.wd_cm1:.2f}")
    table.add_row("SIS", f"{result.sis:.3f}")
    table.add_row("cosine", f"{result.cosine:.3f}")
    console.print(table)
    path = plot_comparison(result, out, title=f"{result.a.label} vs {result.b.label}")
    console.print(f"overlay written to {path}")
