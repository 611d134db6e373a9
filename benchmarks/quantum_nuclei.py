"""Quantum nuclei for the methanol ML-MD spectrum: thermostatted ring-polymer MD (issue 23).

Classical production MD keeps B3LYP's harmonic O-H stretch (3,823 cm-1 at the B3LYP/def2-SVP
minimum; the classical ML-MD band sits 154 cm-1 above NIST's 3,681): at 300 K a 3,700 cm-1
vibration stays near its minimum and misses the zero-point anharmonic shift. This benchmark runs
the same production protocol (3 x 50 ps at 300 K after 5 ps of thermalisation, the same
committees) with ``--beads`` ring-polymer beads per molecule (:mod:`specml.dynamics.ring_polymer`)
and compares both levels with NIST as ``benchmarks/multifidelity.py`` does:

- DFT level: the ``finetune`` variant's committee (multi-fidelity, B3LYP/def2-SVP), then the
  ``delta`` and ``delta_tzvp`` variants' (B3LYP/def2-SVP and def2-TZVP);
- xTB level: the shared GFN2-xTB pretraining's committee.

A level whose committee or classical production the multi-fidelity benchmark has not made yet
is skipped with a message, so rerunning the command picks up what became ready.

The committees come from the multi-fidelity benchmark's run root (restored from its committed
stage artifacts on a fresh clone). This benchmark's own run root holds only its trajectories;
their stage artifacts (autocorrelations; with ``--snapshot`` the running MD's snapshot) are kept
in ``benchmarks/artifacts/quantum_nuclei/``, so the run resumes on a fresh clone. Results:
``docs/results/quantum_nuclei.json`` and ``quantum_nuclei.png``, written after each level.

    python benchmarks/quantum_nuclei.py --commit-artifacts           # every level that is ready, 16 beads
    python benchmarks/quantum_nuclei.py --snapshot --commit-artifacts  # beside it, before a machine goes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stage_artifacts import SNAPSHOT_HELP, StageArtifacts  # noqa: E402
from multifidelity import ARTIFACTS as MULTIFIDELITY_ARTIFACTS  # noqa: E402
from multifidelity import CHEAP, EXPENSIVE, EXPENSIVE_TZVP, NIST, Benchmark  # noqa: E402

ARTIFACTS = ROOT / "benchmarks" / "artifacts" / "quantum_nuclei"
#: level -> (multi-fidelity run whose final committee it uses, the reference it learnt); "dft" is
#: the first variant with a classical production, "dft_delta" the one that converged (82 labels),
#: "dft_tzvp_delta" the same with the def2-TZVP reference; each runs once the multi-fidelity
#: benchmark has produced its classical spectrum.
LEVELS = {
    "dft": ("finetune", EXPENSIVE),
    "xtb": ("pretrain_xtb", CHEAP),
    "dft_delta": ("delta", EXPENSIVE),
    "dft_tzvp_delta": ("delta_tzvp", EXPENSIVE_TZVP),
}
DEFAULT_LEVELS = tuple(LEVELS)  # those whose committee and classical production exist yet


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--beads", type=int, default=16)
    parser.add_argument("--levels", nargs="*", default=list(DEFAULT_LEVELS), choices=LEVELS)
    parser.add_argument("--root", default=str(ROOT / "runs" / "bench_quantum_nuclei"))
    parser.add_argument("--multifidelity-root", default=str(ROOT / "runs" / "bench_multifidelity"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "quantum_nuclei.json"))
    parser.add_argument("--commit-artifacts", action="store_true")
    parser.add_argument("--snapshot", action="store_true", help=SNAPSHOT_HELP)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--production-ps", type=float, help="trial runs only (with their own --root, --out, --no-artifacts)"
    )
    parser.add_argument("--no-artifacts", action="store_true")
    args = parser.parse_args()
    if args.beads < 2:
        parser.error("--beads: ring polymers need at least 2 beads (1 is the classical run)")

    import torch
    from rich.console import Console

    from specml.workflow import get_workflow_config

    torch.set_num_threads(1)
    console = Console()
    say = lambda message: console.print(message, highlight=False)  # noqa: E731
    classical = get_workflow_config("default", reference=EXPENSIVE, run_test_set=False)
    config = classical.with_overrides(production_beads=args.beads, production_ps=args.production_ps)
    root, mf_root = Path(args.root), Path(args.multifidelity_root)
    stages = None
    if not args.no_artifacts:
        stages = StageArtifacts(
            ARTIFACTS, root, config.max_correlation_fs, (), args.commit_artifacts, say, "quantum_nuclei"
        )
        if args.snapshot:
            stages.snapshot()
            return
        stages.restore()
    StageArtifacts(MULTIFIDELITY_ARTIFACTS, mf_root, config.max_correlation_fs, (), say=say).restore()
    out = Path(args.out)
    results = read_results(out, args.beads)
    mf = Benchmark(mf_root, classical, ROOT / "docs" / "results" / "multifidelity.json", console)
    for level in args.levels:
        if results.get("levels", {}).get(level, {}).get("status") == "done":
            continue
        run, reference = LEVELS[level]
        workflow = mf.pretrain_workflow() if run == "pretrain_xtb" else mf.workflow(run)
        missing = not_ready(workflow, classical)
        if missing:
            say(f"{level} level skipped: {missing} (benchmarks/multifidelity.py makes it)")
            continue
        row = run_level(workflow, config, root / level, not args.no_progress, say)
        row["classical"] = mf.compare(classical_spectrum(workflow, classical, say), reference)
        row.update(mf.compare(row.pop("spectrum"), reference))
        # re-read: another invocation (other --levels) may have finished a level meanwhile
        results = read_results(out, args.beads)
        results = {
            **results,
            "beads": args.beads,
            "levels": {**results.get("levels", {}), level: row},
        }
        write(results, config, out)
        if stages is not None:
            stages.save(f"{level} level, {args.beads} beads")
    plot(results, root, config, out.with_suffix(".png"))


def read_results(out: Path, beads: int) -> dict:
    """The results written so far for ``beads`` beads (empty for another bead count or none)."""
    results = json.loads(out.read_text()) if out.exists() else {}
    return results if results.get("beads") == beads else {}


def classical_job(workflow, config):
    """The classical production of ``workflow``'s run at the protocol's temperature."""
    from specml.workflow.production import ProductionJob
    from specml.workflow.state import temperature_folder

    T = config.production_temperature_k
    return ProductionJob(
        workflow.prepared_structures(), T, temperature_folder(workflow.dirs.production_dir, T)
    )


def not_ready(workflow, config) -> str | None:
    """Why a level cannot run yet (no final committee, no classical production), else None."""
    if not (workflow.dirs.final_models / "committee.json").exists():
        return f"{workflow.dirs.final_models} holds no final committee yet"
    if classical_job(workflow, config).missing():
        return f"{workflow.dirs.production_dir}: its classical production is not finished"
    return None


def run_level(workflow, config, folder: Path, progress: bool, say) -> dict:
    """Ring-polymer production MD of methanol with ``workflow``'s final committee, in ``folder``."""
    from specml.executor import make_executor
    from specml.models.committee import committee_digest
    from specml.workflow.production import production_spectra

    models = workflow.dirs.final_models
    executor = make_executor(show_progress=progress)
    start = time.perf_counter()
    try:
        produced = production_spectra(
            workflow.prepared_structures(),
            models,
            (config.production_temperature_k,),
            config,
            folder / "production",
            executor,
            say,
        )
    finally:
        executor.close()
    spectrum = produced[config.production_temperature_k]["CO"]
    return {
        "status": "done",
        "committee": str(models.relative_to(ROOT)) if models.is_relative_to(ROOT) else str(models),
        "committee_digest": committee_digest(models),
        "wall_time_s_this_invocation": time.perf_counter() - start,
        "mean_kinetic_temperature_k": spectrum.metadata["mean_kinetic_temperature_k"],
        "mean_relative_force_uncertainty": spectrum.metadata["mean_relative_force_uncertainty"],
        "trajectories_stopped": spectrum.metadata["n_trajectories_stopped"],
        "spectrum": spectrum,
    }


