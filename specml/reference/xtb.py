"""GFN-xTB through tblite: the fast, embedded default reference method."""

from __future__ import annotations

from functools import cache

from ase.data import chemical_symbols
from tblite.ase import TBLite
from threadpoolctl import ThreadpoolController

from specml.reference.base import ReferenceMethod

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
