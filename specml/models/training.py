"""In-process training of MACE potentials (energy+forces) and dipole models.

Why a hand-written loop instead of ``mace_run_train``: that CLI is a
subprocess with file I/O (xyz in, checkpoints/logs out) and several seconds of
start-up; active learning retrains many small models on data already in
memory. The loop below is the MACE recipe, reusing MACE's pieces: model
classes, ``AtomicData`` graphs, E0 least-squares fit, scale/shift statistics,
loss functions, AMSGrad Adam, gradient clipping and weight EMA.

Graphs are built once per training run (not per epoch). Training defaults to
float32, which on CPU is about twice as fast as float64 with no measurable
loss of accuracy at these error levels; models can be cast to float64 later
for finite-difference-consistent MD (``Committee.to``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from e3nn import o3
from mace import modules as mace_modules
from mace.data import compute_average_E0s, config_from_atoms
from mace.modules.loss import DipoleSingleLoss, WeightedEnergyForcesLoss
from mace.modules.utils import compute_avg_num_neighbors, compute_mean_rms_energy_forces
from mace.tools import AtomicNumberTable, get_atomic_number_table_from_zs
from torch_ema import ExponentialMovingAverage

from specml.checkpoint import PeriodicCheckpoint
from specml.errors import ModelError
from specml.units import E_ANGSTROM_IN_DEBYE

from .data import (
    DIPOLE_KEY,
    ENERGY_KEY,
    FORCES_KEY,
    key_specification,
    make_loader,
    model_atomic_numbers,
    model_r_max,
    require_labels,
    to_atomic_data,
    train_valid_split,
    z_table_for,
)
from .device import default_dtype, select_device, torch_dtype
from .fast_training import with_fast_path
from .presets import ModelPreset, hidden_irreps

ProgressCallback = Callable[[int, int, dict], None]

_INTERACTION = "RealAgnosticResidualInteractionBlock"  # mace_run_train default


@dataclass
class PreparedData:
    """Graphs of one train/valid split, built once and reused by every member."""

    z_table: AtomicNumberTable
    r_max: float
    dtype: torch.dtype
    train_atoms: list[Atoms]
    train: list
    valid: list


def prepare_data(
    atoms_list: Sequence[Atoms],
    labels: Sequence[str],
    r_max: float,
    dtype: torch.dtype,
    split_seed: int = 0,
    valid_fraction: float = 0.2,
    z_table: AtomicNumberTable | None = None,
) -> PreparedData:
    """Check labels, split 80:20 (seeded) and build the MACE graphs."""
    atoms_list = list(atoms_list)
    require_labels(atoms_list, labels)
    z_table = z_table or z_table_for(atoms_list)
    keys = [k for k in (a.info.get("key") for a in atoms_list) if isinstance(k, str)]
    split_keys = keys if len(keys) == len(atoms_list) else None  # only when every structure has one
    train_idx, valid_idx = train_valid_split(len(atoms_list), split_seed, valid_fraction, split_keys)
    graphs = to_atomic_data(atoms_list, z_table, r_max, dtype)
    return PreparedData(
        z_table=z_table,
        r_max=float(r_max),
        dtype=dtype,
        train_atoms=[atoms_list[i] for i in train_idx],
        train=[graphs[i] for i in train_idx],
        valid=[graphs[i] for i in valid_idx],
    )


# ----------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------


def _common_model_kwargs(
    preset: ModelPreset, z_table: AtomicNumberTable, avg_num_neighbors: float, max_L: int
) -> dict:
    return dict(
        r_max=float(preset.r_max),
        num_bessel=preset.num_radial_basis,
        num_polynomial_cutoff=preset.num_cutoff_basis,
        max_ell=preset.max_ell,
        interaction_cls=mace_modules.interaction_classes[_INTERACTION],
        num_interactions=preset.num_interactions,
        num_elements=len(z_table),
        hidden_irreps=hidden_irreps(preset.num_channels, max_L),
        MLP_irreps=o3.Irreps(preset.MLP_irreps),
        avg_num_neighbors=float(avg_num_neighbors),
        atomic_numbers=list(z_table.zs),
        correlation=preset.correlation,
        gate=torch.nn.functional.silu,
        radial_MLP=list(preset.radial_MLP),
    )


def build_energy_model(preset: ModelPreset, data: PreparedData) -> torch.nn.Module:
    """A fresh ``ScaleShiftMACE`` with E0s and scale/shift from the training set."""
    configs = [config_from_atoms(a, key_specification()) for a in data.train_atoms]
    # E0s: least-squares fit of total energies on element counts (MACE's
    # "average" E0s), so the network only learns the interaction energy.
    e0_by_z = compute_average_E0s(configs, data.z_table)
    atomic_energies = np.array([e0_by_z[z] for z in data.z_table.zs])
    with default_dtype(data.dtype):
        loader = make_loader(data.train, batch_size=256)
        avg_num_neighbors = compute_avg_num_neighbors(loader)
        # MACE's default "rms_forces_scaling": shift = mean interaction energy
        # per atom, scale = RMS of the force components.
        mean, rms = compute_mean_rms_energy_forces(loader, atomic_energies)
        model = mace_modules.ScaleShiftMACE(
            atomic_energies=atomic_energies,
            atomic_inter_scale=float(np.atleast_1d(rms)[0]),
            atomic_inter_shift=float(np.atleast_1d(mean)[0]),
            interaction_cls_first=mace_modules.interaction_classes[_INTERACTION],
            **_common_model_kwargs(preset, data.z_table, avg_num_neighbors, preset.max_L),
        )
    return model.to(data.dtype)


def build_dipole_model(preset: ModelPreset, data: PreparedData) -> torch.nn.Module:
    """A fresh ``AtomicDipolesMACE`` (needs L>=1 features, so max_L is raised to 1)."""
    with default_dtype(data.dtype):
        avg_num_neighbors = compute_avg_num_neighbors(make_loader(data.train, 256))
        model = mace_modules.AtomicDipolesMACE(
            atomic_energies=None,
            # mace_run_train builds the dipole model with this first block.
            interaction_cls_first=mace_modules.interaction_classes["RealAgnosticInteractionBlock"],
            **_common_model_kwargs(preset, data.z_table, avg_num_neighbors, max(1, preset.max_L)),
        )
    return model.to(data.dtype)


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------


def _evaluate_energy(model, loader, loss_fn, device) -> dict:
    """Validation loss and MAEs (energy meV per structure and per atom, forces meV/Å)."""
    model.eval()
    total_loss, n_graphs = 0.0, 0
    e_err, e_err_atom, f_err = [], [], []
    for batch in loader:
        batch = batch.to(device)
        # No torch.no_grad: forces are -dE/dx through autograd.
        out = model(batch.to_dict(), training=False, compute_force=True)
        loss = loss_fn(batch, out)
        total_loss += float(loss.detach()) * batch.num_graphs
        n_graphs += batch.num_graphs
        n_atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(out["energy"].dtype)
        de = (out["energy"].detach() - batch.energy).abs()  # [graphs], or [members, graphs] stacked
        e_err.append(de.reshape(-1))
        e_err_atom.append((de / n_atoms).reshape(-1))
        f_err.append((out["forces"].detach() - batch.forces).abs().reshape(-1))
    return {
        "loss": total_loss / max(n_graphs, 1),
        "energy_meV": 1000.0 * float(torch.cat(e_err).mean()),
        "energy_per_atom_meV": 1000.0 * float(torch.cat(e_err_atom).mean()),
        "forces_meV_per_A": 1000.0 * float(torch.cat(f_err).mean()),
    }


def _evaluate_dipole(model, loader, loss_fn, device) -> dict:
    """Validation loss and dipole MAE per component in milli-Debye."""
    model.eval()
    total_loss, n_graphs, errors = 0.0, 0, []
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            out = model(batch.to_dict(), training=False)
            total_loss += float(loss_fn(batch, out)) * batch.num_graphs
            n_graphs += batch.num_graphs
            errors.append((out["dipole"] - batch.dipole).abs().reshape(-1))
    mae_e_angstrom = float(torch.cat(errors).mean())
    return {
        "loss": total_loss / max(n_graphs, 1),
        "dipole_mD": 1000.0 * mae_e_angstrom * E_ANGSTROM_IN_DEBYE,
    }


# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------


def data_fingerprint(data: PreparedData) -> str:
    """Digest of the training structures, labels and split (a checkpoint belongs to one data set)."""
    digest = hashlib.sha256()
    for graphs in (data.train, data.valid):
        digest.update(len(graphs).to_bytes(8, "little"))
        for g in graphs:
            for key in ("positions", "node_attrs", "energy", "forces", "dipole"):
                value = getattr(g, key, None)
                if value is not None:
                    digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


class Checkpoint(PeriodicCheckpoint):
    """The mid-fit state of one model on disk, so an interrupted fit resumes at its last saved epoch.

    Holds the weights, optimizer, LR scheduler, EMA, shuffling generator, best
    state and history: a resumed fit continues exactly as the uninterrupted one
    would have. It is written at most every ``every_s`` seconds and when the fit
    ends. ``fingerprint`` names the fit (kind, preset, seed, data).
    """

    def __init__(self, path: str | Path, fingerprint: dict, every_s: float | None = None):
        super().__init__(path, fingerprint, every_s, what="training")

    def save(self, fit_state: dict, **progress) -> None:
        ema = fit_state["ema"]
        self.write(
            {
                "model": fit_state["model"].state_dict(),
                "optimizer": fit_state["optimizer"].state_dict(),
                "scheduler": fit_state["scheduler"].state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "generator": fit_state["generator"].get_state()
                if fit_state["generator"] is not None
                else None,
                "torch_rng": torch.get_rng_state(),
                **progress,
            }
        )

    def load(self, fit_state: dict) -> dict | None:
        """Restore ``fit_state`` in place; returns the saved progress, or None if there is none for this fit."""
        payload = self.read()
        if payload is None:
            return None
        fit_state["model"].load_state_dict(payload["model"])
        fit_state["optimizer"].load_state_dict(payload["optimizer"])
        fit_state["scheduler"].load_state_dict(payload["scheduler"])
        if fit_state["ema"] is not None:
            fit_state["ema"].load_state_dict(payload["ema"])
        if fit_state["generator"] is not None:
            fit_state["generator"].set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        return payload


def _checkpoint(
    path: str | Path | None,
    kind: str,
    preset: ModelPreset,
    seed: int,
    data: PreparedData,
    init_model: torch.nn.Module | None,
) -> Checkpoint | None:
    if path is None:
        return None
    fingerprint = {
        "kind": kind,
        "preset": preset.as_dict(),
        "seed": int(seed),
        "dtype": str(data.dtype),
        "data": data_fingerprint(data),
        "warm_start": init_model is not None,
    }
    return Checkpoint(path, fingerprint)


# ----------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------


@with_fast_path
def _fit(
    model: torch.nn.Module,
    data: PreparedData,
    preset: ModelPreset,
    seed: int,
    device: torch.device,
    loss_fn: torch.nn.Module,
    evaluate: Callable,
    forward_kwargs: dict,
    progress: ProgressCallback | None,
    checkpoint: Checkpoint | None = None,
    stage_two_loss_fn: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Adam (AMSGrad) + optional EMA + early stopping on the validation loss.

    With ``stage_two_loss_fn`` the last ``preset.stage_two_fraction`` of the epochs
    (MACE's "Stage Two") train with that loss at ``preset.stage_two_lr``; the best
    state is then chosen on its validation loss. Early stopping in stage one starts
    stage two at once, as ``mace_run_train`` does.
    """
    started = time.perf_counter()
    model = model.to(device=device, dtype=data.dtype)
    loss_fn = loss_fn.to(device=device, dtype=data.dtype)
    weights = molecule_balance_weights(data.train_atoms) if preset.balance_molecules else None
    train_loader = make_loader(data.train, preset.batch_size, shuffle=True, seed=seed, weights=weights)
    valid_loader = make_loader(data.valid, max(preset.batch_size, 64))
    n_epochs, patience, lr_patience = epoch_budget(preset, len(train_loader))
    stage_two_epochs = stage_two_length(preset, n_epochs) if stage_two_loss_fn is not None else 0
    if stage_two_loss_fn is not None and stage_two_epochs:
        stage_two_loss_fn = stage_two_loss_fn.to(device=device, dtype=data.dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.learning_rate, amsgrad=True)
    # Gradients are clipped per potential: stacked members (StackedCommittee) each on their own.
    members = getattr(model, "members", None)
    clip_groups = (
        [list(m.parameters()) for m in members] if members is not None else [list(model.parameters())]
    )
    scheduler = _lr_scheduler(optimizer, preset, n_epochs, lr_patience)
    ema = ExponentialMovingAverage(model.parameters(), decay=preset.ema_decay) if preset.ema_decay else None

    initial = evaluate(model, valid_loader, loss_fn, device)
    history = {
        "seed": int(seed),
        "n_train": len(data.train),
        "n_valid": len(data.valid),
        "epochs_planned": n_epochs,
        "steps_per_epoch": len(train_loader),
        "initial_valid_loss": initial["loss"],
        "initial_valid_mae": {k: v for k, v in initial.items() if k != "loss"},
        "train_loss": [],
        "valid_loss": [],
        "stage_two_from_epoch": None,
    }
    best_loss, best_epoch = initial["loss"], 0
    last_epoch = n_epochs  # moves earlier when stage one stops early
    best_state = copy.deepcopy(model.state_dict())
    # Wall time per phase (s), so benchmarks can say where training time goes.
    timers = dict.fromkeys(("data", "forward", "backward", "optimizer", "validation"), 0.0)
    clock = time.perf_counter
    # Everything that evolves during the fit, so a checkpoint can restore it exactly.
    fit_state = {
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "ema": ema,
        "generator": train_loader.generator,
    }
    first_epoch, earlier_s = 1, 0.0
    if checkpoint is not None:
        resumed = checkpoint.load(fit_state)
        if resumed is not None:
            first_epoch = resumed["epoch"] + 1
            history, timers, best_state = resumed["history"], resumed["timers"], resumed["best_state"]
            best_loss, best_epoch = resumed["best_loss"], resumed["best_epoch"]
            earlier_s = resumed["elapsed_s"]
            last_epoch = resumed["epoch"] if resumed["finished"] else resumed["last_epoch"]
    if history["stage_two_from_epoch"] is not None:
        assert stage_two_loss_fn is not None  # a checkpoint of stage two has the same settings
        loss_fn = stage_two_loss_fn  # resumed inside stage two (its learning rate is in the optimizer state)
    epoch = first_epoch - 1
    while epoch < last_epoch:
        epoch += 1
        if (
            stage_two_loss_fn is not None
            and stage_two_epochs
            and history["stage_two_from_epoch"] is None
            and epoch > last_epoch - stage_two_epochs
        ):
            loss_fn = stage_two_loss_fn
            for group in optimizer.param_groups:
                group["lr"] = preset.stage_two_lr
            history["stage_two_from_epoch"] = epoch
            best_loss, best_epoch = math.inf, epoch - 1  # the best state is chosen on the new loss
        model.train()
        running, seen = 0.0, 0
        for batch in train_loader:
            t0 = clock()
            batch = batch.to(device)
            t1 = clock()
            optimizer.zero_grad(set_to_none=True)
            out = model(batch.to_dict(), training=True, **forward_kwargs)
            loss = loss_fn(batch, out)
            t2 = clock()
            loss.backward()
            t3 = clock()
            if preset.clip_grad:
                for one_model in clip_groups:
                    torch.nn.utils.clip_grad_norm_(one_model, preset.clip_grad)
            optimizer.step()
            if ema is not None:
                ema.update()
            running += float(loss.detach()) * batch.num_graphs
            seen += batch.num_graphs
            t4 = clock()
            for phase, dt in zip(
                ("data", "forward", "backward", "optimizer"),
                (t1 - t0, t2 - t1, t3 - t2, t4 - t3),
                strict=True,
            ):
                timers[phase] += dt
        train_loss = running / max(seen, 1)

        # Validate (and keep the best state) with the EMA-averaged weights.
        t0 = clock()
        with ema.average_parameters() if ema is not None else contextlib.nullcontext():
            metrics = evaluate(model, valid_loader, loss_fn, device)
            improved = metrics["loss"] < best_loss
            state = copy.deepcopy(model.state_dict()) if improved else None
        timers["validation"] += clock() - t0
        if history["stage_two_from_epoch"] is not None:
            pass  # stage two keeps its constant learning rate
        elif isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metrics["loss"])
        else:
            scheduler.step()
        history["train_loss"].append(train_loss)
        history["valid_loss"].append(metrics["loss"])
        if state is not None:
            best_loss, best_epoch, best_state = metrics["loss"], epoch, state
        finished = epoch == last_epoch or epoch - best_epoch >= patience
        if finished and stage_two_epochs and history["stage_two_from_epoch"] is None:
            last_epoch, finished = epoch + stage_two_epochs, False  # stage one stopped early
        if checkpoint is not None and (finished or checkpoint.due()):
            checkpoint.save(
                fit_state,
                epoch=epoch,
                finished=finished,
                history=history,
                timers=timers,
                best_state=best_state,
                best_loss=best_loss,
                best_epoch=best_epoch,
                last_epoch=last_epoch,
                elapsed_s=earlier_s + clock() - started,
            )
        if progress is not None:
            progress(
                epoch,
                last_epoch,
                {
                    "train_loss": train_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                    **{f"valid_{k}": v for k, v in metrics.items()},
                },
            )
        if finished:
            break

    model.load_state_dict(best_state)
    final = evaluate(model, valid_loader, loss_fn, device)
    model.eval()
    history.update(
        epochs_run=len(history["train_loss"]),
        best_epoch=best_epoch,
        best_valid_loss=best_loss,
        valid_mae={k: v for k, v in final.items() if k != "loss"},
        train_time_s=earlier_s + time.perf_counter() - started,
        time_breakdown_s=timers,
    )
    return model, history


