"""The training fast path (issue 24) computes what today's path computes: the same loss
trajectory and the same trained model on a tiny case, with the model's module tree unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from specml.models import fast_training, get_preset, train_dipole_model, train_potential
from specml.models.fast_training import reference_training, training_fast_path

pytestmark = pytest.mark.filterwarnings("ignore:The TorchScript type system:UserWarning")


def fast_forwards(model: torch.nn.Module) -> list:
    """Submodules whose forward is currently a fast-path replacement."""
    fast = (fast_training._conv_tp_forward, fast_training._contraction_forward)
    return [m for m in model.modules() if getattr(vars(m).get("forward"), "__func__", None) in fast]


@pytest.fixture(scope="module")
def dataset() -> list:
    """Rattled methanol with a smooth made-up energy (pair springs), its forces and a dipole."""
    rng = np.random.default_rng(0)
    reference = molecule("CH3OH")
    structures = []
    for _ in range(16):
        atoms = reference.copy()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        delta = atoms.positions - reference.positions
        atoms.info.update(energy=float(0.5 * (delta**2).sum()) - 10.0, dipole=delta.sum(0) + 0.5)
        atoms.arrays["forces"] = -delta
        structures.append(atoms)
    return structures


@pytest.mark.parametrize("train", [train_potential, train_dipole_model])
def test_fast_path_gives_the_same_loss_trajectory_and_model(dataset, train):
    torch.set_num_threads(1)
    preset = get_preset("tiny", epochs=4, max_ell=2)
    fast_model, fast = train(dataset, preset, seed=0, dtype="float64")
    with reference_training():
        old_model, old = train(dataset, preset, seed=0, dtype="float64")
    assert fast["epochs_run"] == old["epochs_run"] == 4
    for key in ("train_loss", "valid_loss"):
        assert np.allclose(fast[key], old[key], rtol=1e-9, atol=0.0), key
    for name, value in old_model.state_dict().items():
        assert torch.allclose(fast_model.state_dict()[name], value, rtol=1e-8, atol=1e-12), name
    assert not fast_forwards(fast_model)  # patches removed


def test_fast_path_patches_the_covered_modules_and_restores_them(dataset):
    model, _ = train_potential(dataset, get_preset("tiny", epochs=1), dtype="float32")
    with training_fast_path(model) as patched:
        assert patched == 2  # the convolution product and the symmetric contraction
        assert len(fast_forwards(model)) == 2
    assert not fast_forwards(model)
    with reference_training(), training_fast_path(model) as patched:
        assert patched == 0 and not fast_forwards(model)
