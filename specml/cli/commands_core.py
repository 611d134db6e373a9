"""Physics-core commands: harmonic IR and reference ("AIMD") molecular dynamics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
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
from specml.errors import InputError

if TYPE_CHECKING:  # not at run time: ``specml --help`` stays light
    from specml.reference import ReferenceMethod
    from specml.spectra.spectrum import Spectrum

REFERENCE_OPTION_HELP = "xtb | gfn1-xtb | ipea1-xtb | pyscf[:FUNC/BASIS] | ase:module:Class"
HARMONIC_JSON_HELP = (
    "Print a JSON list with one object per molecule instead of the tables: the content of "
    "its <stem>.json file (molecule, smiles, reference, frequencies_cm1, intensities_km_mol or "
    "conformers, line_shape, fwhm_cm1, ...) plus files: {csv, png, json} (docs/cli_output.md)."
)


def load_experiment(path: Path):
    """Baseline-corrected absorbance of an experimental spectrum to compare with, its cautions shown."""
    from specml.experiment.preprocess import load_absorbance

    experiment = load_absorbance(checks.readable_file(path, "--compare"))
    show_cautions(experiment)
    return experiment


def _report_comparison(
    spectrum, experimental_path: Path, out_png: Path, lo: float, hi: float, experiment
) -> dict:
    """Compare with the experimental spectrum (``experiment``: already loaded from the path)."""
    from specml.comparison import compare_spectra
    from specml.plotting import plot_comparison

    result = compare_spectra(experiment, spectrum, lo, hi)
    plot_comparison(result, out_png, title=f"{spectrum.label} vs {experimental_path.name}")
    console.print(
        f"vs experiment [bold]{escape(experimental_path.name)}[/]: PCC {result.pcc:.3f}, "
        f"WD {result.wd_cm1:.1f} cm-1, SIS {result.sis:.3f}",
        highlight=False,
    )
    return result.as_dict()


#: Help of the ``--models`` options (``ir``, ``identify``, ``library build``).
MODELS_OPTION_HELP = "Trained model directory, or a shipped model set's name (`specml models`)"


def models_option(models: Path) -> Path:
    """The committee folder of ``--models``: a run or committee directory, or a shipped model set."""
    from specml.errors import ModelError
    from specml.workflow.prediction import resolve_models_dir

    try:
        return resolve_models_dir(models)
    except ModelError as exc:
        raise InputError(f"--models {exc}") from None


def molecules_for(molecule: str, method) -> list:
    """The molecules of a MOLECULE argument, each checked against the method's elements."""
    from specml.molecules import load_molecules

    molecules = load_molecules(molecule)
    for mol in molecules:
        method.check_elements(mol.atoms, mol.smiles or mol.name)
    return molecules


@app.command("harmonic")
def harmonic(
    molecule: str = typer.Argument(..., help="SMILES, a CSV of SMILES, or a structure file (xyz/extxyz/db)."),
    reference: str = typer.Option("xtb", "--reference", "-r", help=REFERENCE_OPTION_HELP),
    out: Path = typer.Option(Path("specml-output"), "--out", "-o", help="Output directory."),
    fwhm: float = typer.Option(
        10.0, help="Line width (FWHM, cm-1, > 0); with --gas-contour, the Gaussian resolution (>= 1 cm-1)."
    ),
    shape: str | None = typer.Option(
        None, help="lorentzian (default) | gaussian (default with --gas-contour)"
    ),
    compare: Path | None = typer.Option(
        None, "--compare", help="Experimental spectrum to overlay (JCAMP/CSV)."
    ),
    wn_range: tuple[float, float] = typer.Option(
        (500.0, 4000.0), "--range", help="Range LO HI in cm-1 (0 <= LO < HI)."
    ),
    conformers: bool = typer.Option(
        False,
        "--conformers",
        help="Boltzmann-average the spectra of the molecule's "
        "RDKit conformers (SMILES input), weighted by the reference's energies.",
    ),
    temperature: float = typer.Option(
        298.15,
        "--temperature",
        "-T",
        help="Temperature of the conformer populations and rotational contours (K, 0 < T <= 10000).",
    ),
    gas_contour: bool = typer.Option(
        False,
        "--gas-contour",
        help="Spread every band over its gas-phase rotational "
        "contour (P/Q/R branches of a classical rigid rotor at --temperature), "
        "for comparison with gas-phase measurements.",
    ),
    json_out: bool = typer.Option(False, "--json", help=HARMONIC_JSON_HELP),
) -> None:
    """Harmonic IR spectrum (optimised geometry; analytic Hessian where the reference has one, e.g. PySCF DFT, else finite differences) as CSV and PNG."""
    with checked_options():
        machine = output_format(json_out)
        plan = _plan_harmonic(
            molecule, reference, out, fwhm, shape, compare, wn_range, conformers, temperature, gas_contour
        )
    summaries = [_harmonic_of(mol, plan) for mol in plan.molecules]
    if machine:
        emit_json(summaries)


