"""Thermostatted ring-polymer MD (TRPMD): quantum nuclei for ML-MD spectra.

Classical MD at 300 K leaves every stiff vibration in its ground state's classical analogue: an
O-H stretch (3,700 cm-1, about 18 kT) moves in a small region near the minimum, so it keeps
the potential's harmonic frequency and misses the zero-point anharmonic red shift (about
100-150 cm-1 for O-H). Ring-polymer MD replaces each molecule by ``P`` copies (beads) joined by
harmonic springs of frequency ``ω_P = P k T / ħ``; the bead-averaged dipole's autocorrelation
then approximates the Kubo-transformed quantum one, whose spectrum carries the zero-point
anharmonicity (exact for a harmonic potential at any ``P``).

TRPMD (Rossi, Ceriotti and Manolopoulos, J. Chem. Phys. 140, 234116 (2014)) attaches a Langevin
thermostat to the ring polymer's internal normal modes, friction ``γ_k = 2 λ ω_k``, which
removes RPMD's spurious resonances of the spring frequencies; the centroid keeps the same weak
Langevin friction as classical production MD. The free ring polymer is propagated with the
Cayley transform (Korol, Bou-Rabee and Miller, J. Chem. Phys. 151, 124103 (2019)), which stays
stable where the exact free propagator does not at large ``P``. One step is OBABO: half a
thermostat step, half a force kick, free ring-polymer flight, forces, half a kick, half a
thermostat step.

The beads of all molecules are replicas of one :class:`~specml.dynamics.batched.BatchedMD`
graph, so ``R`` molecules with ``P`` beads cost one batched committee evaluation of ``R × P``
replicas per step. Written here because ASE has no path-integral integrator and i-PI would
need a socket server per committee evaluation; the engine's batching is what makes it cheap.

Units as in :mod:`specml.dynamics.batched` (Å, eV, amu, ASE time internally; fs, K, e·Å
outside). Recorded per molecule: bead-averaged dipole (e·Å), energy (eV) and force spread, the
physical temperature (bead kinetic temperatures divided by ``P``, K), the largest relative
force uncertainty of its beads, and the centroid positions (Å).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms, units

from specml.dynamics.batched import BatchedMD, BatchedTrajectory
from specml.dynamics.trajectory import ReplicaTrajectory
from specml.errors import DynamicsError
from specml.models.committee import FORCE_UNCERTAINTY_EPS

#: ħ in eV times ASE time units.
HBAR_EV_ASE_TIME = units._hbar * units.J * units.s

#: Default TRPMD damping of the internal modes, γ_k = 2 λ ω_k: λ = 1/2, the PILE choice that
#: samples the spring modes fastest (Ceriotti et al., J. Chem. Phys. 133, 124104 (2010)).
DEFAULT_MODE_DAMPING = 0.5


def normal_mode_matrix(beads: int) -> np.ndarray:
    """Orthogonal ``[bead j, mode k]`` matrix of the free ring polymer's normal modes: mode 0 is
    the centroid (times √P), mode k has frequency ``2 ω_P sin(k π / P)`` (cos/sin pairs)."""
    P = beads
    j = np.arange(P)[:, None]
    C = np.empty((P, P))
    C[:, 0] = 1.0 / np.sqrt(P)
    for k in range(1, P):
        if 2 * k < P:
            C[:, k] = np.sqrt(2.0 / P) * np.cos(2 * np.pi * j[:, 0] * k / P)
        elif 2 * k == P:
            C[:, k] = (-1.0) ** j[:, 0] / np.sqrt(P)
        else:
            C[:, k] = np.sqrt(2.0 / P) * np.sin(2 * np.pi * j[:, 0] * k / P)
    return C


def mode_frequencies(beads: int, temperature_k: float) -> np.ndarray:
    """Free ring-polymer normal-mode frequencies (1 / ASE time) at ``temperature_k``."""
    omega_p = beads * units.kB * temperature_k / HBAR_EV_ASE_TIME
    return 2.0 * omega_p * np.sin(np.arange(beads) * np.pi / beads)


def bead_seeds(seed: int, beads: int) -> list[int]:
    """Independent random-stream seeds of one molecule's beads, derived from its seed."""
    states = np.random.SeedSequence([int(seed), int(beads)]).spawn(beads)
    return [int(s.generate_state(1, np.uint64)[0]) for s in states]


