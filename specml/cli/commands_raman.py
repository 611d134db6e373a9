"""``specml raman``: harmonic Raman spectra (activities, depolarisation ratios, cross sections)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

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
from specml.cli.commands_core import (
    REFERENCE_OPTION_HELP,
    SpectrumPlan,
    _harmonic_with_progress,
    checked_line_options,
    load_inputs,
    summary_with_files,
    write_spectrum,
)

if TYPE_CHECKING:  # not at run time: ``specml --help`` stays light
    from specml.spectra.spectrum import Spectrum

RAMAN_JSON_HELP = (
    "Print a JSON list with one object per molecule instead of the tables: the content of its "
    "<stem>.json file (molecule, smiles, reference, frequencies_cm1, activities_a4_amu, "
    "depolarization_ratios, cross_sections_cm2_sr with --laser-nm, vs_experiment with --compare, ...) "
    "plus files: {csv, png, json}."
)

#: Upper bound of --laser-nm: beyond the near infrared no Raman laser is used, and a typo
#: (a wavenumber given in nm, say) should not pass silently.
MAX_LASER_NM = 20000.0


@app.command(
    "raman",
    short_help="Harmonic Raman spectrum from polarizability derivatives as CSV, PNG and JSON "
    "(xTB qualitative; DFT with diffuse functions for numbers).",
)
def raman(
    molecule: str = typer.Argument(..., help="SMILES, a CSV of SMILES, or a structure file (xyz/extxyz/db)."),
    reference: str = typer.Option("xtb", "--reference", "-r", help=REFERENCE_OPTION_HELP),
    out: Path = typer.Option(Path("specml-output"), "--out", "-o", help="Output directory."),
    fwhm: float = typer.Option(10.0, help="Line width (FWHM, cm-1, > 0)."),
    shape: str = typer.Option("lorentzian", help="lorentzian | gaussian"),
    wn_range: tuple[float, float] = typer.Option(
        (100.0, 4000.0), "--range", help="Raman shift range LO HI in cm-1 (0 <= LO < HI)."
    ),
    laser_nm: float | None = typer.Option(
        None,
        "--laser-nm",
        help="Laser wavelength (nm): the spectrum shows differential cross sections "
        "(1e-30 cm^2/sr) at --temperature instead of activities (Å^4/amu).",
    ),
    temperature: float = typer.Option(
        298.15, "--temperature", "-T", help="Temperature of the Bose factor of the cross sections (K)."
    ),
    compare: Path | None = typer.Option(
        None,
        "--compare",
        help="Experimental Raman spectrum to overlay and score (JCAMP-DX with a Raman ##DATA TYPE, or "
        "CSV of Raman shift in cm-1 and intensity).",
    ),
    json_out: bool = typer.Option(False, "--json", help=RAMAN_JSON_HELP),
) -> None:
    """Harmonic Raman spectrum (optimised geometry; polarizability derivatives along the normal
    modes by finite differences) as CSV, PNG and JSON. xTB polarizabilities are qualitative; use
    a DFT reference with diffuse functions (pyscf:b3lyp/aug-cc-pvdz) for numbers."""
    with checked_options():
        machine = output_format(json_out)
        plan = _plan_raman(molecule, reference, out, fwhm, shape, wn_range, laser_nm, temperature, compare)
    summaries = [_raman_of(mol, plan) for mol in plan.molecules]
    if machine:
        emit_json(summaries)


@dataclass(frozen=True)
class _RamanPlan(SpectrumPlan):
    """The checked settings of one ``specml raman`` call."""

    laser_nm: float | None


def _plan_raman(
    molecule, reference, out, fwhm, shape, wn_range, laser_nm, temperature, compare
) -> _RamanPlan:
    """Every option checked and the molecules loaded, before any calculation (InputError: exit 2)."""
    method, lo, hi, fwhm, shape = checked_line_options(reference, fwhm, shape, wn_range, temperature)
    if laser_nm is not None:
        laser_nm = checks.positive("--laser-nm", laser_nm, "nm", upper=MAX_LASER_NM)
    experiment, molecules = load_inputs(molecule, method, out, compare, load_raman_experiment)
    return _RamanPlan(method, molecules, out, fwhm, shape, lo, hi, temperature, compare, experiment, laser_nm)


def load_raman_experiment(path: Path) -> Spectrum:
    """An experimental Raman spectrum to compare with (background removed), its cautions shown."""
    from specml.experiment.preprocess import load_raman

    experiment = load_raman(checks.readable_file(path, "--compare"))
    show_cautions(experiment)
    return experiment.with_metadata(label=f"experiment ({path.name})")


def _raman_of(mol, plan: _RamanPlan) -> dict:
    """Harmonic Raman of one molecule, its table printed and its files written; returns its summary."""
    from specml.spectra.raman import raman_from_harmonic
    from specml.workflow.state import safe_name

    method = plan.method
    harmonic = _harmonic_with_progress(mol, method)
    doing = f"{mol.name}: polarizability derivatives along {len(harmonic.frequencies_cm1)} modes"
    with console.status(escape(doing)):
        result = raman_from_harmonic(harmonic, method)
    cross_sections = (
        result.cross_sections(plan.laser_nm, plan.temperature) if plan.laser_nm is not None else None
    )
    _print_raman_modes(mol.name, method, result, cross_sections)
    summary = {
        "molecule": mol.name,
        "smiles": mol.smiles,
        "reference": method.describe(),
        "frequencies_cm1": result.frequencies_cm1.tolist(),
        "intensities_km_mol": harmonic.intensities_km_mol.tolist(),
        "activities_a4_amu": result.activities.tolist(),
        "depolarization_ratios": result.depolarization_ratios.tolist(),
        "polarizability_a3": result.polarizability.tolist(),
        "laser_nm": plan.laser_nm,
        "temperature_k": plan.temperature if plan.laser_nm is not None else None,
        "cross_sections_cm2_sr": None if cross_sections is None else cross_sections.tolist(),
        "line_shape": plan.shape,
        "fwhm_cm1": plan.fwhm,
    }
    stem = plan.out / f"{safe_name(mol.name)}_raman_{method.name}"
    spectrum = result.spectrum(
        fwhm=plan.fwhm,
        shape=plan.shape,
        lo=plan.lo,
        hi=plan.hi,
        laser_nm=plan.laser_nm,
        temperature_k=plan.temperature,
    ).with_metadata(label=f"{mol.name} harmonic Raman ({method.name})")
    comparison = write_spectrum(spectrum, stem, plan, f"{mol.name}: harmonic Raman ({method.name})")
    if comparison is not None:
        summary["vs_experiment"] = comparison
    return summary_with_files(stem, summary)


def _print_raman_modes(name: str, method, result, cross_sections) -> None:
    table = titled_table(f"{name}: harmonic Raman ({method.describe()})")
    for column in ("mode", "wavenumber / cm-1", "activity / Å^4 amu-1", "depolarisation"):
        table.add_column(column, justify="right")
    if cross_sections is not None:
        table.add_column("cross section / 1e-30 cm^2 sr-1", justify="right")
    for i, (nu, activity, rho) in enumerate(
        zip(result.frequencies_cm1, result.activities, result.depolarization_ratios, strict=True)
    ):
        row = [
            str(i + 1),
            f"{nu:.1f}",
            f"{activity:.2f}",
            "-" if rho != rho else f"{rho:.3f}",
        ]  # NaN: inactive
        if cross_sections is not None:
            row.append(f"{cross_sections[i] * 1e30:.3g}")
        table.add_row(*row)
    console.print(table)
