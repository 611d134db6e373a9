"""Cost of one xTB force + dipole call, as reference MD makes it, inside a Dask worker.

Compares side by side, in one process that has imported torch, MACE, Dask and specml.dynamics
(as a reference-MD worker has):
- ``per-call scan``: ``threadpool_limits`` around each call, which rescans every loaded
  shared library each time (specml before this benchmark);
- ``cached``: :class:`specml.reference.xtb.ThreadLimitedTBLite`, whose OpenMP runtime is
  found once per process;
- ``unlimited``: tblite's own calculator without any thread limit.
The three are timed in alternating blocks of calls on the same perturbed geometries, so load
from other jobs hits them alike.

    python benchmarks/reference_call_cost.py [--calls 400] [--out docs/results/reference_call_cost.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import dask.distributed  # noqa: F401,E402  -- loaded for its shared libraries, as in a worker
import mace.modules  # noqa: F401,E402
import numpy as np  # noqa: E402
import torch  # noqa: F401,E402
from ase.build import molecule  # noqa: E402
from tblite.ase import TBLite  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import specml.dynamics.ase_md  # noqa: F401,E402  -- what a reference-MD worker imports
from specml.reference import XTBReference  # noqa: E402

MOLECULES = ["CH4", "CH3OH", "CH3CH2OH", "C6H6"]
BLOCK = 20  # calls per block; blocks of the three variants alternate


class PerCallScanTBLite(TBLite):
    def calculate(self, *args, **kwargs):
        with threadpool_limits(limits=1, user_api="openmp"):
            super().calculate(*args, **kwargs)


def time_variants(name: str, n_calls: int, seed: int = 0) -> dict:
    settings = XTBReference()
    kwargs = dict(method=settings.method, accuracy=settings.accuracy, verbosity=0)
    calculators = {
        "per_call_scan": PerCallScanTBLite(**kwargs),
        "cached": settings.calculator(),
        "unlimited": TBLite(**kwargs),
    }
    base = molecule(name)
    rng = np.random.default_rng(seed)
    geometries = [base.positions + rng.normal(0.0, 0.01, base.positions.shape) for _ in range(n_calls)]
    seconds = dict.fromkeys(calculators, 0.0)
    atoms = {key: base.copy() for key in calculators}
    for key, calc in calculators.items():
        atoms[key].calc = calc
        atoms[key].get_forces()  # set-up call, not timed
    for start in range(0, n_calls, BLOCK):
        for key in calculators:
            t0 = time.perf_counter()
            for positions in geometries[start : start + BLOCK]:
                atoms[key].positions = positions
                atoms[key].get_forces()
                atoms[key].get_dipole_moment()
            seconds[key] += time.perf_counter() - t0
    ms = {key: 1e3 * s / n_calls for key, s in seconds.items()}
    return {
        "atoms": len(base),
        "ms_per_call": ms,
        "speedup_cached_vs_per_call_scan": ms["per_call_scan"] / ms["cached"],
        "overhead_cached_vs_unlimited": ms["cached"] / ms["unlimited"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs/results/reference_call_cost.json",
    )
    args = parser.parse_args(argv)
    results = {}
    for name in MOLECULES:
        results[name] = time_variants(name, args.calls)
        ms = results[name]["ms_per_call"]
        print(
            f"{name:>9}: per-call scan {ms['per_call_scan']:.2f} ms, cached {ms['cached']:.2f} ms, "
            f"unlimited {ms['unlimited']:.2f} ms  -> {results[name]['speedup_cached_vs_per_call_scan']:.1f}x"
        )
    payload = {
        "calls_per_variant": args.calls,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": os.getloadavg(),
        "molecules": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
