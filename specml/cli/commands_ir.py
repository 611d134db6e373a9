"""``specml ir``: the active-learning IR workflow, or predictions from trained models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.markup import escape

from specml import checks
from specml.cli.app import app, checked_options, console, emit_json, output_format, titled_table
from specml.cli.commands_core import (
    MODELS_OPTION_HELP,
    REFERENCE_OPTION_HELP,
    load_experiment,
    models_option,
    molecules_for,
)
from specml.errors import InputError, ModelError

IR_JSON_HELP = (
    "Print a JSON object instead of the summary: {run_dir, spectra: {KEY: csv path}, summary (with "
    "--models: the domain check), vs_experiment: {KEY: metrics} or null, with --raman raman_spectra: "
    "{KEY: csv of the total Raman spectrum}}, KEY being molecule@temperature (docs/cli_output.md)."
)

#: Workflow settings that options of `specml ir` set, by option: errors name the option.
IR_SETTING_FLAGS = {
    "max_iterations": "--max-iterations",
    "stall_iterations": "--stall-iterations",
    "warm_start": "--warm-start",
    "stacked_committee": "--stacked-committee",
    "production_ps": "--production-ps",
    "production_beads": "--beads",
    "raman": "--raman",
}


@app.command("ir")
def ir(
    molecules: str = typer.Argument(..., help="SMILES, a CSV with a 'smiles' column, or a structure file."),
    reference: str = typer.Option("xtb", "--reference", "-r", help=REFERENCE_OPTION_HELP),
    run_dir: Path = typer.Option(
        None,
        "--run-dir",
        help="Run directory (state, models, outputs); "
        "rerun the same command to resume. Default: runs/<molecules>, or "
        "runs/predictions/<molecules> with --models.",
    ),
    preset: str = typer.Option("default", "--preset", help="Workflow settings: default | paper | quick | ci"),
    models: Path | None = typer.Option(
        None,
        "--models",
        help=f"{MODELS_OPTION_HELP}: predict without training.",
    ),
    temperature: list[float] = typer.Option(
        [300.0], "--temperature", "-T", help="Production temperature(s) in K (0 < T <= 10000)."
    ),
    compare: Path | None = typer.Option(
        None, "--compare", help="Experimental spectrum (JCAMP/CSV) to overlay."
    ),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Dask scheduler address (tcp://host:port), or local:N for N local worker "
        "processes (reference labels, MD and committee training then run in parallel).",
    ),
    max_iterations: int | None = typer.Option(
        None, "--max-iterations", help="Active-learning iterations at most (>= 0)."
    ),
    stall_iterations: int | None = typer.Option(
        None,
        "--stall-iterations",
        help="Stop once this many iterations in a row have not lowered the best harmonic MAE "
        "(0: never; default 4, the paper preset 0).",
    ),
    warm_start: bool | None = typer.Option(
        None, "--warm-start/--from-scratch", help="Fine-tune instead of retraining."
    ),
    stacked_committee: bool = typer.Option(
        False,
        "--stacked-committee",
        help="Train the committee's members in one fit, stacked into one vmapped model: a training "
        "step 1.5-1.7x faster on a CPU (docs/results/training-cost.md); the members then share "
        "one batch order and learning-rate schedule. Pays off in one process (no --scheduler).",
    ),
    production_ps: float | None = typer.Option(
        None, "--production-ps", help="Production time per trajectory (ps, > 0)."
    ),
    beads: int | None = typer.Option(
        None,
        "--beads",
        help="Ring-polymer beads per molecule in production MD: quantum nuclei (TRPMD), which move "
        "X-H stretches most of the way to their anharmonic fundamentals; 16 at 300 K (more do not "
        "move an O-H band further); 1 (default): classical nuclei. 16 beads cost about 3 times the "
        "classical MD (docs/quantum-nuclei.md).",
    ),
    database: str | None = typer.Option(None, "--database", help="ASE database path or postgresql:// URL."),
    pretrain: str | None = typer.Option(
        None,
        "--pretrain",
        help="Multi-fidelity: learn with this cheap reference first (e.g. xtb), then adapt to "
        "--reference with few of its labels (docs/multifidelity.md).",
    ),
    adaptation: str | None = typer.Option(
        None,
        "--adaptation",
        help="With --pretrain: finetune (default) | delta | scratch | best (all three on the first "
        "expensive labels; the lowest harmonic MAE goes on).",
    ),
    raman: bool = typer.Option(
        False,
        "--raman",
        help="Also label polarizabilities, train a polarizability model and write ML-MD Raman spectra "
        "(VV, VH, total) from the same trajectories (docs/raman.md).",
    ),
    json_out: bool = typer.Option(False, "--json", help=IR_JSON_HELP),
) -> None:
    """Learn MACE potentials + dipole model by active learning, then predict ML-MD IR spectra."""
    from specml.executor import check_scheduler, make_executor
    from specml.molecules import load_molecules
    from specml.reference import make_reference
    from specml.workflow.config import get_workflow_config

    with checked_options(IR_SETTING_FLAGS):  # nothing is computed and no run folder claimed before these pass
        machine = output_format(json_out)
        overrides = {
            "reference": reference,
            "max_iterations": max_iterations,
            "stall_iterations": stall_iterations,
            "warm_start": warm_start,
            "stacked_committee": stacked_committee or None,
            "production_ps": production_ps,
            "production_beads": beads,
            "raman": raman or None,
        }
        config = get_workflow_config(preset, **overrides)
        temperatures = checks.temperatures("--temperature", temperature)
        method = make_reference(config.reference)
        check_scheduler(scheduler)
        if models is not None:
            if raman:  # the combination is refused whatever --models names
                raise InputError("--raman needs a training run; with --models only IR is predicted")
            models = models_option(models)
        fidelities = _fidelity_settings(pretrain, adaptation, models, config.reference)
        experiment = _load_experiment(compare) if compare else None
        # Trained models check their own elements (before their prediction folder is claimed).
        mols = load_molecules(molecules) if models is not None else molecules_for(molecules, method)
        # Predictions get their own default folder: a training run's folder holds its own trajectories.
        run_dir = run_dir or Path("runs") / ("predictions" if models is not None else "") / _run_name(
            molecules, mols
        )
        checks.output_dir(run_dir, "--run-dir")
        if (
            database is not None and "://" not in database
        ):  # a file; postgresql:// URLs are checked on connect
            checks.output_file(database, "--database")
    executor = make_executor(scheduler)
    try:
        if models is not None:
            result = _predict(models, mols, run_dir, temperatures, config, executor)
        else:
            result = _train(mols, run_dir, config, executor, database, temperatures, fidelities)
    finally:
        executor.close()
    _finish(result, run_dir, experiment, compare, machine)


def _predict(models: Path, mols, run_dir: Path, temperatures, config, executor):
    """ML-MD spectra from a trained committee, its domain check shown; a WorkflowResult without learning curve."""
    from specml.workflow.active_learning import WorkflowResult
    from specml.workflow.prediction import predict_spectra
    from specml.workflow.production import keyed_spectra

    produced, report = predict_spectra(models, mols, run_dir, temperatures, config, executor, console.print)
    _print_domain(report)
    spectra = keyed_spectra(produced)
    if not spectra:
        raise ModelError(
            f"no spectrum: every trajectory of {', '.join(report)} hit the sanity stop; "
            f"the molecule(s) are outside what the committee in {models} knows"
        )
    return WorkflowResult(run_dir, spectra, [], {"models": str(models), "domain": report})


def _fidelity_settings(pretrain: str | None, adaptation: str | None, models: Path | None, reference: str):
    """Multi-fidelity settings of --pretrain/--adaptation (None without --pretrain), checked."""
    from specml.workflow.fidelity_config import MultiFidelitySettings

    if pretrain is None:
        if adaptation is not None:
            raise InputError("--adaptation needs --pretrain (the cheap reference to adapt from)")
        return None
    if models is not None:
        raise InputError("--pretrain trains models; it cannot be combined with --models")
    settings = MultiFidelitySettings(pretrain=pretrain)
    if adaptation is not None:
        settings = replace(settings, adaptation=adaptation)
    return settings.check(reference)


def _train(mols, run_dir: Path, config, executor, database, temperatures, fidelities=None):
    """The active-learning workflow (multi-fidelity with ``fidelities``), resumed where an earlier
    run of the same command stopped."""
    from specml.workflow.active_learning import IRWorkflow

    workflow: IRWorkflow
    if fidelities is not None:
        from specml.workflow.multifidelity import MultiFidelityWorkflow

        workflow = MultiFidelityWorkflow(
            mols, run_dir, config, fidelities, executor, database, console=console
        )
    else:
        workflow = IRWorkflow(mols, run_dir, config, executor, database, console=console)
    console.print(
        f"run directory [bold]{escape(str(run_dir))}[/] (log: {escape(str(workflow.dirs.log))}); "
        "rerun the same command to resume",
        highlight=False,
    )
    return workflow.run(tuple(temperatures))


def _finish(result, run_dir: Path, experiment, compare: Path | None, machine: str | None) -> None:
    """Comparison with the experiment, the output files, and the summary for people or programs."""
    from specml.workflow.report import write_outputs

    comparison = (
        _compare(result, experiment, compare, run_dir)
        if experiment is not None and compare is not None
        else None
    )
    files = write_outputs(result, run_dir, experiment, comparison)
    raman_files = _write_raman(result, run_dir)
    if machine:
        emit_json(
            {
                "run_dir": str(run_dir),
                "spectra": files,
                "summary": result.summary,
                "vs_experiment": comparison,
                **({"raman_spectra": raman_files} if raman_files else {}),
            }
        )
    else:
        _print_summary(result, run_dir)


def _write_raman(result, run_dir: Path) -> dict:
    if not result.raman_spectra:
        return {}
    from specml.workflow.raman import write_raman_outputs

    return write_raman_outputs(result.raman_spectra, run_dir)


def _run_name(text: str, mols) -> str:
    from specml.workflow.state import safe_name

    return safe_name(Path(text).stem if Path(text).exists() else "_".join(m.name for m in mols))


def _load_experiment(path: Path):
    return load_experiment(path).with_metadata(label=f"experiment ({path.name})")


def _compare(result, experiment, path: Path, run_dir: Path) -> dict:
    from specml.comparison import compare_spectra
    from specml.plotting import plot_comparison

    out = {}
    for key, spectrum in result.spectra.items():
        comparison = compare_spectra(experiment, spectrum)
        plot_comparison(
            comparison, run_dir / f"compare_{key.replace('@', '_')}.png", title=f"{key} vs {path.name}"
        )
        out[key] = comparison.as_dict()
        console.print(
            f"{escape(key)} vs {escape(path.name)}: PCC [bold]{comparison.pcc:.3f}[/], "
            f"WD {comparison.wd_cm1:.1f} cm-1",
            highlight=False,
        )
    return out


def _print_domain(report: dict) -> None:
    table = titled_table("committee domain check (relative force uncertainty)")
    for column in ("molecule", "at minimum", "mean in MD", "outside domain"):
        table.add_column(column)
    outside_training = any(entry.get("outside_training_domain") for entry in report.values())
    if outside_training:
        table.add_column("outside the model set's training")
    for name, entry in report.items():
        in_md = entry["mean_uncertainty_md_by_temperature_k"]
        shown = (
            f"{entry['mean_uncertainty_md']:.3f}"
            if len(in_md) == 1
            else ", ".join(f"{u:.3f} ({t} K)" for t, u in in_md.items())
        )
        row = [
            escape(name),
            f"{entry['uncertainty_at_minimum']:.3f}",
            shown,
            "[red]yes[/]" if entry["out_of_domain"] else "no",
        ]
        if outside_training:
            row.append(escape("; ".join(entry.get("outside_training_domain", []))) or "-")
        table.add_row(*row)
    console.print(table)


def _print_summary(result, run_dir: Path) -> None:
    summary = result.summary
    if "final_harmonic_mae_cm1" in summary:
        console.print(
            f"harmonic MAE {summary['final_harmonic_mae_cm1']:.2f} cm-1 after {summary['iterations']} "
            f"iteration(s), {summary['reference_calls']} reference calculations for training "
            f"(+{summary['reference_calls_evaluation']} for geometry and reference Hessian)"
        )
    if "pretrain" in summary:
        cheap = summary["pretrain"]
        console.print(
            f"pretrained with {escape(cheap['reference'])}: {cheap['reference_calls']} calculations "
            f"(+{cheap['reference_calls_evaluation']} for geometry and Hessian), harmonic MAE "
            f"{cheap['final_harmonic_mae_cm1']:.2f} cm-1; adaptation "
            f"{summary.get('adaptation', {}).get('chosen', '?')}",
            highlight=False,
        )
    console.print(
        f"wrote spectra (CSV, PNG), learning curves and summary to [bold]{escape(str(run_dir))}[/]",
        highlight=False,
    )
