"""Settings of reference MD runs, checked before any calculation (light: no torch or ASE MD import)."""

from __future__ import annotations

from specml import checks
from specml.errors import InputError

#: Most steps (thermalisation and production together) of one reference MD run: 10^8 steps of
#: 0.5 fs are 50 ns, years of reference calculations; a larger number is a mistyped option.
MAX_MD_STEPS = 100_000_000


def check_md_settings(
    temperature_k: float,
    time_ps: float,
    thermalization_ps: float,
    timestep_fs: float,
    friction_per_fs: float,
    max_correlation_fs: float,
    seed: int,
) -> tuple[int, int]:
    """Production and thermalisation steps of a reference MD run if its settings are usable, else
    :class:`~specml.errors.InputError`: temperature in (0, 10000] K, times > 0 (thermalisation >= 0),
    friction in [0, 1/timestep] 1/fs, correlation depth up to half the production time, seed >= 0."""
    checks.temperature("temperature", temperature_k)
    timestep = checks.positive("time step", timestep_fs, "fs")
    production_fs = 1000.0 * checks.positive("production time", time_ps, "ps")
    thermalization_fs = 1000.0 * checks.non_negative("thermalisation time", thermalization_ps, "ps")
    checks.non_negative("friction", friction_per_fs, "1/fs", upper=1.0 / timestep)
    steps, thermalization_steps = production_fs / timestep, thermalization_fs / timestep
    if not (steps >= 2 and steps + thermalization_steps <= MAX_MD_STEPS):
        raise InputError(
            f"{production_fs:g} fs of production in steps of {timestep:g} fs (+ thermalisation) is "
            f"{steps:.3g} steps; between 2 and {MAX_MD_STEPS:.0e} in all are possible"
        )
    depth = checks.positive("correlation depth", max_correlation_fs, "fs")
    if depth > production_fs / 2:  # the spectrum would fail after the whole run (ir_from_dipoles)
        raise InputError(
            f"a correlation depth of {depth:g} fs needs at least twice that of production; "
            f"the production time is {production_fs:g} fs"
        )
    checks.count("seed", seed, minimum=0)
    return int(round(steps)), int(round(thermalization_steps))
