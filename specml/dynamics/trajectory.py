"""Trajectory records: the dipole trajectory every MD route produces for spectra
(:class:`DipoleTrajectory`) and the per-replica frames of the ML-MD engines
(:class:`ReplicaTrajectory`, from the batched engine and the ASE loop alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specml.spectra.autocorrelation import ir_from_dipoles
from specml.spectra.spectrum import Spectrum


@dataclass
class DipoleTrajectory:
    """Recorded frames of one MD run. Units: fs, e·Å, K, eV, Å, Å/fs."""

    times_fs: np.ndarray
    dipoles: np.ndarray
    temperatures_k: np.ndarray
    potential_energies: np.ndarray
    final_positions: np.ndarray
    final_velocities: np.ndarray
    symbols: list[str]
    target_temperature_k: float
    timestep_fs: float
    stopped_at_step: int | None = None
    stop_reason: str | None = None
    uncertainties: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def record_interval_fs(self) -> float:
        return float(self.times_fs[1] - self.times_fs[0]) if len(self.times_fs) > 1 else self.timestep_fs

    def ir_spectrum(self, max_correlation_fs: float = 1000.0, **kwargs) -> Spectrum:
        """IR spectrum of the recorded dipoles (see :func:`ir_from_dipoles`)."""
        meta = {"temperature_k": self.target_temperature_k, **self.info, **kwargs.pop("metadata", {})}
        return ir_from_dipoles(
            self.dipoles, self.record_interval_fs, max_correlation_fs, metadata=meta, **kwargs
        )


@dataclass
class ReplicaTrajectory:
    """Recorded frames of one replica (every ``record_interval`` steps, step >= 1).

    Arrays have one row per recorded frame: ``times_fs`` (fs), ``steps``,
    ``energies`` (committee-mean potential energy, eV), ``temperatures``
    (instantaneous kinetic temperature with 3N degrees of freedom, K),
    ``rel_uncertainty`` (PALIRS relative force uncertainty, dimensionless),
    ``force_std`` (sqrt of the mean committee force variance, eV/Å),
    ``dipoles`` (e·Å, None without a dipole model), ``positions`` (Å, None if
    not recorded).
    """

    replica: int
    numbers: np.ndarray
    target_temperature_K: float | None
    times_fs: np.ndarray
    steps: np.ndarray
    energies: np.ndarray
    temperatures: np.ndarray
    rel_uncertainty: np.ndarray
    force_std: np.ndarray
    dipoles: np.ndarray | None
    positions: np.ndarray | None
    stopped: bool
    stop_step: int | None
    stop_reason: str | None
    wall_time_s: float | None = None  # summed over resumed runs (ase_md_loop with a checkpoint)

    @classmethod
    def from_frames(
        cls,
        replica: int,
        numbers: np.ndarray,
        target_temperature_k: float | None,
        frames: dict[str, list[Any]],
        timestep_fs: float,
        dipoles: bool,
        positions: bool,
        stopped: bool,
        stop_step: int | None,
        stop_reason: str | None,
        wall_time_s: float | None = None,
    ) -> ReplicaTrajectory:
        """One replica's recorded ``frames`` (lists per key: step, E, T, rel, std, dip, pos) as
        arrays; ``dipoles``/``positions`` say whether those keys were recorded."""
        steps = np.asarray(frames["step"], dtype=np.int64)
        return cls(
            replica=replica,
            numbers=numbers.copy(),
            target_temperature_K=target_temperature_k,
            times_fs=steps * timestep_fs,
            steps=steps,
            energies=np.asarray(frames["E"], dtype=np.float64),
            temperatures=np.asarray(frames["T"], dtype=np.float64),
            rel_uncertainty=np.asarray(frames["rel"], dtype=np.float64),
            force_std=np.asarray(frames["std"], dtype=np.float64),
            dipoles=np.asarray(frames["dip"], dtype=np.float64).reshape(-1, 3) if dipoles else None,
            positions=np.asarray(frames["pos"], dtype=np.float64).reshape(-1, len(numbers), 3)
            if positions
            else None,
            stopped=stopped,
            stop_step=stop_step,
            stop_reason=stop_reason,
            wall_time_s=wall_time_s,
        )