def classical_spectrum(workflow, config, say):
    """The classical production spectrum the multi-fidelity benchmark computed (already on disk)."""
    from specml.workflow.production import job_spectra

    return job_spectra(classical_job(workflow, config), workflow.dirs.final_models, config, say)["CO"]


def write(results: dict, config, out: Path) -> None:
    # Each level names the multi-fidelity run whose committee it used (multifidelity.json links them).
    levels = {k: {**row, "multifidelity_run": LEVELS[k][0]} for k, row in results.get("levels", {}).items()}
    results = {
        **results,
        "levels": levels,
        "molecule": "methanol",
        "experiment": "NIST gas phase, methanol.jdx",
        "protocol": {
            "production_ps": config.production_ps,
            "thermalization_ps": config.thermalization_ps,
            "trajectories": config.n_trajectories,
            "temperature_k": config.production_temperature_k,
            "timestep_fs": config.timestep_fs,
            "centroid_friction_per_fs": config.production_friction_per_fs,
            "method": "TRPMD: PILE thermostat on the internal modes (2 λ ω_k, λ = 1/2), Cayley free "
            "ring-polymer step, bead-averaged dipole; specml.dynamics.ring_polymer",
        },
        "notes": "Rows as in multifidelity.json: PCC/WD against NIST over 500-4000 cm-1, band maxima "
        "(ML minus experiment), and the same after the method's global frequency scale factor "
        "(frequency_scaled). 'classical' is the same committee's classical production spectrum.",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))


