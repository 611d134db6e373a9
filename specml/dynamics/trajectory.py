"""The dipole trajectory that every MD route (reference, ASE-loop ML, batched ML) produces."""

from __future__ import annotations

from dataclasses import dataclass, field

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
        return ir_from_dipoles(self.dipoles, self.record_interval_fs, max_correlation_fs,
                               metadata=meta, **kwargs)
