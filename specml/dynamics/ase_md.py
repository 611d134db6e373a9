"""Molecular dynamics with ASE integrators: one loop for every calculator.

:func:`ase_md_loop` is the per-trajectory loop (one ASE integrator + one ASE
calculator). Everything that runs MD through ASE uses it:

* :func:`run_ase_md` with any calculator that provides a dipole (reference
  "AIMD" with xTB/DFT, or :class:`specml.models.committee.CommitteeCalculator`);
* :func:`specml.dynamics.ase_loop.run_mace_replica`, the published-method MACE
  baseline the batched engine is tested and benchmarked against, which only
  supplies a ``MACECalculator`` (and a dipole calculator).

Units as in :mod:`specml.dynamics.batched` (Å, eV, eV/Å, fs, K, e·Å).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

from specml.checkpoint import PeriodicCheckpoint
from specml.dynamics.trajectory import DipoleTrajectory, ReplicaTrajectory
from specml.errors import DynamicsError
from specml.molecules.inputs import bare_copy

#: Langevin friction for exploration MD (1/fs), as in the PALIRS protocol.
EXPLORATION_FRICTION_PER_FS = 0.01
#: Langevin friction for spectra (1/fs): a damping time of 1 ps broadens lines by
#: only ~5 cm-1 (FWHM = gamma / (2 pi c)), against ~53 cm-1 at 0.01/fs.
PRODUCTION_FRICTION_PER_FS = 0.001


def initialize_velocities(atoms: Atoms, temperature_k: float, seed: int) -> None:
    """Maxwell-Boltzmann velocities without centre-of-mass translation or rotation."""
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_k, rng=np.random.default_rng(seed))
    if len(atoms) > 1:  # a lone atom has no internal motion to preserve
        Stationary(atoms)
    if len(atoms) > 2:
        ZeroRotation(atoms)


def results_uncertainty(results: dict) -> tuple[float, float]:
    """The uncertainty a calculator reports itself (``CommitteeCalculator``), else NaN."""
    return (float(results.get("relative_force_uncertainty", np.nan)), float(results.get("force_std", np.nan)))


def ase_md_loop(
    atoms: Atoms,
    calculator,
    n_steps: int,
    *,
    timestep_fs: float = 0.5,
    temperature_k: float | None = None,
    friction_per_fs: float | None = PRODUCTION_FRICTION_PER_FS,
    rng: np.random.Generator | None = None,
    unrecorded_steps: int = 0,
    record_interval: int = 1,
    dipole: Callable[[Atoms], np.ndarray] | None = None,
    uncertainty: Callable[[dict], tuple[float, float]] | None = results_uncertainty,
    uncertainty_limit: float | None = None,
    max_force_ev_per_a: float | None = None,
    record_positions: bool = False,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: PeriodicCheckpoint | None = None,
) -> tuple[ReplicaTrajectory, Atoms]:
    """Langevin (``ase.md.langevin.Langevin``, ``fixcm=False``) or, with
    ``friction_per_fs=None``, NVE (``VelocityVerlet``) MD of a copy of ``atoms``
    (its momenta are the initial ones) driven by ``calculator``.

    ``unrecorded_steps`` (thermalisation) run first; then ``n_steps`` steps with a
    frame after every ``record_interval``-th. ``dipole(atoms)`` gives the dipole
    of a frame (e·Å); ``uncertainty(calculator.results)`` the relative and
    absolute force uncertainty. Sanity stop (no exception): non-finite positions
    or forces stop the run before the frame is recorded; a force above
    ``max_force_ev_per_a`` or an uncertainty above ``uncertainty_limit`` stop it
    after the frame is recorded (like :class:`~specml.dynamics.batched.BatchedMD`).

    Returns the frames as a :class:`ReplicaTrajectory` (``steps`` count from the
    end of the unrecorded steps, ``stop_step`` counts all steps; uncertainties
    NaN without ``uncertainty``) and the final Atoms (momenta set, no calculator).

    With ``checkpoint`` the loop saves its state (positions, momenta, the Langevin
    stream, the frames so far) every few minutes, and when a step raises (an SCF
    that does not converge, Ctrl-C) the state after the last completed step; a
    rerun with the same checkpoint continues from there. An exception from a step
    becomes a :class:`DynamicsError` naming the step. The caller removes the
    checkpoint once the trajectory is safely stored.
    """
    if n_steps < 0 or unrecorded_steps < 0 or record_interval < 1:
        raise DynamicsError("n_steps and unrecorded_steps must be >= 0, record_interval >= 1")
    work = atoms.copy()
    work.calc = calculator
    dt = timestep_fs * units.fs
    rng = rng if rng is not None else np.random.default_rng(0)
    dyn: MolecularDynamics
    if friction_per_fs is None:
        dyn = VelocityVerlet(work, timestep=dt)
    else:
        if temperature_k is None:
            raise DynamicsError("Langevin dynamics needs temperature_k")
        dyn = Langevin(
            work,
            timestep=dt,
            temperature_K=temperature_k,
            friction=friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
    frames: dict[str, list] = {k: [] for k in FRAME_KEYS}
    done = 0  # steps completed (restored ones included)
    earlier_s, started = 0.0, time.perf_counter()  # wall time of earlier, interrupted runs; this run's start
    saved = checkpoint.read() if checkpoint is not None else None
    if saved is not None:
        earlier_s = float(saved.get("wall_time_s", 0.0))
        done = dyn.nsteps = int(saved["step"])
        work.set_positions(saved["positions"])
        work.set_momenta(saved["momenta"])
        rng.bit_generator.state = saved["rng_state"]
        frames = {k: list(saved["frames"][k]) for k in FRAME_KEYS}
    last = _loop_state(done, work, rng, earlier_s) if checkpoint is not None else None
    stop_step = stop_reason = None
    total = unrecorded_steps + n_steps
    current = done
    if progress is not None and done:
        progress(done, total)
    try:
        for step in range(done + 1, total + 1):
            current = step
            dyn.step()
            dyn.nsteps += 1
            res = calculator.results
            forces = res["forces"]
            if not np.all(np.isfinite(work.positions)) or not np.all(np.isfinite(forces)):
                stop_step, stop_reason = step, "non-finite positions or forces"
                break
            rel, std = uncertainty(res) if uncertainty is not None else (np.nan, np.nan)
            own = step - unrecorded_steps
            if own > 0 and own % record_interval == 0:
                frame = {
                    "step": own,
                    "E": float(res["energy"]),
                    "T": work.get_temperature(),
                    "rel": rel,
                    "std": std,
                }
                if dipole is not None:
                    frame["dip"] = np.asarray(dipole(work), dtype=np.float64)
                if record_positions:
                    frame["pos"] = work.positions.copy()
                for key, value in frame.items():  # all at once: a failing dipole leaves no half frame
                    frames[key].append(value)
            if max_force_ev_per_a is not None and np.abs(forces).max() > max_force_ev_per_a:
                stop_step, stop_reason = step, f"force above {max_force_ev_per_a} eV/Å (blow-up)"
            elif uncertainty_limit is not None and rel > uncertainty_limit:
                stop_step, stop_reason = step, f"relative force uncertainty {rel:.2f} > {uncertainty_limit}"
            if progress is not None:
                progress(step, total)
            if stop_reason:
                break
            if checkpoint is not None:
                last = _loop_state(step, work, rng, earlier_s + time.perf_counter() - started)
                if checkpoint.due():
                    checkpoint.write({**last, "frames": _frame_arrays(frames, own)})
    except BaseException as error:
        kept = ""
        if checkpoint is not None and last is not None and last["step"] > 0:
            checkpoint.write({**last, "frames": _frame_arrays(frames, last["step"] - unrecorded_steps)})
            kept = f"; the state after step {last['step']} is saved in {checkpoint.path}: rerun to continue"
        if isinstance(error, Exception):
            raise DynamicsError(f"MD step {current} of {total} failed: {error}{kept}") from error
        raise
    final = work.copy()
    final.calc = None
    traj = ReplicaTrajectory.from_frames(
        0,
        work.numbers,
        temperature_k,
        frames,
        timestep_fs,
        dipole is not None,
        record_positions,
        stop_step is not None,
        stop_step,
        stop_reason,
        wall_time_s=earlier_s + time.perf_counter() - started,
    )
    return traj, final


#: The per-frame records of :func:`ase_md_loop`.
FRAME_KEYS = ("step", "E", "T", "rel", "std", "dip", "pos")


def _loop_state(step: int, atoms: Atoms, rng: np.random.Generator, wall_time_s: float) -> dict:
    """What continues a trajectory exactly after ``step`` completed steps (frames apart), and the
    wall time it has cost so far."""
    return {
        "step": step,
        "positions": atoms.get_positions(),
        "momenta": atoms.get_momenta(),
        "rng_state": rng.bit_generator.state,
        "wall_time_s": wall_time_s,
    }


def _frame_arrays(frames: dict, last_own_step: int) -> dict:
    """The frames up to ``last_own_step`` (counted after the unrecorded steps) as arrays; an
    interruption can leave a later frame half appended."""
    n = int(np.searchsorted(np.asarray(frames["step"], dtype=np.int64), last_own_step, side="right"))
    return {k: np.asarray(v[:n]) for k, v in frames.items()}


def run_ase_md(
    atoms: Atoms,
    calculator,
    temperature_k: float = 300.0,
    n_steps: int = 1000,
    thermalization_steps: int = 0,
    timestep_fs: float = 0.5,
    friction_per_fs: float | None = PRODUCTION_FRICTION_PER_FS,
    record_interval: int = 1,
    seed: int = 0,
    velocities: np.ndarray | None = None,
    uncertainty_limit: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_force_ev_per_a: float = 50.0,
    checkpoint_path: str | Path | None = None,
    calculator_identity: str | None = None,
) -> DipoleTrajectory:
    """Run Langevin (or NVE with ``friction_per_fs=None``) MD recording the calculator's dipoles.

    Starts from ``velocities`` (Å/fs) or Maxwell-Boltzmann velocities drawn with
    ``seed``. Thermalisation steps are run first and not recorded. Sanity stops
    as in :func:`ase_md_loop` (forces above ``max_force_ev_per_a``, non-finite
    positions, ``results["relative_force_uncertainty"]`` above
    ``uncertainty_limit``): the trajectory up to that point is returned with
    ``stop_reason`` set.

    With ``checkpoint_path`` the run snapshots itself there (see :func:`ase_md_loop`)
    and continues from a snapshot of the same run: same start, settings and
    ``calculator_identity`` (e.g. the reference's description). The caller removes
    the file once the trajectory is stored.
    """
    work = bare_copy(atoms)  # isotope masses set the dynamics
    if velocities is not None:
        work.set_velocities(np.asarray(velocities) / units.fs)  # Å/fs -> Å per ASE time unit (10.18 fs)
    else:
        initialize_velocities(work, temperature_k, seed)
    checkpoint = None
    if checkpoint_path is not None:
        # Start rounded to 1e-4 Å: a start optimised again on resume may differ in the last digits.
        fingerprint = {
            "calculator": calculator_identity or type(calculator).__name__,
            "numbers": work.numbers.tolist(),
            "start": np.round(atoms.get_positions(), 4).tolist(),
            "velocities": None if velocities is None else np.round(np.asarray(velocities), 8).tolist(),
            "temperature_k": temperature_k,
            "n_steps": n_steps,
            "thermalization_steps": thermalization_steps,
            "timestep_fs": timestep_fs,
            "friction_per_fs": friction_per_fs,
            "record_interval": record_interval,
            "seed": seed,
            "uncertainty_limit": uncertainty_limit,
            "max_force_ev_per_a": max_force_ev_per_a,
        }
        if work.has("masses"):  # an isotopologue is another run; unlabelled runs keep their fingerprint
            fingerprint["masses"] = np.round(work.get_masses(), 6).tolist()
        checkpoint = PeriodicCheckpoint(checkpoint_path, fingerprint, what="MD")
    frames, final = ase_md_loop(
        work,
        calculator,
        n_steps,
        timestep_fs=timestep_fs,
        temperature_k=temperature_k,
        friction_per_fs=friction_per_fs,
        rng=np.random.default_rng(seed + 7919),
        unrecorded_steps=thermalization_steps,
        record_interval=record_interval,
        dipole=lambda a: a.get_dipole_moment(),
        uncertainty_limit=uncertainty_limit,
        max_force_ev_per_a=max_force_ev_per_a,
        progress=progress,
        checkpoint=checkpoint,
    )
    assert frames.dipoles is not None  # recorded: a dipole function was given
    return DipoleTrajectory(
        times_fs=frames.times_fs,
        dipoles=frames.dipoles,
        temperatures_k=frames.temperatures,
        potential_energies=frames.energies,
        final_positions=final.get_positions(),
        final_velocities=final.get_velocities() * units.fs,  # -> Å/fs
        symbols=final.get_chemical_symbols(),
        target_temperature_k=temperature_k,
        timestep_fs=timestep_fs,
        stopped_at_step=frames.stop_step,
        stop_reason=frames.stop_reason,
        uncertainties=frames.rel_uncertainty,
        info={
            "integrator": "VelocityVerlet" if friction_per_fs is None else "Langevin",
            "friction_per_fs": friction_per_fs,
            "seed": seed,
            "wall_time_s": frames.wall_time_s,
        },
    )


def run_reference_md(
    atoms: Atoms,
    reference="xtb",
    temperature_k: float = 300.0,
    n_steps: int = 1000,
    thermalization_steps: int = 0,
    timestep_fs: float = 0.5,
    friction_per_fs: float | None = PRODUCTION_FRICTION_PER_FS,
    record_interval: int = 1,
    seed: int = 0,
    progress=None,
    checkpoint_path: str | Path | None = None,
) -> DipoleTrajectory:
    """MD driven directly by the reference method: the "AIMD" baseline ML spectra are judged against.

    Raises :class:`DynamicsError` if the run blows up (no partial spectrum is
    silently returned from a broken reference trajectory) or a reference call
    fails. With ``checkpoint_path`` a long run (DFT: hours) resumes where it was
    killed or failed; see :func:`run_ase_md`.
    """
    from specml.reference import make_reference

    reference = make_reference(reference)
    reference.check_elements(atoms, atoms.get_chemical_formula())
    traj = run_ase_md(
        atoms,
        reference.calculator(),
        temperature_k,
        n_steps,
        thermalization_steps,
        timestep_fs,
        friction_per_fs,
        record_interval,
        seed,
        progress=progress,
        checkpoint_path=checkpoint_path,
        calculator_identity=reference.describe(),
    )
    if traj.stop_reason:
        raise DynamicsError(
            f"reference MD of {atoms.get_chemical_formula()} stopped at step "
            f"{traj.stopped_at_step}: {traj.stop_reason}"
        )
    traj.info["reference"] = reference.describe()
    return traj
