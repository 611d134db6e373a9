"""Publication-style plots of IR spectra (PNG files, non-interactive Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from specml.errors import InputError  # noqa: E402
from specml.spectra.spectrum import Spectrum  # noqa: E402

if TYPE_CHECKING:
    from specml.comparison.compare import ComparisonResult

WAVENUMBER_LABEL = "Wavenumber (cm$^{-1}$)"
RAMAN_SHIFT_LABEL = "Raman shift (cm$^{-1}$)"
#: File types a plot can be saved as (matplotlib picks the format from the suffix).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _literal(text: str) -> str:
    """Escape ``$`` so file-derived text is not parsed as mathtext (and cannot crash it)."""
    return str(text).replace("$", r"\$")


def draw_curves(
    ax,
    spectra: list[Spectrum],
    labels: list[str] | None = None,
    normalize: bool = True,
    band_label: str | None = None,
) -> None:
    """Draw ``spectra`` as lines with their ±std bands where present (``band_label`` names the
    bands in the legend); any axis: IR, XANES."""
    labels = list(labels) if labels is not None else [s.label for s in spectra]
    for spectrum, label in zip(spectra, labels, strict=True):
        shown = spectrum.normalized() if normalize else spectrum
        (line,) = ax.plot(shown.wavenumber, shown.intensity, lw=1.0, label=_literal(label))
        if shown.std is not None:
            ax.fill_between(
                shown.wavenumber,
                shown.intensity - shown.std,
                shown.intensity + shown.std,
                color=line.get_color(),
                alpha=0.25,
                lw=0,
                label=band_label,
            )


def draw_spectra(
    ax, spectra: list[Spectrum], labels: list[str] | None = None, normalize: bool = True
) -> None:
    """Draw ``spectra`` (±std bands where present) on a matplotlib ``ax``, for multi-panel figures."""
    draw_curves(ax, spectra, labels, normalize)
    ax.set_ylabel("Normalised intensity" if normalize else "Intensity")
    if all(s.metadata.get("technique") == "raman" for s in spectra):
        ax.set_xlabel(RAMAN_SHIFT_LABEL)  # Raman spectra are read from low to high shift
    else:
        ax.set_xlabel(WAVENUMBER_LABEL)
        ax.invert_xaxis()  # chemists read IR spectra from high to low wavenumber
    ax.legend(loc="best", fontsize="small")


def plot_spectra(
    spectra: list[Spectrum],
    path: str | Path,
    title: str | None = None,
    normalize: bool = True,
    labels: list[str] | None = None,
) -> Path:
    """Overlay ``spectra`` (with ±std bands where present) and save a PNG at ``path``."""
    if not spectra:
        raise InputError("plot_spectra needs at least one spectrum")
    labels = list(labels) if labels is not None else [s.label for s in spectra]
    if len(labels) != len(spectra):
        raise InputError(f"{len(labels)} labels given for {len(spectra)} spectra")
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise InputError(f"{path}: a plot is saved as {', '.join(PLOT_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        draw_spectra(ax, spectra, labels, normalize)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=150)
    finally:
        plt.close(fig)
    return path


def plot_comparison(result: ComparisonResult, path: str | Path, title: str | None = None) -> Path:
    """Overlay the two preprocessed spectra of a comparison, metrics in the title."""
    metrics = (
        f"PCC {result.pcc:.3f}   WD {result.wd_cm1:.1f} cm$^{{-1}}$   "
        f"SIS {result.sis:.3f}   cosine {result.cosine:.3f}"
    )
    heading = f"{_literal(title)}\n{metrics}" if title else metrics
    return plot_spectra([result.a, result.b], path, title=heading, normalize=True)


__all__ = ["PLOT_SUFFIXES", "plot_comparison", "plot_spectra", "WAVENUMBER_LABEL"]
