"""A committee's training step with its members stacked into one vmapped model (issue 24).

One optimiser step of every member of a 3-member committee, on the same batches, three ways,
stepped in turn batch by batch in one process (so the load of a shared machine hits all alike):

- ``before``: the members one after another on today's code path before issue 24
  (:func:`specml.models.fast_training.reference_training`);
- ``fast``: the members one after another on the training fast path (what the workflow runs);
- ``stacked``: the members together (:class:`specml.models.stacked.StackedPotentials`, fast
  path patched): one collation, one vmapped forward, force backward and parameter backward.

Then whole committee fits in one process (``train_committee`` without the dipole model, the three
ways, interleaved rounds): what a user pays, graphs, model building and validation included.

Each step is the whole of a training step: collation (once per member for separate fits, once
for the stacked members), ``to_dict``, energies and forces, MACE's weighted
energy + forces loss, its backward, gradient clipping, AMSGrad Adam and the weight EMA, for
each member with its own optimiser and EMA. Also checked: after the steps the stacked members'
weights equal the ``fast`` members' (the same fit, to float32 round-off).

Data: methanol's GFN2-xTB initial labels (as ``training_cost.py``), or ``--labels`` a run's
``labels.db`` or a stage artifact's ``labels/iter_NNN.extxyz.gz`` (``--limit`` structures). Writes ``docs/results/stacked_committee.json``.

    python benchmarks/stacked_committee.py
    python benchmarks/stacked_committee.py --epochs 2 --fit-epochs 5 --limit 400 --out docs/results/stacked_committee_train24.json \
        --labels benchmarks/artifacts/palirs_full/xtb/labels/iter_000.extxyz.gz
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "docs" / "results" / "stacked_committee.json"
PATHS = ("before", "fast", "stacked")


class Committee:
    """``n`` members (seeds 0..n-1) with their own loss, AMSGrad Adam and EMA, stepped one way."""

    def __init__(self, preset, prepared, n: int, path: str):
        from mace.modules.loss import WeightedEnergyForcesLoss
        from torch_ema import ExponentialMovingAverage

        from specml.models.fast_training import reference_training, training_fast_path
        from specml.models.stacked import MemberSumLoss, StackedPotentials
        from specml.models.training import build_energy_model

        self.models = []
        for seed in range(n):
            torch.manual_seed(seed)
            self.models.append(build_energy_model(preset, prepared))
        self.preset = preset
        self.loss_fn = WeightedEnergyForcesLoss(preset.energy_weight, preset.forces_weight)
        self.summed_loss = MemberSumLoss(self.loss_fn)  # the stacked fit's loss
        self.optimizers = [
            torch.optim.Adam(m.parameters(), lr=preset.learning_rate, amsgrad=True) for m in self.models
        ]
        self.emas = [ExponentialMovingAverage(m.parameters(), decay=preset.ema_decay) for m in self.models]
        self.patches = contextlib.ExitStack()
        with reference_training() if path == "before" else contextlib.nullcontext():
            for m in self.models:
                self.patches.enter_context(training_fast_path(m))
        self.stacked = StackedPotentials(self.models) if path == "stacked" else None
        self.seconds: list[float] = []

    def step(self, batch, collate_s: float) -> None:
        """One step of every member; ``collate_s`` is the collation of one batch, which separate
        fits pay once per member (each its own loader) and the stacked members once."""
        start = time.perf_counter() - collate_s * (1 if self.stacked is not None else len(self.models))
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        if self.stacked is not None:
            energies, forces = self.stacked.energy_forces(batch.to_dict())
            self.summed_loss(batch, {"energy": energies, "forces": forces}).backward()
        else:
            for model in self.models:
                out = model(batch.to_dict(), training=True, compute_force=True)
                self.loss_fn(batch, out).backward()
        for model, optimizer, ema in zip(self.models, self.optimizers, self.emas, strict=True):
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.preset.clip_grad)
            optimizer.step()
            ema.update()
        self.seconds.append(time.perf_counter() - start)


def time_committee_fits(data: list, preset, members: int, epochs: int, rounds: int) -> dict:
    """Wall time (s) of whole committee fits in one process (``train_committee`` without the
    dipole model: graphs, models, epochs with validation), the three ways, interleaved."""
    import dataclasses

    from specml.models.fast_training import reference_training

    preset = dataclasses.replace(preset, epochs=epochs, max_steps=None, patience=10 * epochs)
    seeds = tuple(range(members))
    ways = {
        "before": lambda: _fit_with(reference_training(), data, preset, seeds, stacked=False),
        "fast": lambda: _fit_with(contextlib.nullcontext(), data, preset, seeds, stacked=False),
        "stacked": lambda: _fit_with(contextlib.nullcontext(), data, preset, seeds, stacked=True),
    }
    walls: dict[str, list[float]] = {way: [] for way in ways}
    losses: dict[str, float] = {}
    for r in range(rounds):
        for way in PATHS if r % 2 == 0 else PATHS[::-1]:
            start = time.perf_counter()
            committee = ways[way]()
            walls[way].append(time.perf_counter() - start)
            # A stacked fit's loss is the members' sum (one history for all): per member here.
            losses[way] = statistics.mean(
                h["best_valid_loss"] / len(h.get("stacked_seeds", [None]))
                for h in committee.histories["energy"]
            )
    median = {way: statistics.median(w) for way, w in walls.items()}
    return {
        "epochs": epochs,
        "rounds": rounds,
        "wall_s": walls,
        "median_wall_s": median,
        "speedup_vs_before": median["before"] / median["stacked"],
        "speedup_vs_fast": median["fast"] / median["stacked"],
        "best_valid_loss_per_member": losses,
    }


def _fit_with(context, data, preset, seeds, stacked: bool):
    from specml.models import train_committee

    with context:
        return train_committee(
            data, preset, len(seeds), seeds, device="cpu", train_dipole=False, stacked=stacked
        )


def load_data(labels: str | None, limit: int | None) -> list:
    from specml.dataset.database import LabelDatabase

    if labels and labels.endswith(".extxyz.gz"):  # a stage artifact's labels
        from specml.dataset.label_files import read_label_file

        with tempfile.TemporaryDirectory() as tmp:
            database = LabelDatabase(Path(tmp) / "labels.db")
            read_label_file(Path(labels), database)
            data = database.labelled_atoms()
    elif labels:
        data = LabelDatabase(labels).labelled_atoms()
    else:
        from training_cost import methanol_initial_labels

        with tempfile.TemporaryDirectory() as tmp:
            data = methanol_initial_labels(Path(tmp))
    if limit:
        step = max(1, len(data) // limit)  # spread over the molecules of a multi-molecule run
        data = data[::step][:limit]
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--labels", help="labels.db or labels/iter_NNN.extxyz.gz (default: methanol's initial labels)"
    )
    parser.add_argument("--limit", type=int, help="use this many structures of --labels, spread over it")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed, after one warm-up epoch")
    parser.add_argument("--fit-epochs", type=int, default=10, help="epochs of each whole committee fit")
    parser.add_argument(
        "--fit-rounds", type=int, default=3, help="interleaved rounds of whole fits (0: none)"
    )
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    if args.members < 2 or args.epochs < 1 or (args.limit is not None and args.limit < 2):
        parser.error("--members >= 2, --epochs >= 1 and --limit >= 2 are needed")
    torch.set_num_threads(1)

    from specml.models import get_preset
    from specml.models.data import make_loader
    from specml.models.training import prepare_data

    data = load_data(args.labels, args.limit)
    preset = get_preset("default")
    prepared = prepare_data(data, ("energy", "forces"), preset.r_max, torch.float32)
    committees = {path: Committee(preset, prepared, args.members, path) for path in PATHS}
    loader = make_loader(prepared.train, preset.batch_size, shuffle=True, seed=0)
    for epoch in range(args.epochs + 1):
        batches, i = iter(loader), 0
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            collate_s = time.perf_counter() - start
            if batch is None:
                break
            for path in PATHS if i % 2 == 0 else PATHS[::-1]:
                committees[path].step(batch, collate_s)
            i += 1
        if epoch == 0:  # warm-up epoch: not timed
            for committee in committees.values():
                committee.seconds.clear()
    ms = {path: 1000.0 * statistics.median(c.seconds) for path, c in committees.items()}
    total = {path: sum(c.seconds) for path, c in committees.items()}
    drift = max(
        float((a.detach() - b.detach()).abs().max() / b.detach().abs().max().clamp_min(1e-12))
        for fast, stacked in zip(committees["fast"].models, committees["stacked"].models, strict=True)
        for a, b in zip(stacked.parameters(), fast.parameters(), strict=True)
    )
    fits = (
        time_committee_fits(data, preset, args.members, args.fit_epochs, args.fit_rounds)
        if args.fit_rounds
        else None
    )
    out = {
        "n_structures": len(data),
        "labels": args.labels or "methanol initial labels (GFN2-xTB)",
        "mean_atoms_per_structure": sum(len(a) for a in data) / len(data),
        "preset": preset.name,
        "batch_size": preset.batch_size,
        "members": args.members,
        "steps_timed": len(committees["fast"].seconds),
        "torch_threads": 1,
        "load_average_1min": os.getloadavg()[0],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "ms_per_committee_step_median": ms,
        "seconds_total": total,
        "speedup_vs_before": ms["before"] / ms["stacked"],
        "speedup_vs_fast": ms["fast"] / ms["stacked"],
        "speedup_fast_vs_before": ms["before"] / ms["fast"],
        "max_relative_weight_difference_stacked_vs_fast": drift,
        "committee_fits": fits,
        "note": "one optimiser step of every member on the same batch, the three paths stepped in turn "
        "batch by batch (order alternating) in one process on a shared machine; medians over the timed steps",
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "ms_per_committee_step_median",
                    "speedup_vs_before",
                    "speedup_vs_fast",
                    "max_relative_weight_difference_stacked_vs_fast",
                    "committee_fits",
                )
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
