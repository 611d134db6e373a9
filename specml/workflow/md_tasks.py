"""ML-MD tasks run through the executor: exploration (active learning) and production.

Each task loads the committee from its model directory, so the same function
runs in-process or on a Dask worker; all replicas of a task advance together in
the batched engine. With ``settings["checkpoint"]`` (a file path) a task saves
its engine state and frames every few minutes and when it ends, so a killed task
resumes exactly where it stopped (production MD of a benchmark runs for hours).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from specml.checkpoint import PeriodicCheckpoint
from specml.dynamics.ase_md import initialize_velocities
from specml.dynamics.batched import BatchedMD
from specml.dynamics.ring_polymer import RingPolymerMD
from specml.executor import Executor, make_executor, progress_bar
from specml.molecules.inputs import bare_copy


@dataclass
class Replica:
    """One trajectory: a molecule at a temperature, with its own random stream."""

    molecule: str
    atoms: Atoms  # momenta set for a continuation; otherwise drawn from Maxwell-Boltzmann
    temperature_k: float
    seed: int


def replica_seed(base_seed: int, stage: str, molecule: str, temperature_k: float, index: int) -> int:
    """The seed of one MD replica's random stream, distinct for every stage (``exploration:<i>``,
    ``test_set``, ``production``), molecule, temperature and replica index, and the same whatever
    else runs in its batch. Offsets added to one base seed collided: exploration of iteration 5
    replayed production's streams, and every production temperature shared one set."""
    # sha256, not hash(): Python's string hash differs between processes.
    text = f"{base_seed}|{stage}|{molecule}|{float(temperature_k):.6g}|{index}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _start(replica: Replica) -> Atoms:
    atoms = bare_copy(replica.atoms)  # isotope masses set the dynamics
    momenta = replica.atoms.get_momenta() if replica.atoms.has("momenta") else None
    if momenta is not None and np.any(momenta):
        atoms.set_momenta(momenta)
    else:
        initialize_velocities(atoms, replica.temperature_k, replica.seed)
    return atoms


def _committee(models_dir):
    from specml.models import Committee

    return Committee.load(models_dir)


#: Runs of at least this many steps use torch.compile'd models (minutes of compilation, then
#: ~1.5x faster steps on a CPU; see docs/results/md_throughput.json); shorter runs stay eager.
COMPILE_MIN_STEPS = 20_000


def _engine(
    committee,
    starts,
    replicas,
    friction,
    precision,
    record_interval,
    timestep_fs,
    uncertainty_stop,
    record_positions,
    compile_models=False,
    beads=1,
):
    """An engine without dipoles (exploration, thermalisation); production continues one via
    from_state. With ``beads`` > 1 a ring-polymer engine (quantum nuclei, thermostatted beads)."""
    settings = dict(
        temperatures_K=[r.temperature_k for r in replicas],
        timestep_fs=timestep_fs,
        friction_per_fs=friction,
        seeds=[r.seed for r in replicas],
        uncertainty_threshold=uncertainty_stop,
        record_interval=record_interval,
        record_positions=record_positions,
        precision=precision,
        compile_models=compile_models,
    )
    if beads > 1:
        return RingPolymerMD(committee.energy_models, starts, beads=beads, **settings)
    return BatchedMD(committee.energy_models, starts, ensemble="langevin", **settings)


#: Steps per engine call when progress is reported or snapshots are taken (runs continue
#: exactly across calls).
CHUNK_STEPS = 500


def _run_chunked(
    engine: BatchedMD | RingPolymerMD,
    n_steps: int,
    progress=None,
    done: int = 0,
    total: int | None = None,
    snapshot=None,
    parts: list | None = None,
):
    """``engine.run(n_steps)``, in chunks when ``progress(steps_done, total)`` or
    ``snapshot(engine, parts, steps_run)`` is given; returns the frames of ``parts`` (an
    earlier, interrupted call's) followed by this call's, concatenated."""
    total = total if total is not None else done + n_steps
    parts = list(parts or [])
    chunk = n_steps if progress is None and snapshot is None else CHUNK_STEPS
    start = 0
    while True:
        steps = min(chunk, n_steps - start)
        parts.append(engine.run(steps))
        start += steps
        if snapshot is not None and start < n_steps:
            snapshot(engine, parts, start)
        if progress is not None:
            progress(done + start, total)
        if start >= n_steps:
            return _concatenate(parts)


