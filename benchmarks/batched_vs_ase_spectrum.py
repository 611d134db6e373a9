"""Same physics: methanol IR spectrum from the batched engine vs the ASE loop, trained models.

Both sides use the same trained committee (forces = committee mean) and dipole
model, in the production protocol of the workflow (``WorkflowConfig`` defaults:
Langevin, 0.5 fs, friction 0.001/fs, 300 K, float32, dipoles every 2 steps,
thermalisation then production, spectra by
``specml.spectra.autocorrelation.ir_from_dipoles`` with the production
correlation depth, averaged over trajectories), with different random streams:

* batched: ``specml.workflow.md_tasks.production_task`` (what production runs);
* ASE: ``ase.md.langevin.Langevin`` + ``MACECalculator`` per trajectory
  (:func:`specml.dynamics.ase_loop.run_mace_replica`).

Trajectories are shorter than production (3 x 55 ps) so the ASE side fits in
well under an hour on one core; the lengths are written to the JSON. The
batched side also runs a second, independent set of trajectories: the PCC
between the two batched sets is the sampling-noise floor at this length.

    .venv/bin/python benchmarks/batched_vs_ase_spectrum.py --models DIR
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import molecule

from specml.comparison.metrics import pearson, wasserstein
from specml.dynamics.ase_loop import mace_calculator, run_mace_replica
from specml.dynamics.ase_md import initialize_velocities
from specml.models import Committee
from specml.models.committee import FORCE_UNCERTAINTY_EPS
from specml.spectra.autocorrelation import average_spectra, ir_from_dipoles
from specml.workflow.config import WorkflowConfig
from specml.workflow.md_tasks import Replica, production_task

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = "/root/specml-runs/bench_methanol_xtb/models/iter_007"


def spectra_of(dipole_sets, dt_fs, cfg, depth_fs=None):
    lo, hi = cfg.spectrum_range_cm1
    depth = cfg.max_correlation_fs if depth_fs is None else depth_fs
    return [ir_from_dipoles(d, dt_fs, depth, lo, hi) for d in dipole_sets]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS, help="trained committee directory (Committee.save)")
    ap.add_argument("--n-traj", type=int, default=3, help="trajectories per side (and per batched set)")
    ap.add_argument("--thermalization-ps", type=float, default=1.0)
    ap.add_argument("--production-ps", type=float, default=8.0)
    ap.add_argument("--short-depth-fs", type=float, default=200.0,
                    help="second, shorter correlation depth reported alongside the production one")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs/results/batched_vs_ase_spectrum.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = WorkflowConfig()
    T, dt = cfg.production_temperature_k, cfg.timestep_fs
    n_therm = int(round(args.thermalization_ps * 1000 / dt))
    n_prod = int(round(args.production_ps * 1000 / dt))
    rec = cfg.dipole_record_interval
    start = molecule("CH3OH")
    load_start = os.getloadavg()[0]

    # ------------------------------------------------------------ batched (production path)
    settings = {"thermalization_steps": n_therm, "production_steps": n_prod, "timestep_fs": dt,
                "friction_per_fs": cfg.production_friction_per_fs, "record_interval": rec,
                "uncertainty_stop": cfg.uncertainty_stop, "precision": cfg.md_precision}
    replicas = [Replica("methanol", start, T, seed=1000 + k) for k in range(2 * args.n_traj)]
    t0, c0 = time.perf_counter(), time.process_time()
    batched = production_task((args.models, replicas, settings))
    batched_wall, batched_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"batched: {len(replicas)} trajectories in {batched_wall:.0f} s wall ({batched_cpu:.0f} s CPU)", flush=True)

    # ------------------------------------------------------------ ASE loop
    committee = Committee.load(args.models)
    calc = mace_calculator(committee.energy_models, precision=cfg.md_precision)
    dcalc = mace_calculator([committee.dipole_model], model_type="DipoleMACE", precision=cfg.md_precision)
    ase_runs = []
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(args.n_traj):
        atoms = start.copy()
        initialize_velocities(atoms, T, 2000 + k)
        common = dict(temperature_K=T, timestep_fs=dt, friction_per_fs=cfg.production_friction_per_fs,
                      uncertainty_threshold=cfg.uncertainty_stop, uncertainty_eps=FORCE_UNCERTAINTY_EPS,
                      calculator=calc, precision=cfg.md_precision)
        therm, atoms = run_mace_replica(committee.energy_models, atoms, n_therm, seed=3000 + k,
                                        record_interval=n_therm, **common)
        prod, _ = run_mace_replica(committee.energy_models, atoms, n_prod, seed=4000 + k, record_interval=rec,
                                   dipole_model=committee.dipole_model, dipole_calculator=dcalc, **common)
        ase_runs.append({"stopped": therm.stopped or prod.stopped, "dipoles": prod.dipoles,
                         "temperatures": prod.temperatures, "uncertainty": prod.rel_uncertainty})
        print(f"ASE trajectory {k + 1}/{args.n_traj} done after {time.perf_counter() - t0:.0f} s", flush=True)
    ase_wall, ase_cpu = time.perf_counter() - t0, time.process_time() - c0

    # ------------------------------------------------------------ spectra
    dt_rec = dt * rec

    def usable(runs):
        return [r["dipoles"] for r in runs if not r["stopped"]]

    set_a, set_b = batched[:args.n_traj], batched[args.n_traj:]
    s_a = average_spectra(spectra_of(usable(set_a), dt_rec, cfg))
    s_b = average_spectra(spectra_of(usable(set_b), dt_rec, cfg))
    s_all = average_spectra(spectra_of(usable(batched), dt_rec, cfg))
    s_ase = average_spectra(spectra_of(usable(ase_runs), dt_rec, cfg))
    short = {}
    for name, (x, y) in {"batched_vs_ase": (set_a, ase_runs), "batched_all_vs_ase": (batched, ase_runs),
                         "noise_floor_batched_vs_batched": (set_a, set_b)}.items():
        sx = average_spectra(spectra_of(usable(x), dt_rec, cfg, args.short_depth_fs))
        sy = average_spectra(spectra_of(usable(y), dt_rec, cfg, args.short_depth_fs))
        short[f"pcc_{name}"] = pearson(sx, sy)
        short[f"wasserstein_cm1_{name}"] = wasserstein(sx, sy)
    result = {
        "pcc_batched_vs_ase": pearson(s_a, s_ase),
        "wasserstein_cm1_batched_vs_ase": wasserstein(s_a, s_ase),
        "pcc_batched_all_vs_ase": pearson(s_all, s_ase),
        "wasserstein_cm1_batched_all_vs_ase": wasserstein(s_all, s_ase),
        "pcc_noise_floor_batched_vs_batched": pearson(s_a, s_b),
        "wasserstein_cm1_noise_floor_batched_vs_batched": wasserstein(s_a, s_b),
        "acceptance_pcc_min": 0.98,
        "max_correlation_fs": cfg.max_correlation_fs,
        f"at_max_correlation_{args.short_depth_fs:.0f}_fs": short,
        "n_trajectories": {"ase": args.n_traj, "batched_set_a": len(set_a), "batched_set_b": len(set_b)},
        "stopped": {"ase": sum(r["stopped"] for r in ase_runs), "batched": sum(bool(r["stopped"]) for r in batched)},
        "mean_temperature_K": {"ase": float(np.mean([r["temperatures"].mean() for r in ase_runs])),
                               "batched": float(np.mean([np.mean(r["temperatures"]) for r in batched]))},
        "mean_relative_force_uncertainty": {
            "ase": float(np.mean([np.nanmean(r["uncertainty"]) for r in ase_runs])),
            "batched": float(np.mean([np.nanmean(r["uncertainty"]) for r in batched]))},
        "trajectory": {"thermalization_ps": args.thermalization_ps, "production_ps": args.production_ps,
                       "note": "shorter than production (3 x (5 + 50) ps) so that the ASE side finishes in "
                               "under an hour on one core of the shared machine"},
        "protocol": {"molecule": "methanol (ase.build.molecule('CH3OH'))", "temperature_K": T,
                     "timestep_fs": dt, "friction_per_fs": cfg.production_friction_per_fs,
                     "dipole_record_interval_steps": rec, "max_correlation_fs": cfg.max_correlation_fs,
                     "spectrum_range_cm1": list(cfg.spectrum_range_cm1), "precision": cfg.md_precision,
                     "uncertainty_stop": cfg.uncertainty_stop, "forces": "committee mean",
                     "spectra": "ir_from_dipoles per trajectory, average_spectra over trajectories",
                     "initial_velocities": "Maxwell-Boltzmann (no COM motion/rotation); different seeds "
                                           "and Langevin streams on each side"},
        "models": {"dir": str(args.models), "n_committee": len(committee.energy_models),
                   "preset": committee.preset.name},
        "engines": {"batched": "specml.workflow.md_tasks.production_task (BatchedMD)",
                    "ase": "ase.md.langevin.Langevin(fixcm=False) + mace.calculators.MACECalculator"},
        "timing_s": {"batched_wall": batched_wall, "batched_cpu": batched_cpu,
                     "batched_trajectories": len(replicas), "ase_wall": ase_wall, "ase_cpu": ase_cpu,
                     "ase_trajectories": args.n_traj},
        "threads": args.threads,
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "torch_version": torch.__version__,
        "machine": f"{platform.machine()} ({args.threads} torch thread; 2 cores shared with other jobs)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.startswith(("pcc", "wasserstein"))}, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for s, label, style in ((s_a, f"batched engine ({len(set_a)} traj.)", "-"),
                            (s_ase, f"ASE loop ({args.n_traj} traj.)", "--"),
                            (s_b, f"batched, other seeds ({len(set_b)} traj.)", ":")):
        ax.plot(s.wavenumber, s.intensity / s.intensity.max(), style, lw=1.2, label=label)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("IR intensity (normalised)")
    ax.set_title(f"methanol, trained committee, 300 K: PCC batched vs ASE = {result['pcc_batched_vs_ase']:.3f} "
                 f"(noise floor {result['pcc_noise_floor_batched_vs_batched']:.3f})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = out.with_suffix(".png")
    fig.savefig(png, dpi=130)
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