def epoch_budget(preset: ModelPreset, steps_per_epoch: int) -> tuple[int, int, int]:
    """Epochs to run, early-stopping patience and LR-plateau patience (all in epochs).

    Without a binding ``max_steps`` these are ``preset.epochs``, ``preset.patience``
    and ``min(50, patience // 2)``. When the step budget cuts the epochs, both
    patiences shrink by the same ratio, so the schedule keeps its shape in steps.
    """
    epochs = preset.epochs
    if preset.max_steps:
        epochs = min(epochs, max(1, math.ceil(preset.max_steps / max(1, steps_per_epoch))))
    ratio = epochs / preset.epochs
    patience = max(1, round(preset.patience * ratio))
    lr_patience = max(1, round(min(50, preset.patience // 2) * ratio))
    return epochs, patience, lr_patience


def molecule_identities(atoms_list: Sequence[Atoms]) -> set[str]:
    """The distinct molecules of a data set: ``info["molecule"]`` (specml's provenance tag),
    else the chemical formula."""
    return {molecule_of(a) for a in atoms_list}


def molecule_of(atoms: Atoms) -> str:
    """``info["molecule"]`` (specml's provenance tag), else the chemical formula."""
    return str(atoms.info.get("molecule") or atoms.get_chemical_formula())


def molecule_balance_weights(atoms_list: Sequence[Atoms]) -> list[float] | None:
    """Per-structure sampling weights that give every molecule (as in
    :func:`molecule_identities`) the same total weight; None for data of one molecule."""
    names = [molecule_of(a) for a in atoms_list]
    counts = Counter(names)
    if len(counts) < 2:
        return None
    return [1.0 / counts[name] for name in names]


def stage_two_length(preset: ModelPreset, n_epochs: int) -> int:
    """Epochs of MACE's Stage Two at the end of an ``n_epochs`` fit (0: none; stage one keeps
    at least one epoch)."""
    if not preset.stage_two_fraction or n_epochs < 2:
        return 0
    return min(n_epochs - 1, max(1, round(preset.stage_two_fraction * n_epochs)))


def _lr_scheduler(optimizer, preset: ModelPreset, n_epochs: int, lr_patience: int):
    if preset.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.8, patience=lr_patience)
    if preset.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, n_epochs), eta_min=preset.learning_rate * preset.lr_min_factor
        )
    raise ModelError(f"unknown lr_schedule {preset.lr_schedule!r}; use 'plateau' or 'cosine'")