def _task_checkpoint(
    kind: str, models_dir, replicas: list[Replica], settings: dict
) -> PeriodicCheckpoint | None:
    """The snapshot file ``settings["checkpoint"]`` of one task, named by everything that shapes its frames."""
    path = settings.get("checkpoint")
    if path is None:
        return None
    from specml.models.committee import committee_digest

    def start_digest(r: Replica) -> str:
        momenta = r.atoms.get_momenta() if r.atoms.has("momenta") else np.zeros(0)
        masses = (
            r.atoms.get_masses() if r.atoms.has("masses") else np.zeros(0)
        )  # an isotopologue is another start
        return hashlib.sha256(
            b"".join(np.ascontiguousarray(a).tobytes() for a in (r.atoms.get_positions(), momenta, masses))
        ).hexdigest()

    fingerprint = {
        "task": kind,
        "committee": committee_digest(models_dir),
        "replicas": [(r.molecule, float(r.temperature_k), int(r.seed), start_digest(r)) for r in replicas],
        "settings": {k: v for k, v in settings.items() if k not in ("progress", "checkpoint")},
    }
    return PeriodicCheckpoint(path, fingerprint, what="MD")


def _snapshot_writer(checkpoint: PeriodicCheckpoint | None, phase: str, done_before: int = 0):
    """A ``snapshot`` callback for :func:`_run_chunked` that saves the engine and frames when due."""
    if checkpoint is None:
        return None

    def snapshot(engine: BatchedMD | RingPolymerMD, parts: list, steps_run: int) -> None:
        if checkpoint.due():
            parts[:] = (
                [_concatenate(parts)] if phase != "thermalization" else []
            )  # frames are kept as one block
            checkpoint.write(
                {
                    "phase": phase,
                    "steps_done": done_before + steps_run,
                    "state": engine.state_dict(),
                    "frames": parts[0] if parts else None,
                }
            )

    return snapshot


def _concatenate(parts):
    """Join the per-call trajectories of one engine into one."""
    from dataclasses import replace

    first = parts[-1]
    replicas = []
    for i, last in enumerate(first.replicas):
        pieces = [p.replicas[i] for p in parts]
        replicas.append(
            replace(
                last,
                **{
                    name: _concatenate_field(pieces, name)
                    for name in (
                        "times_fs",
                        "steps",
                        "energies",
                        "temperatures",
                        "rel_uncertainty",
                        "force_std",
                        "dipoles",
                        "positions",
                    )
                },
            )
        )
    return replace(first, replicas=replicas, steps_run=sum(p.steps_run for p in parts))


def _concatenate_field(pieces, name):
    """One field of a replica's trajectory pieces joined in time (None where no piece has it)."""
    arrays = [getattr(piece, name) for piece in pieces if getattr(piece, name) is not None]
    return np.concatenate(arrays) if arrays else None


def _resume(checkpoint: PeriodicCheckpoint | None) -> dict:
    """The saved progress of a task: phase, steps done, engine state and frames (empty if none)."""
    payload = checkpoint.read() if checkpoint is not None else None
    return payload or {"phase": None, "steps_done": 0, "state": None, "frames": None}


