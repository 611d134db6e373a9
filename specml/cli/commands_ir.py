"""``specml ir``: the active-learning IR workflow, or predictions from trained models."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from specml.cli.app import app, console
from specml.errors import ModelError


@app.command("ir")
def ir(
    molecules: str = typer.Argument(..., help="SMILES, a CSV with a 'smiles' column, or a structure file."),
    reference: str = typer.Option("xtb", "--reference", "-r", help="xtb | pyscf[:FUNC/BASIS] | ase:module:Class"),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory (state, models, outputs); "
                                 "rerun the same command to resume. Default: runs/<molecules>, or "
                                 "runs/predictions/<molecules> with --models."),
    preset: str = typer.Option("default", "--preset", help="Workflow settings: default | paper | quick | ci"),
    models: Path | None = typer.Option(None, "--models", help="Trained model directory: predict without training."),
    temperature: list[float] = typer.Option([300.0], "--temperature", "-T", help="Production temperature(s) in K."),
    compare: Path | None = typer.Option(None, "--compare", help="Experimental spectrum (JCAMP/CSV) to overlay."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:port), or local:N for N local worker "
        "processes (reference labels, MD and committee training then run in parallel)."),
    max_iterations: int | None = typer.Option(None, "--max-iterations", help="Active-learning iterations at most."),
    warm_start: bool | None = typer.Option(None, "--warm-start/--from-scratch", help="Fine-tune instead of retraining."),
    production_ps: float | None = typer.Option(None, "--production-ps", help="Production time per trajectory (ps)."),
    database: str | None = typer.Option(None, "--database", help="ASE database path or postgresql:// URL."),
) -> None:
    """Learn MACE potentials + dipole model by active learning, then predict ML-MD IR spectra."""
    from specml.executor import make_executor
    from specml.molecules import load_molecules
    from specml.workflow import IRWorkflow, get_workflow_config, predict_spectra
    from specml.workflow.production import keyed_spectra
    from specml.workflow.report import write_outputs

    overrides = {"reference": reference, "max_iterations": max_iterations, "warm_start": warm_start,
                 "production_ps": production_ps}
    config = get_workflow_config(preset, **overrides)
    mols = load_molecules(molecules)
    # Predictions get their own default folder: a training run's folder holds its own trajectories.
    run_dir = run_dir or Path("runs") / ("predictions" if models is not None else "") / _run_name(molecules, mols)
    executor = make_executor(scheduler)
    experiment = _load_experiment(compare) if compare else None
    try:
        if models is not None:
            produced, report = predict_spectra(models, mols, run_dir, temperature, config, executor, console.print)
            _print_domain(report)
            spectra = keyed_spectra(produced)
            if not spectra:
                raise ModelError(f"no spectrum: every trajectory of {', '.join(report)} hit the sanity stop; "
                                 f"the molecule(s) are outside what the committee in {models} knows")
            from specml.workflow.active_learning import WorkflowResult

            result = WorkflowResult(run_dir, spectra, [], {"models": str(models), "domain": report})
        else:
            workflow = IRWorkflow(mols, run_dir, config, executor, database, console=console)
            console.print(f"run directory [bold]{run_dir}[/] (log: {workflow.dirs.log}); "
                          "rerun the same command to resume")
            result = workflow.run(tuple(temperature))
    finally:
        executor.close()
    comparison = _compare(result, experiment, compare, run_dir) if experiment is not None else None
    write_outputs(result, run_dir, experiment, comparison)
    _print_summary(result, run_dir)


def _run_name(text: str, mols) -> str:
    from specml.workflow.state import safe_name

    return safe_name(Path(text).stem if Path(text).exists() else "_".join(m.name for m in mols))


def _load_experiment(path: Path):
    from specml.cli.commands_compare import load_for_comparison

    return load_for_comparison(path).with_metadata(label=f"experiment ({path.name})")


def _compare(result, experiment, path: Path, run_dir: Path) -> dict:
    from specml.comparison import compare_spectra
    from specml.plotting import plot_comparison

    out = {}
    for key, spectrum in result.spectra.items():
        comparison = compare_spectra(experiment, spectrum)
        plot_comparison(comparison, run_dir / f"compare_{key.replace('@', '_')}.png", title=f"{key} vs {path.name}")
        out[key] = comparison.as_dict()
        console.print(f"{key} vs {path.name}: PCC [bold]{comparison.pcc:.3f}[/], WD {comparison.wd_cm1:.1f} cm-1")
    return out


def _print_domain(report: dict) -> None:
    table = Table(title="committee domain check (relative force uncertainty)")
    for column in ("molecule", "at minimum", "mean in MD", "outside domain"):
        table.add_column(column)
    for name, entry in report.items():
        in_md = entry["mean_uncertainty_md_by_temperature_k"]
        shown = (f"{entry['mean_uncertainty_md']:.3f}" if len(in_md) == 1
                 else ", ".join(f"{u:.3f} ({t} K)" for t, u in in_md.items()))
        table.add_row(name, f"{entry['uncertainty_at_minimum']:.3f}", shown,
                      "[red]yes[/]" if entry["out_of_domain"] else "no")
    console.print(table)


def _print_summary(result, run_dir: Path) -> None:
    summary = result.summary
    if "final_harmonic_mae_cm1" in summary:
        console.print(f"harmonic MAE {summary['final_harmonic_mae_cm1']:.2f} cm-1 after {summary['iterations']} "
                      f"iteration(s), {summary['reference_calls']} reference calculations for training "
                      f"(+{summary['reference_calls_evaluation']} for geometry and reference Hessian)")
    console.print(f"wrote spectra (CSV, PNG), learning curves and summary to [bold]{run_dir}[/]")