def _resolve(device, dtype) -> tuple[torch.device, torch.dtype]:
    device = device if isinstance(device, torch.device) else select_device(device or "auto")
    return device, torch_dtype(dtype)


def _warm_start_model(init_model: torch.nn.Module, kind: type, dtype) -> torch.nn.Module:
    if not isinstance(init_model, kind):
        raise ModelError(f"warm start needs a {kind.__name__}, got {type(init_model).__name__}")
    return copy.deepcopy(init_model).to(dtype)


def _z_table_of(model: torch.nn.Module) -> AtomicNumberTable:
    return get_atomic_number_table_from_zs(model_atomic_numbers(model))


def warm_start_and_data(
    atoms_list: Sequence[Atoms],
    keys: tuple[str, ...],
    kind: type,
    preset: ModelPreset,
    dtype,
    split_seed: int,
    init_model: torch.nn.Module | None,
    data: PreparedData | None = None,
) -> tuple[torch.nn.Module | None, PreparedData]:
    """The warm-start model (a ``kind``, copied to ``dtype``) and the graphs of ``keys`` to fit:
    ``data`` if given, else built with the warm-start model's elements and cutoff (or the preset's)."""
    if init_model is not None:
        init_model = _warm_start_model(init_model, kind, dtype)
    if data is None:
        z_table = _z_table_of(init_model) if init_model is not None else None
        r_max = model_r_max(init_model) if init_model is not None else preset.r_max
        data = prepare_data(atoms_list, keys, r_max, dtype, split_seed, preset.valid_fraction, z_table)
    return init_model, data


