"""Molecular dynamics with ASE integrators and any calculator that provides a dipole.

This is the per-trajectory loop: the reference-MD ("AIMD") baseline and the
reference implementation the batched ML engine is tested against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

from specml.dynamics.trajectory import DipoleTrajectory
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


def run_ase_md(atoms: Atoms, calculator, temperature_k: float = 300.0, n_steps: int = 1000,
               thermalization_steps: int = 0, timestep_fs: float = 0.5,
               friction_per_fs: float | None = PRODUCTION_FRICTION_PER_FS, record_interval: int = 1,
               seed: int = 0, velocities: np.ndarray | None = None,
               uncertainty_limit: float | None = None, progress: Callable[[int, int], None] | None = None,
               max_force_ev_per_a: float = 50.0) -> DipoleTrajectory:
    """Run Langevin (or NVE with ``friction_per_fs=None``) MD recording dipoles.

    Thermalisation steps are run first and not recorded. The run stops early
    (sanity stop) when forces exceed ``max_force_ev_per_a``, positions become
    non-finite, or the calculator's ``relative_force_uncertainty`` exceeds
    ``uncertainty_limit``; the trajectory up to that point is returned with
    ``stop_reason`` set.
    """
    work = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
    work.calc = calculator
    if velocities is not None:
        work.set_velocities(np.asarray(velocities) * units.fs)  # Å/fs -> ASE units
    else:
        initialize_velocities(work, temperature_k, seed)
    if friction_per_fs is None:
        dyn = VelocityVerlet(work, timestep=timestep_fs * units.fs)
    else:
        dyn = Langevin(work, timestep=timestep_fs * units.fs, temperature_K=temperature_k,
                       friction=friction_per_fs / units.fs, rng=np.random.default_rng(seed + 7919),
                       fixcm=False)
    total = thermalization_steps + n_steps
    frames = {"t": [], "dipole": [], "temperature": [], "epot": [], "unc": []}
    stop_step, stop_reason = None, None
    for step in range(1, total + 1):
        dyn.run(1)
        forces = work.get_forces()
        unc = calculator.results.get("relative_force_uncertainty") if hasattr(calculator, "results") else None
        if not np.all(np.isfinite(work.positions)) or not np.all(np.isfinite(forces)):
            stop_step, stop_reason = step, "non-finite positions or forces"
        elif np.abs(forces).max() > max_force_ev_per_a:
            stop_step, stop_reason = step, f"force above {max_force_ev_per_a} eV/Å (blow-up)"
        elif uncertainty_limit is not None and unc is not None and unc > uncertainty_limit:
            stop_step, stop_reason = step, f"relative force uncertainty {unc:.2f} > {uncertainty_limit}"
        if stop_reason:
            break
        if step > thermalization_steps and (step - thermalization_steps) % record_interval == 0:
            frames["t"].append((step - thermalization_steps) * timestep_fs)
            frames["dipole"].append(work.get_dipole_moment())
            frames["temperature"].append(work.get_temperature())
            frames["epot"].append(work.get_potential_energy())
            frames["unc"].append(np.nan if unc is None else unc)
        if progress is not None:
            progress(step, total)
    return DipoleTrajectory(
        times_fs=np.array(frames["t"]), dipoles=np.array(frames["dipole"]).reshape(-1, 3),
        temperatures_k=np.array(frames["temperature"]), potential_energies=np.array(frames["epot"]),
        final_positions=work.get_positions(), final_velocities=work.get_velocities() / units.fs,
        symbols=work.get_chemical_symbols(), target_temperature_k=temperature_k, timestep_fs=timestep_fs,
        stopped_at_step=stop_step, stop_reason=stop_reason, uncertainties=np.array(frames["unc"]),
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