@dataclass(frozen=True)
class SpectrumPlan:
    """The checked settings shared by the harmonic spectrum commands (IR and Raman)."""

    method: ReferenceMethod
    molecules: list
    out: Path
    fwhm: float  # cm-1
    shape: str
    lo: float  # cm-1
    hi: float
    temperature: float  # K
    compare: Path | None
    experiment: Spectrum | None  # the loaded --compare spectrum


@dataclass(frozen=True)
class _HarmonicPlan(SpectrumPlan):
    """The checked settings of one ``specml harmonic`` call."""

    conformers: bool
    gas_contour: bool

    @property
    def rotational_temperature(self) -> float | None:
        return self.temperature if self.gas_contour else None


def checked_line_options(reference: str, fwhm, shape: str, wn_range, temperature: float):
    """The reference method, range (cm-1), line width and shape of a spectrum command, checked."""
    from specml.reference import make_reference
    from specml.spectra.broadening import check_line_settings

    method = make_reference(reference)
    lo, hi = checks.wavenumber_range("--range", *wn_range)
    fwhm, shape = check_line_settings(fwhm, shape)
    checks.temperature("--temperature", temperature)
    return method, lo, hi, fwhm, shape


def load_inputs(molecule: str, method, out: Path, compare: Path | None, load_compare=None):
    """The output folder checked, then the --compare spectrum and the molecules loaded: (experiment,
    molecules). Last among the checks because loading is the slowest of them."""
    checks.output_dir(out, "--out")
    experiment = (load_compare or load_experiment)(compare) if compare is not None else None
    return experiment, molecules_for(molecule, method)


def write_spectrum(spectrum, stem: Path, plan: SpectrumPlan, title: str) -> dict | None:
    """``spectrum`` as ``<stem>.csv`` and a ``<stem>.png`` plot: against the experiment (whose
    comparison is returned) with --compare, else alone."""
    from specml.plotting import plot_spectra

    spectrum.to_csv(stem.with_suffix(".csv"))
    if plan.compare is not None:
        return _report_comparison(
            spectrum, plan.compare, stem.with_suffix(".png"), plan.lo, plan.hi, plan.experiment
        )
    plot_spectra([spectrum], stem.with_suffix(".png"), title=title)
    return None


def _plan_harmonic(
    molecule, reference, out, fwhm, shape, compare, wn_range, conformers, temperature, gas_contour
) -> _HarmonicPlan:
    """Every option of ``specml harmonic`` checked, the molecules and the experiment loaded: before any calculation."""
    method, lo, hi, fwhm, shape = checked_line_options(
        reference, fwhm, shape or ("gaussian" if gas_contour else "lorentzian"), wn_range, temperature
    )
    if gas_contour:
        from specml.spectra.rotational_contour import check_contour_settings

        if shape != "gaussian":
            raise InputError(
                f"--gas-contour combines the rotational contour with a Gaussian resolution; "
                f"--shape {shape} is not supported with it"
            )
        check_contour_settings(fwhm, temperature)
    experiment, molecules = load_inputs(molecule, method, out, compare)
    for mol in molecules:
        if conformers and not mol.smiles:
            raise InputError(f"--conformers needs SMILES input; {mol.name} came from a structure file")
    return _HarmonicPlan(
        method, molecules, out, fwhm, shape, lo, hi, temperature, compare, experiment, conformers, gas_contour
    )