def exploration_task(args) -> list[dict]:
    """Exploration MD; per replica: recorded positions and uncertainties, final state, stop info."""
    models_dir, replicas, settings = args
    checkpoint = _task_checkpoint("exploration", models_dir, replicas, settings)
    saved = _resume(checkpoint)
    if saved["phase"] == "done":
        return saved["output"]
    committee = _committee(models_dir)
    if saved["phase"] == "exploration":
        engine = BatchedMD.from_state(
            saved["state"],
            committee.energy_models,
            record_interval=settings["record_interval"],
            record_positions=True,
        )
    else:
        engine = _engine(
            committee,
            [_start(r) for r in replicas],
            replicas,
            settings["friction_per_fs"],
            settings["precision"],
            settings["record_interval"],
            settings["timestep_fs"],
            settings["uncertainty_stop"],
            record_positions=True,
        )
    done = saved["steps_done"]
    trajectory = _run_chunked(
        engine,
        settings["n_steps"] - done,
        settings.get("progress"),
        done,
        settings["n_steps"],
        _snapshot_writer(checkpoint, "exploration", done),
        [saved["frames"]] if saved["frames"] is not None else None,
    )
    out = []
    for replica, frames, final in zip(replicas, trajectory.replicas, trajectory.final_atoms, strict=True):
        out.append(
            {
                "molecule": replica.molecule,
                "temperature_k": replica.temperature_k,
                "positions": frames.positions,
                "uncertainty": frames.rel_uncertainty,
                "steps": frames.steps,
                "stopped": frames.stopped,
                "stop_reason": frames.stop_reason,
                "stop_step": frames.stop_step,
                "final_positions": final.get_positions(),
                "final_momenta": final.get_momenta(),
                "symbols": final.get_chemical_symbols(),
            }
        )
    return _finished(checkpoint, out)


def _raman_polarizabilities(models_dir, trajectories, settings) -> list | None:
    if not settings.get("raman"):
        return None
    from specml.workflow.raman import polarizabilities_of_frames

    return polarizabilities_of_frames(models_dir, trajectories)


def production_task(args) -> list[dict]:
    """Thermalisation then production MD; per replica: dipoles every record interval, uncertainty."""
    models_dir, replicas, settings = args
    checkpoint = _task_checkpoint("production", models_dir, replicas, settings)
    saved = _resume(checkpoint)
    if saved["phase"] == "done":
        return saved["output"]
    committee = _committee(models_dir)
    n_thermal, n_production = settings["thermalization_steps"], settings["production_steps"]
    total = n_thermal + n_production
    compile_models = total >= COMPILE_MIN_STEPS
    progress = settings.get("progress")
    beads = settings.get("beads", 1)
    engine_class = RingPolymerMD if beads > 1 else BatchedMD
    thermalize: BatchedMD | RingPolymerMD
    if saved["phase"] != "production":
        if saved["phase"] == "thermalization":
            thermalize = engine_class.from_state(
                saved["state"],
                committee.energy_models,
                record_interval=max(1, n_thermal),
                record_positions=False,
                compile_models=compile_models,
            )
        else:
            thermalize = _engine(
                committee,
                [_start(r) for r in replicas],
                replicas,
                settings["friction_per_fs"],
                settings["precision"],
                max(1, n_thermal),
                settings["timestep_fs"],
                settings["uncertainty_stop"],
                record_positions=False,
                compile_models=compile_models,
                beads=beads,
            )
        done = saved["steps_done"]
        _run_chunked(
            thermalize,
            n_thermal - done,
            progress,
            done,
            total,
            _snapshot_writer(checkpoint, "thermalization", done),
        )
        # Production continues the thermalisation exactly: same state, forces and random streams
        # (a fresh engine with the same seeds would replay the thermalisation's Langevin kicks).
        saved = {"state": thermalize.state_dict(), "steps_done": 0, "frames": None}
    production = engine_class.from_state(
        saved["state"],
        committee.energy_models,
        dipole_model=committee.dipole_model,
        record_interval=settings["record_interval"],
        record_positions=bool(settings.get("raman")),  # Raman: polarizabilities of the frames
        compile_models=compile_models,
    )
    done = saved["steps_done"]
    trajectory = _run_chunked(
        production,
        n_production - done,
        progress,
        n_thermal + done,
        total,
        _snapshot_writer(checkpoint, "production", done),
        [saved["frames"]] if saved["frames"] is not None else None,
    )
    polarizabilities = _raman_polarizabilities(models_dir, trajectory.replicas, settings)
    out = []
    for r, (replica, frames) in enumerate(zip(replicas, trajectory.replicas, strict=True)):
        out.append(
            {
                "molecule": replica.molecule,
                "seed": replica.seed,
                "dipoles": frames.dipoles,
                "polarizabilities": polarizabilities[r] if polarizabilities else None,
                "temperatures": frames.temperatures,
                "uncertainty": frames.rel_uncertainty,
                "stopped": frames.stopped,
                "stop_reason": frames.stop_reason,
                "precision": trajectory.precision,
                "record_interval_fs": settings["record_interval"] * settings["timestep_fs"],
            }
        )
    return _finished(checkpoint, out)


