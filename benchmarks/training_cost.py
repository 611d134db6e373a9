"""Committee training cost per active-learning iteration, and where the time goes.

Trains MACE potentials on methanol GFN2-xTB labels (the 121 initial normal-mode
structures of the workflow, or a run's ``labels.db``) for a few epochs per
setting, side by side in one process, and reports seconds per epoch split into
data transfer, forward (energy + forces), backward, optimizer (+ clipping and
EMA) and validation; for batch sizes 4-32 and float32/float64. The cost of one
active-learning iteration (3 members + dipole model) follows from s/epoch x
epochs, for training from scratch (preset epochs) and for warm-start fine-tuning
(``warm_start_epochs``). Writes ``docs/results/training_cost.json``.

    .venv/bin/python benchmarks/training_cost.py [--labels RUN/labels.db] [--epochs 15]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def methanol_initial_labels(run_dir: Path) -> list:
    """The workflow's iteration-0 data for methanol: xTB minimum + normal-mode displacements."""
    from specml.molecules import load_molecules
    from specml.workflow import IRWorkflow, get_workflow_config
    from specml.workflow.labelling import label_candidates

    workflow = IRWorkflow(load_molecules("CO"), run_dir, get_workflow_config("default"), show_progress=False)
    label_candidates(workflow.initial_candidates(), workflow.database, workflow.reference, workflow.executor)
    return workflow.database.labelled_atoms()


def time_training(train, data, preset, dtype: str, epochs: int) -> dict:
    start_cpu = time.process_time()
    _, history = train(data, dataclasses.replace(preset, epochs=epochs, patience=10 * epochs), dtype=dtype)
    cpu = time.process_time() - start_cpu
    n = history["epochs_run"]
    return {
        "s_per_epoch": history["train_time_s"] / n,
        "cpu_s_per_epoch": cpu / n,
        "breakdown_s_per_epoch": {k: v / n for k, v in history["time_breakdown_s"].items()},
        "n_train": history["n_train"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--labels", help="labels.db of a workflow run (default: make methanol's initial labels)"
    )
    parser.add_argument("--epochs", type=int, default=15, help="epochs timed per setting")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "training_cost.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from specml.dataset.database import LabelDatabase
    from specml.models import get_preset, train_dipole_model, train_potential
    from specml.workflow.config import WorkflowConfig

    if args.labels:
        data = LabelDatabase(args.labels).labelled_atoms()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = methanol_initial_labels(Path(tmp))
    preset = get_preset("default")
    config = WorkflowConfig()
    rows = []
    for batch_size in (4, 8, 16, 32):
        for dtype in ("float32", "float64"):
            variant = get_preset("default", batch_size=batch_size)
            row = {
                "batch_size": batch_size,
                "dtype": dtype,
                **time_training(train_potential, data, variant, dtype, args.epochs),
            }
            rows.append(row)
            parts = "  ".join(f"{k} {v:.3f}" for k, v in row["breakdown_s_per_epoch"].items())
            print(f"batch {batch_size:2d} {dtype}: {row['s_per_epoch']:.3f} s/epoch ({parts})", flush=True)
    dipole = time_training(train_dipole_model, data, preset, config.train_precision, args.epochs)
    print(
        f"dipole model (batch {preset.batch_size}, {config.train_precision}): {dipole['s_per_epoch']:.3f} s/epoch"
    )
    default = next(
        r for r in rows if r["batch_size"] == preset.batch_size and r["dtype"] == config.train_precision
    )
    per_epoch_committee = config.n_committee * default["s_per_epoch"] + dipole["s_per_epoch"]
    scratch = per_epoch_committee * preset.epochs
    warm = per_epoch_committee * config.warm_start_epochs
    total = sum(default["breakdown_s_per_epoch"].values())
    shares = {k: v / total for k, v in default["breakdown_s_per_epoch"].items()}
    print(
        f"one iteration ({config.n_committee} members + dipole, {len(data)} structures): "
        f"scratch {preset.epochs} epochs {scratch:.0f} s, warm start {config.warm_start_epochs} epochs {warm:.0f} s"
    )
    print(
        "time shares at the default setting: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in shares.items())
    )
    out = {
        "n_structures": len(data),
        "preset": preset.as_dict(),
        "timed_epochs": args.epochs,
        "torch_threads": args.threads,
        "load_average_1min": os.getloadavg()[0],
        "machine": platform.processor(),
        "grid": rows,
        "dipole": dipole,
        "iteration_cost_scratch_s": scratch,
        "iteration_cost_warm_start_s": warm,
        "warm_start_epochs": config.warm_start_epochs,
        "default_time_shares": shares,
        "note": "iteration cost = (members x energy s/epoch + dipole s/epoch) x epochs, measured at the "
        "default batch size and precision; time per epoch grows linearly with the number of structures",
    }
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
