"""ASE calculators standing in for awkward reference methods in tests (loaded by import path)."""

import os
import time

import numpy as np
from ase.calculators.calculator import CalculationFailed
from tblite.ase import TBLite


class SlowXTB(TBLite):
    """GFN2-xTB (or ``method``) that takes ``delay`` seconds per call, so a run can be killed mid-labelling."""

    def __init__(self, delay=0.15, method="GFN2-xTB", **kwargs):
        super().__init__(method=method, verbosity=0, **kwargs)
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


class XTBFailingOnRequest(TBLite):
    """GFN2-xTB whose ``fail_at``-th call 'fails to converge' while $SPECML_TEST_FAIL is set, so
    the same command without it can resume. With $SPECML_TEST_CALL_LOG every call adds a line there."""

    def __init__(self, fail_at=100, **kwargs):
        super().__init__(method="GFN2-xTB", verbosity=0, **kwargs)
        self.fail_at, self.calls = fail_at, 0

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if os.environ.get("SPECML_TEST_CALL_LOG"):
            with open(os.environ["SPECML_TEST_CALL_LOG"], "a") as log:
                log.write("call\n")
        if os.environ.get("SPECML_TEST_FAIL") and self.calls == self.fail_at:
            raise CalculationFailed("SCF not converged in 250 cycles")
        super().calculate(*args, **kwargs)
