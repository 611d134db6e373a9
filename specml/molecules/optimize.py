"""Geometry optimisation with a reference method (or any ASE calculator)."""

from __future__ import annotations

from collections.abc import Callable

from ase import Atoms
from ase.optimize import BFGS

from specml.errors import ReferenceCalculationError
from specml.molecules.inputs import bare_copy

#: Force threshold (eV/Å) of the cheap pre-relaxation of an expensive reference's start structure:
#: close enough that the expensive optimiser starts near its minimum, no tighter (xTB's minimum
#: is not the reference's).
PRERELAX_FMAX = 5e-3


def optimize_geometry(
    atoms: Atoms,
    reference,
    fmax: float = 1e-3,
    max_steps: int = 1000,
    on_stage: Callable[[str], None] | None = None,
) -> Atoms:
    """Relaxed copy of ``atoms`` with the reference method (``fmax`` in eV/Å).

    A reference with an optimiser of its own (``reference.optimize``, e.g. geomeTRIC in internal
    coordinates for PySCF) uses it; any other goes through ASE's BFGS. An expensive reference
    (``reference.prerelax``, e.g. DFT) starts from the minimum of a cheap one (GFN2-xTB).
    Tight ``fmax`` matters: harmonic frequencies from an unrelaxed geometry are wrong at low
    wavenumbers. ``on_stage`` is told when the pre-relaxation and the optimisation start (for
    progress bars).
    """
    from specml.reference import make_reference

    reference = make_reference(reference)
    reference.check_elements(atoms, atoms.info.get("smiles") or atoms.get_chemical_formula())
    report = on_stage or (lambda stage: None)
    if reference.prerelax:
        report(f"pre-relaxation ({reference.prerelax})")
    start = prerelaxed(atoms, reference)
    report("optimisation")
    native = getattr(reference, "optimize", None)
    work = (
        native(start, fmax, max_steps) if native is not None else _ase_bfgs(start, reference, fmax, max_steps)
    )
    result = bare_copy(work)  # isotope masses survive the optimisation
    result.info.update(atoms.info)
    result.info["optimized_with"] = reference.describe()
    result.info["optimizer_steps"] = work.info["optimizer_steps"]  # reference calls spent
    return result


def prerelaxed(atoms: Atoms, reference) -> Atoms:
    """``atoms`` relaxed with ``reference.prerelax`` when the reference names one, else ``atoms``.

    A failed pre-relaxation is not an error: the expensive optimiser then starts from ``atoms``.
    """
    cheap = getattr(reference, "prerelax", None)
    if not cheap:
        return atoms
    try:
        return optimize_geometry(atoms, cheap, fmax=PRERELAX_FMAX)
    except ReferenceCalculationError:
        return atoms


def _ase_bfgs(atoms: Atoms, reference, fmax: float, max_steps: int) -> Atoms:
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
    work.info["optimizer_steps"] = optimizer.nsteps + 1
    return work
