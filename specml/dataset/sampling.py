"""Initial training structures: displacements along normal modes."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from specml.spectra.harmonic import HarmonicResult
from specml.units import HESSIAN_EIGENVALUE_TO_CM1, KB_EV_PER_K


def normal_mode_amplitude(wavenumber_cm1: float, temperature_k: float) -> float:
    """Classical turning point of a mode with thermal energy kB*T, in mass-weighted
    units (Å sqrt(amu)): Q = sqrt(2 kB T) / omega."""
    omega = max(abs(wavenumber_cm1), 50.0) / HESSIAN_EIGENVALUE_TO_CM1  # sqrt(eV/(Å^2 amu))
    return float(np.sqrt(2.0 * KB_EV_PER_K * temperature_k) / omega)


def sample_normal_modes(
    harmonic: HarmonicResult, n_per_mode: int = 10, temperature_k: float = 500.0, max_scale: float = 2.0
) -> list[tuple[Atoms, dict]]:
    """Structures displaced along each normal mode.

    For every mode, amplitudes alternate in sign and grow in equal steps up to
    ``max_scale`` times the thermal turning point at ``temperature_k``
    (+a1, -a1, +a2, -a2, ...); the first ``n_per_mode`` are taken. Returns
    ``(atoms, info)`` with the mode index and the amplitude.
    """
    atoms = harmonic.atoms
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    n_steps = (n_per_mode + 1) // 2
    structures = []
    for mode, (nu, vector) in enumerate(
        zip(harmonic.frequencies_cm1, harmonic.mass_weighted_modes, strict=True)
    ):
        q_max = max_scale * normal_mode_amplitude(nu, temperature_k)
        amplitudes = [sign * q_max * (j + 1) / n_steps for j in range(n_steps) for sign in (+1, -1)]
        for amplitude in amplitudes[:n_per_mode]:
            displaced = atoms.copy()
            displaced.positions += (amplitude * vector * inv_sqrt_m).reshape(-1, 3)
            structures.append((displaced, {"mode": mode, "amplitude": amplitude}))
    return structures
