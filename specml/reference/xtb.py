"""GFN-xTB through tblite: the fast, embedded default reference method."""

from __future__ import annotations

from functools import cache

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from tblite.ase import TBLite
from threadpoolctl import ThreadpoolController

from specml.errors import ReferenceCalculationError
from specml.reference.base import ReferenceMethod, finite_field_polarizability
from specml.units import BOHR_ANGSTROM, POLARIZABILITY_AU_TO_A3

#: Boltzmann constant in Hartree/K: tblite's electronic temperature is an energy (kT, Hartree).
KB_HARTREE_PER_K = 3.166811563e-6

#: tblite accuracy of the finite-field calculations. At the default 1.0 the SCF leaves the dipole
#: uncertain by ~1e-6 e·Bohr, ~1e-3 of its change at field step 1e-3 au: enough to move water's
#: Raman activities by 1.5 % between step sizes. 0.01 converges them to 0.1 %.
FIELD_ACCURACY = 0.01

# GFN1/GFN2-xTB are parametrised for Z = 1..86.
_XTB_ELEMENTS = frozenset(chemical_symbols[1:87])


class ThreadLimitedTBLite(TBLite):
    """TBLite with its OpenMP threads limited during each calculation.

    For molecules of tens of atoms threading costs more than it saves, and on
    shared cores tblite's default team stalls: 3.7 ms against 11.5 ms per
    acetaldehyde force call measured side by side on the 2-core CI machine.
    """

    def __init__(self, threads: int = 1, **kwargs):
        self.threads = threads
        super().__init__(**kwargs)

    def calculate(self, *args, **kwargs):
        with _openmp_controller().limit(limits=self.threads):
            super().calculate(*args, **kwargs)


@cache
def _openmp_controller() -> ThreadpoolController:
    """The process's OpenMP runtimes, found once.

    ``threadpool_limits`` rescans every loaded shared library on each call: 2-16 ms in a
    process that has imported torch and Dask, against about 1 ms for a small molecule's
    xTB force call. tblite's runtime is loaded with ``tblite.ase``, so one scan finds it.
    """
    return ThreadpoolController().select(user_api="openmp")


class XTBReference(ReferenceMethod):
    """GFN2-xTB (default) or GFN1-xTB via ``tblite.ase.TBLite``."""

    name = "xtb"
    default_method = "GFN2-xTB"

    def __init__(
        self,
        method: str = "GFN2-xTB",
        accuracy: float = 1.0,
        max_iterations: int = 250,
        electronic_temperature: float = 300.0,
        charge: int = 0,
        threads: int = 1,
    ):
        self.method = method
        self.accuracy = accuracy
        self.max_iterations = max_iterations
        self.electronic_temperature = electronic_temperature
        self.charge = charge
        self.threads = threads

    @property
    def settings(self) -> dict:
        return {
            "method": self.method,
            "accuracy": self.accuracy,
            "max_iterations": self.max_iterations,
            "electronic_temperature": self.electronic_temperature,
            "charge": self.charge,
        }

    # ``threads`` is deliberately not a setting: it does not change the level of theory.

    def calculator(self):
        return ThreadLimitedTBLite(
            threads=self.threads,
            method=self.method,
            accuracy=self.accuracy,
            max_iterations=self.max_iterations,
            electronic_temperature=self.electronic_temperature,
            charge=self.charge,
            verbosity=0,
        )

    def supported_elements(self):
        return set(_XTB_ELEMENTS)

    def polarizability(self, atoms: Atoms) -> np.ndarray:
        """Static polarizability (Å^3, symmetric (3, 3)) by finite field, six tblite calculations.

        Qualitative only: the minimal valence basis responds mostly through charge flow between
        atoms, so GFN2-xTB gives water about 0.37 Å^3 against 1.45 Å^3 measured, and almost
        nothing perpendicular to a planar molecule (water's out-of-plane component: 0.0004 Å^3).
        """
        from tblite.interface import Calculator
        from tblite.library import ffi

        self.check_elements(atoms)
        positions = atoms.get_positions() / BOHR_ANGSTROM

        def dipole(field: np.ndarray) -> np.ndarray:
            calc = Calculator(self.method, atoms.numbers, positions, charge=float(self.charge))
            calc.set("accuracy", min(self.accuracy, FIELD_ACCURACY))
            calc.set("max-iter", self.max_iterations)
            calc.set("temperature", self.electronic_temperature * KB_HARTREE_PER_K)
            calc.set("verbosity", 0)
            # tblite 0.8 accepts the field only as a C array: a NumPy array raises TypeError.
            calc.add("electric-field", ffi.new("double[3]", [float(x) for x in field]))
            try:
                with _openmp_controller().limit(limits=self.threads):
                    return np.asarray(calc.singlepoint().get("dipole"), dtype=float)  # e·Bohr
            except RuntimeError as exc:
                raise ReferenceCalculationError(
                    f"{self.describe()} in a field of {np.abs(field).max():.0e} au failed for "
                    f"{atoms.get_chemical_formula()}: {exc}",
                    atoms.copy(),
                ) from exc

        return finite_field_polarizability(dipole) * POLARIZABILITY_AU_TO_A3
