"""Reference MD loop for MACE models: the published-method baseline.

One ASE integrator per replica (``ase.md.langevin.Langevin(fixcm=False)`` or
``VelocityVerlet``) driving ``mace.calculators.MACECalculator`` (which accepts
in-memory modules via ``models=`` and averages a committee). The loop itself is
:func:`specml.dynamics.ase_md.ase_md_loop`, shared with reference MD; this module
only supplies the MACE calculators, the committee uncertainty
(:func:`specml.models.committee.uncertainty`) and the output type of
:class:`~specml.dynamics.batched.BatchedMD`, which it is tested and benchmarked
against. Units as in :mod:`specml.dynamics.batched`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from specml.dynamics.ase_md import ase_md_loop
from specml.dynamics.trajectory import ReplicaTrajectory
from specml.errors import DynamicsError
from specml.models.committee import FORCE_UNCERTAINTY_EPS, uncertainty


def mace_calculator(
    models: Sequence[torch.nn.Module],
    *,
    model_type: str = "MACE",
    precision: str = "float64",
    device: str = "cpu",
):
    """``MACECalculator`` over deep copies of ``models`` (it casts them in place)."""
    from mace.calculators import MACECalculator

    return MACECalculator(
        models=[copy.deepcopy(m) for m in models],
        model_type=model_type,
        default_dtype=precision,
        device=device,
    )


def committee_uncertainty(eps: float = FORCE_UNCERTAINTY_EPS):
    """Relative and absolute force uncertainty from ``MACECalculator`` results.

    A committee's calculator holds the members' forces in ``forces_comm``; a single
    model has no uncertainty (0, as in the batched engine).
    """

    def of(results: dict) -> tuple[float, float]:
        members = results.get("forces_comm")
        if members is None or len(members) < 2:
            return 0.0, 0.0
        return uncertainty(members, eps)

    return of


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
    rng: np.random.Generator | None = None,
    record_interval: int = 1,
    dipole_model: torch.nn.Module | None = None,
    uncertainty_threshold: float = float("inf"),
    uncertainty_eps: float = FORCE_UNCERTAINTY_EPS,
    precision: str = "float64",
    device: str = "cpu",
    calculator=None,
    dipole_calculator=None,
    progress=None,
) -> tuple[ReplicaTrajectory, Atoms]:
    """Run one replica with ASE from the momenta of ``atoms``; returns its frames and the final Atoms.

    Frames are recorded after steps ``record_interval, 2*record_interval, ...``
    exactly like :class:`~specml.dynamics.batched.BatchedMD`, whose Langevin
    stream it reproduces for the same ``seed``. ``rng`` replaces the stream of
    ``seed`` by a caller's Generator, which is advanced in place: passing a
    restored one (``bit_generator.state``) continues a stream exactly across
    calls. ``calculator`` /
    ``dipole_calculator`` may be passed in to reuse them across replicas;
    ``progress(step, n_steps)`` is called after every step.
    """
    if ensemble not in ("langevin", "nve"):
        raise DynamicsError(f"unknown ensemble {ensemble!r}")
    if ensemble == "langevin" and temperature_K is None:
        raise DynamicsError("Langevin dynamics needs temperature_K")
    calc = calculator or mace_calculator(energy_models, precision=precision, device=device)
    dipole = None
    if dipole_model is not None:
        dcalc = dipole_calculator or mace_calculator(
            [dipole_model], model_type="DipoleMACE", precision=precision, device=device
        )

        def dipole(a: Atoms) -> np.ndarray:
            dcalc.calculate(a, ["dipole"], ["positions"])
            return dcalc.results["dipole"]

    return ase_md_loop(
        atoms,
        calc,
        n_steps,
        timestep_fs=timestep_fs,
        temperature_k=temperature_K,
        friction_per_fs=friction_per_fs if ensemble == "langevin" else None,
        rng=rng if rng is not None else np.random.default_rng(seed),
        record_interval=record_interval,
        dipole=dipole,
        uncertainty=committee_uncertainty(uncertainty_eps),
        uncertainty_limit=uncertainty_threshold,
        record_positions=True,
        progress=progress,
    )


__all__ = ["committee_uncertainty", "mace_calculator", "run_mace_replica"]
