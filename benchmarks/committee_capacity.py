"""Why does the 24-molecule committee lag single-molecule models? (issue 24, item 3)

Trains one potential on the train24 iteration-0 labels (the normal-mode samples of
``benchmarks/palirs.py --preset full``) with preset overrides, and reports the ML
harmonic-frequency MAE of every molecule against its reference frequencies, the
validation errors, the optimiser steps and the wall time. One row per invocation is
appended to ``docs/results/committee_capacity.jsonl``; the full preset's model settings
come from these rows (docs/results/paper-reproduction.md).

    python benchmarks/committee_capacity.py --prepare           # labels only (minutes)
    python benchmarks/committee_capacity.py b8 '{}'             # the default preset
    python benchmarks/committee_capacity.py b32 '{"batch_size": 32, "max_steps": 8000}'
    python benchmarks/committee_capacity.py --table             # the rows so far, as Markdown

``--prepare`` runs the full preset's stage 0 (reference minima, Hessians and normal-mode
labels) in its run directory, so the full benchmark later resumes from these labels
instead of computing them again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = ROOT / "docs" / "results" / "committee_capacity.jsonl"
DEFAULT_RUN_DIR = ROOT / "runs" / "palirs_full"


def full_workflow(run_dir: Path, show_progress: bool = True):
    """The full benchmark preset's workflow over train24, in ``run_dir/xtb``."""
    from palirs import PRESETS, TRAIN_CSV, select_molecules

    from specml.workflow import IRWorkflow, get_workflow_config

    settings = PRESETS["full"]
    config = get_workflow_config(settings["workflow_preset"], **settings["workflow_overrides"])
    molecules = select_molecules(TRAIN_CSV, settings["train"])
    return IRWorkflow(molecules, run_dir / "xtb", config, show_progress=show_progress)


def prepare(run_dir: Path) -> None:
    """Reference minima, Hessians and the iteration-0 labels, as the full benchmark makes them."""
    from specml.workflow.labelling import label_candidates

    workflow = full_workflow(run_dir)
    counts = label_candidates(
        workflow.initial_candidates(),
        workflow.database,
        workflow.reference,
        workflow.executor,
        workflow.log,
        "labelling iteration 0",
    )
    print(f"iteration 0: {counts['new']} new labels, {counts['failed']} failed, {counts['skipped']} present")


def per_molecule_harmonic(model, preset, run_dir: Path) -> dict[str, dict]:
    """ML harmonic-frequency errors (cm-1) of every prepared molecule against its reference."""
    from ase import Atoms

    from specml.models import Committee
    from specml.workflow.evaluation import harmonic_errors, ml_harmonic_analysis

    committee = Committee([model], None, preset)
    rows = {}
    for path in sorted((run_dir / "xtb" / "molecules").glob("*.json")):
        data = json.loads(path.read_text())
        minimum = Atoms(data["symbols"], positions=data["positions"], masses=data.get("masses"))
        ml = ml_harmonic_analysis(committee, minimum)
        rows[data["name"]] = harmonic_errors(ml.frequencies_cm1, np.array(data["frequencies_cm1"]))
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The study's rows as a Markdown table (the one in docs/results/paper-reproduction.md)."""
    lines = [
        "| row | overrides | epochs | steps | train (min) | valid F MAE (meV/Å) | valid E MAE (meV) "
        "| harmonic MAE mean / median / max (cm-1) | worst molecules |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        worst = sorted(row["per_molecule_mae_cm1"].items(), key=lambda item: -item[1])[:3]
        lines.append(
            f"| {row['name']} | `{json.dumps(row['overrides'])}` | {row['epochs_run']} "
            f"| {row['optimizer_steps_approx']:,} | {row['train_time_s'] / 60:.1f} "
            f"| {row['valid_mae']['forces_meV_per_A']:.1f} | {row['valid_mae']['energy_meV']:.0f} "
            f"| {row['harmonic_mae_cm1_mean']:.1f} / {row['harmonic_mae_cm1_median']:.1f} / "
            f"{row['harmonic_mae_cm1_max']:.1f} | {', '.join(f'{n} {v:.0f}' for n, v in worst)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", nargs="?")
    parser.add_argument(
        "overrides", nargs="?", default="{}", help="preset overrides as JSON ('seed' is special)"
    )
    parser.add_argument("--prepare", action="store_true", help="make the iteration-0 labels and stop")
    parser.add_argument("--table", action="store_true", help="print the rows of --out as Markdown")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.table:
        print(markdown_table([json.loads(line) for line in args.out.read_text().splitlines() if line]))
        return
    if args.prepare:
        prepare(args.run_dir)
        return
    if not args.name:
        parser.error("give a NAME for the row (or --prepare)")
    overrides = json.loads(args.overrides)
    seed = overrides.pop("seed", 0)
    database = args.run_dir / "xtb" / "labels.db"
    if not database.exists():
        parser.error(f"no labels in {database}: run with --prepare first")

    import torch

    from specml.dataset.database import LabelDatabase
    from specml.models import get_preset, train_potential

    torch.set_num_threads(1)
    preset = get_preset("default", **overrides)  # checks the override names before any work
    labels = [a for a in LabelDatabase(database).labelled_atoms() if int(a.info.get("iteration", 0)) == 0]
    started = time.perf_counter()
    model, history = train_potential(labels, preset, seed=seed)
    train_s = time.perf_counter() - started
    model_file = args.run_dir / "capacity" / f"{args.name}.pt"  # for a later look at single modes
    model_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, model_file)
    errors = per_molecule_harmonic(model, preset, args.run_dir)
    maes = np.array([e["mae_cm1"] for e in errors.values()])
    row = {
        "name": args.name,
        "overrides": overrides,
        "seed": seed,
        "n_structures": len(labels),
        "n_molecules": len(errors),
        "batch_size": preset.batch_size,
        "epochs_run": history["epochs_run"],
        "optimizer_steps_approx": history["epochs_run"] * history["steps_per_epoch"],
        "train_time_s": train_s,
        "stage_two_from_epoch": history.get("stage_two_from_epoch"),
        "valid_mae": history["valid_mae"],
        "harmonic_mae_cm1_mean": float(maes.mean()),
        "harmonic_mae_cm1_median": float(np.median(maes)),
        "harmonic_mae_cm1_max": float(maes.max()),
        "per_molecule_mae_cm1": {name: round(e["mae_cm1"], 2) for name, e in errors.items()},
        "valid_loss_curve": [round(float(v), 5) for v in history["valid_loss"]],
        "load_average_1min": os.getloadavg()[0],
    }
    print(json.dumps({k: v for k, v in row.items() if k not in ("valid_loss_curve", "per_molecule_mae_cm1")}))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
