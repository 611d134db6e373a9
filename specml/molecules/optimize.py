"""Geometry optimisation with a reference method (or any ASE calculator)."""

from __future__ import annotations

from ase import Atoms
from ase.optimize import BFGS

from specml.errors import ReferenceCalculationError


def optimize_geometry(atoms: Atoms, reference, fmax: float = 1e-3, max_steps: int = 1000) -> Atoms:
    """Relaxed copy of ``atoms`` with the reference's calculator (BFGS, ``fmax`` in eV/Å).

    Tight ``fmax`` matters: harmonic frequencies from an unrelaxed geometry are
    wrong at low wavenumbers.
    """
    from specml.reference import make_reference

    reference = make_reference(reference)
    work = atoms.copy()
    reference.attach(work)
    optimizer = BFGS(work, logfile=None)
    try:
        converged = optimizer.run(fmax=fmax, steps=max_steps)
    except ReferenceCalculationError:
        raise
    except Exception as exc:
        from specml.reference.base import translate_calculator_error

        raise translate_calculator_error(exc, atoms, reference) from exc
    if not converged:
        raise ReferenceCalculationError(
            f"geometry optimisation of {atoms.get_chemical_formula()} with {reference.describe()} "
            f"did not reach fmax={fmax} eV/Å in {max_steps} steps",
            work,
        )
    result = Atoms(work.get_chemical_symbols(), positions=work.get_positions())
    result.info.update(atoms.info)
    result.info["optimized_with"] = reference.describe()
    result.info["optimizer_steps"] = optimizer.nsteps + 1  # reference calls spent
    return result
