"""A committee of MACE potentials (+ optional dipole model) with uncertainties.

PALIRS selects new training structures where the committee disagrees; the
disagreement measure is :func:`uncertainty`. The members are plain MACE
modules (``ScaleShiftMACE``/``AtomicDipolesMACE`` with ``r_max`` and
``atomic_numbers`` buffers) so a batched MD engine can use them directly;
:meth:`Committee.calculator` is the reference ASE path.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from mace.tools import get_atomic_number_table_from_zs

from specml.errors import InputError, ModelError

from .data import (
    DIPOLE_KEY,
    ENERGY_KEY,
    FORCES_KEY,
    check_elements,
    make_loader,
    model_atomic_numbers,
    model_r_max,
    to_atomic_data,
)
from .device import dtype_name, select_device, torch_dtype
from .presets import ModelPreset
from .training import prepare_data, train_dipole_model, train_potential, train_potentials_stacked

#: Regulariser (eV/Å) added to the mean force magnitude in the relative
#: uncertainty, so near-equilibrium structures (forces ~ 0) do not get an
#: arbitrarily large relative uncertainty. 0.1 eV/Å is small against thermal
#: forces in MD at 300 K (~1 eV/Å on H atoms) — our choice, not from PALIRS.
FORCE_UNCERTAINTY_EPS = 0.1

MANIFEST_NAME = "committee.json"
FORMAT_VERSION = 1


def uncertainty(forces_members: np.ndarray, eps: float = FORCE_UNCERTAINTY_EPS) -> tuple[float, float]:
    """PALIRS force uncertainty of one structure.

    ``forces_members``: shape (n_members, n_atoms, 3) in eV/Å. Returns
    ``(relative, absolute)`` where ``absolute`` = sqrt(mean over atoms and
    components of the committee variance) in eV/Å and ``relative`` =
    absolute / (mean force magnitude of the committee mean + ``eps``).
    The variance is the population variance (ddof=0) across members.
    """
    forces = np.asarray(forces_members, dtype=float)
    if forces.ndim != 3 or forces.shape[-1] != 3:
        raise ModelError(f"forces_members must be (members, atoms, 3), got {forces.shape}")
    if forces.shape[0] < 2:
        raise ModelError("an uncertainty needs at least two committee members")
    absolute = math.sqrt(float(forces.var(axis=0).mean()))
    magnitude = float(np.linalg.norm(forces.mean(axis=0), axis=-1).mean())
    return absolute / (magnitude + eps), absolute


class Committee:
    """Energy/force committee members, an optional dipole model and metadata."""

    def __init__(
        self,
        energy_models: Sequence[torch.nn.Module],
        dipole_model: torch.nn.Module | None,
        preset: ModelPreset,
        seeds: Sequence[int] | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        histories: dict | None = None,
    ):
        if not energy_models:
            raise ModelError("a committee needs at least one energy model")
        self.energy_models = list(energy_models)
        self.dipole_model = dipole_model
        self.preset = preset
        self.seeds = list(seeds) if seeds is not None else list(range(len(energy_models)))
        self.histories = histories or {"energy": [], "dipole": None}
        first = self.energy_models[0]
        self.atomic_numbers = model_atomic_numbers(first)
        self.r_max = model_r_max(first)
        for model in self.energy_models[1:] + ([dipole_model] if dipole_model else []):
            if model_atomic_numbers(model) != self.atomic_numbers:
                raise ModelError("committee members were trained on different elements")
        self.z_table = get_atomic_number_table_from_zs(self.atomic_numbers)
        param = next(first.parameters())
        self.device = select_device(device) if device is not None else param.device
        self.dtype = torch_dtype(dtype) if dtype is not None else param.dtype
        self.to(self.device, self.dtype)

    def __len__(self) -> int:
        return len(self.energy_models)

    def __repr__(self) -> str:
        return (
            f"Committee({len(self)} x ScaleShiftMACE, dipole={self.dipole_model is not None}, "
            f"preset={self.preset.name!r}, elements={self.atomic_numbers}, "
            f"r_max={self.r_max} Å, {self.device}, {dtype_name(self.dtype)})"
        )

    @property
    def models(self) -> list[torch.nn.Module]:
        return self.energy_models + ([self.dipole_model] if self.dipole_model else [])

    def to(self, device=None, dtype=None) -> Committee:
        """Move/cast every model in place (e.g. to float64 for MD); returns self."""
        if device is not None:
            self.device = device if isinstance(device, torch.device) else select_device(device)
        if dtype is not None:
            self.dtype = torch_dtype(dtype)
        for model in self.models:
            model.to(device=self.device, dtype=self.dtype)
            model.eval()
        return self

    def check_elements(self, atoms: Atoms) -> None:
        """Raise ``UnsupportedElementError`` for an element the committee never saw."""
        check_elements(atoms, self.atomic_numbers)

    # ------------------------------------------------------------------ predict

    def predict(self, atoms_list: Sequence[Atoms], batch_size: int = 512) -> dict:
        """Committee predictions for many structures.

        All structures go through one DataLoader; each member does one batched
        forward pass per ``batch_size`` structures. Returns (per structure):
        ``energy`` (n,) eV committee mean, ``energy_std`` (n,) eV, ``forces``
        list of (n_atoms, 3) eV/Å means, ``forces_members`` list of
        (n_members, n_atoms, 3), ``force_variance`` list of (n_atoms, 3),
        ``force_std_per_atom`` list of (n_atoms,) eV/Å (sqrt of the variance
        summed over components), ``force_std`` (n,) eV/Å and
        ``relative_force_uncertainty`` (n,) as in :func:`uncertainty`; and
        ``dipole`` (n, 3) e·Å when there is a dipole model.
        """
        atoms_list = list(atoms_list)
        if not atoms_list:
            raise ModelError("predict() needs at least one structure")
        graphs = to_atomic_data(atoms_list, self.z_table, self.r_max, self.dtype)
        loader = make_loader(graphs, batch_size)
        n_members = len(self.energy_models)
        energies = np.zeros((n_members, len(atoms_list)))
        forces_flat: list[list[np.ndarray]] = [[] for _ in range(n_members)]
        dipoles = []
        start = 0
        for batch in loader:
            batch = batch.to(self.device)
            stop = start + batch.num_graphs
            for m, model in enumerate(self.energy_models):
                out = model(batch.to_dict(), training=False, compute_force=True)
                energies[m, start:stop] = out["energy"].detach().cpu().double().numpy()
                forces_flat[m].append(out["forces"].detach().cpu().double().numpy())
            if self.dipole_model is not None:
                with torch.no_grad():
                    out = self.dipole_model(batch.to_dict(), training=False)
                dipoles.append(out["dipole"].cpu().double().numpy())
            start = stop

        all_forces = np.stack([np.concatenate(f) for f in forces_flat])  # (M, N_tot, 3)
        sizes = [len(a) for a in atoms_list]
        splits = np.cumsum(sizes)[:-1]
        per_structure = np.split(all_forces, splits, axis=1)
        result = {
            "energy": energies.mean(axis=0),
            "energy_std": energies.std(axis=0),
            "energy_members": energies,
            "forces": [f.mean(axis=0) for f in per_structure],
            "forces_members": per_structure,
            "force_variance": [f.var(axis=0) for f in per_structure],
        }
        result["force_std_per_atom"] = [np.sqrt(v.sum(axis=-1)) for v in result["force_variance"]]
        if n_members > 1:
            pairs = [uncertainty(f) for f in per_structure]
            result["relative_force_uncertainty"] = np.array([p[0] for p in pairs])
            result["force_std"] = np.array([p[1] for p in pairs])
        else:
            result["relative_force_uncertainty"] = np.full(len(atoms_list), np.nan)
            result["force_std"] = np.full(len(atoms_list), np.nan)
        if dipoles:
            result["dipole"] = np.concatenate(dipoles)
        return result

    def calculator(self) -> CommitteeCalculator:
        """ASE calculator with committee-mean energy/forces and the dipole."""
        return CommitteeCalculator(self)

    # ---------------------------------------------------------------- save/load

    def save(self, directory: str | Path) -> Path:
        """Write one ``torch.save`` file per model plus a JSON manifest."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for i, model in enumerate(self.energy_models):
            name = f"energy_member_{i}.pt"
            torch.save(model, directory / name)
            files.append(name)
        dipole_file = None
        if self.dipole_model is not None:
            dipole_file = "dipole_model.pt"
            torch.save(self.dipole_model, directory / dipole_file)
        manifest = {
            "format_version": FORMAT_VERSION,
            "energy_model_files": files,
            "dipole_model_file": dipole_file,
            "preset": self.preset.as_dict(),
            "seeds": self.seeds,
            "atomic_numbers": self.atomic_numbers,
            "r_max_angstrom": self.r_max,
            "dtype": dtype_name(self.dtype),
            "units": {"energy": "eV", "forces": "eV/Angstrom", "dipole": "e*Angstrom"},
            "histories": self.histories,
        }
        (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=float))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device | None = None) -> Committee:
        """Load a committee written by :meth:`save` (trusted files only: the
        models are pickled modules). Missing/corrupt files raise ``ModelError``."""
        directory = Path(directory)
        manifest_path = directory / MANIFEST_NAME
        if not directory.is_dir():
            raise ModelError(f"no committee directory at {directory}")
        if not manifest_path.is_file():
            raise ModelError(f"{directory} is not a committee: {MANIFEST_NAME} is missing")
        try:
            manifest = json.loads(manifest_path.read_text())
            files = manifest["energy_model_files"]
            preset = ModelPreset.from_dict(manifest["preset"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelError(f"corrupt committee manifest {manifest_path}: {exc}") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{manifest_path}: unsupported format version {manifest.get('format_version')}")
        target = select_device(device or "auto")
        energy_models = [_load_module(directory / name, target) for name in files]
        dipole_model = None
        if manifest.get("dipole_model_file"):
            dipole_model = _load_module(directory / manifest["dipole_model_file"], target)
        committee = cls(
            energy_models,
            dipole_model,
            preset,
            seeds=manifest.get("seeds"),
            device=target,
            dtype=manifest.get("dtype"),
            histories=manifest.get("histories"),
        )
        if committee.atomic_numbers != manifest.get("atomic_numbers"):
            raise ModelError(f"{directory}: models do not match the manifest's elements")
        return committee


def committee_digest(directory: str | Path) -> str:
    """SHA-256 over a saved committee's manifest and the model files it names: its identity."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
        files = list(manifest["energy_model_files"]) + [f for f in [manifest.get("dipole_model_file")] if f]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{manifest_path}: not a readable committee manifest ({exc})") from exc
    digest = hashlib.sha256(manifest_path.read_bytes())
    for name in files:
        try:
            digest.update((directory / name).read_bytes())
        except OSError as exc:
            raise InputError(
                f"{directory}: model file {name} of the committee is unreadable ({exc})"
            ) from exc
    return digest.hexdigest()


def _load_module(path: Path, device: torch.device) -> torch.nn.Module:
    if not path.is_file():
        raise ModelError(f"committee model file {path} is missing")
    try:
        # weights_only=False: the files hold whole MACE modules (as MACE's own
        # model files do), so only load directories you trust.
        model = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ModelError(f"cannot load committee model {path}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{path} does not contain a torch module")
    return model


def train_committee(
    atoms_list: Sequence[Atoms],
    preset: ModelPreset,
    n_members: int = 3,
    seeds: Sequence[int] | None = (0, 1, 2),
    init: Committee | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    train_dipole: bool = True,
    split_seed: int = 0,
    progress=None,
    executor=None,
    checkpoint_dir: str | Path | None = None,
    stacked: bool = False,
) -> Committee:
    """Train ``n_members`` potentials differing only in their random seed.

    All members share the same 80:20 split (``split_seed``) and graphs. With
    ``init`` every member (and the dipole model) is fine-tuned from the
    corresponding member of ``init`` (warm start). ``progress`` is called as
    ``progress(model_label, epoch, n_epochs, metrics)``. With a distributed
    :class:`specml.executor.Executor` the members and the dipole model train
    in parallel, one task each (then ``progress`` is not called per epoch).
    With ``checkpoint_dir`` every fit saves its state there every few minutes
    and an interrupted call with the same arguments resumes the fits; the
    caller removes the directory once the committee is saved. With ``stacked`` the members
    train in one fit, stacked into one vmapped model
    (:func:`specml.models.training.train_potentials_stacked`: less work per step; they then
    share the first seed's batch order, learning-rate schedule and early stopping).
    """
    seeds = list(seeds) if seeds is not None else list(range(n_members))
    if len(seeds) < n_members:
        seeds += list(range(max(seeds) + 1, max(seeds) + 1 + n_members - len(seeds)))
    seeds = seeds[:n_members]
    if len(set(seeds)) != len(seeds):
        raise ModelError(f"committee seeds must differ, got {seeds}")
    device = device if isinstance(device, torch.device) else select_device(device or "auto")
    dtype = torch_dtype(dtype)
    if init is not None:
        z_table, r_max = init.z_table, init.r_max
    else:
        z_table, r_max = None, preset.r_max
    atoms_list = list(atoms_list)
    stacked = stacked and n_members > 1
    checkpoints = _checkpoint_paths(checkpoint_dir, seeds, stacked)
    if executor is not None and executor.distributed:
        return _train_committee_distributed(
            atoms_list,
            preset,
            seeds,
            init,
            device,
            dtype,
            train_dipole,
            split_seed,
            executor,
            checkpoints,
            stacked,
        )
    data = prepare_data(
        atoms_list,
        (ENERGY_KEY, FORCES_KEY),
        r_max,
        dtype,
        split_seed,
        preset.valid_fraction,
        z_table,
    )

    def reporter(label):
        if progress is None:
            return None
        return lambda epoch, n, metrics: progress(label, epoch, n, metrics)

    energy_models: list[torch.nn.Module] = []
    histories: dict[str, Any] = {"energy": [], "dipole": None}
    starts = _warm_starts(init, len(seeds))
    if stacked:
        energy_models, history = train_potentials_stacked(
            atoms_list,
            preset,
            seeds,
            device=device,
            dtype=dtype,
            init_models=starts,
            progress=reporter("members"),
            data=data,
            checkpoint=checkpoints[0],
        )
        histories["energy"] = [history] * len(seeds)
    else:
        for i, seed in enumerate(seeds):
            model, history = train_potential(
                atoms_list,
                preset,
                seed=seed,
                device=device,
                dtype=dtype,
                init_model=starts[i] if starts is not None else None,
                progress=reporter(f"member {i}"),
                data=data,
                checkpoint=checkpoints[i],
            )
            energy_models.append(model)
            histories["energy"].append(history)

    dipole_model = None
    if train_dipole:
        start = init.dipole_model if init is not None else None
        dipole_data = prepare_data(
            atoms_list,
            (DIPOLE_KEY,),
            r_max,
            dtype,
            split_seed,
            preset.valid_fraction,
            data.z_table,
        )
        dipole_model, histories["dipole"] = train_dipole_model(
            atoms_list,
            preset,
            seed=seeds[0],
            device=device,
            dtype=dtype,
            init_model=start,
            progress=reporter("dipole"),
            data=dipole_data,
            checkpoint=checkpoints[-1],
        )
    return Committee(energy_models, dipole_model, preset, seeds, device, dtype, histories)


def _checkpoint_paths(
    checkpoint_dir: str | Path | None, seeds: Sequence[int], stacked: bool = False
) -> list[Path | None]:
    """One checkpoint file per member (one for all with ``stacked``), then the dipole model's
    (all None without a directory)."""
    n_files = 1 if stacked else len(seeds)
    if checkpoint_dir is None:
        return [None] * (n_files + 1)
    root = Path(checkpoint_dir)
    paths: list[Path | None] = (
        [root / ("members_stacked_seeds_" + "_".join(str(s) for s in seeds) + ".pt")]
        if stacked
        else [root / f"member_{i}_seed_{seed}.pt" for i, seed in enumerate(seeds)]
    )
    return paths + [root / "dipole.pt"]


def _warm_starts(init: Committee | None, n: int) -> list[torch.nn.Module] | None:
    """The warm-start model of each of ``n`` members (``init``'s, cycled), or None."""
    return [init.energy_models[i % len(init)] for i in range(n)] if init is not None else None


def _module_to_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(model).cpu(), buffer)
    return buffer.getvalue()


def _module_from_bytes(data: bytes) -> torch.nn.Module:
    # weights_only=False: whole MACE modules, produced by this process's own tasks.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _train_one_task(args) -> tuple[Any, dict]:
    """One committee member (``kind`` "energy"), all members stacked in one fit ("stacked":
    ``seed`` is then the list of seeds, ``init_bytes`` a list, and the modules come back as a
    list) or the dipole model, on an executor worker. Modules travel as ``torch.save`` bytes:
    that is how MACE modules are known to serialise."""
    kind, atoms_list, preset, seed, dtype, init_bytes, split_seed, checkpoint = args
    if kind == "stacked":
        models, history = train_potentials_stacked(
            atoms_list,
            preset,
            seed,
            dtype=dtype,
            init_models=[_module_from_bytes(b) for b in init_bytes] if init_bytes is not None else None,
            split_seed=split_seed,
            checkpoint=checkpoint,
        )
        return [_module_to_bytes(m) for m in models], history
    train = train_potential if kind == "energy" else train_dipole_model
    model, history = train(
        atoms_list,
        preset,
        seed=seed,
        dtype=dtype,
        init_model=_module_from_bytes(init_bytes) if init_bytes is not None else None,
        split_seed=split_seed,
        checkpoint=checkpoint,
    )
    return _module_to_bytes(model), history


def _train_committee_distributed(
    atoms_list, preset, seeds, init, device, dtype, train_dipole, split_seed, executor, checkpoints, stacked
) -> Committee:
    starts = _warm_starts(init, len(seeds))
    tasks: list[tuple]
    if stacked:
        starts_bytes = [_module_to_bytes(m) for m in starts] if starts is not None else None
        tasks = [
            ("stacked", atoms_list, preset, list(seeds), dtype, starts_bytes, split_seed, checkpoints[0])
        ]
    else:
        tasks = [
            (
                "energy",
                atoms_list,
                preset,
                seed,
                dtype,
                _module_to_bytes(starts[i]) if starts is not None else None,
                split_seed,
                checkpoints[i],
            )
            for i, seed in enumerate(seeds)
        ]
    if train_dipole:
        tasks.append(
            (
                "dipole",
                atoms_list,
                preset,
                seeds[0],
                dtype,
                _module_to_bytes(init.dipole_model)
                if init is not None and init.dipole_model is not None
                else None,
                split_seed,
                checkpoints[-1],
            )
        )
    results = executor.map(_train_one_task, tasks, f"training {len(tasks)} models in parallel")
    for result in results:
        if not result.ok:
            raise result.error
    n_energy_tasks = 1 if stacked else len(seeds)
    if stacked:
        energy_bytes, energy_histories = results[0].value[0], [results[0].value[1]] * len(seeds)
    else:
        energy_bytes = [r.value[0] for r in results[:n_energy_tasks]]
        energy_histories = [r.value[1] for r in results[:n_energy_tasks]]
    models = [_module_from_bytes(b) for b in energy_bytes]
    if train_dipole:
        models.append(_module_from_bytes(results[n_energy_tasks].value[0]))
    histories = {
        "energy": energy_histories,
        "dipole": results[n_energy_tasks].value[1] if train_dipole else None,
    }
    return Committee(
        models[: len(seeds)],
        models[len(seeds)] if train_dipole else None,
        preset,
        seeds,
        device,
        dtype,
        histories,
    )


class CommitteeCalculator(Calculator):
    """ASE calculator: committee-mean energy (eV) and forces (eV/Å), dipole (e·Å).

    ``results["force_std"]`` (eV/Å) and ``results["relative_force_uncertainty"]``
    hold the PALIRS uncertainty of the current structure.
    """

    implemented_properties = ["energy", "free_energy", "forces", "dipole"]

    def __init__(self, committee: Committee, **kwargs):
        super().__init__(**kwargs)
        self.committee = committee

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None  # set by Calculator.calculate
        self.committee.check_elements(self.atoms)
        prediction = self.committee.predict([self.atoms])
        energy = float(prediction["energy"][0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": prediction["forces"][0],
            "energy_std": float(prediction["energy_std"][0]),
            "force_std": float(prediction["force_std"][0]),
            "relative_force_uncertainty": float(prediction["relative_force_uncertainty"][0]),
            "forces_members": prediction["forces_members"][0],
        }
        if "dipole" in prediction:
            self.results["dipole"] = prediction["dipole"][0]
