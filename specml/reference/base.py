"""One small interface over every reference (QM) method.

A :class:`ReferenceMethod` is a picklable description (name + settings) that
creates ASE calculators on demand, so it can be shipped to Dask workers.
:meth:`ReferenceMethod.label` returns energy, forces and dipole for one
structure, or raises a specific :mod:`specml.errors` exception.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, CalculatorError

from specml.errors import InputError, ReferenceCalculationError, SCFConvergenceError, UnsupportedElementError


@dataclass(frozen=True)
class Label:
    """Reference data of one structure. Units: eV, eV/Å, e·Å."""

    energy: float
    forces: np.ndarray
    dipole: np.ndarray


class ReferenceMethod(abc.ABC):
    """Base class: subclasses define :meth:`calculator` and :attr:`name`."""

    name: str = "reference"
    #: A cheap reference (a name for :func:`specml.reference.make_reference`) whose minimum starts
    #: this method's geometry optimisations; None: start from the structure as given.
    prerelax: str | None = None
    #: ``optimize(atoms, fmax, max_steps) -> Atoms`` when the method has an optimiser of its own
    #: (e.g. internal coordinates); None: :func:`specml.molecules.optimize_geometry` uses ASE's BFGS.
    optimize: Callable[[Atoms, float, int], Atoms] | None = None
    #: The ``method`` setting :meth:`describe` does not name (GFN2-xTB for xTB); any other is named,
    #: so labels of GFN1-xTB and GFN2-xTB, say, keep their fidelity apart.
    default_method: str | None = None

    @property
    @abc.abstractmethod
    def settings(self) -> dict:
        """Everything that defines the level of theory (stored as provenance)."""

    @abc.abstractmethod
    def calculator(self) -> Calculator:
        """A fresh ASE calculator for this method."""

    def supported_elements(self) -> set[str] | None:
        """Element symbols this method can treat, or None when unknown."""
        return None

    def check_elements(self, atoms: Atoms, what: str = "structure") -> None:
        supported = self.supported_elements()
        if supported is None:
            return
        unknown = sorted(set(atoms.get_chemical_symbols()) - supported)
        if unknown:
            raise UnsupportedElementError(
                f"{what}: element(s) {', '.join(unknown)} not supported by reference method {self.describe()}",
                unknown,
            )

    def second_derivatives(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray] | None:
        """Analytic Hessian (eV/Å^2, (3N, 3N)) and dipole derivatives (e, (3N, 3)) of ``atoms`` when
        the method has them; None, the default, makes harmonic analysis use finite differences."""
        return None

    def polarizability(self, atoms: Atoms) -> np.ndarray:
        """Static electronic polarizability of ``atoms`` as a symmetric (3, 3) tensor in Å^3
        (polarizability volume, alpha / (4 pi eps0)). Methods without one raise InputError."""
        raise InputError(
            f"reference method {self.describe()} gives no polarizability; use 'pyscf[:FUNC/BASIS]' or 'xtb'"
        )

    def describe(self) -> str:
        """Name and settings: the level of theory, as label provenance records it. A ``method``
        setting equal to :attr:`default_method` is left out (earlier descriptions stay valid)."""
        extra = ", ".join(
            f"{k}={v}" for k, v in self.settings.items() if k != "method" or v != self.default_method
        )
        return f"{self.name}({extra})" if extra else self.name

    def attach(self, atoms: Atoms) -> Atoms:
        """Check elements and set a fresh calculator on ``atoms`` (in place)."""
        self.check_elements(atoms)
        atoms.calc = self.calculator()
        return atoms

    def label(self, atoms: Atoms) -> Label:
        """Energy, forces and dipole of ``atoms`` (which is not modified)."""
        work = Atoms(
            atoms.get_chemical_symbols(),
            positions=atoms.get_positions(),
            cell=atoms.get_cell(),
            pbc=atoms.get_pbc(),
        )
        self.attach(work)
        try:
            energy = float(work.get_potential_energy())
            forces = np.array(work.get_forces(), dtype=float)
            dipole = np.array(work.get_dipole_moment(), dtype=float)
        except SCFConvergenceError as exc:
            exc.atoms = atoms.copy()
            raise
        except (CalculatorError, RuntimeError, ValueError, ArithmeticError) as exc:
            raise translate_calculator_error(exc, atoms, self) from exc
        if not (np.isfinite(energy) and np.all(np.isfinite(forces)) and np.all(np.isfinite(dipole))):
            raise ReferenceCalculationError(f"{self.describe()} returned non-finite values", atoms.copy())
        return Label(energy, forces, dipole)

    def __repr__(self) -> str:
        return f"<ReferenceMethod {self.describe()}>"


def translate_calculator_error(exc: Exception, atoms: Atoms, method: ReferenceMethod) -> Exception:
    """Map a calculator's exception onto specml's error types."""
    text = str(exc)
    formula = atoms.get_chemical_formula()
    if "converge" in text.lower():
        return SCFConvergenceError(
            f"{method.describe()}: SCF did not converge for {formula}: {text}", atoms.copy()
        )
    if "support" in text.lower() and "element" in text.lower():
        return UnsupportedElementError(f"{formula}: {text} ({method.describe()})")
    return ReferenceCalculationError(
        f"{method.describe()} failed for {formula}: {type(exc).__name__}: {text}", atoms.copy()
    )


#: Finite-field step (atomic units, Eh / (e a0) = 51.4 V/Å). 1e-3 keeps the hyperpolarizability
#: error of central differences (~F^2) below 1e-5 relative while the dipole change stays far
#: above the SCF noise at conv_tol 1e-10.
FIELD_STEP_AU = 1e-3


def finite_field_polarizability(dipole_au: Callable[[np.ndarray], np.ndarray], step: float = FIELD_STEP_AU):
    """alpha_ij = d mu_i / d F_j (atomic units, (3, 3)) by central differences of ``dipole_au(field)``
    (e·Bohr for a uniform field in atomic units), symmetrised: the exact tensor is symmetric, so the
    antisymmetric part is numerical noise."""
    columns = [(dipole_au(step * unit) - dipole_au(-step * unit)) / (2 * step) for unit in np.eye(3)]
    alpha = np.array(columns).T
    return 0.5 * (alpha + alpha.T)
