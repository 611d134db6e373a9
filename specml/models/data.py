"""ASE ``Atoms`` with reference labels -> MACE graphs (``AtomicData``).

Dataset convention (used by every specml module): the reference energy is in
``atoms.info["energy"]`` (eV), forces in ``atoms.arrays["forces"]`` (eV/Å) and
the dipole in ``atoms.info["dipole"]`` (e·Å, ASE convention); for Raman the polarizability in
``atoms.info["polarizability"]`` (Å^3, 9 numbers, row-major).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from mace import data as mace_data
from mace.tools import AtomicNumberTable, get_atomic_number_table_from_zs
from mace.tools.torch_geometric import DataLoader

from specml.errors import InputError, UnsupportedElementError

from .device import default_dtype

ENERGY_KEY = "energy"
FORCES_KEY = "forces"
DIPOLE_KEY = "dipole"
POLARIZABILITY_KEY = "polarizability"


def key_specification() -> mace_data.KeySpecification:
    """MACE property name -> where the label lives on ``Atoms``."""
    return mace_data.KeySpecification(
        info_keys={"energy": ENERGY_KEY, "dipole": DIPOLE_KEY, "polarizability": POLARIZABILITY_KEY},
        arrays_keys={"forces": FORCES_KEY},
    )


def z_table_for(atoms_list: Iterable[Atoms]) -> AtomicNumberTable:
    """Sorted table of the atomic numbers occurring in ``atoms_list``."""
    zs: set[int] = set()
    for atoms in atoms_list:
        zs.update(int(z) for z in atoms.numbers)
    if not zs:
        raise InputError("no atoms: cannot build an element table from an empty dataset")
    return get_atomic_number_table_from_zs(sorted(zs))


# torch types a module's attributes as ``Tensor | Module``; these MACE buffers are tensors.
def model_atomic_numbers(model: torch.nn.Module) -> list[int]:
    """The atomic numbers a MACE model was built for (its ``atomic_numbers`` buffer)."""
    return [int(z) for z in cast(torch.Tensor, model.atomic_numbers)]


def model_r_max(model: torch.nn.Module) -> float:
    """The cutoff radius (Å) of a MACE model (its ``r_max`` buffer)."""
    return float(cast(torch.Tensor, model.r_max))


def check_elements(atoms: Atoms, atomic_numbers: Sequence[int]) -> None:
    """Raise :class:`UnsupportedElementError` if ``atoms`` has an unknown element."""
    known = {int(z) for z in atomic_numbers}
    unknown = sorted({int(z) for z in atoms.numbers} - known)
    if unknown:
        names = [chemical_symbols[z] for z in unknown]
        trained = ", ".join(chemical_symbols[z] for z in sorted(known))
        raise UnsupportedElementError(
            f"{atoms.get_chemical_formula()} contains element(s) "
            f"{', '.join(names)} that the model was not trained on "
            f"(model elements: {trained})",
            elements=names,
        )


def require_labels(atoms_list: Sequence[Atoms], labels: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the first structure missing a label."""
    where = {ENERGY_KEY: "info", DIPOLE_KEY: "info", POLARIZABILITY_KEY: "info", FORCES_KEY: "arrays"}
    for index, atoms in enumerate(atoms_list):
        for label in labels:
            container = atoms.info if where[label] == "info" else atoms.arrays
            if label not in container or container[label] is None:
                raise InputError(
                    f"structure {index} ({atoms.get_chemical_formula()}) has no "
                    f"'{label}' label in atoms.{where[label]}"
                )


def to_atomic_data(
    atoms_list: Sequence[Atoms],
    z_table: AtomicNumberTable,
    r_max: float,
    dtype: torch.dtype,
) -> list[mace_data.AtomicData]:
    """Build MACE graphs (neighbour list within ``r_max`` Å) for each structure.

    Unlabelled structures are fine (for prediction): MACE fills zeros and sets
    the property weight to 0.
    """
    for atoms in atoms_list:
        check_elements(atoms, z_table.zs)
    keys = key_specification()
    # AtomicData.from_config uses torch's default dtype for every float tensor.
    with default_dtype(dtype):
        return [
            mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(atoms, key_specification=keys),
                z_table=z_table,
                cutoff=float(r_max),
            )
            for atoms in atoms_list
        ]


def train_valid_split(
    n_structures: int, seed: int, valid_fraction: float = 0.2, keys: Sequence[str] | None = None
) -> tuple[list[int], list[int]]:
    """(train, valid) index split, 80:20 by default, at least one of each.

    Without ``keys`` a seeded random permutation. With unique ``keys`` (database
    keys) each structure's side follows from a seeded hash of its key, so the
    split is stable as data grows: a structure validated on in one active-learning
    iteration is never trained on in the next (which would bias warm-start
    early stopping).
    """
    if n_structures < 2:
        raise InputError(f"need at least 2 labelled structures to train (got {n_structures})")
    if not 0.0 < valid_fraction < 1.0:
        raise InputError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if keys is not None and len(keys) == n_structures and len(set(keys)) == n_structures:
        draws = np.array([_uniform_from_key(seed, key) for key in keys])
        valid = draws < valid_fraction
        if not valid.any():
            valid[np.argmin(draws)] = True
        if valid.all():
            valid[np.argmax(draws)] = False
        return np.flatnonzero(~valid).tolist(), np.flatnonzero(valid).tolist()
    order = np.random.default_rng(seed).permutation(n_structures)
    n_valid = min(max(1, int(round(valid_fraction * n_structures))), n_structures - 1)
    return sorted(order[n_valid:].tolist()), sorted(order[:n_valid].tolist())


def _uniform_from_key(seed: int, key: str) -> float:
    # sha256, not hash(): Python's string hash differs between processes.
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def make_loader(
    data: Sequence[mace_data.AtomicData],
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    weights: Sequence[float] | None = None,
) -> DataLoader:
    """MACE ``torch_geometric`` DataLoader; a seeded generator when shuffling. With ``weights``
    (one per structure) an epoch is ``len(data)`` draws with replacement in proportion to them."""
    generator = None
    if (shuffle or weights is not None) and seed is not None:
        generator = torch.Generator()
        generator.manual_seed(int(seed))
    sampler = None
    if weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(
            list(weights), num_samples=len(data), replacement=True, generator=generator
        )
    return DataLoader(
        list(data),  # type: ignore[arg-type]  # typed as a Dataset; MACE itself passes lists
        batch_size=max(1, int(batch_size)),
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=False,
        generator=generator,
    )
