"""Physics-core commands: harmonic IR and reference ("AIMD") molecular dynamics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from specml.cli.app import app, console
from specml.workflow.state import safe_name


def _report_comparison(spectrum, experimental_path: Path, out_png: Path, lo: float, hi: float,
                       experiment=None) -> dict:
    """Compare with the experimental spectrum (``experiment``: already loaded from the path)."""
    from specml.comparison import compare_spectra
    from specml.experiment.preprocess import load_absorbance
    from specml.plotting import plot_comparison

    experiment = experiment if experiment is not None else load_absorbance(experimental_path)
    result = compare_spectra(experiment, spectrum, lo, hi)
    plot_comparison(result, out_png, title=f"{spectrum.label} vs {experimental_path.name}")
    console.print(f"vs experiment [bold]{experimental_path.name}[/]: PCC {result.pcc:.3f}, "
                  f"WD {result.wd_cm1:.1f} cm-1, SIS {result.sis:.3f}")
    return result.as_dict()


@app.command("harmonic")
def harmonic(
    molecule: str = typer.Argument(..., help="SMILES, a CSV of SMILES, or a structure file (xyz/extxyz/db)."),
    reference: str = typer.Option("xtb", "--reference", "-r", help="xtb | pyscf[:FUNC/BASIS] | ase:module:Class"),
    out: Path = typer.Option(Path("specml-output"), "--out", "-o", help="Output directory."),
    fwhm: float = typer.Option(10.0, help="Line width (FWHM, cm-1); with --gas-contour, the Gaussian resolution."),
    shape: str | None = typer.Option(None, help="lorentzian (default) | gaussian (default with --gas-contour)"),
    compare: Path | None = typer.Option(None, "--compare", help="Experimental spectrum to overlay (JCAMP/CSV)."),
    wn_range: tuple[float, float] = typer.Option((500.0, 4000.0), "--range", help="Range LO HI in cm-1."),
    conformers: bool = typer.Option(False, "--conformers", help="Boltzmann-average the spectra of the molecule's "
                                    "RDKit conformers (SMILES input), weighted by the reference's energies."),
    temperature: float = typer.Option(298.15, "--temperature", "-T",
                                      help="Temperature of the conformer populations and rotational contours (K)."),
    gas_contour: bool = typer.Option(False, "--gas-contour", help="Spread every band over its gas-phase rotational "
                                     "contour (P/Q/R branches of a classical rigid rotor at --temperature), "
                                     "for comparison with gas-phase measurements."),
) -> None:
    """Harmonic IR spectrum (optimised geometry, finite-difference Hessian) as CSV and PNG."""
    from specml.errors import InputError
    from specml.molecules import load_molecules
    from specml.plotting import plot_spectra
    from specml.reference import make_reference

    method = make_reference(reference)
    lo, hi = sorted(wn_range)
    shape = shape or ("gaussian" if gas_contour else "lorentzian")
    if gas_contour:  # settings checked before any calculation
        from specml.spectra.rotational_contour import check_contour_settings

        if shape != "gaussian":
            raise InputError(f"--gas-contour combines the rotational contour with a Gaussian resolution; "
                             f"--shape {shape} is not supported with it")
        check_contour_settings(fwhm, temperature)
    rotational_temperature = temperature if gas_contour else None
    for mol in load_molecules(molecule):
        method.check_elements(mol.atoms, mol.smiles or mol.name)
        if conformers:
            if not mol.smiles:
                raise InputError(f"--conformers needs SMILES input; {mol.name} came from a structure file")
            result, summary = _conformer_average(mol, method, temperature)
            stem = out / f"{safe_name(mol.name)}_harmonic_{method.name}_conformers"
        else:
            result = _harmonic_with_progress(mol, method)
            _print_modes(mol.name, method, result)
            summary = {"frequencies_cm1": result.frequencies_cm1.tolist(),
                       "intensities_km_mol": result.intensities_km_mol.tolist()}
            stem = out / f"{safe_name(mol.name)}_harmonic_{method.name}"
        summary = {"molecule": mol.name, "smiles": mol.smiles, "reference": method.describe(), **summary,
                   "line_shape": shape, "fwhm_cm1": fwhm, "rotational_contour_k": rotational_temperature}
        details = (", conformers" if conformers else "") + (f", gas {temperature:g} K" if gas_contour else "")
        label = f"{mol.name} harmonic ({method.name}{details})"
        spectrum = result.spectrum(fwhm=fwhm, shape=shape, lo=lo, hi=hi,
                                   rotational_temperature_k=rotational_temperature).with_metadata(label=label)
        spectrum.to_csv(stem.with_suffix(".csv"))
        if compare is not None:
            summary["vs_experiment"] = _report_comparison(spectrum, compare, stem.with_suffix(".png"), lo, hi)
        else:
            plot_spectra([spectrum], stem.with_suffix(".png"), title=f"{mol.name}: harmonic IR ({method.name})")
        stem.with_suffix(".json").write_text(json.dumps(summary, indent=2))
        console.print(f"wrote {stem}.csv, .png and .json")


def _harmonic_with_progress(mol, method):
    """:func:`optimized_harmonic_analysis` of one molecule with a bar through its stages."""
    from specml.executor import progress_bar
    from specml.spectra.harmonic import HARMONIC_STAGES, optimized_harmonic_analysis

    stages = [s for s in HARMONIC_STAGES if s != "pre-relaxation" or method.prerelax]
    with progress_bar() as bar:
        task = bar.add_task(f"{mol.name}: starting", total=len(stages))

        def on_stage(stage: str) -> None:
            done = next((i for i, s in enumerate(stages) if stage.startswith(s)), 0)
            bar.update(task, completed=done, description=f"{mol.name}: {stage}")

        result = optimized_harmonic_analysis(mol.atoms, method, on_stage=on_stage)
        bar.update(task, completed=len(stages), description=f"{mol.name}: done")
    return result


def _print_modes(name: str, method, result) -> None:
    table = Table(title=f"{name}: harmonic modes ({method.describe()})")
    table.add_column("mode", justify="right")
    table.add_column("wavenumber / cm-1", justify="right")
    table.add_column("intensity / km mol-1", justify="right")
    for i, (nu, inten) in enumerate(zip(result.frequencies_cm1, result.intensities_km_mol), 1):
        table.add_row(str(i), f"{nu:.1f}", f"{inten:.1f}")
    console.print(table)


def _conformer_average(mol, method, temperature_k: float):
    """Conformer-averaged harmonic analysis of a SMILES molecule, its table printed; (result, summary)."""
    from specml.molecules.conformers import conformers_from_smiles
    from specml.spectra.harmonic import conformer_averaged_harmonic

    with console.status(f"conformers of {mol.name}: optimising and computing Hessians with {method.describe()}"):
        result = conformer_averaged_harmonic(conformers_from_smiles(mol.smiles), method, temperature_k)
    relative_meV = 1000.0 * (result.energies_eV - result.energies_eV.min())
    table = Table(title=f"{mol.name}: conformers at {temperature_k:g} K ({method.describe()})")
    for column in ("conformer", "energy / meV", "population", "strongest band / cm-1"):
        table.add_column(column, justify="right")
    for i, (r, de, w) in enumerate(zip(result.results, relative_meV, result.weights), 1):
        table.add_row(str(i), f"{de:.1f}", f"{w:.3f}", f"{r.frequencies_cm1[np.argmax(r.intensities_km_mol)]:.1f}")
    console.print(table)
    dropped = {k: v for k, v in result.n_dropped.items() if v}
    if dropped:
        console.print("not in the average: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dropped.items()))
    summary = {"temperature_k": temperature_k, "dropped": result.n_dropped, "conformers": [
        {"relative_energy_meV": float(de), "population": float(w), "frequencies_cm1": r.frequencies_cm1.tolist(),
         "intensities_km_mol": r.intensities_km_mol.tolist()}
        for r, de, w in zip(result.results, relative_meV, result.weights)]}
    return result, summary


@app.command("md")
def reference_md(
    molecule: str = typer.Argument(..., help="SMILES or a structure file."),
    reference: str = typer.Option("xtb", "--reference", "-r", help="xtb | pyscf[:FUNC/BASIS] | ase:module:Class"),
    temperature: float = typer.Option(300.0, "--temperature", "-T", help="Temperature (K)."),
    time_ps: float = typer.Option(10.0, "--time", help="Production time (ps)."),
    thermalization_ps: float = typer.Option(5.0, "--thermalization", help="Thermalisation time (ps); 5 damping times at the default friction."),
    timestep: float = typer.Option(0.5, "--timestep", help="Time step (fs)."),
    friction: float = typer.Option(0.001, "--friction", help="Langevin friction (1/fs)."),
    max_correlation: float = typer.Option(1000.0, "--max-correlation", help="Correlation depth (fs)."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(Path("specml-output"), "--out", "-o", help="Output directory."),
    compare: Path | None = typer.Option(None, "--compare", help="Experimental spectrum to overlay."),
) -> None:
    """IR spectrum from MD driven directly by the reference method (the "AIMD" baseline).

    Resumable: the run snapshots itself every few minutes and when a reference call fails, and the
    same command continues from there. The dipole trajectory is kept beside the spectrum."""
    from specml.dynamics import run_reference_md
    from specml.executor import progress_bar
    from specml.experiment.preprocess import load_absorbance
    from specml.molecules import load_molecules, optimize_geometry
    from specml.plotting import plot_spectra
    from specml.workflow.state import atomic_write_npz

    experiment = load_absorbance(compare) if compare is not None else None  # a bad file fails before the MD
    for mol in load_molecules(molecule):
        start = optimize_geometry(mol.atoms, reference, fmax=0.01)
        n_steps = int(round(time_ps * 1000 / timestep))
        n_therm = int(round(thermalization_ps * 1000 / timestep))
        stem = out / f"{safe_name(mol.name)}_md_{temperature:.0f}K"
        snapshot = stem.with_name(stem.name + "_checkpoint.pt")
        with progress_bar() as bar:
            task = bar.add_task(f"reference MD {mol.name} {temperature:.0f} K", total=n_steps + n_therm)
            traj = run_reference_md(start, reference, temperature, n_steps, n_therm, timestep, friction, seed=seed,
                                    progress=lambda i, n: bar.update(task, completed=i), checkpoint_path=snapshot)
        atomic_write_npz(stem.with_name(stem.name + "_trajectory.npz"), times_fs=traj.times_fs, dipoles_eA=traj.dipoles,
                         temperatures_k=traj.temperatures_k, potential_energies_ev=traj.potential_energies,
                         symbols=np.array(traj.symbols), final_positions_a=traj.final_positions,
                         final_velocities_a_per_fs=traj.final_velocities)
        spectrum = traj.ir_spectrum(max_correlation).with_metadata(label=f"{mol.name} reference MD {temperature:.0f} K")
        spectrum.to_csv(stem.with_suffix(".csv"))
        if compare is not None:
            _report_comparison(spectrum, compare, stem.with_suffix(".png"), 500, 4000, experiment)
        else:
            plot_spectra([spectrum], stem.with_suffix(".png"))
        snapshot.unlink(missing_ok=True)
        console.print(f"mean temperature {traj.temperatures_k.mean():.0f} K; wrote {stem}.csv, .png and "
                      f"{stem.name}_trajectory.npz (dipoles in e·Å)")
