"""How many epochs does the ``quick`` preset (the README's main job) need? Methanol, xTB.

Runs the active-learning part of the ``quick`` workflow (2 iterations, 4 samples per mode)
for each epoch budget and each set of committee seeds, side by side in one invocation, and
reports the final harmonic-frequency MAE against xTB and the training wall time. Several
seed sets, because one committee says little: the spread between them is the point.

    .venv/bin/python benchmarks/quick_preset_epochs.py --epochs 30 60 --seed-sets 3

Writes ``docs/results/quick_preset_epochs.json``; runs live in ``--run-dir`` (resumable).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def one_run(run_dir: Path, epochs: int, seeds: tuple[int, ...]) -> dict:
    """The quick workflow's active learning with ``epochs`` and committee ``seeds``."""
    import torch

    from specml.molecules import load_molecules
    from specml.workflow import IRWorkflow, get_workflow_config

    torch.set_num_threads(1)
    config = get_workflow_config("quick", model_epochs=epochs, committee_seeds=seeds, n_committee=len(seeds))
    workflow = IRWorkflow(load_molecules("CO"), run_dir, config, show_progress=False)
    start = time.perf_counter()
    _, curve = workflow.active_learning()
    timings = json.loads((run_dir / "timings.json").read_text())
    return {
        "epochs": epochs,
        "committee_seeds": list(seeds),
        "harmonic_mae_cm1_by_iteration": [e["harmonic_mae_cm1"] for e in curve],
        "final_harmonic_mae_cm1": curve[-1]["harmonic_mae_cm1"],
        "training_s": timings.get("training"),
        "wall_time_s_this_invocation": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, nargs="+", default=[30, 60])
    parser.add_argument(
        "--seed-sets", type=int, default=3, help="committee seed sets (0,1,2), (10,11,12), ..."
    )
    parser.add_argument("--run-dir", default="runs/quick_preset_epochs")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "quick_preset_epochs.json"))
    args = parser.parse_args()

    rows = []
    for s in range(args.seed_sets):
        seeds = tuple(10 * s + k for k in range(3))
        for epochs in args.epochs:  # each seed set at every budget before the next set: side by side
            row = one_run(Path(args.run_dir) / f"e{epochs}_s{s}", epochs, seeds)
            rows.append(row)
            print(
                f"epochs {epochs:4d}  seeds {seeds}  harmonic MAE {row['final_harmonic_mae_cm1']:6.1f} cm-1  "
                f"training {row['training_s']:6.0f} s",
                flush=True,
            )
    summary = {}
    for epochs in args.epochs:
        mae = [r["final_harmonic_mae_cm1"] for r in rows if r["epochs"] == epochs]
        train = [r["training_s"] for r in rows if r["epochs"] == epochs]
        summary[str(epochs)] = {
            "harmonic_mae_cm1_mean": float(np.mean(mae)),
            "harmonic_mae_cm1_min": float(np.min(mae)),
            "harmonic_mae_cm1_max": float(np.max(mae)),
            "training_s_mean": float(np.mean(train)),
        }
        print(
            f"epochs {epochs}: harmonic MAE {np.mean(mae):.1f} cm-1 (range {np.min(mae):.1f}-{np.max(mae):.1f}), "
            f"training {np.mean(train):.0f} s per run"
        )
    Path(args.out).write_text(
        json.dumps(
            {"molecule": "methanol", "reference": "xtb", "preset": "quick", "summary": summary, "runs": rows},
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
