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

from collections.abc import Callable

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

from specml.dynamics.trajectory import DipoleTrajectory, ReplicaTrajectory
from specml.errors import DynamicsError

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
    """
    if n_steps < 0 or unrecorded_steps < 0 or record_interval < 1:
        raise DynamicsError("n_steps and unrecorded_steps must be >= 0, record_interval >= 1")
    work = atoms.copy()
    work.calc = calculator
    dt = timestep_fs * units.fs
    if friction_per_fs is None:
        dyn = VelocityVerlet(work, timestep=dt)
    else:
        if temperature_k is None:
            raise DynamicsError("Langevin dynamics needs temperature_k")
        dyn = Langevin(work, timestep=dt, temperature_K=temperature_k, friction=friction_per_fs / units.fs,
                       fixcm=False, rng=rng if rng is not None else np.random.default_rng(0))
    frames = {k: [] for k in ("step", "E", "T", "rel", "std", "dip", "pos")}
    stop_step = stop_reason = None
    total = unrecorded_steps + n_steps
    for step in range(1, total + 1):
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
            frames["step"].append(own)
            frames["E"].append(float(res["energy"]))
            frames["T"].append(work.get_temperature())
            frames["rel"].append(rel)
            frames["std"].append(std)
            if dipole is not None:
                frames["dip"].append(np.asarray(dipole(work), dtype=np.float64))
            if record_positions:
                frames["pos"].append(work.positions.copy())
        if max_force_ev_per_a is not None and np.abs(forces).max() > max_force_ev_per_a:
            stop_step, stop_reason = step, f"force above {max_force_ev_per_a} eV/Å (blow-up)"
        elif uncertainty_limit is not None and rel > uncertainty_limit:
            stop_step, stop_reason = step, f"relative force uncertainty {rel:.2f} > {uncertainty_limit}"
        if progress is not None:
            progress(step, total)
        if stop_reason:
            break
    final = work.copy()
    final.calc = None
    steps = np.asarray(frames["step"], dtype=np.int64)
    traj = ReplicaTrajectory(
        replica=0, numbers=work.numbers.copy(), target_temperature_K=temperature_k,
        times_fs=steps * timestep_fs, steps=steps,
        energies=np.asarray(frames["E"], dtype=np.float64),
        temperatures=np.asarray(frames["T"], dtype=np.float64),
        rel_uncertainty=np.asarray(frames["rel"], dtype=np.float64),
        force_std=np.asarray(frames["std"], dtype=np.float64),
        dipoles=np.asarray(frames["dip"], dtype=np.float64).reshape(-1, 3) if dipole is not None else None,
        positions=np.asarray(frames["pos"], dtype=np.float64).reshape(-1, len(work), 3) if record_positions else None,
        stopped=stop_step is not None, stop_step=stop_step, stop_reason=stop_reason,
    )
    return traj, final


def run_ase_md(atoms: Atoms, calculator, temperature_k: float = 300.0, n_steps: int = 1000,
               thermalization_steps: int = 0, timestep_fs: float = 0.5,
               friction_per_fs: float | None = PRODUCTION_FRICTION_PER_FS, record_interval: int = 1,
               seed: int = 0, velocities: np.ndarray | None = None,
               uncertainty_limit: float | None = None, progress: Callable[[int, int], None] | None = None,
               max_force_ev_per_a: float = 50.0) -> DipoleTrajectory:
    """Run Langevin (or NVE with ``friction_per_fs=None``) MD recording the calculator's dipoles.

    Starts from ``velocities`` (Å/fs) or Maxwell-Boltzmann velocities drawn with
    ``seed``. Thermalisation steps are run first and not recorded. Sanity stops
    as in :func:`ase_md_loop` (forces above ``max_force_ev_per_a``, non-finite
    positions, ``results["relative_force_uncertainty"]`` above
    ``uncertainty_limit``): the trajectory up to that point is returned with
    ``stop_reason`` set.
    """
    work = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
    if velocities is not None:
        work.set_velocities(np.asarray(velocities) * units.fs)  # Å/fs -> ASE units
    else:
        initialize_velocities(work, temperature_k, seed)
    frames, final = ase_md_loop(work, calculator, n_steps, timestep_fs=timestep_fs, temperature_k=temperature_k,
                         friction_per_fs=friction_per_fs, rng=np.random.default_rng(seed + 7919),
                         unrecorded_steps=thermalization_steps, record_interval=record_interval,
                         dipole=lambda a: a.get_dipole_moment(), uncertainty_limit=uncertainty_limit,
                         max_force_ev_per_a=max_force_ev_per_a, progress=progress)
    return DipoleTrajectory(
        times_fs=frames.times_fs, dipoles=frames.dipoles,
        temperatures_k=frames.temperatures, potential_energies=frames.energies,
        final_positions=final.get_positions(), final_velocities=final.get_velocities() / units.fs,
        symbols=final.get_chemical_symbols(), target_temperature_k=temperature_k, timestep_fs=timestep_fs,
        stopped_at_step=frames.stop_step, stop_reason=frames.stop_reason, uncertainties=frames.rel_uncertainty,
        info={"integrator": "VelocityVerlet" if friction_per_fs is None else "Langevin",
              "friction_per_fs": friction_per_fs, "seed": seed},
    )


def run_reference_md(atoms: Atoms, reference="xtb", temperature_k: float = 300.0, n_steps: int = 1000,
                     thermalization_steps: int = 0, timestep_fs: float = 0.5,
                     friction_per_fs: float | None = PRODUCTION_FRICTION_PER_FS, record_interval: int = 1,
                     seed: int = 0, progress=None) -> DipoleTrajectory:
    """MD driven directly by the reference method: the "AIMD" baseline ML spectra are judged against.

    Raises :class:`DynamicsError` if the run blows up (no partial spectrum is
    silently returned from a broken reference trajectory).
    """
    from specml.reference import make_reference

    reference = make_reference(reference)
    reference.check_elements(atoms, atoms.get_chemical_formula())
    traj = run_ase_md(atoms, reference.calculator(), temperature_k, n_steps, thermalization_steps, timestep_fs,
                      friction_per_fs, record_interval, seed, progress=progress)
    if traj.stop_reason:
        raise DynamicsError(f"reference MD of {atoms.get_chemical_formula()} stopped at step "
                            f"{traj.stopped_at_step}: {traj.stop_reason}")
    traj.info["reference"] = reference.describe()
    return traj
