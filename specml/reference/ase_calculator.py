"""Any ASE calculator, named by import path, as a reference method.

This is how users plug in their own QM codes (ORCA, FHI-aims, VASP, ...) that
ASE already wraps.
"""

from __future__ import annotations

import importlib

from specml.errors import InputError
from specml.reference.base import ReferenceMethod


def import_object(path: str):
    """Import ``package.module:Name`` (or ``package.module.Name``)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise InputError(f"calculator path {path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import module {module_name!r} for calculator {path!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise InputError(f"module {module_name!r} has no attribute {attr!r}") from None


class ASECalculatorReference(ReferenceMethod):
    """Wraps ``ClassName(**kwargs)`` from an import path; it must provide a dipole for IR work."""

    name = "ase"

    def __init__(self, import_path: str, **kwargs):
        self.import_path = import_path
        self.kwargs = kwargs
        import_object(import_path)  # fail early, with a clear message

    @property
    def settings(self) -> dict:
        return {"calculator": self.import_path, **self.kwargs}

    def calculator(self):
        return import_object(self.import_path)(**self.kwargs)

    def polarizability(self, atoms):
        """The calculator's ``polarizability`` property (Å^3, (3, 3), symmetrised) where its
        ``implemented_properties`` lists one; otherwise InputError, as for any method without."""
        import numpy as np
        from ase import Atoms

        calculator = self.calculator()
        if "polarizability" not in getattr(calculator, "implemented_properties", ()):
            return super().polarizability(atoms)
        work = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
        work.calc = calculator
        alpha = np.asarray(calculator.get_property("polarizability", work), dtype=float).reshape(3, 3)
        return 0.5 * (alpha + alpha.T)
