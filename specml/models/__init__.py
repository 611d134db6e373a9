"""MACE models for specml: committee potentials, dipole model, training.

Dataset convention: ``atoms.info["energy"]`` (eV), ``atoms.arrays["forces"]``
(eV/Å), ``atoms.info["dipole"]`` (e·Å).
"""

import contextlib
import io
import warnings

# mace prints a notice about optional CUDA kernels on import and e3nn warns about
# torch.load defaults; neither concerns users, and CLI output must stay clean.
with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import mace.tools.cg  # noqa: F401  -- before e3nn: mace makes e3nn's constants loadable with torch>=2.6

    # isort: split
    import e3nn.o3  # noqa: F401
# Building MACE blocks makes TorchScript emit a type-annotation warning that is not ours to fix.
warnings.filterwarnings("ignore", message="The TorchScript type system")

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
