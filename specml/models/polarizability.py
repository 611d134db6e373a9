"""An ML polarizability model: MACE's ``AtomicDielectricMACE`` trained on polarizabilities (Å^3).

Why this model: it is MACE's own equivariant tensor model (mace-torch >= 0.3.14), built from the
same blocks as the potentials and the dipole model, so it shares their graphs, training loop
(:func:`specml.models.training._fit`) and float32/float64 handling. It sums per-atom spherical
tensors (one 0e and one 2e per atom, l = 2 features) and turns them into a symmetric Cartesian
3x3 tensor, so alpha(R x) = R alpha(x) R^T holds by construction.

Facts checked against mace-torch 0.3.16 (``mace/modules/models.py``, ``loss.py``):

* labels are 9 numbers (row-major 3x3) in ``atoms.info["polarizability"]`` (here in Å^3);
* the hidden features need l = 2 (``max_L`` >= 2) and the non-linear readout's ``MLP_irreps``
  gated 1o and 2e irreps besides the scalars, or it has no tensor output to gate;
* the model also predicts a dipole; here only the polarizability is trained
  (:class:`PolarizabilityLoss`, MACE's per-atom squared error of the tensor), the dipole
  staying with the dipole model;
* ``compute_dielectric_gradients`` (d alpha / d x by autograd) fails for a batch of more than
  one graph, so it is not used: Raman from MD needs alpha itself, which batches fine, and the
  harmonic Raman of the model takes finite differences of batched predictions;
* its ``polarizability_mean`` / ``polarizability_std`` buffers are registered but never used in
  the forward pass, so labels are not rescaled (values of a few Å^3 train well as they are).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from e3nn import o3
from mace import modules as mace_modules
from mace.modules.loss import weighted_mean_squared_error_polarizability
from mace.modules.utils import compute_avg_num_neighbors

from specml.errors import ModelError

from .data import POLARIZABILITY_KEY, make_loader, model_r_max, to_atomic_data
from .device import default_dtype, select_device, torch_dtype
from .presets import ModelPreset
from .training import (
    PreparedData,
    ProgressCallback,
    _checkpoint,
    _common_model_kwargs,
    _fit,
    _resolve,
    warm_start_and_data,
)

#: File name of a saved polarizability model beside a committee's files.
POLARIZABILITY_MODEL_FILE = "polarizability_model.pt"


class PolarizabilityLoss(torch.nn.Module):
    """MACE's polarizability term alone: mean squared error of alpha / n_atoms, (Å^3/atom)^2."""

    def forward(self, ref, pred, ddp: bool | None = None) -> torch.Tensor:
        return weighted_mean_squared_error_polarizability(ref, pred, ddp)


def polarizability_mlp_irreps(preset: ModelPreset) -> o3.Irreps:
    """The preset's scalar MLP irreps plus as many gated 1o and 2e (what the readout can output)."""
    scalars = o3.Irreps(preset.MLP_irreps).count(o3.Irrep(0, 1))
    return o3.Irreps(f"{scalars}x0e + {scalars}x1o + {scalars}x2e")


def build_polarizability_model(preset: ModelPreset, data: PreparedData) -> torch.nn.Module:
    """A fresh ``AtomicDielectricMACE`` (l = 2 features: max_L raised to 2)."""
    with default_dtype(data.dtype), contextlib.redirect_stdout(io.StringIO()):  # its readout prints
        avg_num_neighbors = compute_avg_num_neighbors(make_loader(data.train, 256))
        kwargs = _common_model_kwargs(preset, data.z_table, avg_num_neighbors, max(2, preset.max_L))
        kwargs["MLP_irreps"] = polarizability_mlp_irreps(preset)
        model = mace_modules.AtomicDielectricMACE(
            atomic_energies=None,
            interaction_cls_first=mace_modules.interaction_classes["RealAgnosticInteractionBlock"],
            use_polarizability=True,
            **kwargs,
        )
    return model.to(data.dtype)


def _evaluate_polarizability(model, loader, loss_fn, device) -> dict:
    """Validation loss and polarizability MAE per tensor component in Å^3."""
    model.eval()
    total_loss, n_graphs, errors = 0.0, 0, []
    for batch in loader:
        batch = batch.to(device)
        out = model(batch.to_dict(), training=False)  # positions need grad inside: no torch.no_grad
        total_loss += float(loss_fn(batch, out).detach()) * batch.num_graphs
        n_graphs += batch.num_graphs
        errors.append(
            (out["polarizability"].detach() - batch.polarizability.view(-1, 3, 3)).abs().reshape(-1)
        )
    return {"loss": total_loss / max(n_graphs, 1), "polarizability_A3": float(torch.cat(errors).mean())}