def train_potential(
    atoms_list: Sequence[Atoms],
    preset: ModelPreset,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    init_model: torch.nn.Module | None = None,
    progress: ProgressCallback | None = None,
    split_seed: int = 0,
    data: PreparedData | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train a ``ScaleShiftMACE`` on energies (eV) and forces (eV/Å).

    ``seed`` fixes the weight initialisation and batch order; ``split_seed``
    the 80:20 train/valid split (committee members share it). With
    ``init_model`` the model is fine-tuned (warm start): its elements, cutoff,
    E0s and scale/shift are kept. ``data`` lets callers reuse prebuilt graphs.
    With ``checkpoint`` (a file path) the fit state is saved every few minutes
    and an interrupted fit with the same settings and data resumes from it.
    Returns the best-validation model (eval mode) and a history dict with
    per-epoch ``train_loss``/``valid_loss`` and ``valid_mae`` in meV, meV/Å.
    """
    device, dtype = _resolve(device, dtype)
    init_model, data = _potential_start_and_data(atoms_list, preset, dtype, split_seed, init_model, data)
    torch.manual_seed(seed)
    model = init_model if init_model is not None else build_energy_model(preset, data)
    loss_fn, stage_two = _energy_losses(preset, atoms_list)
    model, history = _fit(
        model,
        data,
        preset,
        seed,
        device,
        loss_fn,
        _evaluate_energy,
        {"compute_force": True},
        progress,
        _checkpoint(checkpoint, "energy", preset, seed, data, init_model),
        stage_two_loss_fn=stage_two,
    )
    history.update(kind="energy", warm_start=init_model is not None)
    return model, history


def _potential_start_and_data(
    atoms_list: Sequence[Atoms],
    preset: ModelPreset,
    dtype,
    split_seed: int,
    init_model: torch.nn.Module | None,
    data: PreparedData | None,
) -> tuple[torch.nn.Module | None, PreparedData]:
    """:func:`warm_start_and_data` for a potential (energies and forces)."""
    return warm_start_and_data(
        atoms_list,
        (ENERGY_KEY, FORCES_KEY),
        mace_modules.ScaleShiftMACE,
        preset,
        dtype,
        split_seed,
        init_model,
        data,
    )


def _energy_losses(
    preset: ModelPreset, atoms_list: Sequence[Atoms]
) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The energy + forces loss of a potential's fit and its Stage Two loss (None for one molecule)."""
    loss_fn = WeightedEnergyForcesLoss(preset.energy_weight, preset.forces_weight)
    # Stage Two is for the energy offsets between molecules; for one molecule the E0 fit
    # already absorbs its offset, and Stage Two only took epochs from the forces (quick
    # methanol run: harmonic MAE 44 -> 68 cm-1).
    several = len(molecule_identities(atoms_list)) > 1
    stage_two = (
        WeightedEnergyForcesLoss(preset.stage_two_energy_weight, preset.stage_two_forces_weight)
        if several
        else None
    )
    return loss_fn, stage_two


def train_potentials_stacked(
    atoms_list: Sequence[Atoms],
    preset: ModelPreset,
    seeds: Sequence[int],
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    init_models: Sequence[torch.nn.Module] | None = None,
    progress: ProgressCallback | None = None,
    split_seed: int = 0,
    data: PreparedData | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[list[torch.nn.Module], dict]:
    """Train one ``ScaleShiftMACE`` per seed in one fit, the members stacked into one vmapped
    model (:class:`specml.models.stacked.StackedCommittee`): each optimiser step evaluates all
    members at once, which costs less than stepping them in turn when a step is small.

    Each seed fixes its member's initialisation (``init_models`` instead: warm starts); the
    members share ``seeds[0]``'s batch order, one learning-rate schedule, early stopping and
    best epoch (on their summed validation loss, which the history reports). Otherwise a member
    trains as :func:`train_potential` would train it. Returns the members and the fit's history.
    """
    from specml.models.stacked import MemberSumLoss, StackedCommittee

    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ModelError(f"a stacked fit needs at least two different seeds, got {seeds}")
    if init_models is not None and len(init_models) != len(seeds):
        raise ModelError(f"{len(init_models)} warm-start models for {len(seeds)} seeds")
    device, dtype = _resolve(device, dtype)
    first, data = _potential_start_and_data(
        atoms_list, preset, dtype, split_seed, init_models[0] if init_models is not None else None, data
    )
    members: list[torch.nn.Module] = []
    if first is not None and init_models is not None:
        members = [first] + [
            _warm_start_model(m, mace_modules.ScaleShiftMACE, dtype) for m in init_models[1:]
        ]
    for seed in seeds[len(members) :]:
        torch.manual_seed(seed)
        members.append(build_energy_model(preset, data))
    loss_fn, stage_two = _energy_losses(preset, atoms_list)
    stacked = StackedCommittee(members)
    _, history = _fit(
        stacked,
        data,
        preset,
        seeds[0],
        device,
        MemberSumLoss(loss_fn),
        _evaluate_energy,
        {"compute_force": True},
        progress,
        _checkpoint(checkpoint, f"energy, stacked seeds {seeds}", preset, seeds[0], data, first),
        stage_two_loss_fn=MemberSumLoss(stage_two) if stage_two is not None else None,
    )
    history.update(kind="energy", warm_start=init_models is not None, stacked_seeds=seeds)
    return [member.eval() for member in members], history


def train_dipole_model(
    atoms_list: Sequence[Atoms],
    preset: ModelPreset,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    init_model: torch.nn.Module | None = None,
    progress: ProgressCallback | None = None,
    split_seed: int = 0,
    data: PreparedData | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train an ``AtomicDipolesMACE`` on dipoles in e·Å (MACE's dipole-only mode).

    Same conventions as :func:`train_potential`; ``valid_mae`` is in mD.
    """
    device, dtype = _resolve(device, dtype)
    init_model, data = warm_start_and_data(
        atoms_list, (DIPOLE_KEY,), mace_modules.AtomicDipolesMACE, preset, dtype, split_seed, init_model, data
    )
    torch.manual_seed(seed)
    model = init_model if init_model is not None else build_dipole_model(preset, data)
    loss_fn = DipoleSingleLoss(preset.dipole_weight)
    model, history = _fit(
        model,
        data,
        preset,
        seed,
        device,
        loss_fn,
        _evaluate_dipole,
        {},
        progress,
        _checkpoint(checkpoint, "dipole", preset, seed, data, init_model),
    )
    history.update(kind="dipole", warm_start=init_model is not None)
    return model, history
