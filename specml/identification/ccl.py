"""The C-Cl force-constant correction of DFT library spectra used by identification.

B3LYP puts C-Cl stretches too low (CHCl3's degenerate stretch 743 cm-1 against 774 measured),
and one scale factor per frequency region cannot fix that without spoiling the other modes
below 2000 cm-1. The identification frequency model is therefore: scale the force constants of
the C-Cl stretch coordinates alone by ``c_ccl`` (an SQM force field, :mod:`specml.spectra.sqm`,
with every other factor 1), then apply the two-region frequency scale as for any candidate. A
molecule without a C-Cl bond is untouched and needs no Hessian; one with a C-Cl bond needs its
stored second derivatives (:class:`~specml.spectra.second_derivatives.SecondDerivatives`).
``c_ccl`` is fitted on the fundamentals benchmark (benchmarks/fundamentals.py), not on the
identification queries.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
from ase import Atoms

from specml.identification.library import LibraryEntry
from specml.spectra.harmonic import HarmonicResult
from specml.spectra.second_derivatives import SecondDerivatives
from specml.spectra.sqm import C_CL_TYPE, internal_force_field


@functools.lru_cache(maxsize=4096)
def has_c_cl_bond(smiles: str) -> bool:
    """Whether the molecule of ``smiles`` has a carbon-chlorine bond (RDKit graph)."""
    from specml.molecules.inputs import hydrogenated_rdkit_molecule

    molecule = hydrogenated_rdkit_molecule(smiles)
    return any(
        {bond.GetBeginAtom().GetSymbol(), bond.GetEndAtom().GetSymbol()} == {"C", "Cl"}
        for bond in molecule.GetBonds()
    )


def atoms_from_xyz(xyz: str) -> Atoms:
    """Atoms (positions in Å, standard masses) of an xyz text as the library stores it."""
    from specml.identification.shipped_derivatives import xyz_geometry

    symbols, positions = xyz_geometry(xyz)
    return Atoms(symbols, positions=positions)


def ccl_corrected_harmonic(atoms: Atoms, derivatives: SecondDerivatives, c_ccl: float) -> HarmonicResult:
    """Harmonic sticks (cm-1, km/mol) with the force constants of the C-Cl stretches scaled by ``c_ccl``."""
    field = internal_force_field(atoms, derivatives.hessian)
    return field.harmonic(np.asarray(derivatives.dipole_derivatives), {C_CL_TYPE: float(c_ccl)})


#: Corrected sticks by (entry key, geometry, c_ccl): a feature grid compares every candidate with
#: every query at several widths, and each correction is an eigen-decomposition.
_CORRECTED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_CORRECTED_MAX = 4096


def needs_correction(entry: LibraryEntry, c_ccl: float) -> bool:
    """Whether ``c_ccl`` changes the sticks of ``entry``: harmonic sticks of a molecule with a C-Cl bond."""
    return c_ccl != 1.0 and entry.ok and entry.kind == "sticks" and has_c_cl_bond(entry.smiles)


def missing_derivatives(entry: LibraryEntry, c_ccl: float) -> bool:
    """Whether ``entry`` should be corrected but holds no second derivatives to correct with."""
    return needs_correction(entry, c_ccl) and entry.second_derivatives is None


def corrected_entry(entry: LibraryEntry, c_ccl: float) -> LibraryEntry:
    """``entry`` with the C-Cl correction applied to its sticks (wavenumbers in cm-1 and, since the
    modes mix, IR intensities in km/mol). An entry it does not concern is returned as it is, and so
    is one without second derivatives: :func:`missing_derivatives` tells the caller to warn."""
    if not needs_correction(entry, c_ccl) or entry.second_derivatives is None:
        return entry
    key = (entry.key, entry.xyz, float(c_ccl))
    if key not in _CORRECTED:
        if len(_CORRECTED) >= _CORRECTED_MAX:
            _CORRECTED.clear()
        result = ccl_corrected_harmonic(atoms_from_xyz(entry.xyz or ""), entry.second_derivatives, c_ccl)
        _CORRECTED[key] = (result.frequencies_cm1, result.intensities_km_mol)
    x, y = _CORRECTED[key]
    return replace(entry, x=x.copy(), y=y.copy())


def missing_derivatives_caution(named_entries: list[tuple[str, LibraryEntry]], c_ccl: float) -> str | None:
    """One caution naming the candidates (``(name, entry)``) scored without the C-Cl correction
    they need, or None when there are none."""
    names = sorted(
        {f"{name} ({entry.smiles})" for name, entry in named_entries if missing_derivatives(entry, c_ccl)}
    )
    if not names:
        return None
    return (
        f"scored WITHOUT the C-Cl correction (c_CCl = {c_ccl:.4f}) because their library entries hold no "
        f"second derivatives: {', '.join(names)}; their C-Cl stretch bands sit a few per cent low, which "
        "ranks them lower than they should be. Recompute these entries (new harmonic entries keep their "
        "Hessian) or add them to the shipped derivatives (benchmarks/library_derivatives.py)."
    )
