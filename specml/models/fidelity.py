"""Carrying a committee trained on one reference method (fidelity) over to another.

Two ways, compared by :mod:`specml.workflow.multifidelity`:

* fine-tuning: the pretrained members continue training on the expensive labels. Their
  atomic reference energies (E0s) are first refitted to those labels
  (:func:`refit_atomic_energies`): two methods differ in total energy by eV per atom, which
  the network should not have to learn;
* Δ-learning: a correction committee learns the difference between the two methods' labels
  at the same structures, and each member becomes pretrained + correction
  (:class:`DeltaModel`, :func:`delta_committee`).

A :class:`DeltaModel` is a plain ``torch.nn.Module`` with MACE's ``r_max`` and
``atomic_numbers`` buffers, so committees, the batched MD engine and saved model directories
treat it like any MACE model; the MD engine compiles its two parts (``torch.compile``) for long runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from specml.errors import ModelError

from .committee import Committee
from .data import DIPOLE_KEY, ENERGY_KEY, FORCES_KEY, model_atomic_numbers, model_r_max

#: Outputs a :class:`DeltaModel` adds up (energy eV, forces eV/Å, dipole e·Å).
SUMMED_OUTPUTS = ("energy", "forces", "dipole")


class DeltaModel(torch.nn.Module):
    """``base(x) + correction(x)`` for energy, forces and dipole, on one shared graph."""

    def __init__(self, base: torch.nn.Module, correction: torch.nn.Module):
        super().__init__()
        if model_atomic_numbers(base) != model_atomic_numbers(correction):
            raise ModelError(
                f"Δ model: the correction knows elements {model_atomic_numbers(correction)}, "
                f"the base model {model_atomic_numbers(base)}"
            )
        self.base = base
        self.correction = correction
        self.register_buffer("atomic_numbers", torch.tensor(model_atomic_numbers(base), dtype=torch.int64))
        # The graph is built for the larger cutoff; MACE's radial cutoff drops the longer edges.
        self.register_buffer("r_max", torch.tensor(max(model_r_max(base), model_r_max(correction))))

    def forward(self, data: dict, training: bool = False, **kwargs) -> dict:
        base = self.base(data, training=training, **kwargs)
        correction = self.correction(data, training=training, **kwargs)
        out = {}
        for key in SUMMED_OUTPUTS:
            a, b = base.get(key), correction.get(key)
            out[key] = a + b if a is not None and b is not None else None
        return out


def delta_committee(base: Committee, correction: Committee) -> Committee:
    """Member ``i`` = base member ``i`` + correction member ``i`` (the base repeats when it has
    fewer members); dipole = base dipole + correction dipole."""
    members = [
        DeltaModel(base.energy_models[i % len(base)], model)
        for i, model in enumerate(correction.energy_models)
    ]
    dipole = None
    if base.dipole_model is not None and correction.dipole_model is not None:
        dipole = DeltaModel(base.dipole_model, correction.dipole_model)
    histories = {**correction.histories, "delta_of": "pretrained committee + correction"}
    return Committee(
        members, dipole, correction.preset, correction.seeds, correction.device, correction.dtype, histories
    )


def difference_labels(target: Sequence[Atoms], cheap: Sequence[Atoms]) -> list[Atoms]:
    """Structures of ``target`` labelled with ``target - cheap`` energy (eV), forces (eV/Å) and
    dipole (e·Å): the training data of a Δ correction. Pairs must be the same structure."""
    if len(target) != len(cheap):
        raise ModelError(f"Δ labels need pairs: {len(target)} target labels, {len(cheap)} cheap ones")
    out = []
    for hi, lo in zip(target, cheap, strict=True):
        if hi.get_chemical_formula() != lo.get_chemical_formula() or not np.allclose(
            hi.positions, lo.positions, atol=1e-6
        ):
            raise ModelError(f"Δ labels: {hi.info.get('key', '?')} is not the same structure in both methods")
        atoms = hi.copy()
        atoms.calc = None
        atoms.info[ENERGY_KEY] = float(hi.info[ENERGY_KEY]) - float(lo.info[ENERGY_KEY])
        atoms.arrays[FORCES_KEY] = np.asarray(hi.arrays[FORCES_KEY]) - np.asarray(lo.arrays[FORCES_KEY])
        atoms.info[DIPOLE_KEY] = np.asarray(hi.info[DIPOLE_KEY]) - np.asarray(lo.info[DIPOLE_KEY])
        out.append(atoms)
    return out


def refit_atomic_energies(committee: Committee, atoms_list: Sequence[Atoms]) -> Committee:
    """A copy of ``committee`` whose members' E0s (eV per element) are shifted by the least-squares
    fit of (label - prediction) on element counts: the energy offset between two reference methods
    moves into the E0s, forces are unchanged. For one molecule (counts all alike) the fit is the
    minimum-norm one, which fixes the total offset exactly."""
    atoms_list = list(atoms_list)
    if not atoms_list:
        raise ModelError("refitting E0s needs at least one labelled structure")
    labels = np.array([float(a.info[ENERGY_KEY]) for a in atoms_list])
    predicted = committee.predict(atoms_list)["energy_members"]  # (members, structures), eV
    counts = np.array(
        [[np.count_nonzero(a.numbers == z) for z in committee.atomic_numbers] for a in atoms_list]
    )
    members = []
    for model, energies in zip(committee.energy_models, predicted, strict=True):
        shift, *_ = np.linalg.lstsq(counts, labels - energies, rcond=None)
        shifted = copy.deepcopy(model)
        e0 = _atomic_energies(shifted)
        with torch.no_grad():
            e0 += torch.as_tensor(shift, dtype=e0.dtype, device=e0.device)  # broadcast over heads
        members.append(shifted)
    return Committee(
        members,
        committee.dipole_model,
        committee.preset,
        committee.seeds,
        committee.device,
        committee.dtype,
        committee.histories,
    )


def _atomic_energies(model: torch.nn.Module) -> torch.Tensor:
    block = getattr(model, "atomic_energies_fn", None)
    if block is None or not hasattr(block, "atomic_energies"):
        raise ModelError(
            f"{type(model).__name__} has no atomic energies (E0s) to refit; not a MACE potential"
        )
    return block.atomic_energies
