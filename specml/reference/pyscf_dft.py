"""Kohn-Sham DFT through PySCF: energy, analytic gradients, dipole, and the fast harmonic path.

PySCF ships no ASE calculator, so this module holds a small one. It refuses to
return numbers from an unconverged SCF. For harmonic analysis it offers what finite
differences cannot match in cost: geometry optimisation in internal coordinates
(geomeTRIC, through PySCF) and analytic second derivatives (PySCF's Hessian, density
fitted when the SCF is, plus the dipole derivatives from the same nuclear CPKS response).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import logging
import warnings

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from specml.errors import InputError, ReferenceCalculationError, SCFConvergenceError, UnsupportedElementError
from specml.reference.base import ReferenceMethod, finite_field_polarizability
from specml.units import BOHR_ANGSTROM, HARTREE_EV, POLARIZABILITY_AU_TO_A3

#: Orbital-gradient threshold (Hartree) of the SCFs behind optimisations and Hessians. PySCF's
#: default, sqrt(conv_tol) = 3e-5 at conv_tol 1e-9, leaves nuclear gradients uncertain by about
#: 3e-4 eV/Å (formaldehyde, B3LYP), more than the 1e-4 eV/Å a frequency calculation converges to.
TIGHT_CONV_TOL_GRAD = 1e-6

#: How far (eV/Å^2) an analytic Hessian may break the translational sum rule before it is
#: recomputed on a finer grid. Measured at B3LYP/def2-SVP, grid level 3: formic acid 0.10,
#: chloroform 0.35, but CH2Br2 23 (its Br-C-Br bend at 317 cm-1 against 169 from finite
#: differences and experiment); at level 5 CH2Br2 breaks it by 0.06 and bends at 168 cm-1.
SUM_RULE_TOLERANCE_EV_A2 = 1.0
MAX_HESSIAN_GRID_LEVEL = 7

log = logging.getLogger(__name__)

#: Dispersion corrections PySCF applies through ``pyscf-dispersion`` (simple-dftd3 / dftd4).
DISPERSION_MODELS = ("d3bj", "d3zero", "d3bjm", "d3zerom", "d3op", "d4")


def split_dispersion(functional: str) -> tuple[str, str | None]:
    """``"b3lyp-d3bj"`` -> ``("b3lyp", "d3bj")``; a functional without a suffix -> ``(functional, None)``."""
    base, dash, suffix = functional.rpartition("-")
    if dash and suffix.lower() in DISPERSION_MODELS:
        return base, suffix.lower()
    return functional, None


class PySCFSettings:
    """Level of theory and numerical settings shared by the calculator and the harmonic path."""

    def __init__(
        self,
        functional: str = "b3lyp",
        basis: str = "def2-svp",
        charge: int = 0,
        spin: int = 0,
        density_fit: bool = True,
        conv_tol: float = 1e-9,
        max_cycle: int = 100,
        grid_level: int = 3,
        dispersion: str | None = None,
    ):
        if dispersion is not None and dispersion.lower() not in DISPERSION_MODELS:
            raise InputError(
                f"dispersion {dispersion!r} is not known; use one of {', '.join(DISPERSION_MODELS)}"
            )
        self.functional = functional
        self.basis = basis
        self.charge = charge
        self.spin = spin
        self.density_fit = density_fit
        self.conv_tol = conv_tol
        self.max_cycle = max_cycle
        self.grid_level = grid_level
        self.dispersion = dispersion.lower() if dispersion else None

    def build_mole(self, atoms: Atoms):
        from pyscf import gto

        symbols = atoms.get_chemical_symbols()
        # def2 bases describe heavy elements (Rb onwards) with an effective core potential: without
        # it HI would have 54 electrons in a basis made for 26.
        ecp = {symbol: self.basis for symbol in set(symbols) if _has_ecp(self.basis, symbol)}
        try:
            return gto.M(
                atom=[(s, tuple(p)) for s, p in zip(symbols, atoms.positions, strict=True)],
                unit="Angstrom",
                basis=self.basis,
                ecp=ecp,
                charge=self.charge,
                spin=self.spin,
                verbose=0,
            )
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UnsupportedElementError(
                f"{atoms.get_chemical_formula()}: basis {self.basis!r} cannot be built ({exc})"
            ) from exc

    def build_scf(self, mol, conv_tol_grad: float | None = None):
        """An (unrun) RKS/UKS object for ``mol`` with every setting applied; ``conv_tol_grad``
        (Hartree) tightens the orbital gradient beyond PySCF's default."""
        from pyscf import dft

        mf = dft.RKS(mol) if mol.spin == 0 else dft.UKS(mol)
        mf.xc = self.functional
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        if conv_tol_grad is not None:
            mf.conv_tol_grad = conv_tol_grad
        if self.dispersion:
            _require_dispersion_package()
            mf.disp = self.dispersion
        if self.density_fit:
            mf = mf.density_fit()
        return mf

    def run_scf(self, atoms: Atoms, conv_tol_grad: float | None = None):
        """A converged SCF of ``atoms``, or :class:`SCFConvergenceError`."""
        mf = self.build_scf(self.build_mole(atoms), conv_tol_grad)
        mf.kernel()
        if not mf.converged:
            raise SCFConvergenceError(
                f"PySCF {self.functional}/{self.basis}: SCF did not converge in {self.max_cycle} cycles "
                f"for {atoms.get_chemical_formula()}",
                atoms.copy(),
            )
        return mf


