"""Scaled quantum mechanical (SQM) force fields: a Cartesian Hessian scaled by internal-coordinate type.

One frequency scale factor cannot correct a method whose errors depend on the kind of motion
(B3LYP/def2-SVP puts C-Cl stretches ~4 % low while its C-H stretches are ~4 % high). Following
Baker, Jarzecki & Pulay (J. Phys. Chem. A 102, 1412, 1998), the Hessian is transformed to
redundant primitive internal coordinates q (bonds, angles, linear bends, out-of-plane angles,
dihedrals, from geomeTRIC), each force constant is scaled by the factors of its two coordinates'
types, F'_ij = sqrt(c_i c_j) F_ij, and the result is transformed back:

    F = G^- B H B^T G^-,   G = B B^T (pseudo-inverse: the coordinates are redundant),
    H' = B^T F' B.

B = dq/dx is the Wilson matrix at the (optimised) geometry. H is the Hessian after the same
Eckart projection of translations and rotations as :func:`~specml.spectra.harmonic.normal_modes`
(with the species' masses): a DFT Hessian without grid response breaks the translational sum
rule, and B's unweighted projection alone then moved chloroform's modes by up to 7 cm-1.
So with every c = 1 the frequencies are exactly those of ``harmonic_from_derivatives``, and with
every c equal they all scale by sqrt(c). The transformation ignores the gradient term
(d2q/dx2 times dE/dq), which vanishes at a stationary point: the Hessian must belong to an
optimised structure.

Units: positions Å, Hessian eV/Å^2, B dimensionless for stretches and rad/Å for angles, so F is in
eV per unit of q squared (eV/Å^2, eV/rad^2, eV/(Å rad)); the factors are dimensionless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from specml.errors import InputError
from specml.spectra.harmonic import HarmonicResult, harmonic_from_derivatives, normal_modes, rigid_body_basis

#: The coordinate types, each with its own scale factor (few, so that a small benchmark fixes them).
COORDINATE_TYPES = (
    "stretch_xh_first_row",  # C-H, N-H, O-H, B-H: the most anharmonic, overestimated by every method
    "stretch_xh_heavier",  # Si-H, P-H, S-H, As-H, Se-H, Sb-H: lower, less anharmonic stretches
    "stretch_first_row",  # bonds among B, C, N, O (Li, Be included)
    "stretch_c_cl",  # C-Cl alone: B3LYP puts it ~3 % low, and identification corrects just this type
    "stretch_halogen_or_heavier",  # other bonds to F, Cl, Br, I or to an atom beyond neon: C-F, S=O, P-Cl
    "bend_h",  # angles with a hydrogen at an end
    "bend_heavy",  # angles between heavy atoms only
    "linear_bend",  # geomeTRIC's linear bends (H-C#N, C=C=O in CO2): flat, anharmonic potentials
    "out_of_plane_torsion",  # out-of-plane angles and dihedrals: both soft deformations
)

#: Heavy atoms whose bonds to each other share one stretch factor; F is kept with the other
#: halogens, whose bonds B3LYP/def2-SVP gets too soft (C-Cl ~4 % low).
_FIRST_ROW = frozenset({"Li", "Be", "B", "C", "N", "O"})


#: The type of C-Cl stretches: the one the identification's C-Cl correction scales.
C_CL_TYPE = "stretch_c_cl"


def _stretch_type(a: str, b: str) -> str:
    if "H" in (a, b):
        other = b if a == "H" else a
        return "stretch_xh_first_row" if atomic_numbers[other] <= 10 else "stretch_xh_heavier"
    if a in _FIRST_ROW and b in _FIRST_ROW:
        return "stretch_first_row"
    if {a, b} == {"C", "Cl"}:
        return C_CL_TYPE
    return "stretch_halogen_or_heavier"


def coordinate_type(primitive, symbols: list[str]) -> str:
    """The type (one of :data:`COORDINATE_TYPES`) of a geomeTRIC primitive coordinate."""
    kind = type(primitive).__name__
    if kind == "Distance":
        return _stretch_type(symbols[primitive.a], symbols[primitive.b])
    if kind == "LinearAngle":
        return "linear_bend"
    if kind in ("TranslationX", "TranslationY", "TranslationZ") and len(primitive.a) == 3:
        # geomeTRIC's linear bend across a non-covalent contact (GFN1-xTB's SeF6 loses an F to
        # 2.5 Å): the apex's Cartesian displacement against the ends' midpoint, weights -1, 2, -1.
        return "linear_bend"
    if kind == "Angle":  # a, c are the ends, b the apex
        return "bend_h" if "H" in (symbols[primitive.a], symbols[primitive.c]) else "bend_heavy"
    if kind in ("OutOfPlane", "Dihedral"):
        return "out_of_plane_torsion"
    raise InputError(f"no SQM coordinate type for the geomeTRIC primitive {primitive!r}")


def primitive_internals(atoms: Atoms) -> tuple[np.ndarray, list[str], list[str]]:
    """Redundant primitive internal coordinates of ``atoms``: the Wilson B matrix dq/dx (n_q, 3N;
    positions in Å), each coordinate's type and geomeTRIC's label for it.

    geomeTRIC's "traditional" set (``connect=True``: covalent bonds, plus bonds joining separate
    fragments, and no translation or rotation coordinates) is used: it spans the vibrations of
    every molecule of the fundamentals benchmark, linear ones through its linear bends.
    """
    from geometric.internal import PrimitiveInternalCoordinates
    from geometric.molecule import Molecule

    symbols = atoms.get_chemical_symbols()
    molecule = Molecule()
    molecule.elem = symbols
    molecule.xyzs = [np.array(atoms.positions, dtype=float)]
    primitives = PrimitiveInternalCoordinates(molecule, connect=True)
    b_matrix = np.asarray(primitives.wilsonB(molecule.xyzs[0].ravel()), dtype=float)
    types = [coordinate_type(p, symbols) for p in primitives.Internals]
    return _without_rigid_motion(atoms, b_matrix), types, [repr(p) for p in primitives.Internals]


def _without_rigid_motion(atoms: Atoms, b_matrix: np.ndarray) -> np.ndarray:
    """B with the translation and rotation components of every row removed.

    geomeTRIC's linear bends are measured against a fixed Cartesian axis, so for a nearly linear
    triple (C-C#N at 178 degrees, F-Se-F in SeF6) they change under a rigid rotation; B^T G^- B
    was then not the projector onto vibrations and unit factors moved 2-butyne's modes by 1 cm-1.
    """
    unweighted = atoms.copy()
    unweighted.set_masses(np.ones(len(atoms)))  # rigid_body_basis of unit masses: plain Cartesian motions
    rigid = rigid_body_basis(unweighted)
    return b_matrix - (b_matrix @ rigid.T) @ rigid


def _n_vibrations(atoms: Atoms) -> int:
    moments = np.sort(atoms.get_moments_of_inertia())
    linear = moments[0] < 1e-3 * moments[2]  # the tolerance of rigid_body_basis's rank test
    return 3 * len(atoms) - (5 if linear else 6)


def eckart_projected_hessian(atoms: Atoms, hessian: np.ndarray) -> np.ndarray:
    """The Cartesian Hessian (eV/Å^2) whose mass-weighted form has translations and rotations
    projected out, as :func:`~specml.spectra.harmonic.normal_modes` does with ``atoms``' masses."""
    sqrt_m = np.sqrt(np.repeat(atoms.get_masses(), 3))
    rigid = rigid_body_basis(atoms)
    projector = np.eye(len(sqrt_m)) - rigid.T @ rigid
    mass_weighted = projector @ (hessian / np.outer(sqrt_m, sqrt_m)) @ projector
    return mass_weighted * np.outer(sqrt_m, sqrt_m)


@dataclass(frozen=True)
class InternalForceField:
    """A Hessian in redundant primitive internal coordinates, ready to be scaled by type.

    Attributes:
        atoms: the structure (positions in Å) with the masses (amu) of the species analysed.
        b_matrix: Wilson B matrix dq/dx, (n_q, 3N).
        force_constants: F = G^- B H B^T G^-, (n_q, n_q), eV per unit of q squared.
        types: type of each coordinate (see :data:`COORDINATE_TYPES`).
        labels: geomeTRIC's description of each coordinate ("Distance 1-2", ...).
    """

    atoms: Atoms
    b_matrix: np.ndarray
    force_constants: np.ndarray
    types: tuple[str, ...]
    labels: tuple[str, ...]

    def factor_vector(self, factors: Mapping[str, float]) -> np.ndarray:
        """The scale factor of every coordinate; a type missing from ``factors`` is not scaled (1)."""
        unknown = set(factors) - set(COORDINATE_TYPES)
        if unknown:
            raise InputError(f"unknown SQM coordinate type(s) {sorted(unknown)}; known: {COORDINATE_TYPES}")
        values = np.array([float(factors.get(t, 1.0)) for t in self.types])
        if np.any(~np.isfinite(values) | (values <= 0)):
            raise InputError(f"SQM scale factors must be positive and finite, got {dict(factors)}")
        return values

    def scaled_internal(self, factors: Mapping[str, float]) -> np.ndarray:
        """F'_ij = sqrt(c_i c_j) F_ij."""
        root = np.sqrt(self.factor_vector(factors))
        return self.force_constants * np.outer(root, root)

    def scaled_hessian(self, factors: Mapping[str, float]) -> np.ndarray:
        """H' = B^T F' B, the scaled Cartesian Hessian (eV/Å^2)."""
        return self.b_matrix.T @ self.scaled_internal(factors) @ self.b_matrix

    def harmonic(self, dipole_derivatives, factors: Mapping[str, float]) -> HarmonicResult:
        """Scaled normal modes: wavenumbers (cm-1) and IR intensities (km/mol), through the same
        :func:`~specml.spectra.harmonic.harmonic_from_derivatives` as unscaled ones."""
        return harmonic_from_derivatives(
            self.atoms, self.scaled_hessian(factors), np.asarray(dipole_derivatives, dtype=float)
        )

    def energy_distribution(self, factors: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Scaled wavenumbers (cm-1, ascending, imaginary negative) and each mode's potential
        energy distribution over the coordinate types, (n_modes, len(COORDINATE_TYPES)).

        The distribution of mode k is u_i (F' u)_i / (u^T F' u) summed over the coordinates i of
        each type, u = B x the mode's internal displacement; its rows sum to 1. It is also the
        derivative of ln(lambda_k) with respect to ln c_type, so d omega_k / d ln c_type =
        omega_k * distribution / 2 (Hellmann-Feynman; the benchmark fits the factors with it).
        """
        scaled = self.scaled_internal(factors)
        wavenumbers, mass_weighted = normal_modes(self.atoms, self.b_matrix.T @ scaled @ self.b_matrix)
        cartesian = mass_weighted / np.sqrt(np.repeat(self.atoms.get_masses(), 3))[None, :]
        internal = cartesian @ self.b_matrix.T  # (n_modes, n_q)
        contributions = internal * (internal @ scaled)  # u_i (F' u)_i; F' is symmetric
        types = np.asarray(self.types)
        by_type = np.stack([contributions[:, types == name].sum(axis=1) for name in COORDINATE_TYPES], axis=1)
        total = by_type.sum(axis=1, keepdims=True)
        return wavenumbers, by_type / np.where(total == 0, 1.0, total)


def internal_force_field(
    atoms: Atoms, hessian, internals: tuple[np.ndarray, list[str], list[str]] | None = None
) -> InternalForceField:
    """The Hessian (eV/Å^2, (3N, 3N), of the optimised ``atoms``, Eckart-projected with ``atoms``'
    masses) in primitive internal coordinates. ``internals``, :func:`primitive_internals` of the
    same geometry, spares recomputing them for each isotopologue."""
    hessian = np.asarray(hessian, dtype=float)
    n3 = 3 * len(atoms)
    if hessian.shape != (n3, n3):
        raise InputError(
            f"the Hessian of {atoms.get_chemical_formula()} ({len(atoms)} atoms) must be ({n3}, {n3}); "
            f"got shape {hessian.shape}"
        )
    if len(atoms) < 2:
        raise InputError("a single atom has no vibrations to scale")
    b_matrix, types, labels = internals if internals is not None else primitive_internals(atoms)
    rank = np.linalg.matrix_rank(b_matrix)
    if rank < _n_vibrations(atoms):  # scaling would silently drop the modes the coordinates miss
        raise InputError(
            f"the primitive internal coordinates of {atoms.get_chemical_formula()} span {rank} of its "
            f"{_n_vibrations(atoms)} vibrations"
        )
    g_inverse = np.linalg.pinv(b_matrix @ b_matrix.T, hermitian=True)
    to_internal = g_inverse @ b_matrix  # G^- B, (n_q, 3N)
    force_constants = to_internal @ eckart_projected_hessian(atoms, hessian) @ to_internal.T
    return InternalForceField(
        atoms.copy(), b_matrix, 0.5 * (force_constants + force_constants.T), tuple(types), tuple(labels)
    )


def sqm_harmonic(
    atoms: Atoms, hessian, dipole_derivatives, factors: Mapping[str, float], masses=None
) -> HarmonicResult:
    """Harmonic wavenumbers (cm-1) and IR intensities (km/mol) of the SQM-scaled Hessian.

    ``factors`` maps coordinate types (:data:`COORDINATE_TYPES`) to force-constant scale factors
    (a frequency scales as their square root); ``masses`` (amu, per atom) give an isotopologue.
    """
    if masses is not None:
        atoms = atoms.copy()
        atoms.set_masses(np.asarray(masses, dtype=float))
    return internal_force_field(atoms, hessian).harmonic(dipole_derivatives, factors)