class RingPolymerMD:
    """TRPMD of several molecules, ``beads`` beads each, on one batched MACE committee graph.

    Parameters are those of :class:`~specml.dynamics.batched.BatchedMD` (always thermostatted;
    ``friction_per_fs`` is the centroid's Langevin friction), plus ``beads`` and
    ``mode_damping`` (λ of the internal modes' friction ``2 λ ω_k``). ``beads=1`` is classical
    Langevin MD in the OBABO splitting. All beads start at the molecule's positions; the
    centroid momentum is the molecule's momenta (√P times, in normal-mode units) and the
    internal modes start from their thermal distribution.
    """

    def __init__(
        self,
        energy_models: Sequence[torch.nn.Module],
        atoms: Sequence[Atoms],
        *,
        beads: int,
        temperatures_K: float | Sequence[float],
        dipole_model: torch.nn.Module | None = None,
        timestep_fs: float = 0.5,
        friction_per_fs: float | Sequence[float] = 0.001,
        mode_damping: float = DEFAULT_MODE_DAMPING,
        seeds: Sequence[int] | None = None,
        base_seed: int = 0,
        uncertainty_threshold: float | Sequence[float] = 0.5,
        uncertainty_eps: float = FORCE_UNCERTAINTY_EPS,
        record_interval: int = 1,
        record_positions: bool = False,
        precision: str | torch.dtype = "float64",
        device: str | torch.device = "auto",
        noise_block: int = 64,
        fast_path: bool = True,
        compile_models: bool = False,
        _inner_state: dict | None = None,
    ):
        if isinstance(beads, bool) or not isinstance(beads, (int, np.integer)) or beads < 1:
            raise DynamicsError(f"beads must be a positive integer, not {beads!r}")
        if not mode_damping > 0:
            raise DynamicsError(f"mode_damping must be positive, not {mode_damping!r}")
        if record_interval < 1:
            raise DynamicsError("record_interval must be positive")
        R = len(atoms)
        if R == 0:
            raise DynamicsError("no molecules given")
        self.beads = P = int(beads)
        self.n_rings = R
        self.temperatures_K = _per_ring(temperatures_K, R, "temperatures_K")
        if not np.all(self.temperatures_K > 0):
            raise DynamicsError("ring-polymer MD needs temperatures above 0 K")
        self.friction_per_fs = _per_ring(friction_per_fs, R, "friction_per_fs")
        self.thresholds = _per_ring(uncertainty_threshold, R, "uncertainty_threshold")
        self.seeds = [int(s) for s in (seeds if seeds is not None else [base_seed + i for i in range(R)])]
        if len(self.seeds) != R:
            raise DynamicsError(f"{len(self.seeds)} seeds for {R} molecules")
        self.mode_damping = float(mode_damping)
        self.record_interval = int(record_interval)
        self.record_positions = bool(record_positions)
        self.step_count = 0
        self.C_np = normal_mode_matrix(P)
        common: dict[str, Any] = dict(
            dipole_model=dipole_model,
            ensemble="nve",  # the engine evaluates forces; this class integrates
            uncertainty_threshold=np.inf,  # stops are per molecule, decided here
            uncertainty_eps=uncertainty_eps,
            record_positions=False,
            precision=precision,
            device=device,
            noise_block=noise_block,
            fast_path=fast_path,
            compile_models=compile_models,
        )
        if _inner_state is not None:
            self.engine = BatchedMD.from_state(_inner_state, energy_models, **common)
        else:
            bead_atoms, seeds_per_bead = [], []
            for r, molecule in enumerate(atoms):
                bead_atoms += self._initial_beads(molecule, r)
                seeds_per_bead += bead_seeds(self.seeds[r], P)
            self.engine = BatchedMD(
                energy_models, bead_atoms, timestep_fs=timestep_fs, seeds=seeds_per_bead, **common
            )
        self.dt = self.engine.dt
        self.timestep_fs = self.engine.timestep_fs
        self.dtype, self.device = self.engine.dtype, self.engine.device
        self.C = torch.as_tensor(self.C_np, dtype=self.dtype, device=self.device)
        self.stop_step: list[int | None] = [None] * R
        self.stop_reason: list[str | None] = [None] * R

    # ------------------------------------------------------------------ set-up
    def _initial_beads(self, molecule: Atoms, ring: int) -> list[Atoms]:
        P, kT = self.beads, units.kB * self.temperatures_K[ring]
        masses = molecule.get_masses()[:, None]
        # A stream of its own for the start (the beads' streams drive the thermostat).
        rng = np.random.default_rng(bead_seeds(self.seeds[ring], P + 1)[-1])
        modes = np.sqrt(masses * P * kT) * rng.standard_normal((P, len(molecule), 3))
        modes[0] = np.sqrt(P) * molecule.get_momenta()
        momenta = np.einsum("jk,kad->jad", self.C_np, modes)
        beads = []
        for j in range(P):
            bead = Atoms(numbers=molecule.numbers, positions=molecule.positions, masses=molecule.get_masses())
            bead.set_momenta(momenta[j], apply_constraint=False)
            beads.append(bead)
        return beads

    @property
    def stopped(self) -> np.ndarray:
        return np.asarray(self.engine.stopped.reshape(self.n_rings, self.beads).all(1))

    def _active_rings(self) -> list[int]:
        return [b // self.beads for b in self.engine.active[:: self.beads]]

    def _coefficients(self) -> None:
        """Per active molecule: its atom block and the thermostat and free-flight coefficients of
        its normal modes, each shaped ``[P, 1, 1]`` or ``[P, n, 1]`` (rebuilt when molecules stop)."""
        e, P, dt = self.engine, self.beads, self.dt
        self._blocks = []
        ptr = e.ptr.tolist()
        for i, r in enumerate(self._active_rings()):
            start, stop = ptr[i * P], ptr[(i + 1) * P]
            n = (stop - start) // P
            T = self.temperatures_K[r]
            omega = mode_frequencies(P, T)
            gamma = 2.0 * self.mode_damping * omega
            gamma[0] = self.friction_per_fs[r] / units.fs
            c1 = np.exp(-0.5 * dt * gamma)  # half a step (OBABO)
            masses = e.m[start : start + n, 0].cpu().numpy()
            noise = np.sqrt(1.0 - c1**2)[:, None] * np.sqrt(masses * P * units.kB * T)[None, :]
            h = 0.5 * omega * dt
            a = 1.0 / (1.0 + h**2)
            coefficients = {
                "c1": c1[:, None, None],
                "noise": noise[:, :, None],
                "qq": (a * (1 - h**2))[:, None, None],
                "qv": (a * dt)[:, None, None],
                "vq": (-a * omega**2 * dt)[:, None, None],
                "mass": masses[None, :, None],
            }
            tensors = {
                k: torch.as_tensor(v, dtype=self.dtype, device=self.device) for k, v in coefficients.items()
            }
            self._blocks.append((start, stop, n, tensors))

    # ------------------------------------------------------------------ normal modes
    def _to_modes(self, x: torch.Tensor) -> list[torch.Tensor]:
        P = self.beads
        return [torch.einsum("jk,jad->kad", self.C, x[a:b].reshape(P, n, 3)) for a, b, n, _ in self._blocks]

    def _to_beads(self, modes: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([torch.einsum("jk,kad->jad", self.C, q).reshape(-1, 3) for q in modes])

    def _thermostat(self, xi: torch.Tensor) -> None:
        """Half a step of the normal-mode Langevin thermostat (PILE) with normal deviates ``xi``."""
        e = self.engine
        modes = self._to_modes(e.mom)
        out = []
        for (a, b, n, c), p in zip(self._blocks, modes, strict=True):
            out.append(c["c1"] * p + c["noise"] * xi[a:b].reshape(self.beads, n, 3))
        e.mom = self._to_beads(out)

    def _free_flight(self) -> None:
        """The free ring polymer for one step (Cayley transform of each normal mode)."""
        e = self.engine
        q_modes, p_modes = self._to_modes(e.pos), self._to_modes(e.mom)
        q_out, p_out = [], []
        for (_, _, _, c), q, p in zip(self._blocks, q_modes, p_modes, strict=True):
            v = p / c["mass"]
            q_out.append(c["qq"] * q + c["qv"] * v)
            p_out.append((c["vq"] * q + c["qq"] * v) * c["mass"])
        e.pos, e.mom = self._to_beads(q_out), self._to_beads(p_out)

    # ------------------------------------------------------------------ dynamics
    def run(self, n_steps: int) -> BatchedTrajectory:
        """Advance every running molecule by ``n_steps`` steps; one trajectory per molecule."""
        if n_steps < 0:
            raise DynamicsError("n_steps must be >= 0")
        e, dt, t0 = self.engine, self.dt, time.perf_counter()
        e.begin()  # the engine's own noise block stays unset: this class draws and slices its own
        rec: dict[str, list[Any]] = {k: [] for k in ("rid", "step", "E", "T", "rel", "std", "dip", "pos")}
        noise: torch.Tensor | None = None
        if e.active:
            self._coefficients()
        block_left = kb = 0
        for s in range(n_steps):
            if not e.active:
                break
            step = self.step_count + 1
            if block_left == 0:
                block_left, kb = min(e.noise_block, n_steps - s), 0
                noise = e.draw_noise(block_left)
            assert noise is not None
            xi, eta = noise[kb, 0], noise[kb, 1]
            kb, block_left = kb + 1, block_left - 1
            self._thermostat(xi)
            e.mom = e.mom + 0.5 * dt * e.F
            self._free_flight()
            finite = torch.isfinite(e.pos).all(1)
            if not bool(finite.all()):
                noise = self._stop_rings(~finite, "non-finite positions", step, noise)
                if not e.active:
                    self.step_count = step
                    break
                eta = noise[kb - 1, 1]
            e.update_pair_list()
            e.F, E, F_members = e.committee_forces()
            e.mom = e.mom + 0.5 * dt * e.F
            self._thermostat(eta)
            self.step_count = step
            e.step_count = step
            thresholds = self.thresholds[self._active_rings()]
            recording = step % self.record_interval == 0
            checking = len(e.models) > 1 and bool(np.isfinite(thresholds).any())
            if recording or checking:
                rel, fstd = e.force_uncertainty(F_members)
                ring_rel = rel.reshape(-1, self.beads).max(1).values
            if recording:
                self._record(rec, step, E, ring_rel, fstd)
            bad_atoms = ~torch.isfinite(e.F).all(1)
            if checking:
                over = (ring_rel > e.tensor(thresholds)) | ~torch.isfinite(ring_rel)
                if bool(over.any()):
                    over_atoms = over.repeat_interleave(self.beads)[e.batch] & ~bad_atoms
                    noise = self._stop_rings(over_atoms, "uncertainty above threshold", step, noise)
                    bad_atoms = ~torch.isfinite(e.F).all(1) if e.active else bad_atoms[:0]
            if e.active and bool(bad_atoms.any()):
                noise = self._stop_rings(bad_atoms, "non-finite forces", step, noise)
        if e.active:
            e.store_state(list(range(len(e.active))))
        return self._result(rec, n_steps, time.perf_counter() - t0)

    def _stop_rings(self, atom_mask: torch.Tensor, reason: str, step: int, noise: torch.Tensor | None):
        """Stop every molecule with a flagged atom in any bead; returns the surviving noise block."""
        e, P = self.engine, self.beads
        beads = torch.zeros(len(e.active), dtype=torch.bool, device=self.device)
        beads.index_fill_(0, e.batch[atom_mask], True)
        rings = beads.reshape(-1, P).any(1)
        for i in torch.nonzero(rings).flatten().tolist():
            r = self._active_rings()[i]
            self.stop_step[r], self.stop_reason[r] = step, reason
        bead_mask = rings.repeat_interleave(P)
        keep_atoms = ~bead_mask[e.batch]
        e.stop_replicas(bead_mask, reason, step)
        if e.active:
            self._coefficients()
        return noise[:, :, keep_atoms] if noise is not None else None

    def _record(self, rec: dict, step: int, E: torch.Tensor, rel: torch.Tensor, fstd: torch.Tensor) -> None:
        e, P = self.engine, self.beads
        kinetic = torch.zeros(len(e.active), dtype=self.dtype, device=self.device).index_add_(
            0, e.batch, (e.mom**2 / (2 * e.m)).sum(1)
        )
        bead_T = 2 * kinetic / (3 * e.n_atoms.to(self.dtype) * units.kB)
        rec["rid"].append(np.asarray(self._active_rings()))
        rec["step"].append(step)
        per_ring = {
            "E": E.reshape(-1, P).mean(1),
            "T": bead_T.reshape(-1, P).mean(1) / P,
            "rel": rel,
            "std": fstd.reshape(-1, P).mean(1),
        }
        for key, value in per_ring.items():
            rec[key].append(value.detach().cpu().numpy().astype(np.float64))
        if e.dipole_model is not None:
            rec["dip"].append(e.dipole_moments().reshape(-1, P, 3).mean(1).cpu().numpy().astype(np.float64))
        if self.record_positions:
            centroids = [q[0] / np.sqrt(P) for q in self._to_modes(e.pos)]
            rec["pos"].append([c.detach().cpu().numpy().astype(np.float64) for c in centroids])

    def _result(self, rec: dict, n_steps: int, wall: float) -> BatchedTrajectory:
        per: dict[int, dict[str, list[Any]]] = {
            r: {k: [] for k in ("step", "E", "T", "rel", "std", "dip", "pos")} for r in range(self.n_rings)
        }
        for f, (rings, step) in enumerate(zip(rec["rid"], rec["step"], strict=True)):
            for i, r in enumerate(rings):
                d = per[int(r)]
                d["step"].append(step)
                for key in ("E", "T", "rel", "std", "dip", "pos"):
                    if rec[key]:
                        d[key].append(rec[key][f][i])
        stopped = self.stopped
        trajectories = [
            ReplicaTrajectory.from_frames(
                r,
                self.engine.numbers[r * self.beads],
                float(self.temperatures_K[r]),
                per[r],
                self.timestep_fs,
                self.engine.dipole_model is not None,
                self.record_positions,
                bool(stopped[r]),
                self.stop_step[r],
                self.stop_reason[r],
            )
            for r in range(self.n_rings)
        ]
        return BatchedTrajectory(
            replicas=trajectories,
            final_atoms=self.to_atoms(),
            ensemble="trpmd",
            timestep_fs=self.timestep_fs,
            precision=self.engine.precision,
            device=str(self.device),
            n_committee=len(self.engine.models),
            steps_run=n_steps,
            neighbour_rebuilds=self.engine.neighbour_rebuilds,
            wall_time_s=wall,
            extra={"beads": self.beads},
        )

    # ------------------------------------------------------------------ state
    def centroids(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Centroid positions (Å) and momenta (amu·Å/ASE time) of every molecule."""
        e, P = self.engine, self.beads
        out = []
        for r in range(self.n_rings):
            beads = range(r * P, (r + 1) * P)
            out.append(
                (
                    np.mean([e.positions[b] for b in beads], axis=0),
                    np.mean([e.momenta[b] for b in beads], axis=0),
                )
            )
        return out

    def to_atoms(self) -> list[Atoms]:
        """Every molecule's centroid as ASE Atoms (positions and momenta)."""
        out = []
        for r, (positions, momenta) in enumerate(self.centroids()):
            b = r * self.beads
            a = Atoms(numbers=self.engine.numbers[b], positions=positions, masses=self.engine.masses[b])
            a.set_momenta(momenta, apply_constraint=False)
            a.info.update(
                specml_stopped=bool(self.stopped[r]), specml_step=self.step_count, specml_beads=self.beads
            )
            out.append(a)
        return out

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: the beads' engine state and the molecules' settings."""
        return {
            "version": 1,
            "kind": "ring_polymer",
            "beads": self.beads,
            "mode_damping": self.mode_damping,
            "step": self.step_count,
            "engine": self.engine.state_dict(),
            "molecules": [
                {
                    "seed": self.seeds[r],
                    "temperature_K": float(self.temperatures_K[r]),
                    "friction_per_fs": float(self.friction_per_fs[r]),
                    "uncertainty_threshold": float(self.thresholds[r]),
                    "stop_step": self.stop_step[r],
                    "stop_reason": self.stop_reason[r],
                }
                for r in range(self.n_rings)
            ],
        }

    @classmethod
    def from_state(cls, state: dict, energy_models, *, dipole_model=None, **kwargs) -> RingPolymerMD:
        """Rebuild from :meth:`state_dict`; ``kwargs`` override options (e.g. ``record_interval``)."""
        if state.get("kind") != "ring_polymer":
            raise DynamicsError("not a ring-polymer MD state")
        molecules, P = state["molecules"], int(state["beads"])
        engine = state["engine"]
        atoms = [
            Atoms(numbers=rep["numbers"], positions=rep["positions"], masses=rep["masses"])
            for rep in engine["replicas"][::P]
        ]
        kwargs.setdefault("temperatures_K", [m["temperature_K"] for m in molecules])
        kwargs.setdefault("friction_per_fs", [m["friction_per_fs"] for m in molecules])
        kwargs.setdefault("uncertainty_threshold", [m["uncertainty_threshold"] for m in molecules])
        kwargs.setdefault("mode_damping", state["mode_damping"])
        kwargs.setdefault("precision", engine["precision"])
        kwargs.setdefault("timestep_fs", engine["timestep_fs"])
        md = cls(
            energy_models,
            atoms,
            beads=P,
            dipole_model=dipole_model,
            seeds=[m["seed"] for m in molecules],
            _inner_state=engine,
            **kwargs,
        )
        md.step_count = int(state["step"])
        md.stop_step = [m["stop_step"] for m in molecules]
        md.stop_reason = [m["stop_reason"] for m in molecules]
        return md


def _per_ring(value, n: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(n, float(array))
    if array.shape != (n,):
        raise DynamicsError(f"{name}: expected a scalar or {n} values, got shape {array.shape}")
    return array.copy()


__all__ = ["RingPolymerMD", "mode_frequencies", "normal_mode_matrix"]