def _harmonic_of(mol, plan: _HarmonicPlan) -> dict:
    """Harmonic analysis of one molecule, its tables printed and its files written; returns its summary."""
    from specml.workflow.state import safe_name

    method = plan.method
    if plan.conformers:
        stem = plan.out / f"{safe_name(mol.name)}_harmonic_{method.name}_conformers"
        result, summary = _conformer_average(mol, method, plan.temperature, stem)
    else:
        result = _harmonic_with_progress(mol, method)
        _print_modes(mol.name, method, result)
        summary = {
            "frequencies_cm1": result.frequencies_cm1.tolist(),
            "intensities_km_mol": result.intensities_km_mol.tolist(),
        }
        stem = plan.out / f"{safe_name(mol.name)}_harmonic_{method.name}"
    summary = {
        "molecule": mol.name,
        "smiles": mol.smiles,
        "reference": method.describe(),
        **summary,
        "line_shape": plan.shape,
        "fwhm_cm1": plan.fwhm,
        "rotational_contour_k": plan.rotational_temperature,
    }
    details = (", conformers" if plan.conformers else "") + (
        f", gas {plan.temperature:g} K" if plan.gas_contour else ""
    )
    label = f"{mol.name} harmonic ({method.name}{details})"
    spectrum = result.spectrum(
        fwhm=plan.fwhm,
        shape=plan.shape,
        lo=plan.lo,
        hi=plan.hi,
        rotational_temperature_k=plan.rotational_temperature,
    ).with_metadata(label=label)
    comparison = write_spectrum(spectrum, stem, plan, f"{mol.name}: harmonic IR ({method.name})")
    if comparison is not None:
        summary["vs_experiment"] = comparison
    return summary_with_files(stem, summary)


def summary_with_files(stem: Path, summary: dict) -> dict:
    """Write ``summary`` to ``<stem>.json`` beside the ``.csv`` and ``.png`` already written; the
    summary plus ``files``, as ``--json`` prints it."""
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    console.print(f"wrote {escape(str(stem))}.csv, .png and .json", highlight=False)
    return {**summary, "files": {kind: str(stem.with_suffix(f".{kind}")) for kind in ("csv", "png", "json")}}


def _harmonic_with_progress(mol, method):
    """:func:`optimized_harmonic_analysis` of one molecule with a bar through its stages."""
    from specml.executor import progress_bar
    from specml.spectra.harmonic import HARMONIC_STAGES, optimized_harmonic_analysis

    stages = [s for s in HARMONIC_STAGES if s != "pre-relaxation" or method.prerelax]
    name = escape(mol.name)  # a SMILES such as c1cc[nH]c1 is not rich markup
    with progress_bar() as bar:
        task = bar.add_task(f"{name}: starting", total=len(stages))

        def on_stage(stage: str) -> None:
            done = next((i for i, s in enumerate(stages) if stage.startswith(s)), 0)
            bar.update(task, completed=done, description=f"{name}: {escape(stage)}")

        result = optimized_harmonic_analysis(mol.atoms, method, on_stage=on_stage)
        bar.update(task, completed=len(stages), description=f"{name}: done")
    return result


def _print_modes(name: str, method, result) -> None:
    table = titled_table(f"{name}: harmonic modes ({method.describe()})")
    table.add_column("mode", justify="right")
    table.add_column("wavenumber / cm-1", justify="right")
    table.add_column("intensity / km mol-1", justify="right")
    for i, (nu, inten) in enumerate(zip(result.frequencies_cm1, result.intensities_km_mol, strict=True), 1):
        table.add_row(str(i), f"{nu:.1f}", f"{inten:.1f}")
    console.print(table)


def _conformer_average(mol, method, temperature_k: float, stem):
    """Conformer-averaged harmonic analysis of a SMILES molecule, its table printed; (result, summary).
    Each conformer's results are kept in ``<stem>_checkpoint_<settings digest>/`` as they finish, so a
    rerun after an interruption resumes per conformer (and another level of theory never reuses them)."""
    from specml.identification.library import entry_key
    from specml.molecules.conformers import conformers_from_smiles
    from specml.spectra.harmonic import conformer_averaged_harmonic

    checkpoint = stem.with_name(
        f"{stem.name}_checkpoint_{entry_key(mol.smiles, method.name, method.settings)[:12]}"
    )
    doing = f"conformers of {mol.name}: optimising and computing Hessians with {method.describe()}"
    with console.status(escape(doing)):
        result = conformer_averaged_harmonic(
            conformers_from_smiles(mol.smiles), method, temperature_k, checkpoint=checkpoint
        )
    relative_meV = 1000.0 * (result.energies_eV - result.energies_eV.min())
    table = titled_table(f"{mol.name}: conformers at {temperature_k:g} K ({method.describe()})")
    for column in ("conformer", "energy / meV", "mirror images", "population", "strongest band / cm-1"):
        table.add_column(column, justify="right")
    rows = zip(result.results, relative_meV, result.degeneracies, result.weights, strict=True)
    for i, (r, de, g, w) in enumerate(rows, 1):
        strongest = r.frequencies_cm1[np.argmax(r.intensities_km_mol)]
        table.add_row(str(i), f"{de:.1f}", "yes (x2)" if g == 2 else "no", f"{w:.3f}", f"{strongest:.1f}")
    console.print(table)
    dropped = {k: v for k, v in result.n_dropped.items() if v}
    if dropped:
        console.print(
            "not in the average: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dropped.items())
        )
    summary = {
        "temperature_k": temperature_k,
        "dropped": result.n_dropped,
        "conformers": [
            {
                "relative_energy_meV": float(de),
                "degeneracy": int(g),
                "population": float(w),
                "frequencies_cm1": r.frequencies_cm1.tolist(),
                "intensities_km_mol": r.intensities_km_mol.tolist(),
            }
            for r, de, g, w in zip(
                result.results, relative_meV, result.degeneracies, result.weights, strict=True
            )
        ],
    }
    return result, summary


