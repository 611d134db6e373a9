"""Build the spectral library that ships with specml: DFT harmonic spectra of the identification
candidates (the NIST gas-phase compounds of ../shared/data/nist-ir and the decoys of
benchmarks/data/identify_decoys.csv), with the recommended default method.

    python benchmarks/dft_library.py [--reference pyscf:b3lyp/def2-svp] [--scheduler local:2]
                                     [--work runs/dft_library.sqlite] [--conformers]

With --conformers, Boltzmann-averaged over each molecule's conformers, into <method>_conformers.json.gz;
each conformer's optimisation and Hessian is kept in benchmarks/artifacts/dft_library_conformers/ as
it finishes (commit it with the library), so a molecule cut off resumes from its last conformer.

Resumable at two levels: every finished molecule is committed to the SQLite work file at once,
and then all finished entries are written to the shipped file specml/data/library/<method>.json.gz. Entries already shipped are never recomputed (the library
consults the shipped files), so a build continued on a fresh clone computes only what is missing.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specml.executor import make_executor  # noqa: E402
from specml.identification import SpectralLibrary, fill_library, resolve_candidates  # noqa: E402
from specml.identification.library import (  # noqa: E402
    CONFORMER_SEED,
    CONFORMER_TEMPERATURE_K,
    DFT_REFERENCE,
    HARMONIC_FMAX,
    HARMONIC_PROTOCOL,
    Method,
    shipped_library_path,
)
from specml.identification.shipped_derivatives import (  # noqa: E402
    UNITS,
    companion_path,
    merge_into_derivatives_file,
)
from specml.identification.shipped_library import write_library_file  # noqa: E402
from specml.molecules import atoms_from_smiles, read_molecule_table  # noqa: E402
from specml.provenance import file_stem, program_versions  # noqa: E402
from specml.spectra.harmonic import SCREEN_WINDOW_EV  # noqa: E402

NIST_INDEX = ROOT.parent / "shared" / "data" / "nist-ir" / "index.csv"
DECOYS = ROOT / "benchmarks" / "data" / "identify_decoys.csv"


def from_fundamentals(library: SpectralLibrary, candidates, method: Method, reference: str) -> int:
    """Store the candidates that benchmarks/fundamentals.py already computed with ``reference`` (the
    same protocol: ``optimized_harmonic_analysis`` of ``atoms_from_smiles(smiles, seed=42)``), rebuilt
    from its cached Hessian and dipole derivatives instead of recomputed. Returns how many."""
    import json

    from ase import Atoms

    from benchmarks.fundamentals import CACHE_DIR
    from specml.identification.library import LibraryEntry, atoms_to_xyz
    from specml.molecules import canonical_smiles
    from specml.spectra.harmonic import harmonic_from_derivatives
    from specml.spectra.second_derivatives import SecondDerivatives

    cache = CACHE_DIR / f"{file_stem(reference)}.json"
    if not cache.is_file():
        return 0
    data = json.loads(cache.read_text())
    # The fundamentals cache was computed with the current protocol (saddle escape, linear fix).
    keyed = {**data["settings"], "geometry_fmax": HARMONIC_FMAX, "harmonic_protocol": HARMONIC_PROTOCOL}
    if keyed != method.settings:
        return 0
    computed = {
        canonical_smiles(parent): entry for parent, entry in data["entries"].items() if "error" not in entry
    }
    stored = 0
    for candidate in candidates:
        entry = computed.get(candidate.smiles)
        if entry is None or library.get(candidate.smiles, method.name, method.settings) is not None:
            continue
        atoms = Atoms(entry["symbols"], positions=entry["positions_angstrom"])
        derivatives = SecondDerivatives.from_json(entry, len(atoms))
        result = harmonic_from_derivatives(atoms, derivatives.hessian, derivatives.dipole_derivatives)
        library.put(
            LibraryEntry(
                candidate.smiles,
                method.name,
                method.settings,
                "ok",
                result.frequencies_cm1,
                result.intensities_km_mol,
                "sticks",
                None,
                atoms_to_xyz(atoms),
                entry["seconds"],
                derivatives,
            )
        )
        stored += 1
    return stored


#: Per-conformer results of flexible molecules as they finish (specml.spectra.conformer_checkpoint):
#: committed with the library, a molecule cut off at a session's end resumes from its last conformer.
CONFORMER_CHECKPOINTS = ROOT / "benchmarks" / "artifacts" / "dft_library_conformers"

SINGLE_PROTOCOL_TEXT = (
    f"RDKit conformer (seed {CONFORMER_SEED}) -> GFN2-xTB pre-relaxation -> geomeTRIC optimisation "
    f"to fmax {HARMONIC_FMAX} eV/Å (saddle points left along the imaginary mode) -> "
    "analytic Hessian and dipole derivatives (specml.spectra.harmonic."
    "optimized_harmonic_analysis)"
)
CONFORMER_PROTOCOL_TEXT = (
    f"RDKit/MMFF conformer ensemble (seed {CONFORMER_SEED}) -> GFN2-xTB screen (distinct minima within "
    f"{SCREEN_WINDOW_EV} eV, one "
    f"of each mirror pair) -> geomeTRIC optimisation of each to fmax {HARMONIC_FMAX} eV/Å -> analytic "
    f"Hessian and dipole derivatives -> Boltzmann populations at {CONFORMER_TEMPERATURE_K} K from the DFT "
    "energies, chiral "
    "conformers counted twice (specml.spectra.harmonic.conformer_averaged_harmonic); intensities carry "
    "the populations; xyz is the lowest conformer. Molecules whose screen finds one conformer are "
    "carried over from the single-structure entries: " + SINGLE_PROTOCOL_TEXT
)


def from_single_conformer_entries(
    library: SpectralLibrary, candidates, method: Method, single: Method
) -> int:
    """Store under ``method``'s conformer-averaged key the single-structure entries (``single``:
    this work file or the shipped file) of the candidates whose GFN2-xTB conformer screen finds
    one conformer: their average is that one structure, computed by the same optimisation, so it
    is copied, not recomputed. Returns how many."""
    from dataclasses import replace

    from specml.identification.library import CONFORMER_SEED
    from specml.molecules.conformers import conformers_from_smiles
    from specml.spectra.harmonic import screened_conformers

    stored = 0
    for candidate in candidates:
        if library.get(candidate.smiles, method.name, method.settings) is not None:
            continue
        old = library.get(candidate.smiles, single.name, single.settings)
        if old is None or not old.ok:
            continue
        minima, _, _ = screened_conformers(conformers_from_smiles(candidate.smiles, seed=CONFORMER_SEED))
        if len(minima) == 1:
            library.put(replace(old, settings=method.settings))
            stored += 1
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", default=DFT_REFERENCE)
    parser.add_argument(
        "--conformers",
        action="store_true",
        help="Boltzmann-averaged over conformers (file <method>_conformers.json.gz); molecules with one "
        "conformer are carried over from the single-structure entries",
    )
    parser.add_argument("--scheduler", default=None, help="e.g. local:2 (one molecule per worker)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "dft_library.sqlite")
    args = parser.parse_args()

    method = Method.harmonic(args.reference, conformers=args.conformers, checkpoints=CONFORMER_CHECKPOINTS)
    single = Method.harmonic(args.reference)  # one structure per molecule
    candidates, warnings = resolve_candidates(read_molecule_table(NIST_INDEX) + read_molecule_table(DECOYS))
    for warning in warnings:
        print(f"skipped {warning.name}: {warning.reason}")
    target = shipped_library_path(method)
    provenance = {
        "produced_by": "benchmarks/dft_library.py",
        "reference": args.reference,
        "protocol": CONFORMER_PROTOCOL_TEXT if args.conformers else SINGLE_PROTOCOL_TEXT,
        "candidates": f"{NIST_INDEX.name} compounds + {DECOYS.relative_to(ROOT)}",
    }
    executor = make_executor(args.scheduler)
    try:
        with SpectralLibrary(args.work) as library:
            print(
                f"{from_fundamentals(library, candidates, single, args.reference)} entries taken from "
                f"benchmarks/fundamentals.py's cache",
                flush=True,
            )
            if args.conformers:
                print(
                    f"{from_single_conformer_entries(library, candidates, method, single)} single-conformer "
                    "entries carried over from the single-structure protocol",
                    flush=True,
                )

            def export(_=None) -> None:
                found = [library.get(c.smiles, method.name, method.settings) for c in candidates]
                ok = [e for e in found if e is not None and e.ok]
                stamped = {
                    **provenance,
                    "versions": program_versions(),
                    "date": datetime.date.today().isoformat(),
                }
                write_library_file(target, ok, stamped)
                # The Hessians of new entries go to the companion file, for force-constant corrections.
                merge_into_derivatives_file(
                    companion_path(target),
                    {e.smiles: (e.xyz, e.second_derivatives) for e in ok if e.second_derivatives and e.xyz},
                    {**stamped, "method": method.name, "settings": method.settings, "units": UNITS},
                    "benchmarks/dft_library.py (computed with the spectrum)",
                )
                print(f"{len(ok)}/{len(candidates)} entries in {target.relative_to(ROOT)}", flush=True)

            # Smallest molecules first: a build stopped at a session's end loses only what is in flight.
            by_size = sorted(candidates, key=lambda c: len(atoms_from_smiles(c.smiles)))
            entries = fill_library(library, by_size, method, executor, on_entry=export)
            export()
            for entry in entries.values():
                if not entry.ok:
                    print(f"failed {entry.smiles}: {entry.error}", flush=True)
    finally:
        executor.close()


if __name__ == "__main__":
    main()
