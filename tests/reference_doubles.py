"""ASE calculators standing in for awkward reference methods in tests (loaded by import path)."""

import time

import numpy as np
from ase.calculators.calculator import CalculationFailed
from tblite.ase import TBLite


class SlowXTB(TBLite):
    """GFN2-xTB that takes ``delay`` seconds per call, so a run can be killed mid-labelling."""

    def __init__(self, delay=0.15, **kwargs):
        super().__init__(method="GFN2-xTB", verbosity=0, **kwargs)
        self.delay = delay

    def calculate(self, *args, **kwargs):
        time.sleep(self.delay)
        super().calculate(*args, **kwargs)


class FlakyXTB(TBLite):
    """GFN2-xTB whose SCF 'fails' for a deterministic third of the structures."""

    def __init__(self, **kwargs):
        super().__init__(method="GFN2-xTB", verbosity=0, **kwargs)

    def calculate(self, atoms=None, *args, **kwargs):
        if int(abs(np.sum(atoms.positions)) * 1e4) % 3 == 0:
            raise CalculationFailed("SCF not converged in 250 cycles")
        super().calculate(atoms, *args, **kwargs)
