"""Compact storage of second derivatives: Hessian (eV/Å^2) and dipole derivatives (e).

The Hessian is symmetric, so only its upper triangle (row-major, ``np.triu_indices``) is kept,
rounded to 1e-5 eV/Å^2: no wavenumber of butane, ethane or CI4 (xTB) moved by more than
0.005 cm-1. Dipole derivatives (d mu / d x, e·Å per Å = e, shape (3N, 3)) are rounded to 1e-6 e.
The same encoding serves the fundamentals benchmark's cache and the spectral library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specml.errors import InputError

HESSIAN_KEY = "hessian_upper_ev_per_angstrom2"
DIPOLE_KEY = "dipole_derivatives_e"
HESSIAN_DECIMALS = 5
DIPOLE_DECIMALS = 6


def rounded(values, decimals: int) -> list:
    """Nested lists rounded to ``decimals`` (no ``-0.0``): small on disk, exact enough for wavenumbers."""
    return (np.round(np.asarray(values, dtype=float), decimals) + 0.0).tolist()


@dataclass(frozen=True)
class SecondDerivatives:
    """Cartesian Hessian (eV/Å^2, (3N, 3N)) and dipole derivatives (e, (3N, 3)) of one geometry."""

    hessian: np.ndarray
    dipole_derivatives: np.ndarray

    @property
    def n_atoms(self) -> int:
        return self.hessian.shape[0] // 3

    def to_json(self) -> dict:
        """The compact record: upper triangle of the Hessian and the dipole derivatives, rounded."""
        n3 = self.hessian.shape[0]
        return {
            HESSIAN_KEY: rounded(self.hessian[np.triu_indices(n3)], HESSIAN_DECIMALS),
            DIPOLE_KEY: rounded(self.dipole_derivatives, DIPOLE_DECIMALS),
        }

    @classmethod
    def from_json(cls, record: dict, n_atoms: int) -> SecondDerivatives:
        """Inverse of :meth:`to_json` for a molecule of ``n_atoms`` atoms (checks the sizes)."""
        return cls(
            hessian_from_upper(record[HESSIAN_KEY], n_atoms),
            dipoles_from_list(record[DIPOLE_KEY], n_atoms),
        )


def hessian_from_upper(upper, n_atoms: int) -> np.ndarray:
    """The symmetric (3N, 3N) Hessian from its row-major upper triangle."""
    n3 = 3 * n_atoms
    values = np.asarray(upper, dtype=float)
    if values.shape != (n3 * (n3 + 1) // 2,):
        raise InputError(
            f"a Hessian upper triangle of {n_atoms} atoms has {n3 * (n3 + 1) // 2} values; got {values.shape}"
        )
    full = np.zeros((n3, n3))
    full[np.triu_indices(n3)] = values
    return full + np.triu(full, 1).T


def dipoles_from_list(values, n_atoms: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.shape != (3 * n_atoms, 3):
        raise InputError(
            f"dipole derivatives of {n_atoms} atoms must be ({3 * n_atoms}, 3); got {array.shape}"
        )
    return array