def _require_dispersion_package() -> None:
    try:
        import pyscf.dispersion  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "a dispersion correction needs the 'pyscf-dispersion' package (pip install pyscf-dispersion)"
        ) from exc


def gradient_method(mf):
    """Nuclear gradients with the DFT grid's response, so that forces are the energy's derivative:
    without it BFGS wandered around methanol's minimum above fmax 1e-4 eV/Å for 60+ steps and
    geomeTRIC needed twice the steps to a tight minimum (B3LYP/def2-SVP)."""
    grad = mf.nuc_grad_method()
    grad.grid_response = True
    return grad


class PySCFCalculator(Calculator):
    """ASE calculator for RKS/UKS DFT with PySCF (molecules only)."""

    implemented_properties = ["energy", "forces", "dipole"]

    def __init__(
        self,
        functional: str = "b3lyp",
        basis: str = "def2-svp",
        charge: int = 0,
        spin: int = 0,
        density_fit: bool = True,
        conv_tol: float = 1e-9,
        max_cycle: int = 100,
        grid_level: int = 3,
        dispersion: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pyscf = PySCFSettings(
            functional, basis, charge, spin, density_fit, conv_tol, max_cycle, grid_level, dispersion
        )

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None  # set by Calculator.calculate
        mf = self.pyscf.run_scf(self.atoms)
        gradient = gradient_method(mf).kernel()  # Hartree/Bohr
        dipole_au = mf.dip_moment(unit="AU", verbose=0)  # e·Bohr
        self.results["energy"] = float(mf.e_tot) * HARTREE_EV
        self.results["forces"] = -np.asarray(gradient) * HARTREE_EV / BOHR_ANGSTROM
        self.results["dipole"] = np.asarray(dipole_au) * BOHR_ANGSTROM


class PySCFReference(ReferenceMethod):
    """DFT reference. Functional and basis are configurable; density fitting on by default.

    A dispersion correction is a setting (``dispersion="d3bj"``), or a suffix of the functional
    in :func:`specml.reference.make_reference` (``pyscf:b3lyp-d3bj/def2-svp``).
    """

    name = "pyscf"
    #: Expensive: geometry optimisations start from the GFN2-xTB minimum.
    prerelax = "xtb"

    def __init__(
        self,
        functional: str = "b3lyp",
        basis: str = "def2-svp",
        charge: int = 0,
        spin: int = 0,
        density_fit: bool = True,
        conv_tol: float = 1e-9,
        max_cycle: int = 100,
        dispersion: str | None = None,
    ):
        functional, suffix = split_dispersion(functional)
        self.functional = functional
        self.basis = basis
        self.charge = charge
        self.spin = spin
        self.density_fit = density_fit
        self.conv_tol = conv_tol
        self.max_cycle = max_cycle
        self.dispersion = dispersion or suffix
        self.pyscf = PySCFSettings(**self.settings)  # validates the dispersion name

    @property
    def settings(self) -> dict:
        settings = {
            "functional": self.functional,
            "basis": self.basis,
            "charge": self.charge,
            "spin": self.spin,
            "density_fit": self.density_fit,
            "conv_tol": self.conv_tol,
            "max_cycle": self.max_cycle,
        }
        if self.dispersion:  # only when set, so keys of earlier results stay valid
            settings["dispersion"] = self.dispersion
        return settings

    @property
    def level(self) -> str:
        """Short name of the level of theory, e.g. ``b3lyp-d3bj/def2-svp``."""
        functional = f"{self.functional}-{self.dispersion}" if self.dispersion else self.functional
        return f"{functional}/{self.basis}"

    def calculator(self):
        return PySCFCalculator(**self.settings)

    def supported_elements(self):
        return set(elements_with_basis(self.basis))

    def optimize(self, atoms: Atoms, fmax: float, max_steps: int) -> Atoms:
        """Minimum of ``atoms`` in internal coordinates (geomeTRIC through PySCF).

        Converged when the largest force is below ``fmax`` (eV/Å; the RMS criterion is 2/3 of it)
        and the energy changes by less than 1e-9 Hartree; the displacement criteria are loose,
        because near a minimum the steps follow from the forces.
        """
        from pyscf.geomopt.geometric_solver import kernel as geometric_optimize

        self.check_elements(atoms)
        gmax = fmax * BOHR_ANGSTROM / HARTREE_EV  # Hartree/Bohr
        mf = self.pyscf.build_scf(self.pyscf.build_mole(atoms), TIGHT_CONV_TOL_GRAD)
        scanner = gradient_method(mf).as_scanner()
        steps = [0]

        def count(_):
            steps[0] += 1

        # subfrctor=2: the net force and torque (numerical noise of the DFT grid) are projected out
        # from the first step. Otherwise geomeTRIC chased them below 1e-5 Hartree/Bohr and wandered
        # off the minimum: SO2 took 15 steps instead of 5, methanol 19.
        criteria = dict(
            convergence_energy=1e-9,
            convergence_gmax=gmax,
            convergence_grms=gmax / 1.5,
            convergence_drms=1e-3,
            convergence_dmax=2e-3,
            subfrctor=2,
        )
        try:
            with _quiet_geometric():
                converged, mol = geometric_optimize(
                    scanner, assert_convergence=False, maxsteps=max_steps, callback=count, **criteria
                )
        except SCFConvergenceError:
            raise
        except Exception as exc:  # geomeTRIC and PySCF raise assorted types
            from specml.reference.base import translate_calculator_error

            raise translate_calculator_error(exc, atoms, self) from exc
        relaxed = atoms.copy()
        relaxed.calc = None
        relaxed.positions = mol.atom_coords(unit="Angstrom")
        if not converged:
            raise ReferenceCalculationError(
                f"geometry optimisation of {atoms.get_chemical_formula()} with {self.describe()} did not reach "
                f"fmax={fmax} eV/Å in {max_steps} steps",
                relaxed,
            )
        relaxed.info["optimizer_steps"] = steps[0]
        return relaxed

    def polarizability(self, atoms: Atoms) -> np.ndarray:
        """Static polarizability (Å^3, symmetric (3, 3)) by finite field, six SCFs.

        Written here rather than taken from CPHF in ``pyscf-properties``, which PySCF marks as
        under testing: a uniform field F adds F·r to the one-electron Hamiltonian (the electrons'
        dipole is -r), and alpha_ij = d mu_i / d F_j by central differences. Polarizabilities need
        diffuse functions: def2-SVP gives about half of water's, aug-cc-pVDZ nearly all of it.
        """
        return pyscf_polarizability(self.pyscf, atoms, self)

    def second_derivatives(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray] | None:
        """Analytic Hessian (eV/Å^2, (3N, 3N)) and dipole derivatives (e, (3N, 3)) of a closed shell.

        PySCF's analytic Hessian has no exchange-correlation grid response, so on a coarse grid
        it can break the translational sum rule (sum over B of H_AB = 0). When it does by more
        than ``SUM_RULE_TOLERANCE_EV_A2``, the Hessian is recomputed on a finer grid (two levels
        up, at most ``MAX_HESSIAN_GRID_LEVEL``). Returns None for an open shell, or when even
        the finest grid, or a finer grid that does not halve the violation, breaks the rule: the
        finite-difference path (gradients with the grid response) then serves it.
        """
        if self.spin != 0:
            return None
        self.check_elements(atoms)
        settings = self.pyscf
        previous = np.inf
        while True:
            mf = settings.run_scf(atoms, TIGHT_CONV_TOL_GRAD)
            hessian_au, apt_au = hessian_and_dipole_derivatives(mf)
            n3 = 3 * len(atoms)
            hessian = hessian_au.transpose(0, 2, 1, 3).reshape(n3, n3) * HARTREE_EV / BOHR_ANGSTROM**2
            hessian = 0.5 * (hessian + hessian.T)
            violation = translational_sum_violation(hessian)
            if violation <= SUM_RULE_TOLERANCE_EV_A2:
                # d mu / d x in e·Bohr per Bohr = e, the unit the harmonic path uses (e·Å per Å).
                return hessian, apt_au.reshape(n3, 3)
            # A violation that a finer grid does not halve is not the grid's (the ECP terms of
            # I and Sb break the rule by 2-4 eV/Å^2 on every grid): finite differences then.
            if settings.grid_level + 2 > MAX_HESSIAN_GRID_LEVEL or violation > 0.5 * previous:
                log.info(
                    "%s: analytic Hessian breaks the translational sum rule by %.2f eV/Å^2 on grid "
                    "level %d; finite differences instead",
                    atoms.get_chemical_formula(),
                    violation,
                    settings.grid_level,
                )
                return None
            previous = violation
            log.info(
                "%s: analytic Hessian breaks the translational sum rule by %.2f eV/Å^2 on grid level %d; "
                "recomputing on level %d",
                atoms.get_chemical_formula(),
                violation,
                settings.grid_level,
                settings.grid_level + 2,
            )
            settings = copy.copy(settings)
            settings.grid_level += 2


#: Energy threshold (Hartree) of the finite-field SCFs: the dipole difference at field step 1e-3 au
#: is about 1e-3 x alpha, so the dipole must be converged far below that.
FINITE_FIELD_CONV_TOL = 1e-11


def pyscf_polarizability(settings: PySCFSettings, atoms: Atoms, method: ReferenceMethod) -> np.ndarray:
    """Finite-field polarizability (Å^3) of ``atoms`` at the level of ``settings``."""
    method.check_elements(atoms)
    mol = settings.build_mole(atoms)
    with mol.with_common_orig((0.0, 0.0, 0.0)):
        r = mol.intor("int1e_r", comp=3)  # <mu| r_a |nu>, Bohr
    base = settings.build_scf(mol, TIGHT_CONV_TOL_GRAD)
    base.conv_tol = min(settings.conv_tol, FINITE_FIELD_CONV_TOL)
    base.kernel()
    if not base.converged:
        raise SCFConvergenceError(
            f"PySCF {settings.functional}/{settings.basis}: SCF did not converge for {atoms.get_chemical_formula()}",
            atoms.copy(),
        )
    hcore = base.get_hcore()
    guess = base.make_rdm1()

    def dipole(field: np.ndarray) -> np.ndarray:
        mf = copy.copy(base)
        mf.get_hcore = lambda *args: hcore + np.einsum("x,xij->ij", field, r)
        mf.kernel(dm0=guess)
        if not mf.converged:
            raise SCFConvergenceError(
                f"PySCF {settings.functional}/{settings.basis}: SCF in a field of {np.abs(field).max():.0e} au "
                f"did not converge for {atoms.get_chemical_formula()}",
                atoms.copy(),
            )
        return np.asarray(mf.dip_moment(unit="AU", verbose=0), dtype=float)

    return finite_field_polarizability(dipole) * POLARIZABILITY_AU_TO_A3


def translational_sum_violation(hessian: np.ndarray) -> float:
    """max |sum over atoms B of H_AB| (the Hessian's units) for a (3N, 3N) Hessian: zero for an
    exact one, since moving every atom alike changes no force."""
    n = hessian.shape[0] // 3
    return float(np.abs(hessian.reshape(n, 3, n, 3).sum(axis=2)).max())


def hessian_and_dipole_derivatives(mf) -> tuple[np.ndarray, np.ndarray]:
    """PySCF's analytic Hessian (Hartree/Bohr^2, (N, N, 3, 3)) and the atomic polar tensors
    d mu_a / d R_Ab (atomic units, (N, 3, 3) indexed [A, b, a]) of a converged closed-shell SCF.

    Written here because PySCF computes the nuclear CPKS response (``mo1``) inside its Hessian and
    then discards it, and its IR intensities live in the separate ``pyscf-properties`` package,
    marked as under testing. The dipole derivative needs nothing more than that response:

        d mu_a / d R_Ab = Z_A delta_ab - tr(dP/dR_Ab r_a) - tr(P d r_a / d R_Ab)

    with dP/dR_Ab = 2 (C1 C_occ^T + C_occ C1^T) (C1 = ``mo1``, which includes the overlap
    response) and the last term from the dipole integrals' dependence on the basis functions
    of atom A. The analytic result equals finite differences of the dipole (tested).
    """
    mol = mf.mol
    hess = mf.Hessian()
    atoms = range(mol.natm)
    mo_energy, mo_coeff, mo_occ = mf.mo_energy, mf.mo_coeff, mf.mo_occ
    h1ao = hess.make_h1(mo_coeff, mo_occ, None, atoms)
    mo1, mo_e1 = hess.solve_mo1(mo_energy, mo_coeff, mo_occ, h1ao, None, atoms)
    hessian = hess.hess_elec(mo_energy, mo_coeff, mo_occ, mo1=mo1, mo_e1=mo_e1, h1ao=h1ao) + hess.hess_nuc()
    if mf.do_disp():
        hessian = hessian + hess.get_dispersion()

    nao = mol.nao
    occupied = mo_coeff[:, mo_occ > 0]
    density = mf.make_rdm1()
    with mol.with_common_orig((0.0, 0.0, 0.0)):
        r = mol.intor("int1e_r", comp=3)  # <mu| r_a |nu>
        r_grad = mol.intor("int1e_irp", comp=9).reshape(3, 3, nao, nao)  # <mu| r_a d/dr_b |nu>
    apt = np.zeros((mol.natm, 3, 3))
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        # d mu_a / d R_Ab from the density's response (4 = 2 electrons x (C1 C^T + C C1^T)).
        response = 4.0 * np.einsum("bui,auv,vi->ba", mo1[atom], r, occupied)
        # Basis functions on atom A move with it: -<d_b mu| r_a |nu> - <mu| r_a |d_b nu>.
        moving = -2.0 * np.einsum("uv,abvu->ba", density[p0:p1, :], r_grad[:, :, :, p0:p1])
        apt[atom] = mol.atom_charge(atom) * np.eye(3) - response - moving
    return hessian, apt


@contextlib.contextmanager
def _quiet_geometric():
    """geomeTRIC prints a banner and every step to stdout and its own loggers; keep the user's terminal clean."""
    loggers = [logging.getLogger(name) for name in ("geometric", "geometric.nifty")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@functools.lru_cache(maxsize=256)
def _has_ecp(basis: str, symbol: str) -> bool:
    from pyscf import gto

    try:
        return bool(gto.basis.load_ecp(basis, symbol))
    except Exception:  # PySCF raises assorted types for a basis without ECPs
        return False


@functools.lru_cache(maxsize=16)
def elements_with_basis(basis: str) -> frozenset[str]:
    """Elements (Z <= 86) for which PySCF can load ``basis``."""
    from ase.data import chemical_symbols
    from pyscf import gto

    supported = set()
    with warnings.catch_warnings():
        # PySCF suggests basis-set-exchange for every element the basis lacks: expected misses here.
        warnings.simplefilter("ignore", UserWarning)
        for symbol in chemical_symbols[1:87]:
            try:
                if gto.basis.load(basis, symbol):
                    supported.add(symbol)
            except Exception:  # PySCF raises assorted types for a missing element
                continue
    return frozenset(supported)
