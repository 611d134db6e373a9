"""MACE models for specml: committee potentials, dipole model, training.

Dataset convention: ``atoms.info["energy"]`` (eV), ``atoms.arrays["forces"]``
(eV/Å), ``atoms.info["dipole"]`` (e·Å).
"""

import specml._mace  # noqa: F401  -- MACE and e3nn imported quietly, in order

from .committee import (  # noqa: E402
    FORCE_UNCERTAINTY_EPS,
    Committee,
    CommitteeCalculator,
    train_committee,
    uncertainty,
)
from .data import (  # noqa: E402
    DIPOLE_KEY,
    ENERGY_KEY,
    FORCES_KEY,
    check_elements,
    to_atomic_data,
    train_valid_split,
    z_table_for,
)
from .device import select_device, torch_dtype  # noqa: E402
from .presets import PRESETS, ModelPreset, get_preset  # noqa: E402
from .training import train_dipole_model, train_potential  # noqa: E402

__all__ = [
    "Committee",
    "CommitteeCalculator",
    "DIPOLE_KEY",
    "ENERGY_KEY",
    "FORCES_KEY",
    "FORCE_UNCERTAINTY_EPS",
    "ModelPreset",
    "PRESETS",
    "check_elements",
    "get_preset",
    "select_device",
    "to_atomic_data",
    "torch_dtype",
    "train_committee",
    "train_dipole_model",
    "train_potential",
    "train_valid_split",
    "uncertainty",
    "z_table_for",
]
