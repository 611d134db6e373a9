"""Does a DFT reference resolve the confusions that limit xTB identification? (docs/identify.md)

For every gas-phase NIST query that the leave-one-compound-out xTB benchmark ranks wrongly
(docs/results/identify_gfn2_gfn1.json), the true compound and the candidate ranked first in its place
are predicted with B3LYP/def2-SVP harmonic spectra and ranked against each other through the
public path (``specml.identification.identify``), next to the same pair with the default
GFN2+GFN1 reference. Both use the shipped scoring parameters, which were fitted for GFN2+GFN1
(DFT falls back to them). A full DFT library of all 62 candidates is out of reach on 2 cores
(toluene alone: 29 s per B3LYP/def2-SVP call, 90 calls for its Hessian), so this compares pairs
only; it tests the claim that the reference's frequency errors, not the scorer, decide these
cases. Molecules above ``--max-atoms`` atoms are left out (cost), as are queries that ``identify``
flags as condensed-phase spectra (no gas-phase prediction matches them).

    python benchmarks/identify_dft_pairs.py [--scheduler local:2] [--library PATH]

Writes docs/results/identify_dft_pairs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specml.executor import make_executor  # noqa: E402
from specml.experiment import load_absorbance  # noqa: E402
from specml.identification import (  # noqa: E402
    SpectralLibrary,
    fill_ensemble,
    identify,
    methods_for,
    resolve_candidates,
)
from specml.identification.library import ensemble_error  # noqa: E402
from specml.identification.scoring import FALLBACK_METHOD, load_parameters, prepare_query  # noqa: E402
from specml.molecules import atoms_from_smiles, read_molecule_table  # noqa: E402

NIST = ROOT.parent / "shared" / "data" / "nist-ir"
DECOYS = ROOT / "benchmarks" / "data" / "identify_decoys.csv"
XTB_RESULTS = ROOT / "docs" / "results" / "identify_gfn2_gfn1.json"
OUT = ROOT / "docs" / "results" / "identify_dft_pairs.json"
DFT = "pyscf:b3lyp/def2-svp"
XTB = "gfn2+gfn1"


def confusion_pairs(max_atoms: int) -> list[dict]:
    """(file, truth, confuser) of every LOCO confusion of the xTB benchmark, small enough for DFT."""
    names = dict(read_molecule_table(NIST / "index.csv") + read_molecule_table(DECOYS))
    params = load_parameters(method=FALLBACK_METHOD)  # the xTB benchmark's scorer
    pairs = []
    for row in json.loads(XTB_RESULTS.read_text())["confusions"]:
        if prepare_query(load_absorbance(NIST / row["file"]), params).condensed_phase:
            continue
        truth, confuser = names[row["compound"]], names[row["top1"]]
        atoms = max(len(atoms_from_smiles(s)) for s in (truth, confuser))
        if atoms <= max_atoms:
            pairs.append(
                {
                    "file": row["file"],
                    "truth": (row["compound"], truth),
                    "confuser": (row["top1"], confuser),
                    "xtb_loco_rank_among_62": row["rank"],
                }
            )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--library", type=Path, default=None)
    parser.add_argument("--max-atoms", type=int, default=10)
    args = parser.parse_args()

    pairs = confusion_pairs(args.max_atoms)
    molecules = list(dict.fromkeys(m for p in pairs for m in (p["truth"], p["confuser"])))
    candidates, _ = resolve_candidates(molecules)
    library = SpectralLibrary(args.library)
    executor = make_executor(args.scheduler)
    seconds, compute_seconds = {}, {}
    try:
        for reference in (XTB, DFT):
            start = time.perf_counter()
            entries = fill_ensemble(library, candidates, methods_for(reference), executor)
            seconds[reference] = time.perf_counter() - start
            # What each prediction cost when it was computed (a rerun reads them from the library).
            compute_seconds[reference] = {
                c.name: sum(e.seconds or 0.0 for e in entries[c.smiles]) for c in candidates
            }
            errors = {c.name: ensemble_error(entries[c.smiles]) for c in candidates}
            failed = {name: error for name, error in errors.items() if error}
            if failed:
                print(f"{reference}: failed {failed}")
    finally:
        executor.close()

    rows = []
    for pair in pairs:
        query = load_absorbance(NIST / pair["file"])
        row = dict(pair)
        for reference in (XTB, DFT):
            result = identify(query, [pair["truth"], pair["confuser"]], reference=reference, library=library)
            first = result.ranking[0]
            row[reference] = {
                "first": first.name,
                "truth_confidence": next(r.confidence for r in result.ranking if r.name == pair["truth"][0]),
                "pearson": {r.name: round(r.metrics["pearson"], 3) for r in result.ranking},
            }
        rows.append(row)
        print(
            f"{pair['file']:22s} truth {pair['truth'][0]:16s} vs {pair['confuser'][0]:16s}: "
            f"xTB first {row[XTB]['first']:16s} DFT first {row[DFT]['first']}",
            flush=True,
        )
    library.close()
    results = {
        "what": "pairwise: true compound vs the candidate the LOCO xTB benchmark ranked first; shipped "
        "gfn2+gfn1 scoring parameters for both references (DFT falls back to them)",
        "dft": DFT,
        "xtb": XTB,
        "pairs": rows,
        "truth_first_xtb": sum(r[XTB]["first"] == r["truth"][0] for r in rows),
        "truth_first_dft": sum(r[DFT]["first"] == r["truth"][0] for r in rows),
        "n_pairs": len(rows),
        "seconds_library_fill_this_run": seconds,
        "seconds_per_molecule": compute_seconds,
        "cpu_note": "2 shared cores",
    }
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    summary = ("n_pairs", "truth_first_xtb", "truth_first_dft")
    print(json.dumps({k: results[k] for k in summary}))


if __name__ == "__main__":
    main()
