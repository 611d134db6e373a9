"""Which training recipe gives accurate harmonic frequencies? One potential, stored labels.

Trains one MACE potential on the labels of a workflow run (``labels.db``, up to a
given active-learning iteration) with preset overrides, optionally fine-tunes it on
a later iteration's data (warm start), and reports validation errors and the ML
harmonic-frequency MAE against the run's reference frequencies. One result per
invocation is appended to ``docs/results/training_recipe.jsonl``; the choices behind
the ``default`` preset (see ``specml/models/presets.py``) come from these runs.

    .venv/bin/python benchmarks/training_recipe.py RUN_DIR NAME 0 '{"epochs": 600}'
    .venv/bin/python benchmarks/training_recipe.py RUN_DIR NAME 0:8 '{"warm": {"epochs": 100}}'
    .venv/bin/python benchmarks/training_recipe.py RUN_DIR NAME 2 '{"max_L": 1}' --molecule ethylene

``--molecule`` takes one molecule's labels and reference frequencies from a run of several
molecules (default: the run's first molecule, all labels).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Every invocation appends its row here; benchmarks/palirs.py reads this run's rows from it.
RESULTS = ROOT / "docs" / "results" / "training_recipe.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a workflow run directory (labels.db, molecules/00_*.json)")
    parser.add_argument("name")
    parser.add_argument(
        "iterations", help="train on iterations <= N; 'N:M' then fine-tunes on iterations <= M"
    )
    parser.add_argument(
        "overrides",
        nargs="?",
        default="{}",
        help='preset overrides as JSON; "base" (preset name), "seed" and "warm" (overrides of '
        "the fine-tuning stage) are special",
    )
    parser.add_argument("--molecule", default=None, help="one molecule of a multi-molecule run (its name)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from ase import Atoms

    from specml.dataset.database import LabelDatabase
    from specml.models import Committee, get_preset, train_potential
    from specml.workflow.evaluation import harmonic_errors, ml_harmonic_analysis

    run = Path(args.run_dir)
    overrides = json.loads(args.overrides)
    base, seed, warm = overrides.pop("base", "default"), overrides.pop("seed", 0), overrides.pop("warm", None)
    first, _, second = args.iterations.partition(":")
    molecules = [json.loads(f.read_text()) for f in sorted((run / "molecules").glob("*.json"))]
    molecule = (
        next((m for m in molecules if m["name"] == args.molecule), None) if args.molecule else molecules[0]
    )
    if molecule is None:
        parser.error(
            f"no molecule {args.molecule!r} in {run}; it has {', '.join(m['name'] for m in molecules)}"
        )
    labels = LabelDatabase(run / "labels.db").labelled_atoms(
        **({"molecule": args.molecule} if args.molecule else {})
    )

    def upto(iteration: int) -> list:
        return [a for a in labels if int(a.info.get("iteration", 0)) <= iteration]

    minimum = Atoms(molecule["symbols"], positions=molecule["positions"])
    reference = np.array(molecule["frequencies_cm1"])

    data = upto(int(first))
    started = time.perf_counter()
    model, history = train_potential(data, get_preset(base, **overrides), seed=seed, dtype=args.dtype)
    times = [time.perf_counter() - started]
    if second:
        data = upto(int(second))
        started = time.perf_counter()
        model, history = train_potential(
            data, get_preset(base, **(warm or {})), seed=seed, dtype=args.dtype, init_model=model
        )
        times.append(time.perf_counter() - started)
    ml = ml_harmonic_analysis(Committee([model], None, get_preset(base)), minimum)
    result = {
        # "molecule" only with --molecule: without it the labels are the whole run's
        "name": args.name,
        "run": str(run),
        "molecule": args.molecule,
        "iterations": args.iterations,
        "n_structures": len(data),
        "base": base,
        "overrides": overrides,
        "warm": warm,
        "seed": seed,
        "dtype": args.dtype,
        "train_time_s": times,
        "epochs_run": history["epochs_run"],
        "best_epoch": history["best_epoch"],
        "valid_mae": history["valid_mae"],
        **harmonic_errors(ml.frequencies_cm1, reference),
        "frequency_errors_cm1": (np.sort(ml.frequencies_cm1) - np.sort(reference)).round(1).tolist(),
        "load_average_1min": os.getloadavg()[0],
    }
    print(json.dumps(result))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