def train_polarizability_model(
    atoms_list: Sequence[Atoms],
    preset: ModelPreset,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    init_model: torch.nn.Module | None = None,
    progress: ProgressCallback | None = None,
    split_seed: int = 0,
    checkpoint: str | Path | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train an ``AtomicDielectricMACE`` on ``atoms.info["polarizability"]`` (Å^3, 9 numbers).

    Same conventions as :func:`~specml.models.training.train_dipole_model`; ``valid_mae`` holds
    ``polarizability_A3``, the mean absolute error per tensor component.
    """
    device, dtype = _resolve(device, dtype)
    init_model, data = warm_start_and_data(
        atoms_list,
        (POLARIZABILITY_KEY,),
        mace_modules.AtomicDielectricMACE,
        preset,
        dtype,
        split_seed,
        init_model,
    )
    torch.manual_seed(seed)
    model = init_model if init_model is not None else build_polarizability_model(preset, data)
    model, history = _fit(
        model,
        data,
        preset,
        seed,
        device,
        PolarizabilityLoss(),
        _evaluate_polarizability,
        {},
        progress,
        # The shared data fingerprint covers energy, forces and dipoles: the labels go into the kind.
        _checkpoint(checkpoint, f"polarizability:{_labels_digest(data)}", preset, seed, data, init_model),
    )
    history.update(kind="polarizability", warm_start=init_model is not None)
    return model, history


def _labels_digest(data: PreparedData) -> str:
    digest = hashlib.sha256()
    for graph in data.train + data.valid:
        digest.update(graph.polarizability.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class PolarizabilityModel:
    """A trained polarizability model with batched prediction and save/load."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", dtype="float64"):
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.dtype = torch_dtype(dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        from mace.tools import AtomicNumberTable

        self.z_table = AtomicNumberTable([int(z) for z in self.model.atomic_numbers])  # type: ignore[union-attr]
        self.r_max = model_r_max(self.model)

    def predict(self, atoms_list: Sequence[Atoms], batch_size: int = 256) -> np.ndarray:
        """Polarizabilities (n, 3, 3) in Å^3; unknown elements raise UnsupportedElementError."""
        atoms_list = list(atoms_list)
        if not atoms_list:
            raise ModelError("predict() needs at least one structure")
        graphs = to_atomic_data(atoms_list, self.z_table, self.r_max, self.dtype)
        out = []
        for batch in make_loader(graphs, batch_size):
            batch = batch.to(self.device)
            prediction = self.model(batch.to_dict(), training=False)["polarizability"]
            out.append(prediction.detach().cpu().double().numpy())
        return np.concatenate(out)

    def __call__(self, atoms: Atoms) -> np.ndarray:
        return self.predict([atoms])[0]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / POLARIZABILITY_MODEL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.model, path)
        return path

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> PolarizabilityModel:
        """Load ``polarizability_model.pt`` from ``directory`` (trusted files: a pickled module)."""
        path = Path(directory) / POLARIZABILITY_MODEL_FILE
        if not path.is_file():
            raise ModelError(f"no polarizability model at {path}; train one with Raman requested")
        try:
            model = torch.load(path, map_location=select_device(device), weights_only=False)
        except Exception as exc:  # torch raises many types for a corrupt file
            raise ModelError(f"cannot load polarizability model {path}: {exc}") from exc
        if not isinstance(model, mace_modules.AtomicDielectricMACE):
            raise ModelError(f"{path} does not hold an AtomicDielectricMACE")
        return cls(model, device)


def polarizability_errors(model: PolarizabilityModel, images: Sequence[Atoms]) -> dict:
    """MAE and RMSE per tensor component (Å^3) and of the mean polarizability tr(alpha)/3 against
    ``atoms.info["polarizability"]``: the test-set report of the polarizability model."""
    images = list(images)
    if not images:
        return {}
    predicted = model.predict(images)
    reference = np.array([np.reshape(a.info[POLARIZABILITY_KEY], (3, 3)) for a in images])
    error = (predicted - reference).reshape(len(images), 9)
    mean_error = np.trace(predicted - reference, axis1=1, axis2=2) / 3.0
    return {
        "n_structures": len(images),
        "polarizability_mae_A3": float(np.mean(np.abs(error))),
        "polarizability_rmse_A3": float(np.sqrt(np.mean(error**2))),
        "mean_polarizability_mae_A3": float(np.mean(np.abs(mean_error))),
    }
