"""Committee training cost: where one training step's time goes, today's path against the fast
path (issue 24), and both against ``mace_run_train`` on the same model, data and epochs.

Data: methanol's GFN2-xTB labels (the 121 initial normal-mode structures of the workflow), or a
run's ``labels.db``. Model: the ``default`` potential preset. In one process and one run, side
by side (interleaved, ``--repeats`` rounds; speedups from the median round of each path):

- ``before``: ``train_potential`` on today's code path (:func:`specml.models.fast_training.reference_training`);
- ``fast``: ``train_potential`` as the workflow runs it now (the training fast path);
- ``mace_run_train``: the mace-torch CLI with the same architecture, loss weights, optimiser,
  EMA, E0s, scaling, batch size, precision, epochs and train/validation split (a subprocess,
  one thread, wall time including its start-up, as a user pays it).

Also a profile of one step (ms per step, both paths stepped in turn on the same batches): data loading (collation), graph
building (once per fit, per structure), forward (energy), force backward (``create_graph``),
parameter backward, optimiser (clipping + AMSGrad), EMA, and one checkpoint write; and the cost
of one active-learning iteration (3 members + dipole model, on one core) from scratch and
warm-started, from the fast path's seconds per epoch. Writes
``docs/results/training_cost.json`` with ``speedup_vs_before`` and ``speedup_vs_mace_run_train``.

    python benchmarks/training_cost.py [--labels RUN/labels.db] [--epochs 10] [--repeats 4]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "training_cost.json"


def methanol_initial_labels(run_dir: Path) -> list:
    """The workflow's iteration-0 data for methanol: xTB minimum + normal-mode displacements."""
    from specml.molecules import load_molecules
    from specml.workflow import IRWorkflow, get_workflow_config
    from specml.workflow.labelling import label_candidates

    workflow = IRWorkflow(load_molecules("CO"), run_dir, get_workflow_config("default"), show_progress=False)
    label_candidates(workflow.initial_candidates(), workflow.database, workflow.reference, workflow.executor)
    return workflow.database.labelled_atoms()


def path_context(path: str):
    from specml.models.fast_training import reference_training

    return reference_training() if path == "before" else contextlib.nullcontext()


def time_fit(data: list, preset, path: str) -> dict:
    """Wall and CPU time of one ``train_potential`` fit (graphs, model, epochs), and its history."""
    from specml.models import train_potential

    torch.set_num_threads(1)
    wall, cpu = time.perf_counter(), time.process_time()
    with path_context(path):
        _, history = train_potential(data, preset, seed=0, dtype="float32")
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "train_time_s": history["train_time_s"],
        "epochs_run": history["epochs_run"],
        "breakdown_s": history["time_breakdown_s"],
        "final_valid_loss": history["valid_loss"][-1],
        "valid_mae": history["valid_mae"],
    }


def iteration_cost(data: list, preset, base, fast: dict) -> dict:
    """Cost of one active-learning iteration (members + dipole model) on the fast path, from the
    measured seconds per epoch: from scratch (the preset's epochs) and warm-started."""
    from specml.models import train_dipole_model
    from specml.workflow.config import WorkflowConfig

    torch.set_num_threads(1)
    _, dipole = train_dipole_model(data, preset, seed=0, dtype="float32")
    config = WorkflowConfig()
    energy_s = fast["train_time_s"] / fast["epochs_run"]
    dipole_s = dipole["train_time_s"] / dipole["epochs_run"]
    per_epoch = config.n_committee * energy_s + dipole_s
    return {
        "energy_s_per_epoch": energy_s,
        "dipole_s_per_epoch": dipole_s,
        "iteration_cost_scratch_s": per_epoch * base.epochs,
        "iteration_cost_warm_start_s": per_epoch * config.warm_start_epochs,
        "scratch_epochs": base.epochs,
        "warm_start_epochs": config.warm_start_epochs,
    }


T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time (s)."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


PHASES = ("data", "forward", "force_backward", "parameter_backward", "optimizer", "ema")


class _Fit:
    """One model with its loss, optimiser and EMA, stepped phase by phase with timings (ms)."""

    def __init__(self, preset, prepared, fast: bool):
        from mace.modules.loss import WeightedEnergyForcesLoss
        from torch_ema import ExponentialMovingAverage

        from specml.models.fast_training import training_fast_path
        from specml.models.training import build_energy_model

        torch.manual_seed(0)
        self.model = build_energy_model(preset, prepared)
        self.preset = preset
        self.loss_fn = WeightedEnergyForcesLoss(preset.energy_weight, preset.forces_weight)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=preset.learning_rate, amsgrad=True)
        self.ema = ExponentialMovingAverage(self.model.parameters(), decay=preset.ema_decay)
        self.path = contextlib.ExitStack()
        with path_context("fast" if fast else "before"):
            self.path.enter_context(training_fast_path(self.model))
        self.ms = dict.fromkeys(PHASES, 0.0)
        self.steps = 0

    def step(self, batch, t_data: float, record: bool) -> None:
        model, preset = self.model, self.preset
        inputs, t_dict = _timed(lambda: batch.to_dict())
        self.optimizer.zero_grad(set_to_none=True)
        _, t_energy = _timed(lambda: model(inputs, training=True, compute_force=False))
        out, t_full = _timed(lambda: model(inputs, training=True, compute_force=True))
        _, t_backward = _timed(self.loss_fn(batch, out).backward)
        _, t_opt = _timed(
            lambda: (
                torch.nn.utils.clip_grad_norm_(model.parameters(), preset.clip_grad),
                self.optimizer.step(),
            )
        )
        _, t_ema = _timed(self.ema.update)
        if record:
            self.steps += 1
            times = (t_data + t_dict, t_energy, t_full - t_energy, t_backward, t_opt, t_ema)
            for phase, dt in zip(PHASES, times, strict=True):
                self.ms[phase] += 1000.0 * dt