@app.command("md")
def reference_md(
    molecule: str = typer.Argument(..., help="SMILES or a structure file."),
    reference: str = typer.Option("xtb", "--reference", "-r", help=REFERENCE_OPTION_HELP),
    temperature: float = typer.Option(300.0, "--temperature", "-T", help="Temperature (K, 0 < T <= 10000)."),
    time_ps: float = typer.Option(10.0, "--time", help="Production time (ps, > 0)."),
    thermalization_ps: float = typer.Option(
        5.0,
        "--thermalization",
        help="Thermalisation time (ps, >= 0); 5 damping times at the default friction.",
    ),
    timestep: float = typer.Option(0.5, "--timestep", help="Time step (fs, > 0)."),
    friction: float = typer.Option(0.001, "--friction", help="Langevin friction (1/fs, 0 to 1/timestep)."),
    max_correlation: float = typer.Option(
        1000.0, "--max-correlation", help="Correlation depth (fs, > 0, at most half the production time)."
    ),
    seed: int = typer.Option(0, help="Random seed (>= 0)."),
    out: Path = typer.Option(Path("specml-output"), "--out", "-o", help="Output directory."),
    compare: Path | None = typer.Option(None, "--compare", help="Experimental spectrum to overlay."),
) -> None:
    """IR spectrum from MD driven directly by the reference method (the "AIMD" baseline).

    Resumable: the run snapshots itself every few minutes and when a reference call fails, and the
    same command continues from there. The dipole trajectory is kept beside the spectrum."""
    from specml.dynamics.settings import check_md_settings
    from specml.reference import make_reference

    with checked_options():
        n_steps, n_therm = check_md_settings(
            temperature, time_ps, thermalization_ps, timestep, friction, max_correlation, seed
        )
        checks.output_dir(out, "--out")
        experiment = (
            load_experiment(compare) if compare is not None else None
        )  # a bad file fails before the MD
        molecules = molecules_for(molecule, make_reference(reference))
    from specml.dynamics import run_reference_md
    from specml.executor import progress_bar
    from specml.molecules import optimize_geometry
    from specml.plotting import plot_spectra
    from specml.workflow.state import atomic_write_npz, safe_name

    for mol in molecules:
        start = optimize_geometry(mol.atoms, reference, fmax=0.01)
        stem = out / f"{safe_name(mol.name)}_md_{temperature:.0f}K"
        snapshot = stem.with_name(stem.name + "_checkpoint.pt")
        with progress_bar() as bar:
            task = bar.add_task(
                escape(f"reference MD {mol.name} {temperature:.0f} K"), total=n_steps + n_therm
            )
            traj = run_reference_md(
                start,
                reference,
                temperature,
                n_steps,
                n_therm,
                timestep,
                friction,
                seed=seed,
                progress=lambda i, n, task=task: bar.update(task, completed=i),
                checkpoint_path=snapshot,
            )
        atomic_write_npz(
            stem.with_name(stem.name + "_trajectory.npz"),
            times_fs=traj.times_fs,
            dipoles_eA=traj.dipoles,
            temperatures_k=traj.temperatures_k,
            potential_energies_ev=traj.potential_energies,
            symbols=np.array(traj.symbols),
            final_positions_a=traj.final_positions,
            final_velocities_a_per_fs=traj.final_velocities,
        )
        spectrum = traj.ir_spectrum(max_correlation).with_metadata(
            label=f"{mol.name} reference MD {temperature:.0f} K"
        )
        spectrum.to_csv(stem.with_suffix(".csv"))
        if compare is not None:
            _report_comparison(spectrum, compare, stem.with_suffix(".png"), 500, 4000, experiment)
        else:
            plot_spectra([spectrum], stem.with_suffix(".png"))
        snapshot.unlink(missing_ok=True)
        console.print(
            f"mean temperature {traj.temperatures_k.mean():.0f} K; wrote {escape(str(stem))}.csv, .png and "
            f"{escape(stem.name)}_trajectory.npz (dipoles in e·Å)",
            highlight=False,
        )
