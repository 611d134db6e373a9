"""Cost of ring-polymer MD against classical MD on one committee, side by side.

Three methanol molecules (the production protocol's three trajectories) with the multi-fidelity
benchmark's ``finetune`` committee (B3LYP level; restored from its stage artifacts on a fresh
clone), float32, one thread, eager models: milliseconds per MD step for 1 (classical, the same
OBABO integrator), 8, 16 and 32 beads, the bead counts stepped in turn for ``--rounds`` rounds;
the ratios to one bead compare the medians. Writes ``docs/results/ring_polymer_cost.json``.

    python benchmarks/ring_polymer_cost.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stage_artifacts import StageArtifacts  # noqa: E402
from multifidelity import ARTIFACTS as MULTIFIDELITY_ARTIFACTS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--beads", type=int, nargs="*", default=[1, 8, 16, 32])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--molecules", type=int, default=3)
    parser.add_argument(
        "--models", default=str(ROOT / "runs" / "bench_multifidelity" / "finetune" / "models" / "final")
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "ring_polymer_cost.json"))
    args = parser.parse_args()

    import torch

    from specml.dynamics.ase_md import initialize_velocities
    from specml.dynamics.ring_polymer import RingPolymerMD
    from specml.models import Committee
    from specml.molecules import load_molecules

    torch.set_num_threads(1)
    models = Path(args.models)
    if not (models / "committee.json").exists():
        StageArtifacts(MULTIFIDELITY_ARTIFACTS, ROOT / "runs" / "bench_multifidelity", 1000.0, ()).restore()
    committee = Committee.load(models)
    methanol = load_molecules("CO")[0].atoms
    starts = []
    for k in range(args.molecules):
        atoms = methanol.copy()
        initialize_velocities(atoms, 300.0, k)
        starts.append(atoms)
    engines = {
        P: RingPolymerMD(
            committee.energy_models,
            starts,
            beads=P,
            temperatures_K=300.0,
            dipole_model=committee.dipole_model,
            record_interval=2,  # the production protocol's: dipoles every 1 fs
            precision="float32",
            seeds=range(args.molecules),
        )
        for P in args.beads
    }
    for engine in engines.values():
        engine.run(20)  # warm-up
    times: dict[int, list[float]] = {P: [] for P in engines}
    for _ in range(args.rounds):
        for P, engine in engines.items():
            start = time.perf_counter()
            engine.run(args.steps)
            times[P].append(1000.0 * (time.perf_counter() - start) / args.steps)
    median = {P: statistics.median(t) for P, t in times.items()}
    base = median[min(median)]
    result = {
        "molecule": "methanol",
        "molecules_per_batch": args.molecules,
        "committee": str(models.relative_to(ROOT)) if models.is_relative_to(ROOT) else str(models),
        "committee_members": len(committee.energy_models),
        "precision": "float32",
        "torch_threads": 1,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "ms_per_step": {str(P): t for P, t in times.items()},
        "median_ms_per_step": {str(P): m for P, m in median.items()},
        "cost_vs_one_bead": {str(P): m / base for P, m in median.items()},
        "load_average_1min": os.getloadavg()[0],
        "notes": "Beads of all molecules are replicas of one batched committee evaluation, so the "
        "cost grows less than linearly with the beads. Dipoles every second step, as in production.",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for P in engines:
        print(f"{P:3d} beads: {median[P]:7.1f} ms per step, {median[P] / base:5.2f} x one bead")
    print(f"load average {result['load_average_1min']:.1f} at the end")


if __name__ == "__main__":
    main()