def profile_steps(data: list, preset, epochs: int) -> dict:
    """Milliseconds per training step of each phase, today's path and the fast path stepped in
    turn on the same batches (so load on the machine hits both alike), over ``epochs`` epochs
    after a warm-up epoch; plus graph building per structure and one checkpoint write."""
    from specml.checkpoint import CHECKPOINT_INTERVAL_S
    from specml.models.data import make_loader
    from specml.models.training import Checkpoint, prepare_data

    torch.set_num_threads(1)
    prepared, graph_s = _timed(lambda: prepare_data(data, ("energy", "forces"), preset.r_max, torch.float32))
    fits = {"before": _Fit(preset, prepared, fast=False), "fast": _Fit(preset, prepared, fast=True)}
    loader = make_loader(prepared.train, preset.batch_size, shuffle=True, seed=0)
    for epoch in range(epochs + 1):
        iterator = iter(loader)

        def fetch(it=iterator):
            return next(it, None)

        while True:
            batch, t_data = _timed(fetch)
            if batch is None:
                break
            for fit in fits.values():
                fit.step(batch, t_data, record=epoch > 0)
    fast = fits["fast"]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Checkpoint(Path(tmp) / "fit.pt", {"benchmark": True})
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(fast.optimizer)
        state = {"model": fast.model, "optimizer": fast.optimizer, "scheduler": scheduler, "ema": fast.ema}
        _, t_checkpoint = _timed(lambda: checkpoint.save({**state, "generator": None}, epoch=1, history={}))
    for fit in fits.values():
        fit.path.close()
    out = {
        path: {
            "ms_per_step": {k: v / fit.steps for k, v in fit.ms.items()},
            "ms_per_step_total": sum(fit.ms.values()) / fit.steps,
        }
        for path, fit in fits.items()
    }
    return {
        **out,
        "steps": fast.steps,
        "graph_building_ms_per_structure": 1000.0 * graph_s / len(data),
        "checkpoint_write_ms": 1000.0 * t_checkpoint,
        "checkpoint_interval_s": CHECKPOINT_INTERVAL_S,
    }


def mace_cli_args(preset, work: Path, epochs: int) -> list[str]:
    """``mace_run_train`` options reproducing ``train_potential``'s model and fit."""
    return [
        "--name=bench",
        f"--work_dir={work}",
        f"--train_file={work / 'train.xyz'}",
        f"--valid_file={work / 'valid.xyz'}",
        "--energy_key=REF_energy",
        "--forces_key=REF_forces",
        "--model=ScaleShiftMACE",
        "--interaction_first=RealAgnosticResidualInteractionBlock",
        "--interaction=RealAgnosticResidualInteractionBlock",
        f"--num_channels={preset.num_channels}",
        f"--max_L={preset.max_L}",
        f"--r_max={preset.r_max}",
        f"--num_interactions={preset.num_interactions}",
        f"--correlation={preset.correlation}",
        f"--max_ell={preset.max_ell}",
        f"--num_radial_basis={preset.num_radial_basis}",
        f"--num_cutoff_basis={preset.num_cutoff_basis}",
        f"--radial_MLP={list(preset.radial_MLP)}",
        f"--MLP_irreps={preset.MLP_irreps}",
        f"--batch_size={preset.batch_size}",
        f"--valid_batch_size={max(preset.batch_size, 64)}",
        f"--lr={preset.learning_rate}",
        "--amsgrad",
        "--ema",
        f"--ema_decay={preset.ema_decay}",
        "--loss=weighted",
        f"--energy_weight={preset.energy_weight}",
        f"--forces_weight={preset.forces_weight}",
        "--E0s=average",
        "--scaling=rms_forces_scaling",
        f"--max_num_epochs={epochs}",
        f"--patience={10 * epochs}",
        f"--clip_grad={preset.clip_grad}",
        "--scheduler=ReduceLROnPlateau",
        "--eval_interval=1",
        "--error_table=PerAtomMAE",
        "--device=cpu",
        "--default_dtype=float32",
        "--seed=0",
    ]


