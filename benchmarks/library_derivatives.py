"""Second derivatives of the shipped library molecules that have a C-Cl bond, in the companion
file specml/data/library/derivatives/<method>.json.gz (see specml.identification.shipped_derivatives).

    python benchmarks/library_derivatives.py [--reference pyscf:b3lyp/def2-svp] [--smiles SMILES ...]

The identification's C-Cl correction (specml.identification.ccl) needs the Hessian of every
candidate with a C-Cl bond. The shipped spectra file does not hold Hessians, so they are taken
from benchmarks/fundamentals.py's cache where it has the molecule at the identical geometry, or
computed at the shipped geometry (no re-optimisation: analytic Hessian and dipole derivatives of
the reference). Each must reproduce the shipped wavenumbers within ``FREQUENCY_TOLERANCE_CM1``.
Resumable: the companion file is rewritten after every molecule, smallest first, and molecules
already in it are skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fundamentals import CACHE_DIR  # noqa: E402
from specml.errors import InputError  # noqa: E402
from specml.identification.ccl import atoms_from_xyz, has_c_cl_bond  # noqa: E402
from specml.identification.library import DFT_REFERENCE, Method, atoms_to_xyz, shipped_library_path  # noqa: E402
from specml.identification.shipped_derivatives import (  # noqa: E402
    UNITS,
    companion_path,
    geometry_mismatch,
    merge_into_derivatives_file,
    read_derivatives_file,
)
from specml.identification.shipped_library import read_library_file  # noqa: E402
from specml.molecules import canonical_smiles  # noqa: E402
from specml.provenance import file_stem, program_versions  # noqa: E402
from specml.reference import make_reference  # noqa: E402
from specml.spectra.harmonic import harmonic_from_derivatives  # noqa: E402
from specml.spectra.second_derivatives import SecondDerivatives  # noqa: E402

FREQUENCY_TOLERANCE_CM1 = 1.0  # the shipped sticks are rounded to 0.01 cm-1


def from_fundamentals_cache(reference: str, entry) -> SecondDerivatives | None:
    """The cached second derivatives of ``entry``'s molecule if the fundamentals cache of
    ``reference`` holds it at the identical geometry, else None."""
    cache = CACHE_DIR / f"{file_stem(reference)}.json"
    if not cache.is_file():
        return None
    for parent, record in json.loads(cache.read_text())["entries"].items():
        if "error" in record or canonical_smiles(parent) != entry.smiles:
            continue
        cached_xyz = atoms_to_xyz(Atoms(record["symbols"], positions=record["positions_angstrom"]))
        if geometry_mismatch(cached_xyz, entry.xyz) is None:
            return SecondDerivatives.from_json(record, len(record["symbols"]))
    return None


def computed(reference: str, entry) -> SecondDerivatives:
    """Analytic second derivatives at the shipped geometry (no optimisation)."""
    result = make_reference(reference).second_derivatives(atoms_from_xyz(entry.xyz))
    if result is None:
        raise InputError(f"{reference} has no analytic second derivatives for {entry.smiles}")
    return SecondDerivatives(*result)


def check_reproduces(entry, derivatives: SecondDerivatives) -> float:
    """Largest |difference| (cm-1) from the shipped wavenumbers; raises beyond the tolerance."""
    result = harmonic_from_derivatives(
        atoms_from_xyz(entry.xyz), derivatives.hessian, derivatives.dipole_derivatives
    )
    ours, shipped = np.sort(result.frequencies_cm1), np.sort(entry.x)
    if ours.shape != shipped.shape:
        raise InputError(f"{entry.smiles}: {ours.size} modes against {shipped.size} shipped")
    deviation = float(np.max(np.abs(ours - shipped)))
    if deviation > FREQUENCY_TOLERANCE_CM1:
        raise InputError(
            f"{entry.smiles}: wavenumbers differ from the shipped ones by up to {deviation:.2f} cm-1"
        )
    return deviation


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", default=DFT_REFERENCE)
    parser.add_argument(
        "--smiles", nargs="*", help="these shipped molecules instead of those with a C-Cl bond"
    )
    args = parser.parse_args()

    method = Method.harmonic(args.reference)
    library_file = shipped_library_path(method)
    target = companion_path(library_file)
    shipped = {e.smiles: e for e in read_library_file(library_file)}
    wanted = (
        [canonical_smiles(s) for s in args.smiles]
        if args.smiles
        else [s for s in shipped if has_c_cl_bond(s)]
    )
    missing = [s for s in wanted if s not in shipped]
    if missing:
        raise SystemExit(f"not in {library_file.name}: {missing}")
    for smiles in sorted(wanted, key=lambda s: (len(atoms_from_xyz(shipped[s].xyz)), s)):
        entry = shipped[smiles]
        records = read_derivatives_file(target) if target.is_file() else {}
        if smiles in records and geometry_mismatch(records[smiles][0], entry.xyz) is None:
            continue
        start = time.perf_counter()
        derivatives = from_fundamentals_cache(args.reference, entry)
        source = "benchmarks/fundamentals.py cache (identical geometry)"
        if derivatives is None:
            derivatives = computed(args.reference, entry)
            source = "computed at the shipped geometry (analytic Hessian and dipole derivatives)"
        deviation = check_reproduces(entry, derivatives)
        provenance = {
            "produced_by": "benchmarks/library_derivatives.py",
            "reference": args.reference,
            "method": method.name,
            "settings": method.settings,
            "spectra_file": library_file.name,
            "units": UNITS,
            "versions": program_versions(),
            "date": datetime.date.today().isoformat(),
        }
        merge_into_derivatives_file(target, {smiles: (entry.xyz, derivatives)}, provenance, source)
        print(
            f"{smiles}: {source}; shipped wavenumbers reproduced within {deviation:.3f} cm-1 "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    print(
        f"{len(read_derivatives_file(target)) if target.is_file() else 0} molecules in {target.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
