"""Speed of a DFT harmonic IR spectrum from SMILES, optimisation included, side by side.

- ``fast``: specml's path for PySCF (``optimized_harmonic_analysis(atoms, "pyscf:...")``): GFN2-xTB
  pre-relaxation, geomeTRIC in internal coordinates, analytic Hessian and dipole derivatives.
- ``before``: the path every ASE calculator takes, which PySCF took until this benchmark was
  written: the same PySCF calculator behind ``ase:specml.reference.pyscf_dft:PySCFCalculator``,
  ASE BFGS from the RDKit structure, then 6N finite-difference gradients.

Both run in this process, one after the other, with all cores, on the same RDKit structure.

    python benchmarks/dft_harmonic_speed.py [--level b3lyp/def2-svp] [--large c1ccccc1] [--skip-before]

Results: docs/results/dft_harmonic_speed.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specml.molecules import atoms_from_smiles  # noqa: E402
from specml.provenance import program_versions  # noqa: E402
from specml.reference import make_reference  # noqa: E402
from specml.spectra.harmonic import optimized_harmonic_analysis  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "dft_harmonic_speed.json"


def timed_harmonic(smiles: str, reference) -> dict:
    """Wall time of one harmonic analysis from SMILES, with the stage times and the result."""
    stages, marks = [], []

    def on_stage(stage: str) -> None:
        stages.append(stage)
        marks.append(time.perf_counter())

    start = time.perf_counter()
    result = optimized_harmonic_analysis(atoms_from_smiles(smiles, seed=42), reference, on_stage=on_stage)
    end = time.perf_counter()
    edges = marks + [end]
    return {
        "seconds": end - start,
        "stage_seconds": {s: round(b - a, 1) for s, a, b in zip(stages, edges, edges[1:], strict=False)},
        "optimizer_steps": result.atoms.info.get("optimizer_steps"),
        "derivatives": result.derivatives,
        "frequencies_cm1": np.round(result.frequencies_cm1, 1).tolist(),
        "intensities_km_mol": np.round(result.intensities_km_mol, 2).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--level", default="b3lyp/def2-svp", help="FUNCTIONAL/BASIS")
    parser.add_argument("--large", default="c1ccccc1", help="a molecule of 12 or more atoms (fast path only)")
    parser.add_argument("--skip-before", action="store_true", help="do not time the finite-difference path")
    args = parser.parse_args()
    functional, _, basis = args.level.partition("/")

    fast = make_reference(f"pyscf:{args.level}")
    before = make_reference(
        f'ase:specml.reference.pyscf_dft:PySCFCalculator@{{"functional": "{functional}", "basis": "{basis}"}}'
    )
    runs = {"methanol_fast": timed_harmonic("CO", fast)}
    print(
        f"methanol, fast path: {runs['methanol_fast']['seconds']:.1f} s {runs['methanol_fast']['stage_seconds']}",
        flush=True,
    )
    if not args.skip_before:
        runs["methanol_before"] = timed_harmonic("CO", before)
        print(
            f"methanol, before: {runs['methanol_before']['seconds']:.1f} s "
            f"{runs['methanol_before']['stage_seconds']}",
            flush=True,
        )
    runs["large_fast"] = timed_harmonic(args.large, fast)
    print(
        f"{args.large}, fast path: {runs['large_fast']['seconds']:.1f} s {runs['large_fast']['stage_seconds']}",
        flush=True,
    )

    seconds_before = runs.get("methanol_before", {}).get("seconds")
    difference = None
    if seconds_before is not None:
        difference = float(
            np.max(
                np.abs(
                    np.subtract(
                        runs["methanol_fast"]["frequencies_cm1"], runs["methanol_before"]["frequencies_cm1"]
                    )
                )
            )
        )
    results = {
        "level": args.level,
        "methanol_seconds": round(runs["methanol_fast"]["seconds"], 1),
        "methanol_seconds_before": None if seconds_before is None else round(seconds_before, 1),
        "speedup": None
        if seconds_before is None
        else round(seconds_before / runs["methanol_fast"]["seconds"], 2),
        "methanol_max_frequency_difference_cm1": difference,
        "large_molecule": args.large,
        "large_molecule_atoms": len(atoms_from_smiles(args.large)),
        "large_molecule_seconds": round(runs["large_fast"]["seconds"], 1),
        "cores": len(os.sched_getaffinity(0)),
        "runs": runs,
        "versions": program_versions(),
        "date": datetime.date.today().isoformat(),
        "note": "wall seconds from SMILES, optimisation included, measured one after the other in one process",
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"speed-up {results['speedup']}x; wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