def time_mace_run_train(data: list, preset, epochs: int) -> dict:
    """Wall and CPU time of ``mace_run_train`` on the same split (``train_valid_split`` by key)."""
    from ase.io import write

    from specml.models.data import train_valid_split

    executable = shutil.which("mace_run_train") or str(Path(sys.executable).parent / "mace_run_train")
    keys = [a.info["key"] for a in data]
    train_idx, valid_idx = train_valid_split(len(data), 0, preset.valid_fraction, keys)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, idx in (("train", train_idx), ("valid", valid_idx)):
            images = []
            for i in idx:
                atoms = data[i].copy()
                atoms.info = {"REF_energy": data[i].info["energy"]}
                atoms.arrays = {k: v for k, v in atoms.arrays.items() if k in ("numbers", "positions")}
                atoms.arrays["REF_forces"] = data[i].arrays["forces"]
                images.append(atoms)
            write(work / f"{name}.xyz", images, format="extxyz")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        proc = subprocess.run(
            [executable, *mace_cli_args(preset, work, epochs)], capture_output=True, text=True, env=env
        )
        wall = time.perf_counter() - start
        usage = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"mace_run_train failed: {proc.stderr.strip().splitlines()[-1:]}")
    return {
        "wall_s": wall,
        "children_cpu_s": usage.children_user + usage.children_system,
        "epochs_run": epochs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labels", help="labels.db of a workflow run (default: methanol's initial labels)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every fit")
    parser.add_argument(
        "--repeats", type=int, default=4, help="interleaved rounds (speedups use the medians)"
    )
    parser.add_argument("--profile-epochs", type=int, default=5, help="epochs of the step profile")
    parser.add_argument("--no-mace-run-train", action="store_true", help="leave out the mace-torch CLI")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    if min(args.epochs, args.repeats, args.profile_epochs) < 1:
        parser.error("--epochs, --repeats and --profile-epochs must be >= 1")
    torch.set_num_threads(1)

    from specml.dataset.database import LabelDatabase
    from specml.models import get_preset

    if args.labels:
        data = LabelDatabase(args.labels).labelled_atoms()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = methanol_initial_labels(Path(tmp))
    base = get_preset("default")
    preset = dataclasses.replace(base, epochs=args.epochs, max_steps=None, patience=10 * args.epochs)
    paths = ["before", "fast"] + ([] if args.no_mace_run_train else ["mace_run_train"])
    rounds: dict[str, list[dict]] = {p: [] for p in paths}
    for r in range(args.repeats):
        for path in paths if r % 2 == 0 else paths[::-1]:
            row = (
                time_mace_run_train(data, preset, args.epochs)
                if path == "mace_run_train"
                else time_fit(data, preset, path)
            )
            rounds[path].append(row)
            print(f"round {r} {path}: {row['wall_s']:.1f} s for {args.epochs} epochs", flush=True)
    best = {p: min(rows, key=lambda row: row["wall_s"]) for p, rows in rounds.items()}
    median = {p: statistics.median(row["wall_s"] for row in rows) for p, rows in rounds.items()}
    before_loss, fast_loss = best["before"]["final_valid_loss"], best["fast"]["final_valid_loss"]
    iteration = iteration_cost(data, preset, base, best["fast"])
    profile = profile_steps(data, preset, args.profile_epochs)
    out = {
        "n_structures": len(data),
        "preset": preset.as_dict(),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "torch_threads": 1,
        "load_average_1min": os.getloadavg()[0],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "fits": rounds,
        "best_wall_s": {p: row["wall_s"] for p, row in best.items()},
        "median_wall_s": median,
        # on the medians of the interleaved rounds: the load of a shared machine moves single rounds
        "speedup_vs_before": median["before"] / median["fast"],
        "speedup_vs_mace_run_train": (
            median["mace_run_train"] / median["fast"] if "mace_run_train" in median else None
        ),
        "speedup_vs_before_best_rounds": best["before"]["wall_s"] / best["fast"]["wall_s"],
        "speedup_per_step_vs_before": profile["before"]["ms_per_step_total"]
        / profile["fast"]["ms_per_step_total"],
        "valid_loss_before_fast": [before_loss, fast_loss],
        "valid_loss_relative_difference": abs(fast_loss - before_loss) / abs(before_loss),
        **iteration,
        "profile": profile,
        "note": "wall times of whole fits (graph building, model, epochs with validation) on the same data, "
        "preset and epochs, interleaved in one run on a shared 2-core machine; mace_run_train includes its "
        "start-up, file I/O and logging, as a user of the CLI pays it",
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    keys = ("best_wall_s", "speedup_vs_before", "speedup_per_step_vs_before", "speedup_vs_mace_run_train")
    print(json.dumps({k: out[k] for k in keys}))
    for path in ("before", "fast"):
        steps = {k: round(v, 2) for k, v in profile[path]["ms_per_step"].items()}
        print(path, steps, f"total {profile[path]['ms_per_step_total']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
