"""XANES spectra and structures in and out: structure files through ASE, spectra as CSV
(``energy_eV,mu[,std]`` with a JSON metadata comment) or XDI, and plots with the ±std band."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from specml.errors import InputError, SpectrumFormatError
from specml.spectra.spectrum import Spectrum

#: Structure formats read through ASE (by suffix; anything else goes to ASE's own guess).
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".xyz", ".extxyz", ".traj")


def read_structure(path: str | Path):
    """The first structure in ``path`` (CIF, POSCAR, extxyz, ...), read with ASE."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        atoms = read(path, index=0)
    except Exception as exc:  # ASE raises many kinds for a file it cannot parse
        raise InputError(f"{path}: not a structure ASE can read ({type(exc).__name__}: {exc})") from None
    if isinstance(atoms, list):
        atoms = atoms[0]
    if len(atoms) == 0:
        raise InputError(f"{path}: the structure has no atoms")
    return atoms


def write_csv(spectrum: Spectrum, path: str | Path) -> Path:
    """``energy_eV,mu[,std]`` with the metadata as a JSON comment line (readable by :func:`read_spectrum`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        fh.write("# " + json.dumps(spectrum.metadata, default=str) + "\n")
        writer = csv.writer(fh)
        writer.writerow(["energy_eV", "mu"] + (["std"] if spectrum.std is not None else []))
        columns = [spectrum.wavenumber, spectrum.intensity] + (
            [spectrum.std] if spectrum.std is not None else []
        )
        for row in zip(*columns, strict=True):
            writer.writerow([f"{v:.8g}" for v in row])
    return path


def read_spectrum(path: str | Path) -> Spectrum:
    """A XANES spectrum from an XDI file (calibrated, normalised) or a two/three-column CSV
    (energy in eV, normalised μ[, std])."""
    from specml.xanes.xdi import normalized_xanes

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open(errors="replace") as fh:
        first = fh.readline()
    if first.lstrip("# ").upper().startswith("XDI/"):
        return normalized_xanes(path)
    try:
        return Spectrum.from_csv(path)
    except (SpectrumFormatError, UnicodeDecodeError, ValueError) as exc:
        raise SpectrumFormatError(f"{path}: not an XDI file or a CSV of energy (eV) and μ ({exc})") from None


def plot_xanes(spectra: list[Spectrum], path: str | Path, title: str | None = None) -> Path:
    """Overlay XANES ``spectra`` (each with its ±std band where present) and save the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specml.plotting import _literal, draw_curves

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    try:
        draw_curves(ax, spectra, normalize=False, band_label="±1 std (ensemble)")
        _mark_positions(ax, spectra)
        relative = spectra[0].metadata.get("axis") != "energy_eV"
        ax.set_xlabel("Energy about the edge (eV)" if relative else "Energy (eV)")
        ax.set_ylabel("Normalised μ")
        ax.legend(fontsize="small")
        if title:
            ax.set_title(_literal(title))
        fig.tight_layout()
        fig.savefig(path, dpi=150)
    finally:
        plt.close(fig)
    return path


def _mark_positions(ax, spectra: list[Spectrum]) -> None:
    """The edge and first maximum of each predicted spectrum, with their ±std as horizontal bars."""
    labelled = False
    for spectrum in spectra:
        features = spectrum_features(spectrum)
        for key in ("edge_ev", "first_maximum_ev"):
            position, std = features[key], features[key.replace("_ev", "_std_ev")]
            if position is None or std is None:
                continue
            height = float(np.interp(position, spectrum.wavenumber, spectrum.intensity))
            ax.errorbar(
                position,
                height,
                xerr=std,
                fmt="o",
                color="black",
                markersize=3,
                capsize=3,
                linewidth=1,
                label=None if labelled else "edge, first maximum ±1 std",
            )
            labelled = True


def spectrum_features(spectrum: Spectrum) -> dict:
    """Edge (half-step), first maximum above it and steepest rise, in eV on the spectrum's axis
    (:func:`~specml.xanes.analysis.spectral_features`), and the std of the edge and first
    maximum where a model's prediction gives one (``edge_std_ev``, ``first_maximum_std_ev``,
    :meth:`~specml.xanes.models.XanesModel.positions`); None where a value is not known."""
    from specml.xanes.analysis import spectral_features

    features = spectral_features(spectrum.wavenumber, spectrum.intensity)
    features |= {f"{name}_std": std for name, std in spectrum.metadata.get("position_std_ev", {}).items()}

    def value(name: str) -> float | None:
        found = features.get(name, float("nan"))
        return None if np.isnan(found) else float(found)

    return {
        "edge_ev": value("edge"),
        "edge_std_ev": value("edge_std"),
        "first_maximum_ev": value("first_maximum"),
        "first_maximum_std_ev": value("first_maximum_std"),
        "steepest_rise_ev": value("steepest_rise"),
    }