def _finished(checkpoint: PeriodicCheckpoint | None, output: list[dict]) -> list[dict]:
    """Save a finished task's output, so a caller killed before persisting it loses nothing."""
    if checkpoint is not None:
        checkpoint.write({"phase": "done", "output": output})
    return output


def select_most_uncertain(uncertainty: np.ndarray, n: int, min_separation: int = 2) -> list[int]:
    """Indices of the ``n`` most uncertain finite frames, at least ``min_separation`` frames apart
    (neighbouring frames are nearly the same structure)."""
    order = np.argsort(-np.nan_to_num(np.asarray(uncertainty, dtype=float), nan=-np.inf))
    chosen: list[int] = []
    for index in order:
        if not np.isfinite(uncertainty[index]):
            continue
        if all(abs(int(index) - c) >= min_separation for c in chosen):
            chosen.append(int(index))
        if len(chosen) == n:
            break
    return sorted(chosen)


def run_md_tasks(
    executor: Executor,
    models_dir: Path,
    task,
    replicas: list[Replica],
    settings: dict,
    description: str,
    checkpoint_dir: Path | None = None,
) -> list[dict]:
    """Run MD ``task`` over ``replicas`` through the executor and return one output per replica,
    in the order of ``replicas``. In-process all replicas go into one batch; on Dask they are
    split into one batch per worker, balanced by atoms (one batch of many replicas costs far
    less per replica than many small ones).

    With ``checkpoint_dir`` each batch snapshots itself there (``batch_K.pt``) and a rerun
    resumes it; the caller removes the directory once it has persisted the results.
    """
    batches = balanced_batches(replicas, executor.n_workers()) if executor.distributed else [replicas]
    items = []
    for k, batch in enumerate(batches):
        checkpoint = (
            {"checkpoint": str(checkpoint_dir / f"batch_{k}.pt")} if checkpoint_dir is not None else {}
        )
        items.append((str(models_dir), batch, {**settings, **checkpoint}))
    if executor.distributed:
        outcomes = executor.map(task, items, description)
    else:
        # In-process the bar follows MD steps rather than tasks.
        with progress_bar(disable=not executor.show_progress) as bar:
            handle = bar.add_task(f"{description} ({len(replicas)} replicas)", total=None)
            report = lambda done, total: bar.update(handle, completed=done, total=total)  # noqa: E731
            quiet = make_executor(show_progress=False)
            models, batch, batch_settings = items[0]
            outcomes = quiet.map(task, [(models, batch, {**batch_settings, "progress": report})], description)
    position = {id(r): i for i, r in enumerate(replicas)}
    results: dict[int, dict] = {}
    for batch, outcome in zip(batches, outcomes, strict=True):
        if outcome.error is not None:
            raise outcome.error
        for replica, output in zip(batch, outcome.value, strict=True):
            results[position[id(replica)]] = output
    return [results[i] for i in range(len(replicas))]


def balanced_batches(replicas: list[Replica], n_batches: int) -> list[list[Replica]]:
    """Split ``replicas`` into at most ``n_batches`` non-empty batches of similar atom counts
    (largest first into the lightest batch); each batch keeps the input order."""
    n_batches = max(1, min(n_batches, len(replicas)))
    loads = [0] * n_batches
    members: list[list[int]] = [[] for _ in range(n_batches)]
    for index in sorted(range(len(replicas)), key=lambda i: -len(replicas[i].atoms)):
        lightest = loads.index(min(loads))
        loads[lightest] += len(replicas[index].atoms)
        members[lightest].append(index)
    return [[replicas[i] for i in sorted(batch)] for batch in members if batch]
