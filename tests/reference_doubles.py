"""ASE calculators standing in for awkward reference methods in tests (loaded by import path)."""

import os
import time

import numpy as np
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes
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


class ToyWater(Calculator):
    """An analytic water whose Raman is known in closed form: three pair springs (two O-H, one
    H-H, eV/Å^2) holding a bent molecule at its OH length and HOH angle, point charges for the
    dipole, and a bond polarizability model for alpha (Å^3): each O-H bond adds
    a_perp(r) 1 + (a_par(r) - a_perp(r)) b b^T with linear a(r) about r0. Rotation-equivariant
    by construction; cheap enough for thousands of MD steps per second."""

    implemented_properties = ["energy", "forces", "dipole", "polarizability"]
    R_OH, ANGLE_DEG = 0.9572, 104.52
    K_OH, K_HH = 50.0, 6.0
    Q_H = 0.33
    A_PAR, A_PERP, DA_PAR, DA_PERP = 0.75, 0.35, 1.6, 0.4

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        positions = self.atoms.positions  # O, H, H
        r_hh = 2 * self.R_OH * np.sin(np.radians(self.ANGLE_DEG) / 2)
        energy, forces = 0.0, np.zeros_like(positions)
        for (i, j), k, r0 in (
            ((0, 1), self.K_OH, self.R_OH),
            ((0, 2), self.K_OH, self.R_OH),
            ((1, 2), self.K_HH, r_hh),
        ):
            vector = positions[j] - positions[i]
            r = np.linalg.norm(vector)
            energy += 0.5 * k * (r - r0) ** 2
            push = k * (r - r0) * vector / r
            forces[i] += push
            forces[j] -= push
        alpha = np.zeros((3, 3))
        for h in (1, 2):
            vector = positions[h] - positions[0]
            r = np.linalg.norm(vector)
            b = vector / r
            par = self.A_PAR + self.DA_PAR * (r - self.R_OH)
            perp = self.A_PERP + self.DA_PERP * (r - self.R_OH)
            alpha += perp * np.eye(3) + (par - perp) * np.outer(b, b)
        charges = np.array([-2 * self.Q_H, self.Q_H, self.Q_H])
        self.results = {
            "energy": energy,
            "forces": forces,
            "dipole": charges @ positions,
            "polarizability": alpha,
        }
