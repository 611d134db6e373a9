"""Batched ML molecular dynamics: R replicas advanced together in one graph.

One step costs one MACE forward+backward per committee member on a single
batched graph holding every active replica, instead of R x M separate ASE
calculator calls (each dominated by fixed per-call overhead).

Units (ASE's internal ones throughout, so numbers can be compared with ASE):
positions Å, energies eV, forces eV/Å, masses amu, time in ASE time units
internally (``timestep_fs * ase.units.fs``), momenta amu·Å/(ASE time) exactly
as ``Atoms.get_momenta()``; temperatures K; friction in 1/fs (the ASE
``friction=0.01 / units.fs`` convention); dipoles e·Å. The state dict stores
momenta in ASE units (exact round trip) and, for convenience, velocities in Å/fs.

Integrators reproduce ``ase.md.verlet.VelocityVerlet`` and
``ase.md.langevin.Langevin(fixcm=False)`` operation by operation (same
coefficients, same order of floating-point operations, same normal deviates
when given the same numpy ``Generator``), so a float64 run follows ASE with
the same model to round-off.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ase import Atoms, units

from specml.dynamics.mace_fastpath import accelerate
from specml.dynamics.trajectory import ReplicaTrajectory
from specml.errors import DynamicsError, ModelError
from specml.models.committee import FORCE_UNCERTAINTY_EPS, uncertainty
from specml.models.data import model_atomic_numbers, model_r_max
from specml.models.device import dtype_name, select_device, torch_dtype

ENSEMBLES = ("langevin", "nve")


# --------------------------------------------------------------------------- results
@dataclass
class BatchedTrajectory:
    """Output of :meth:`BatchedMD.run`: one :class:`ReplicaTrajectory` per replica."""

    replicas: list[ReplicaTrajectory]
    final_atoms: list[Atoms]
    ensemble: str
    timestep_fs: float
    precision: str
    device: str
    n_committee: int
    steps_run: int
    neighbour_rebuilds: int
    wall_time_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def stopped(self) -> np.ndarray:
        return np.array([r.stopped for r in self.replicas], dtype=bool)

    @property
    def stop_steps(self) -> list[int | None]:
        return [r.stop_step for r in self.replicas]

    def __len__(self) -> int:
        return len(self.replicas)

    def __getitem__(self, i: int) -> ReplicaTrajectory:
        return self.replicas[i]


# --------------------------------------------------------------------------- engine
class BatchedMD:
    """Langevin or NVE molecular dynamics of many replicas in one batched graph.

    Parameters
    ----------
    energy_models:
        Committee of MACE energy models (``MACE``/``ScaleShiftMACE``); one is
        allowed (no uncertainty stop then). They are deep-copied, put in eval
        mode and cast to ``precision``/``device``; the caller's modules are untouched.
    atoms:
        One ASE ``Atoms`` per replica (non-periodic molecules). Initial
        momenta are taken from the atoms (zero if unset).
    dipole_model:
        Optional ``AtomicDipolesMACE``; evaluated on recorded frames only.
    temperatures_K:
        Target temperature per replica (or one for all); required for Langevin.
    friction_per_fs:
        Langevin friction in 1/fs, scalar or per replica (ASE: ``friction=x / units.fs``).
    seeds:
        Per-replica seeds of independent ``numpy.random.Generator`` streams
        (default ``base_seed + replica index``). Same stream and draw order as
        ``ase.md.langevin.Langevin(rng=np.random.default_rng(seed))``.
    uncertainty_threshold:
        Sanity stop when the relative force uncertainty exceeds it (scalar or
        per replica; ``inf`` disables). Non-finite positions/forces always stop.
    skin:
        Verlet skin in Å; the pair list is rebuilt when any atom has moved more
        than ``skin / 2`` since the last build.
    uncertainty_eps:
        Regulariser (eV/Å) of the relative uncertainty, as in
        :func:`specml.models.committee.uncertainty` (which computes it).
    noise_block:
        Normal deviates are drawn for this many steps at once per replica (fewer
        numpy calls; same stream as step-by-step drawing).
    fast_path:
        Replace the convolution tensor products and invariant symmetric
        contractions of the (copied) models by the equivalent, faster modules of
        :mod:`specml.dynamics.mace_fastpath` where they apply and agree with the
        originals on a check at construction; everything else runs unchanged.
    compile_models:
        Run ``torch.compile``'d copies of the energy models (rebuilt without
        e3nn's code generation, as ``mace.tools.compile.prepare`` does; dynamic
        shapes, so replicas stopping or the pair list changing do not recompile).
        Worth it for long runs: the first compilation takes minutes on a CPU
        (later ones hit the on-disk cache). The first step checks the compiled
        forces against the eager ones; on any failure or disagreement the engine
        warns and continues with the eager models.

    Other integrators drive the engine through its public state and methods, as
    :class:`~specml.dynamics.ring_polymer.RingPolymerMD` does with ``ensemble="nve"``:
    ``begin`` (pack the running replicas, set ``F``), the packed tensors ``pos``, ``mom``,
    ``F``, ``m``, ``ptr`` and ``batch`` of the replicas in ``active``, ``committee_forces``,
    ``force_uncertainty``, ``dipole_moments``, ``update_pair_list``, ``draw_noise`` (the replicas' own random
    streams), ``store_state`` and ``stop_replicas``; ``state_dict`` then carries the run on.
    """

    # Set per packing of the active replicas (pack_replicas, begin): forces, the block of Langevin noise
    # and ASE's Langevin coefficients per atom (c1..c5, see _langevin_coefficients).
    F: torch.Tensor
    _noise: torch.Tensor | None
    c1: torch.Tensor
    c2: torch.Tensor
    c3: torch.Tensor
    c4: torch.Tensor
    c5: torch.Tensor

    def __init__(
        self,
        energy_models: Sequence[torch.nn.Module],
        atoms: Sequence[Atoms],
        *,
        dipole_model: torch.nn.Module | None = None,
        ensemble: str = "langevin",
        temperatures_K: float | Sequence[float] | None = None,
        timestep_fs: float = 0.5,
        friction_per_fs: float | Sequence[float] = 0.01,
        seeds: Sequence[int] | None = None,
        base_seed: int = 0,
        uncertainty_threshold: float | Sequence[float] = 0.5,
        uncertainty_eps: float = FORCE_UNCERTAINTY_EPS,
        record_interval: int = 1,
        record_positions: bool = True,
        skin: float = 0.5,
        precision: str | torch.dtype = "float64",
        device: str | torch.device = "auto",
        noise_block: int = 64,
        fast_path: bool = True,
        compile_models: bool = False,
    ):
        if ensemble not in ENSEMBLES:
            raise DynamicsError(f"unknown ensemble {ensemble!r}; use one of {ENSEMBLES}")
        if not energy_models:
            raise ModelError("at least one energy model is required")
        if len(atoms) == 0:
            raise DynamicsError("no replicas given")
        if timestep_fs <= 0 or record_interval < 1 or skin < 0 or noise_block < 1:
            raise DynamicsError("timestep_fs, record_interval and noise_block must be positive, skin >= 0")
        self.ensemble = ensemble
        self.dtype = torch_dtype(precision)
        self.precision = dtype_name(self.dtype)
        self.device = select_device(device)
        self.timestep_fs = float(timestep_fs)
        self.dt = self.timestep_fs * units.fs  # ASE time units
        self.record_interval = int(record_interval)
        self.record_positions = bool(record_positions)
        self.skin = float(skin)
        self.noise_block = int(noise_block)
        self.uncertainty_eps = float(uncertainty_eps)
        self.fast_path = bool(fast_path)
        self.fast_path_modules: dict[str, int] = {}
        R = len(atoms)
        self.n_replicas = R

        self.models = [self._prepare_model(m) for m in energy_models]
        self.compiled_models = [self._compiled(m) for m in energy_models] if compile_models else None
        if self.compiled_models is not None and any(m is None for m in self.compiled_models):
            warnings.warn(
                "torch.compile is not available for these models; running them eagerly", stacklevel=2
            )
            self.compiled_models = None
        self._compiled_checked = False
        z0 = model_atomic_numbers(self.models[0])
        for m in self.models[1:]:
            if model_atomic_numbers(m) != z0:
                raise ModelError("committee members have different atomic_numbers")
        self.z_table = z0
        self.dipole_model = self._prepare_model(dipole_model) if dipole_model is not None else None
        self.dipole_z_table = model_atomic_numbers(self.dipole_model) if self.dipole_model else None
        # One shared pair list serves all models: edges beyond a model's own
        # r_max get an exactly-zero weight from MACE's cutoff envelope (x < r_max mask).
        r_maxes = [model_r_max(m) for m in self.models]
        if self.dipole_model is not None:
            r_maxes.append(model_r_max(self.dipole_model))
        self.r_max = max(r_maxes)

        # Per-replica persistent data (indexed by original replica id).
        self.numbers = [np.asarray(a.numbers, dtype=np.int64).copy() for a in atoms]
        self.masses = [np.asarray(a.get_masses(), dtype=np.float64).copy() for a in atoms]
        for i, (a, z) in enumerate(zip(atoms, self.numbers, strict=True)):
            if np.any(a.pbc):
                raise DynamicsError(f"replica {i}: periodic systems are not supported (molecules only)")
            if len(z) < 2:
                raise DynamicsError(f"replica {i}: need at least 2 atoms")
            for table, what in ((self.z_table, "energy"), (self.dipole_z_table, "dipole")):
                if table is not None and not set(z.tolist()) <= set(table):
                    missing = sorted(set(z.tolist()) - set(table))
                    raise ModelError(f"replica {i}: elements {missing} not in the {what} model")
        self.positions = [np.asarray(a.positions, dtype=np.float64).copy() for a in atoms]
        self.momenta = [np.asarray(a.get_momenta(), dtype=np.float64).copy() for a in atoms]
        self.temperatures_K = self._per_replica(temperatures_K, "temperatures_K", allow_none=True)
        if ensemble == "langevin":
            if self.temperatures_K is None:
                raise DynamicsError("Langevin dynamics needs temperatures_K")
            if np.any(self.temperatures_K < 0):
                raise DynamicsError("temperatures must be >= 0 K")
        self.friction_per_fs = self._per_replica(friction_per_fs, "friction_per_fs")
        self.thresholds = self._per_replica(uncertainty_threshold, "uncertainty_threshold")
        seeds = list(seeds) if seeds is not None else [base_seed + i for i in range(R)]
        if len(seeds) != R:
            raise DynamicsError(f"{len(seeds)} seeds for {R} replicas")
        self.seeds = [int(s) for s in seeds]
        self.rngs = [np.random.default_rng(s) for s in self.seeds]
        self.stopped = np.zeros(R, dtype=bool)
        self.stop_step: list[int | None] = [None] * R
        self.stop_reason: list[str | None] = [None] * R
        self.step_count = 0
        self.neighbour_rebuilds = 0
        self.saved_forces: list[np.ndarray | None] = [None] * R
        self.active: list[int] = []

    # ------------------------------------------------------------------ setup helpers
    def _prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        for buf in ("r_max", "atomic_numbers"):
            if not hasattr(model, buf):
                raise ModelError(f"{type(model).__name__} has no {buf!r} buffer; not a MACE model")
        m = copy.deepcopy(model).to(device=self.device, dtype=self.dtype).eval()
        # Only d(energy)/d(positions) is needed: no parameter gradients in backward.
        for p in m.parameters():
            p.requires_grad_(False)
        if self.fast_path:
            for key, n in accelerate(m).items():
                self.fast_path_modules[key] = self.fast_path_modules.get(key, 0) + n
        return m

    def _compiled(self, model: torch.nn.Module) -> Callable[..., Any] | None:
        """``torch.compile`` of a rebuilt copy of a MACE model, or None if it cannot be rebuilt.
        A Δ model (base + correction, multi-fidelity) is the sum of its two parts compiled."""
        from specml.models.fidelity import DeltaModel  # here: specml.models imports the dynamics

        if isinstance(model, DeltaModel):
            base, correction = (self._compiled(part) for part in (model.base, model.correction))
            if not isinstance(base, torch.nn.Module) or not isinstance(correction, torch.nn.Module):
                return None
            return DeltaModel(base, correction)
        try:
            from mace.tools import compile as mace_compile
            from mace.tools.scripts_utils import extract_config_mace_model

            config = extract_config_mace_model(model)
            if "error" in config:
                return None
            # A list, as MACE's constructor expects: a tensor makes it warn on every build.
            config["atomic_numbers"] = [int(z) for z in config["atomic_numbers"]]
            rebuilt = mace_compile.prepare(lambda: type(model)(**config))()
            keys = rebuilt.load_state_dict(model.state_dict(), strict=False)
            # the rebuilt contraction drops only its "path is zero" flags; all must be False
            flags = dict(model.named_buffers())
            if keys.missing_keys or any(
                not k.endswith("_zeroed") or bool(flags[k]) for k in keys.unexpected_keys
            ):
                return None
            rebuilt = rebuilt.to(device=self.device, dtype=self.dtype).eval()
            for p in rebuilt.parameters():
                p.requires_grad_(False)
            reserve_dynamo_cache_entry()
            return torch.compile(rebuilt, dynamic=True)
        except Exception:  # noqa: BLE001 - any failure means: run eagerly
            return None

    def _per_replica(self, value, name, allow_none=False):
        if value is None:
            if allow_none:
                return None
            raise DynamicsError(f"{name} is required")
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            arr = np.full(self.n_replicas, float(arr))
        if arr.shape != (self.n_replicas,):
            raise DynamicsError(
                f"{name}: expected a scalar or {self.n_replicas} values, got shape {arr.shape}"
            )
        return arr.copy()

    def tensor(self, x, dtype=None):
        return torch.as_tensor(np.asarray(x), dtype=dtype or self.dtype, device=self.device)

    # ------------------------------------------------------------------ batch packing
    def pack_replicas(self, active: list[int]) -> None:
        """(Re)build all batched tensors for the replicas in ``active``.

        Called at the start of a run and whenever replicas stop; never per step.
        """
        self.active = list(active)
        if not active:
            return
        counts = [len(self.numbers[r]) for r in active]
        N = sum(counts)
        idx_long: dict[str, Any] = dict(dtype=torch.long, device=self.device)
        self.n_atoms = torch.tensor(counts, **idx_long)
        self.ptr = torch.zeros(len(active) + 1, **idx_long)
        self.ptr[1:] = torch.cumsum(self.n_atoms, 0)
        self.batch = torch.repeat_interleave(torch.arange(len(active), **idx_long), self.n_atoms)
        nums = np.concatenate([self.numbers[r] for r in active])
        self.node_attrs = self._one_hot(nums, self.z_table)
        self.dip_node_attrs = (
            self._one_hot(nums, self.dipole_z_table) if self.dipole_z_table is not None else None
        )
        m = np.concatenate([self.masses[r] for r in active])[:, None]
        self.m = self.tensor(m)
        self.pos = self.tensor(np.concatenate([self.positions[r] for r in active]))
        self.mom = self.tensor(np.concatenate([self.momenta[r] for r in active]))
        # All ordered intra-molecule pairs i != j are the candidate edges: for
        # <= ~60-atom molecules and r_max ~4-5 Å nearly every pair is within
        # the cutoff anyway, so a cell list would only add overhead; building
        # per replica guarantees no pair ever crosses replicas.
        cand = []
        for r, off in zip(active, self.ptr[:-1].tolist(), strict=True):
            n = len(self.numbers[r])
            i, j = np.nonzero(~np.eye(n, dtype=bool))
            cand.append(np.stack([i, j]) + off)
        self.cand = torch.as_tensor(np.concatenate(cand, axis=1), **idx_long)
        self.zeros_shifts = torch.zeros(0, 3, dtype=self.dtype, device=self.device)
        self.cell = torch.zeros(3 * len(active), 3, dtype=self.dtype, device=self.device)
        self.charges = torch.zeros(N, dtype=self.dtype, device=self.device)
        if self.ensemble == "langevin":
            self._langevin_coefficients(active)
        self._rebuild_edges()

    def _one_hot(self, numbers: np.ndarray, table: list[int]) -> torch.Tensor:
        lut = np.full(max(max(table), int(numbers.max())) + 1, -1, dtype=np.int64)
        lut[table] = np.arange(len(table))
        idx = torch.as_tensor(lut[numbers], device=self.device)
        return torch.nn.functional.one_hot(idx, len(table)).to(self.dtype)

    def _langevin_coefficients(self, active):
        # Exactly ase.md.langevin.Langevin.updatevars, per replica (own T, friction).
        c: dict[str, list[np.ndarray]] = {k: [] for k in ("c1", "c2", "c3", "c4", "c5")}
        dt = self.dt
        for r in active:
            T = units.kB * self.temperatures_K[r]
            fr = self.friction_per_fs[r] / units.fs
            masses = self.masses[r][:, None]
            sigma = np.sqrt(2 * T * fr / masses)
            n = len(masses)
            c1 = dt / 2.0 - dt * dt * fr / 8.0
            c2 = dt * fr / 2 - dt * dt * fr * fr / 8.0
            c3 = np.sqrt(dt) * sigma / 2.0 - dt**1.5 * fr * sigma / 8.0
            c5 = dt**1.5 * sigma / (2 * np.sqrt(3))
            c4 = fr / 2.0 * c5
            c["c1"].append(np.full((n, 1), c1))
            c["c2"].append(np.full((n, 1), c2))
            c["c3"].append(c3)
            c["c4"].append(c4)
            c["c5"].append(c5)
        for k, v in c.items():
            setattr(self, k, self.tensor(np.concatenate(v)))

    def _rebuild_edges(self) -> None:
        d = torch.linalg.vector_norm(self.pos[self.cand[1]] - self.pos[self.cand[0]], dim=1)
        self.edge_index = self.cand[:, d < self.r_max + self.skin]
        self.shifts = torch.zeros(self.edge_index.shape[1], 3, dtype=self.dtype, device=self.device)
        self.pos_at_build = self.pos.clone()
        self.neighbour_rebuilds += 1

    def update_pair_list(self) -> None:
        moved = torch.linalg.vector_norm(self.pos - self.pos_at_build, dim=1).max()
        if bool(moved > 0.5 * self.skin):
            self._rebuild_edges()

    def _graph(self, positions: torch.Tensor, node_attrs: torch.Tensor) -> dict:
        # Trim the Verlet list to r_max at the current positions: edges in the
        # skin would contribute exactly zero but cost as much as real ones
        # (~40% more edges at 4.0 + 0.5 Å for large molecules).
        ei = self.edge_index
        d = torch.linalg.vector_norm(positions.detach()[ei[1]] - positions.detach()[ei[0]], dim=1)
        ei = ei[:, d < self.r_max]
        shifts = self.shifts[: ei.shape[1]]
        # The keys MACE 0.3.16 forward reads (no "head": prepare_graph then uses head 0).
        return {
            "positions": positions,
            "node_attrs": node_attrs,
            "edge_index": ei,
            "shifts": shifts,
            "unit_shifts": shifts,
            "cell": self.cell,
            "batch": self.batch,
            "ptr": self.ptr,
            "charges": self.charges,
        }

    # ------------------------------------------------------------------ evaluation
    def _member_forces(self, models) -> tuple[torch.Tensor, torch.Tensor]:
        """Members' forces [M,N,3] and energies [M,R] on one shared graph, one backward pass."""
        data = self._graph(self.pos.detach(), self.node_attrs)
        leaves = [self.pos.detach().requires_grad_(True) for _ in models]
        with torch.enable_grad():
            energies = torch.stack(
                [
                    model({**data, "positions": leaf}, training=False, compute_force=False)["energy"]
                    for model, leaf in zip(models, leaves, strict=True)
                ]
            )
            grads = torch.autograd.grad(energies.sum(), leaves)
        return -torch.stack(grads), energies.detach()

    def committee_forces(self):
        """Committee forces on the current positions.

        Returns mean forces [N,3], mean energies [R] and the members' forces [M,N,3].
        """
        if self.compiled_models is not None:
            try:
                F, E = self._member_forces(self.compiled_models)
                if not self._compiled_checked:
                    F_ref, _ = self._member_forces(self.models)
                    tol = 1e-6 if self.dtype == torch.float64 else 1e-3  # compiled kernels reorder sums
                    err = float((F - F_ref).abs().max()) / max(float(F_ref.abs().max()), 1.0)
                    if not err <= tol:
                        raise RuntimeError(f"compiled forces differ from eager ones by {err:.1e} (relative)")
                    self._compiled_checked = True
            except Exception as error:  # noqa: BLE001 - fall back to the eager models
                warnings.warn(
                    f"compiled models failed ({error}); continuing with the eager models", stacklevel=2
                )
                self.compiled_models = None
                F, E = self._member_forces(self.models)
        else:
            F, E = self._member_forces(self.models)
        return F.mean(0), E.mean(0), F

    def force_uncertainty(self, F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Relative uncertainty and force std (eV/Å) per active replica, by
        :func:`specml.models.committee.uncertainty` (zero for a single model)."""
        R = len(self.active)
        if F.shape[0] < 2:
            zero = torch.zeros(R, dtype=self.dtype, device=self.device)
            return zero, zero
        members = F.detach().cpu().numpy().astype(np.float64)
        ptr = self.ptr.tolist()
        rel_std = np.array(
            [uncertainty(members[:, ptr[i] : ptr[i + 1]], self.uncertainty_eps) for i in range(R)]
        )
        out = self.tensor(rel_std)
        return out[:, 0], out[:, 1]

    def dipole_moments(self) -> torch.Tensor:
        assert self.dipole_model is not None and self.dip_node_attrs is not None  # only with a dipole model
        data = self._graph(self.pos.detach().clone(), self.dip_node_attrs.clone())
        with torch.no_grad():
            return self.dipole_model(data, training=False)["dipole"].detach()

    # ------------------------------------------------------------------ dynamics
    def begin(self) -> None:
        """Pack the replicas still running and set their forces ``F``: the saved forces of an
        earlier run (exact continuation, as ASE's calculator cache would) or evaluated."""
        self.pack_replicas([r for r in range(self.n_replicas) if not self.stopped[r]])
        if not self.active:
            return
        self._noise = None
        saved = [f for f in (self.saved_forces[r] for r in self.active) if f is not None]
        if len(saved) == len(self.active):
            self.F = self.tensor(np.concatenate(saved))
        else:
            self.F = self.committee_forces()[0]

    def draw_noise(self, k: int) -> torch.Tensor:
        # Same stream order as ASE: per step xi (n,3) then eta (n,3); filling a
        # (k, 2, n, 3) array draws them in exactly that sequence.
        blocks = [self.rngs[r].standard_normal((k, 2, len(self.numbers[r]), 3)) for r in self.active]
        return self.tensor(np.concatenate(blocks, axis=2))

    def store_state(self, local: list[int]) -> None:
        pos = self.pos.detach().cpu().numpy().astype(np.float64)
        mom = self.mom.detach().cpu().numpy().astype(np.float64)
        F = self.F.detach().cpu().numpy().astype(np.float64)
        ptr = self.ptr.tolist()
        for li in local:
            r = self.active[li]
            sl = slice(ptr[li], ptr[li + 1])
            self.positions[r], self.momenta[r], self.saved_forces[r] = (
                pos[sl].copy(),
                mom[sl].copy(),
                F[sl].copy(),
            )

    def stop_replicas(self, local_mask: torch.Tensor, reason: str, step: int) -> None:
        local = torch.nonzero(local_mask).flatten().tolist()
        if not local:
            return
        self.store_state(local)
        for li in local:
            r = self.active[li]
            self.stopped[r] = True
            self.stop_step[r] = step
            self.stop_reason[r] = reason
        keep_local = [i for i in range(len(self.active)) if i not in set(local)]
        atom_keep = ~local_mask[self.batch]
        F_keep = self.F[atom_keep]
        noise_keep = self._noise[:, :, atom_keep] if self._noise is not None else None
        # Keep scalars of the surviving replicas; everything else is re-packed.
        self.store_state(keep_local)
        self.pack_replicas([self.active[i] for i in keep_local])
        if self.active:
            self.F = F_keep
            self._noise = noise_keep

    def run(self, n_steps: int) -> BatchedTrajectory:
        """Advance all active replicas by ``n_steps`` steps and return the frames."""
        import time

        if n_steps < 0:
            raise DynamicsError("n_steps must be >= 0")
        t0 = time.perf_counter()
        self.begin()
        rec: dict[str, list[Any]] = {k: [] for k in ("rid", "step", "E", "T", "rel", "std", "dip", "pos")}
        dt = self.dt
        block_left = 0
        for s in range(n_steps):
            if not self.active:
                break
            step = self.step_count + 1
            if self.ensemble == "langevin":
                if block_left == 0:
                    block_left = min(self.noise_block, n_steps - s)
                    self._noise = self.draw_noise(block_left)
                    kb = 0
                assert self._noise is not None  # drawn for this block of steps
                xi, eta = self._noise[kb, 0], self._noise[kb, 1]
                kb += 1
                block_left -= 1
                # ase.md.langevin.Langevin.step (fixcm=False), operation by operation.
                m = self.m
                v = self.mom / m
                rnd_pos = self.c5 * eta
                rnd_vel = self.c3 * xi - self.c4 * eta
                v = v + (self.c1 * self.F / m - self.c2 * v + rnd_vel)
                x = self.pos
                self.pos = x + dt * v + rnd_pos
                v = (self.pos - x - rnd_pos) / dt
            else:
                # ase.md.verlet.VelocityVerlet.step
                p = self.mom + 0.5 * dt * self.F
                self.pos = self.pos + dt * p / self.m
                self.mom = p
            finite = torch.isfinite(self.pos).all(1)
            if not bool(finite.all()):
                bad = torch.zeros(len(self.active), dtype=torch.bool, device=self.device)
                bad.index_fill_(0, self.batch[~finite], True)
                if self.ensemble == "langevin":
                    self.mom = v * self.m  # keep a consistent state for the report
                    v = v[~bad[self.batch]]
                    rnd_vel = rnd_vel[~bad[self.batch]]
                self.stop_replicas(bad, "non-finite positions", step)
                if not self.active:
                    self.step_count = step
                    break
            self.update_pair_list()
            self.F, E, F_members = self.committee_forces()
            if self.ensemble == "langevin":
                v = v + (self.c1 * self.F / self.m - self.c2 * v + rnd_vel)
                self.mom = v * self.m
            else:
                self.mom = self.mom + 0.5 * dt * self.F
            self.step_count = step
            recording = step % self.record_interval == 0
            thresholds = self.thresholds[self.active]
            checking = len(self.models) > 1 and bool(np.isfinite(thresholds).any())
            if recording or checking:  # the uncertainty is only needed for these
                rel, fstd = self.force_uncertainty(F_members)
            if recording:
                self._record(rec, step, E, rel, fstd)
            fin_f = torch.isfinite(self.F).all(1)
            bad = torch.zeros(len(self.active), dtype=torch.bool, device=self.device)
            if not bool(fin_f.all()):
                bad.index_fill_(0, self.batch[~fin_f], True)
            if checking:
                over = (rel > self.tensor(thresholds)) | ~torch.isfinite(rel)
            if checking and bool(over.any()):
                self.stop_replicas(over & ~bad, "uncertainty above threshold", step)
                bad = bad[~(over & ~bad)]
            if bool(bad.any()):
                self.stop_replicas(bad, "non-finite forces", step)
        if self.active:
            self.store_state(list(range(len(self.active))))
        self._noise = None
        return self._result(rec, n_steps, time.perf_counter() - t0)

    def _record(self, rec, step, E, rel, fstd) -> None:
        ke = torch.zeros(len(self.active), dtype=self.dtype, device=self.device).index_add_(
            0, self.batch, (self.mom**2 / (2 * self.m)).sum(1)
        )
        T = 2 * ke / (3 * self.n_atoms.to(self.dtype) * units.kB)
        rec["rid"].append(np.asarray(self.active))
        rec["step"].append(step)
        for key, val in (("E", E), ("T", T), ("rel", rel), ("std", fstd)):
            rec[key].append(val.detach().cpu().numpy().astype(np.float64))
        if self.dipole_model is not None:
            rec["dip"].append(self.dipole_moments().cpu().numpy().astype(np.float64))
        if self.record_positions:
            rec["pos"].append((self.pos.detach().cpu().numpy().astype(np.float64), self.ptr.tolist()))

    def _result(self, rec, n_steps, wall) -> BatchedTrajectory:
        R = self.n_replicas
        per: dict[int, dict[str, list[Any]]] = {
            r: {k: [] for k in ("step", "E", "T", "rel", "std", "dip", "pos")} for r in range(R)
        }
        for f, (rids, step) in enumerate(zip(rec["rid"], rec["step"], strict=True)):
            for li, r in enumerate(rids):
                d = per[int(r)]
                d["step"].append(step)
                for key in ("E", "T", "rel", "std"):
                    d[key].append(rec[key][f][li])
                if rec["dip"]:
                    d["dip"].append(rec["dip"][f][li])
                if rec["pos"]:
                    pos, ptr = rec["pos"][f]
                    d["pos"].append(pos[ptr[li] : ptr[li + 1]])
        reps = [
            ReplicaTrajectory.from_frames(
                r,
                self.numbers[r],
                None if self.temperatures_K is None else float(self.temperatures_K[r]),
                per[r],
                self.timestep_fs,
                self.dipole_model is not None,
                self.record_positions,
                bool(self.stopped[r]),
                self.stop_step[r],
                self.stop_reason[r],
            )
            for r in range(R)
        ]
        return BatchedTrajectory(
            replicas=reps,
            final_atoms=self.to_atoms(),
            ensemble=self.ensemble,
            timestep_fs=self.timestep_fs,
            precision=self.precision,
            device=str(self.device),
            n_committee=len(self.models),
            steps_run=n_steps,
            neighbour_rebuilds=self.neighbour_rebuilds,
            wall_time_s=wall,
        )

    # ------------------------------------------------------------------ state
    def to_atoms(self) -> list[Atoms]:
        """Current (or stop-time) state of every replica as ASE Atoms (momenta set)."""
        out = []
        for r in range(self.n_replicas):
            a = Atoms(numbers=self.numbers[r], positions=self.positions[r], masses=self.masses[r])
            a.set_momenta(self.momenta[r], apply_constraint=False)
            a.info.update(
                specml_stopped=bool(self.stopped[r]),
                specml_stop_step=self.stop_step[r],
                specml_stop_reason=self.stop_reason[r],
                specml_step=self.step_count,
            )
            out.append(a)
        return out

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (plain numpy/python objects).

        Per replica: ``positions`` (Å), ``momenta`` (amu·Å/ASE time, exact),
        ``velocities_A_per_fs`` (Å/fs, informative), ``forces`` (eV/Å at those
        positions), the numpy bit-generator state and stop information.
        """
        reps = []
        for r in range(self.n_replicas):
            forces = self.saved_forces[r]
            reps.append(
                {
                    "numbers": self.numbers[r].copy(),
                    "masses": self.masses[r].copy(),
                    "positions": self.positions[r].copy(),
                    "momenta": self.momenta[r].copy(),
                    "velocities_A_per_fs": self.momenta[r] / self.masses[r][:, None] * units.fs,
                    "forces": None if forces is None else forces.copy(),
                    "rng_state": copy.deepcopy(self.rngs[r].bit_generator.state),
                    "seed": self.seeds[r],
                    "temperature_K": None if self.temperatures_K is None else float(self.temperatures_K[r]),
                    "friction_per_fs": float(self.friction_per_fs[r]),
                    "uncertainty_threshold": float(self.thresholds[r]),
                    "stopped": bool(self.stopped[r]),
                    "stop_step": self.stop_step[r],
                    "stop_reason": self.stop_reason[r],
                }
            )
        return {
            "version": 1,
            "step": self.step_count,
            "ensemble": self.ensemble,
            "timestep_fs": self.timestep_fs,
            "precision": self.precision,
            "replicas": reps,
        }

    @classmethod
    def from_state(cls, state: dict, energy_models, *, dipole_model=None, **kwargs) -> BatchedMD:
        """Rebuild an engine from :meth:`state_dict` and continue where it stopped.

        ``kwargs`` (e.g. ``record_interval``, ``device``) override engine options;
        ensemble, timestep and precision default to the saved ones.
        """
        reps = state["replicas"]
        atoms = []
        for d in reps:
            a = Atoms(numbers=d["numbers"], positions=d["positions"], masses=d["masses"])
            if d.get("momenta") is not None:
                a.set_momenta(d["momenta"], apply_constraint=False)
            else:
                a.set_velocities(np.asarray(d["velocities_A_per_fs"]) / units.fs)
            atoms.append(a)
        kwargs.setdefault("ensemble", state["ensemble"])
        kwargs.setdefault("timestep_fs", state["timestep_fs"])
        kwargs.setdefault("precision", state["precision"])
        temps = [d["temperature_K"] for d in reps]
        kwargs.setdefault("temperatures_K", None if any(t is None for t in temps) else temps)
        kwargs.setdefault("friction_per_fs", [d["friction_per_fs"] for d in reps])
        kwargs.setdefault("uncertainty_threshold", [d["uncertainty_threshold"] for d in reps])
        eng = cls(energy_models, atoms, dipole_model=dipole_model, seeds=[d["seed"] for d in reps], **kwargs)
        eng.step_count = int(state["step"])
        for r, d in enumerate(reps):
            eng.rngs[r].bit_generator.state = copy.deepcopy(d["rng_state"])
            eng.stopped[r] = d["stopped"]
            eng.stop_step[r] = d["stop_step"]
            eng.stop_reason[r] = d["stop_reason"]
            if d.get("forces") is not None:
                eng.saved_forces[r] = np.asarray(d["forces"], dtype=np.float64).copy()
        return eng


def kinetic_temperature(atoms: Atoms) -> float:
    """Instantaneous kinetic temperature (K) with 3N degrees of freedom."""
    return 2.0 * atoms.get_kinetic_energy() / (3 * len(atoms) * units.kB)


def reserve_dynamo_cache_entry() -> None:
    """Room in dynamo's cache for one more compiled MACE model.

    Dynamo keeps at most ``recompile_limit`` (8) compiled versions of one function, here MACE's
    ``forward``, and once they are used up runs it eagerly with only a logged warning. Every
    compiled model takes one: its e3nn modules are classes of their own, so no guard of another
    model matches. A long-lived process (a benchmark running several committees' production MD)
    had silently lost compilation after its eighth model.
    """
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit += 1
    dynamo_config.accumulated_recompile_limit = max(
        dynamo_config.accumulated_recompile_limit, dynamo_config.recompile_limit
    )


__all__ = ["BatchedMD", "BatchedTrajectory", "ReplicaTrajectory", "kinetic_temperature"]