def plot(results: dict, root: Path, config, path: Path) -> None:
    """NIST against the classical and ring-polymer spectra of each level finished."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specml.experiment import load_absorbance
    from specml.workflow.production import ProductionJob, job_spectra
    from specml.workflow.state import temperature_folder

    levels = [lv for lv in LEVELS if results.get("levels", {}).get(lv, {}).get("status") == "done"]
    if not levels:
        return
    experiment = load_absorbance(NIST)
    mf = Benchmark(
        Path(ROOT / "runs" / "bench_multifidelity"),
        config.with_overrides(production_beads=1),
        ROOT / "docs" / "results" / "multifidelity.json",
        None,
    )
    fig, axes = plt.subplots(len(levels), 1, figsize=(8, 3.2 * len(levels)), squeeze=False)
    T = config.production_temperature_k
    for ax, level in zip(axes[:, 0], levels, strict=True):
        run, reference = LEVELS[level]
        workflow = mf.pretrain_workflow() if run == "pretrain_xtb" else mf.workflow(run)
        structures = workflow.prepared_structures()
        quantum = job_spectra(
            ProductionJob(
                structures, T, temperature_folder(root / level / "production", T, results["beads"])
            ),
            workflow.dirs.final_models,
            config,
        )["CO"]
        classical = classical_spectrum(workflow, config.with_overrides(production_beads=1), print)
        for spectrum, label, style in (
            (experiment, "NIST (gas)", dict(color="black", lw=1.0)),
            (classical, "classical nuclei", dict(color="tab:blue", lw=1.0, alpha=0.8)),
            (quantum, f"TRPMD, {results['beads']} beads", dict(color="tab:red", lw=1.2)),
        ):
            x, y = spectrum.wavenumber, spectrum.intensity
            window = (x >= 500) & (x <= 4000)
            ax.plot(x[window], y[window] / y[window].max(), label=label, **style)
        row = results["levels"][level]
        ax.set_title(
            f"{reference.removeprefix('pyscf:')} ({run}): PCC {row['classical']['pcc_vs_experiment']:.3f} classical, "
            f"{row['pcc_vs_experiment']:.3f} TRPMD",
            fontsize=10,
        )
        ax.set_xlim(500, 4000)
        ax.set_ylabel("normalised absorbance")
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("wavenumber (cm$^{-1}$)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
