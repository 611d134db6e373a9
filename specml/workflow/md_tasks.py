"""ML-MD tasks run through the executor: exploration (active learning) and production.

Each task loads the committee from its checkpoint directory, so the same
function runs in-process or on a Dask worker; all replicas of a task advance
together in the batched engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from specml.dynamics.ase_md import initialize_velocities
from specml.dynamics.batched import BatchedMD


@dataclass
class Replica:
    """One trajectory: a molecule at a temperature, with its own random stream."""

    molecule: str
    atoms: Atoms  # momenta set for a continuation; otherwise drawn from Maxwell-Boltzmann
    temperature_k: float
    seed: int


def _start(replica: Replica) -> Atoms:
    atoms = Atoms(replica.atoms.get_chemical_symbols(), positions=replica.atoms.get_positions())
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


def _engine(committee, starts, replicas, friction, precision, record_interval, timestep_fs, uncertainty_stop,
            record_positions, compile_models=False):
    """An engine without dipoles (exploration, thermalisation); production continues one via from_state."""
    return BatchedMD(committee.energy_models, starts,
                     ensemble="langevin", temperatures_K=[r.temperature_k for r in replicas],
                     timestep_fs=timestep_fs, friction_per_fs=friction, seeds=[r.seed for r in replicas],
                     uncertainty_threshold=uncertainty_stop, record_interval=record_interval,
                     record_positions=record_positions, precision=precision, compile_models=compile_models)


#: Steps per engine call when a progress callback is given (runs continue exactly across calls).
PROGRESS_CHUNK_STEPS = 500


def _run_with_progress(engine: BatchedMD, n_steps: int, progress, done: int = 0, total: int | None = None):
    """``engine.run(n_steps)`` in chunks, reporting ``progress(steps_done, total)``; frames are concatenated."""
    total = total if total is not None else n_steps
    if progress is None or n_steps <= PROGRESS_CHUNK_STEPS:
        trajectory = engine.run(n_steps)
        if progress is not None:
            progress(done + n_steps, total)
        return trajectory
    parts = []
    for start in range(0, n_steps, PROGRESS_CHUNK_STEPS):
        parts.append(engine.run(min(PROGRESS_CHUNK_STEPS, n_steps - start)))
        progress(done + min(start + PROGRESS_CHUNK_STEPS, n_steps), total)
    return _concatenate(parts)


def _concatenate(parts):
    """Join the per-call trajectories of one engine into one."""
    from dataclasses import replace

    first = parts[-1]
    replicas = []
    for i, last in enumerate(first.replicas):
        pieces = [p.replicas[i] for p in parts]

        def cat(name):
            arrays = [getattr(piece, name) for piece in pieces if getattr(piece, name) is not None]
            return np.concatenate(arrays) if arrays else None

        replicas.append(replace(last, **{name: cat(name) for name in (
            "times_fs", "steps", "energies", "temperatures", "rel_uncertainty", "force_std", "dipoles", "positions")}))
    return replace(first, replicas=replicas, steps_run=sum(p.steps_run for p in parts))


def exploration_task(args) -> list[dict]:
    """Exploration MD; per replica: recorded positions and uncertainties, final state, stop info."""
    models_dir, replicas, settings = args
    committee = _committee(models_dir)
    engine = _engine(committee, [_start(r) for r in replicas], replicas, settings["friction_per_fs"],
                     settings["precision"], settings["record_interval"], settings["timestep_fs"],
                     settings["uncertainty_stop"], record_positions=True)
    trajectory = _run_with_progress(engine, settings["n_steps"], settings.get("progress"))
    out = []
    for replica, frames, final in zip(replicas, trajectory.replicas, trajectory.final_atoms):
        out.append({"molecule": replica.molecule, "temperature_k": replica.temperature_k,
                    "positions": frames.positions, "uncertainty": frames.rel_uncertainty,
                    "steps": frames.steps, "stopped": frames.stopped, "stop_reason": frames.stop_reason,
                    "stop_step": frames.stop_step, "final_positions": final.get_positions(),
                    "final_momenta": final.get_momenta(), "symbols": final.get_chemical_symbols()})
    return out


def production_task(args) -> list[dict]:
    """Thermalisation then production MD; per replica: dipoles every record interval, uncertainty."""
    models_dir, replicas, settings = args
    committee = _committee(models_dir)
    total = settings["thermalization_steps"] + settings["production_steps"]
    compile_models = total >= COMPILE_MIN_STEPS
    thermalize = _engine(committee, [_start(r) for r in replicas], replicas, settings["friction_per_fs"],
                         settings["precision"], max(1, settings["thermalization_steps"]), settings["timestep_fs"],
                         settings["uncertainty_stop"], record_positions=False,
                         compile_models=compile_models)
    _run_with_progress(thermalize, settings["thermalization_steps"], settings.get("progress"), 0, total)
    # Production continues the thermalisation exactly: same state, forces and random streams
    # (a fresh engine with the same seeds would replay the thermalisation's Langevin kicks).
    production = BatchedMD.from_state(thermalize.state_dict(), committee.energy_models,
                                      dipole_model=committee.dipole_model, record_interval=settings["record_interval"],
                                      record_positions=False, compile_models=compile_models)
    trajectory = _run_with_progress(production, settings["production_steps"], settings.get("progress"),
                                    settings["thermalization_steps"], total)
    out = []
    for replica, frames in zip(replicas, trajectory.replicas):
        out.append({"molecule": replica.molecule, "seed": replica.seed, "dipoles": frames.dipoles,
                    "temperatures": frames.temperatures, "uncertainty": frames.rel_uncertainty,
                    "stopped": frames.stopped, "stop_reason": frames.stop_reason,
                    "precision": trajectory.precision, "record_interval_fs": settings["record_interval"]
                    * settings["timestep_fs"]})
    return out


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
