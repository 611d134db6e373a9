"""Latency of the command line, before and after the fast-start work, side by side.

- ``specml --help`` and every subcommand's ``--help``: wall time of a fresh process (median of
  several runs; before and after alternate, so both see the same machine load).
- A warm ``specml identify`` query: the NIST methanol spectrum against a few candidates whose
  xTB spectra (``--reference gfn2+gfn1``) are already in the library. One untimed run fills a
  temporary library; the timed runs then only read it.

"Before" is the checkout at ``--before`` (default c7db1b6, the last commit before this work),
made with ``git worktree add`` and run through ``PYTHONPATH``; "after" is this working tree.
Both use this interpreter and its packages.

    python benchmarks/cli_latency.py [--before c7db1b6] [--runs 7] [--identify-runs 3]

Results: docs/results/cli_latency.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specml.provenance import specml_commit  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "cli_latency.json"
QUERY = ROOT.parent / "shared" / "data" / "nist-ir" / "methanol.jdx"
CANDIDATES = [
    ("methanol", "CO"),
    ("ethanol", "CCO"),
    ("water", "O"),
    ("formaldehyde", "C=O"),
    ("acetone", "CC(C)=O"),
    ("1,1,1-trichloroethane", "CC(Cl)(Cl)Cl"),
]
SUBCOMMANDS = [[], ["ir"], ["harmonic"], ["md"], ["compare"], ["identify"], ["library", "build"]]


def checkout(commit: str) -> Path:
    """A worktree of ``commit`` under /tmp (made once, reused)."""
    path = Path(tempfile.gettempdir()) / f"specml-before-{commit}"
    if not (path / "specml" / "cli").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


def specml(source: Path, args: list[str], cwd: Path) -> float:
    """Wall time (s) of ``python -m specml ARGS`` with the package taken from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "specml", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"specml {' '.join(args)} from {source} failed: {done.stderr[-2000:]}")
    return seconds


def medians(sources: dict[str, Path], args: list[str], runs: int, cwd: Path) -> dict[str, float]:
    """Median wall time per source, the sources alternating run by run."""
    times: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(runs):
        for name, source in sources.items():
            times[name].append(specml(source, args, cwd))
    return {name: statistics.median(values) for name, values in times.items()}


def identify_args(work: Path, name: str) -> list[str]:
    return [
        "identify",
        str(QUERY),
        "--candidates",
        str(work / "candidates.csv"),
        "--reference",
        "gfn2+gfn1",
        "--library",
        str(work / f"library_{name}.sqlite"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="c7db1b6", help="commit to compare with")
    parser.add_argument("--runs", type=int, default=7, help="runs per --help measurement")
    parser.add_argument("--identify-runs", type=int, default=3, help="timed warm identify runs")
    args = parser.parse_args()

    sources = {"before": checkout(args.before), "after": ROOT}
    with tempfile.TemporaryDirectory(prefix="specml-cli-latency-") as tmp:
        work = Path(tmp)
        rows = "\n".join(f'"{name}",{smiles}' for name, smiles in CANDIDATES)
        (work / "candidates.csv").write_text("name,smiles\n" + rows + "\n")
        help_by_command = {
            " ".join(sub) or "(root)": medians(sources, [*sub, "--help"], args.runs, work)
            for sub in SUBCOMMANDS
        }
        for name, source in sources.items():  # fills each version's own library: not timed
            specml(source, identify_args(work, name), work)
        identify = {
            name: statistics.median(
                specml(source, identify_args(work, name), work) for _ in range(args.identify_runs)
            )
            for name, source in sources.items()
        }
    results = {
        "help_seconds_before": help_by_command["(root)"]["before"],
        "help_seconds": help_by_command["(root)"]["after"],
        "identify_warm_seconds_before": identify["before"],
        "identify_warm_seconds": identify["after"],
        "help_seconds_by_command": help_by_command,
        "before_commit": args.before,
        "after_commit": specml_commit(),
        "help_runs": args.runs,
        "identify_runs": args.identify_runs,
        "identify_query": QUERY.name,
        "identify_candidates": len(CANDIDATES),
        "statistic": "median wall time of a fresh process, seconds",
        "load_average": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {k: v for k, v in results.items() if k.endswith("seconds") or k.endswith("before")}, indent=2
        )
    )


if __name__ == "__main__":
    main()
