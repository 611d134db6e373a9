"""Reference MD loop: one ASE integrator + ASE calculator per replica.

This is the published-method baseline the batched engine is tested and
benchmarked against: ``ase.md.langevin.Langevin`` (``fixcm=False``) or
``ase.md.verlet.VelocityVerlet`` driving ``mace.calculators.MACECalculator``
(which accepts in-memory modules via ``models=`` and averages a committee).
Units as in :mod:`specml.dynamics.batched`.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from specml.dynamics.batched import ReplicaTrajectory, kinetic_temperature
from specml.errors import DynamicsError


def mace_calculator(models: Sequence[torch.nn.Module], *, model_type: str = "MACE",
                    precision: str = "float64", device: str = "cpu"):
    """``MACECalculator`` over deep copies of ``models`` (it casts them in place)."""
    from mace.calculators import MACECalculator

    return MACECalculator(models=[copy.deepcopy(m) for m in models], model_type=model_type,
                          default_dtype=precision, device=device)


def run_mace_replica(
    energy_models: Sequence[torch.nn.Module],
    atoms: Atoms,
    n_steps: int,
    *,
    ensemble: str = "langevin",
    temperature_K: float | None = None,
    timestep_fs: float = 0.5,
    friction_per_fs: float = 0.01,
    seed: int = 0,
    record_interval: int = 1,
    dipole_model: torch.nn.Module | None = None,
    uncertainty_threshold: float = float("inf"),
    uncertainty_eps: float = 1e-8,
    precision: str = "float64",
    device: str = "cpu",
    calculator=None,
    dipole_calculator=None,
) -> tuple[ReplicaTrajectory, Atoms]:
    """Run one replica with ASE; returns its frames and the final Atoms.

    Frames are recorded after steps ``record_interval, 2*record_interval, ...``
    exactly like :class:`~specml.dynamics.batched.BatchedMD`. ``calculator`` /
    ``dipole_calculator`` may be passed in to reuse them across replicas.
    """
    atoms = atoms.copy()
    atoms.calc = calculator or mace_calculator(energy_models, precision=precision, device=device)
    dcalc = None
    if dipole_model is not None:
        dcalc = dipole_calculator or mace_calculator([dipole_model], model_type="DipoleMACE",
                                                     precision=precision, device=device)
    if ensemble == "langevin":
        if temperature_K is None:
            raise DynamicsError("Langevin dynamics needs temperature_K")
        dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K,
                       friction=friction_per_fs / units.fs, fixcm=False,
                       rng=np.random.default_rng(seed))
    elif ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep_fs * units.fs)
    else:
        raise DynamicsError(f"unknown ensemble {ensemble!r}")
    rec = {k: [] for k in ("step", "E", "T", "rel", "std", "dip", "pos")}
    stop_step = stop_reason = None
    for step in range(1, n_steps + 1):
        dyn.step()
        dyn.nsteps += 1
        res = atoms.calc.results
        f = res["forces"]
        if "forces_comm" in res:
            fstd = float(np.sqrt(np.mean(np.var(res["forces_comm"], axis=0))))
        else:
            fstd = 0.0
        rel = fstd / (float(np.mean(np.linalg.norm(f, axis=1))) + uncertainty_eps)
        if step % record_interval == 0:
            rec["step"].append(step)
            rec["E"].append(res["energy"])
            rec["T"].append(kinetic_temperature(atoms))
            rec["rel"].append(rel)
            rec["std"].append(fstd)
            rec["pos"].append(atoms.positions.copy())
            if dcalc is not None:
                dcalc.calculate(atoms, ["dipole"], ["positions"])
                rec["dip"].append(np.asarray(dcalc.results["dipole"], dtype=np.float64))
        if not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(f)):
            stop_step, stop_reason = step, "non-finite positions or forces"
            break
        if rel > uncertainty_threshold:
            stop_step, stop_reason = step, "uncertainty above threshold"
            break
    steps = np.asarray(rec["step"], dtype=np.int64)
    traj = ReplicaTrajectory(
        replica=0, numbers=atoms.numbers.copy(), target_temperature_K=temperature_K,
        times_fs=steps * timestep_fs, steps=steps,
        energies=np.asarray(rec["E"], dtype=np.float64),
        temperatures=np.asarray(rec["T"], dtype=np.float64),
        rel_uncertainty=np.asarray(rec["rel"], dtype=np.float64),
        force_std=np.asarray(rec["std"], dtype=np.float64),
        dipoles=np.asarray(rec["dip"], dtype=np.float64).reshape(-1, 3) if dcalc else None,
        positions=np.asarray(rec["pos"], dtype=np.float64).reshape(-1, len(atoms), 3),
        stopped=stop_step is not None, stop_step=stop_step, stop_reason=stop_reason,
    )
    final = atoms.copy()
    final.calc = None
    return traj, final


__all__ = ["mace_calculator", "run_mace_replica"]
