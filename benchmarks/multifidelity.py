"""Multi-fidelity active learning on methanol, B3LYP/def2-SVP over GFN2-xTB (issue 23).

Variants, side by side: ``dft_only`` (the ordinary workflow with the DFT reference) and the
multi-fidelity adaptations ``finetune``, ``delta`` and ``scratch``, which share one GFN2-xTB
pretraining (run once in ``ROOT/pretrain_xtb``, copied into each variant before it adds labels);
``delta_tzvp`` is ``delta`` with a B3LYP/def2-TZVP reference (the basis lever: def2-SVP's harmonic
C-O stretch is 27 cm-1 above def2-TZVP's, at about the same seconds per call).
Each variant then runs production ML-MD (the preset's protocol: 3 x 50 ps at 300 K by default)
and is compared with the NIST gas-phase spectrum, next to the xTB-level spectrum from the same
protocol with the pretrained committee, each also after scaling its wavenumbers by the method's
global frequency scale factor fitted on experimental fundamentals without methanol
(``frequency_scaled``; benchmarks/fundamentals.py). The equivalent DFT MD is costed from measured
seconds per DFT force call times its MD steps.

Writes ``docs/results/multifidelity.json`` after every finished step. Everything is resumable:
rerun the same command (each workflow resumes from its run directory; measured costs are kept in
``RUN_ROOT/dft_call_cost.json``).

The run root (``runs/bench_multifidelity``, git-ignored) does not outlive its machine, the
benchmark outlives many sessions: its finished stages are kept as stage artifacts
(:mod:`specml.workflow.artifacts`) in ``benchmarks/artifacts/multifidelity/`` (labels of every
run with their fidelity, Δ twins included, final or latest models, ``adaptation.json``, the
measured DFT call cost, production autocorrelations and spectra). At the start every finished
stage stored there that the run root lacks is restored; after every stage (each iteration of each
run, the survey, production MD) the folder is brought up to date, and with ``--commit-artifacts``
git-committed (that folder only).

    python benchmarks/multifidelity.py --stage learn --commit-artifacts  # active learning of every variant
    python benchmarks/multifidelity.py --commit-artifacts                # + production MD, spectra, comparison
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stage_artifacts import SNAPSHOT_HELP, StageArtifacts  # noqa: E402

#: Stage artifacts of the benchmark's own settings (committed; see specml.workflow.artifacts).
ARTIFACTS = ROOT / "benchmarks" / "artifacts" / "multifidelity"
NIST = ROOT.parent / "shared" / "data" / "nist-ir" / "methanol.jdx"
EXPENSIVE = "pyscf:b3lyp/def2-svp"
EXPENSIVE_TZVP = "pyscf:b3lyp/def2-tzvp"
CHEAP = "xtb"
#: variant -> (multi-fidelity adaptation, None for the ordinary workflow; its DFT reference, None
#: for the benchmark's ``--expensive``).
VARIANT_SPECS: dict[str, tuple[str | None, str | None]] = {
    "finetune": ("finetune", None),
    "delta": ("delta", None),
    "scratch": ("scratch", None),
    "dft_only": (None, None),
    "delta_tzvp": ("delta", EXPENSIVE_TZVP),
}
VARIANTS = tuple(VARIANT_SPECS)
RANGE_CM1 = (500.0, 4000.0)
#: Windows (cm-1) in which the band maxima of experiment and ML-MD are compared.
BANDS_CM1 = {"O-H stretch": (3400.0, 3900.0), "C-O stretch": (950.0, 1150.0)}
DFT_COST_CALLS = 3  # DFT force calls timed at the DFT minimum
#: The ML-MD spectrum is also compared after scaling by the reference's global frequency scale
#: factor, fitted on experimental fundamentals of every species of benchmarks/fundamentals.py but
#: methanol's: what functional, basis and anharmonicity (which classical MD misses) leave.
METHANOL_PARENT = "CO"
BEST_RULE = (
    "converged variants first; among them the fewest DFT calls (the cost the issue measures: the "
    "classical spectra of the converged variants agree within their nuclei's and basis's errors, see "
    "docs/multifidelity.md); with none converged, the lowest harmonic MAE"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default=str(ROOT / "runs" / "bench_multifidelity"))
    parser.add_argument("--stage", choices=("learn", "all"), default="all")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--preset", default="default")
    parser.add_argument(
        "--expensive", default=EXPENSIVE, help="the expensive reference (another one only to try the script)"
    )
    parser.add_argument("--set", nargs="*", default=[], help="workflow overrides KEY=VALUE (JSON values)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "multifidelity.json"))
    parser.add_argument(
        "--artifacts",
        help="stage-artifact folder: finished stages are restored from it and written to it after each "
        "stage (default: benchmarks/artifacts/multifidelity with the benchmark's own settings, none "
        "with another --expensive, --preset or --set)",
    )
    parser.add_argument(
        "--no-artifacts", action="store_true", help="neither restore nor write stage artifacts"
    )
    parser.add_argument(
        "--commit-artifacts",
        action="store_true",
        help="git-commit the artifact folder (and nothing else) after each stage",
    )
    parser.add_argument("--snapshot", action="store_true", help=SNAPSHOT_HELP)
    args = parser.parse_args()
    artifacts = artifact_folder(args)
    for flag, asked in (("--commit-artifacts", args.commit_artifacts), ("--snapshot", args.snapshot)):
        if asked and artifacts is None:
            parser.error(f"{flag} needs a stage-artifact folder (--artifacts)")

    import torch
    from rich.console import Console

    from specml.workflow import get_workflow_config

    torch.set_num_threads(1)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    # No test set: it would spend 20 DFT labels per variant on a number the comparison does not use.
    config = get_workflow_config(args.preset, reference=args.expensive, run_test_set=False, **overrides)
    console = Console()
    root = Path(args.root)
    save_stage: Callable[[str], None] = lambda stage: None  # noqa: E731
    if artifacts is not None:
        stages = StageArtifacts(
            artifacts, root, config.max_correlation_fs, (), args.commit_artifacts, benchmark="multifidelity"
        )
        stages.say = lambda message: console.print(message, highlight=False)
        if args.snapshot:
            stages.snapshot()
            return
        stages.restore()  # before any workflow opens its run directory
        save_stage = stages.save
    bench = Benchmark(root, config, Path(args.out), console, save_stage)
    bench.pretrain()
    for variant in args.variants:
        bench.learn(variant)
    if args.stage == "all":
        bench.xtb_level()
        for variant in args.variants:
            bench.produce(variant)
    bench.write()


def artifact_folder(args: argparse.Namespace) -> Path | None:
    """The stage-artifact folder of a run: ``--artifacts``; else :data:`ARTIFACTS` when the run has
    the benchmark's own settings (a trial with other ones must not mix into it); None with
    ``--no-artifacts``."""
    if args.no_artifacts:
        return None
    if args.artifacts:
        return Path(args.artifacts)
    own = args.expensive == EXPENSIVE and args.preset == "default" and not args.set
    return ARTIFACTS if own else None


def _finished(row: dict) -> bool:
    """A row done by this version of the comparison (earlier ones lack the scaled spectrum)."""
    return row.get("status") == "done" and "frequency_scaled" in row


def fundamentals_scale_factor(reference: str) -> float | None:
    """The global frequency scale factor of ``reference`` fitted on the fundamentals of every
    species but methanol's (None where the fundamentals benchmark has no harmonic data for it)."""
    from fundamentals import global_factor_without

    factor = global_factor_without(reference, {METHANOL_PARENT})
    return factor if math.isfinite(factor) else None


def against_experiment(spectrum, experiment) -> dict:
    """PCC and WD over :data:`RANGE_CM1` and the band maxima of :data:`BANDS_CM1` (ML minus experiment)."""
    import numpy as np

    from specml.comparison import compare_spectra

    comparison = compare_spectra(experiment, spectrum, *RANGE_CM1)
    offsets = {}
    for band, (lo, hi) in BANDS_CM1.items():
        peaks = []
        for s in (spectrum, experiment):
            window = (s.wavenumber >= lo) & (s.wavenumber <= hi)
            peaks.append(float(s.wavenumber[window][np.argmax(s.intensity[window])]))
        offsets[band] = {"ml_cm1": peaks[0], "experiment_cm1": peaks[1], "offset_cm1": peaks[0] - peaks[1]}
    return {
        "pcc_vs_experiment": comparison.pcc,
        "wd_vs_experiment": comparison.wd_cm1,
        "band_maxima": offsets,
    }


class Benchmark:
    def __init__(
        self, root: Path, config, out: Path, console, save_stage: Callable[[str], None] | None = None
    ):
        """``save_stage(name)`` is called after every stage that lands in ``root`` (stage artifacts)."""
        from specml.molecules import load_molecules

        self.root, self.config, self.out, self.console = root, config, out, console
        self.save_stage = save_stage or (lambda stage: None)
        self.molecules = load_molecules("CO")
        # Rows of finished steps survive reruns; rows this process changed are written over the
        # file's, the others are re-read before every write (two invocations with other
        # --variants side by side).
        self.rows, self.xtb = self.written_rows()
        self.changed: set[str] = set()

    def record(self, variant: str, row: dict) -> None:
        """Set ``variant``'s row; this invocation writes it over the file's from now on."""
        self.rows[variant] = row
        self.changed.add(variant)

    def written_rows(self) -> tuple[dict[str, dict], dict]:
        """The variant rows and xTB-level row in ``out`` (none when its settings differ; compared as
        JSON: tuples come back as lists)."""
        previous = json.loads(self.out.read_text()) if self.out.exists() else {}
        if previous.get("settings") != json.loads(json.dumps(self.config.to_dict())):
            return {}, {}
        rows = {k: v for k, v in previous.get("variants", {}).items() if k in VARIANTS}
        return rows, previous.get("xtb_level", {})

    # -- workflows ----------------------------------------------------------------------
    def cheap_config(self):
        return self.config.with_overrides(reference=CHEAP, run_test_set=False)

    def pretrain_workflow(self):
        from specml.workflow import IRWorkflow

        return IRWorkflow(
            self.molecules,
            self.root / "pretrain_xtb",
            self.cheap_config(),
            console=self.console,
            stage_done=self.stage_done("pretrain_xtb"),
        )

    def stage_done(self, run: str) -> Callable[[str], None]:
        """The stage callback of the workflow in ``root/run``."""
        return lambda stage: self.save_stage(f"{run}: {stage}")

    def reference(self, variant: str) -> str:
        """The DFT reference ``variant`` learns."""
        return VARIANT_SPECS[variant][1] or self.config.reference

    def workflow(self, variant: str):
        from specml.workflow import IRWorkflow
        from specml.workflow.fidelity_config import MultiFidelitySettings
        from specml.workflow.multifidelity import MultiFidelityWorkflow

        folder = self.root / variant
        done = self.stage_done(variant)
        adaptation = VARIANT_SPECS[variant][0]
        config = self.config.with_overrides(reference=self.reference(variant))
        if adaptation is None:
            return IRWorkflow(self.molecules, folder, config, console=self.console, stage_done=done)
        if not (folder / "pretrain").exists():  # the shared pretraining, before this variant adds twins
            shutil.copytree(self.root / "pretrain_xtb", folder / "pretrain")
        settings = MultiFidelitySettings(pretrain=CHEAP, adaptation=adaptation)
        return MultiFidelityWorkflow(
            self.molecules, folder, config, settings, console=self.console, stage_done=done
        )

    # -- steps --------------------------------------------------------------------------
    def pretrain(self) -> None:
        workflow = self.pretrain_workflow()
        workflow.prepared()
        workflow.active_learning()

    def learn(self, variant: str) -> None:
        for row in (self.rows.get(variant, {}), self.written_rows()[0].get(variant, {})):
            if _finished(row):  # produced, perhaps by an invocation beside this one: learnt long ago
                self.rows[variant] = row
                return
        workflow = self.workflow(variant)
        if VARIANT_SPECS[variant][0] is not None:
            workflow.pretrain_stage()
        workflow.prepared()
        self.save_stage(f"{variant}: DFT minimum and Hessian")
        self.record(variant, {**self.rows.get(variant, {}), "status": "learning"})
        self.write()
        workflow.active_learning()
        self.record(
            variant, {**self.rows[variant], **self.learning_row(variant, workflow), "status": "learned"}
        )
        self.write()

    def produce(self, variant: str) -> None:
        if _finished(self.rows.get(variant, {})):
            return
        workflow = self.workflow(variant)
        result = workflow.run()
        row = {
            **self.learning_row(variant, workflow),
            **self.compare(result.spectra["CO@300K"], self.reference(variant)),
        }
        row["status"] = "done"
        self.record(variant, row)
        self.write()

    def xtb_level(self) -> None:
        if _finished(self.xtb):
            return
        workflow = self.pretrain_workflow()
        spectrum = workflow.production()[self.config.production_temperature_k]["CO"]
        self.save_stage("pretrain_xtb: production MD")
        self.changed.add("xtb_level")
        self.xtb = {
            "reference": workflow.reference.describe(),
            **self.compare(spectrum, CHEAP),
            "status": "done",
        }
        self.write()

    # -- numbers ------------------------------------------------------------------------
    def learning_row(self, variant: str, workflow) -> dict:
        """DFT and xTB calls, harmonic MAE, why learning stopped and wall time (by stage) of one
        variant's run so far."""
        from specml.workflow.active_learning import ended_by

        curve = json.loads(workflow.dirs.learning_curve.read_text())
        target = self.config.target_harmonic_mae_cm1
        reached = [e for e in curve if e["harmonic_mae_cm1"] <= target]
        stages = json.loads(workflow.dirs.timings.read_text()) if workflow.dirs.timings.exists() else {}
        row = {
            "dft_calls": (reached[0] if reached else curve[-1])["reference_calls"],
            "dft_calls_geometry_hessian": sum(m.reference_calls for m in workflow.prepared()),
            "converged": bool(reached),
            "iterations": len(curve) - 1,
            "harmonic_mae_cm1": curve[-1]["harmonic_mae_cm1"],
            "stop_reason": ended_by(curve, self.config),
            "learning_curve": [
                {k: e[k] for k in ("iteration", "reference_calls", "harmonic_mae_cm1", "run_wall_time_s")}
                for e in curve
            ],
            "xtb_calls": 0,
            "xtb_calls_geometry_hessian": 0,
        }
        if VARIANT_SPECS[variant][0] is not None:
            cheap = workflow.pretrain_summary()
            shared = self.pretrain_workflow().dirs
            # The shared pretraining's time counts for every variant that needs it (once each).
            stages.pop("pretrain", None)
            stages = {"pretrain": json.loads(shared.timings.read_text()), **stages}
            row.update(
                xtb_calls=cheap["reference_calls"],
                xtb_calls_geometry_hessian=cheap["reference_calls_evaluation"],
                xtb_harmonic_mae_cm1=cheap["final_harmonic_mae_cm1"],
            )
            if workflow.adaptation_file.exists():
                row["adaptation"] = json.loads(workflow.adaptation_file.read_text())
        row["wall_time_s_by_stage"] = stages
        row["wall_time_s"] = sum(sum(v.values()) if isinstance(v, dict) else v for v in stages.values())
        cost = self.dft_md_cost(variant)
        row["dft_reference"] = self.reference(variant)
        row["dft_md_equivalent_s"] = cost["dft_md_s"]
        row["saving_factor_vs_dft_md"] = cost["dft_md_s"] / row["wall_time_s"] if row["wall_time_s"] else None
        return row

    def compare(self, spectrum, reference: str) -> dict:
        """PCC and WD against NIST and the band-maximum offsets (ML minus experiment, cm-1); the
        same for the spectrum frequency-scaled by ``reference``'s global factor fitted without methanol
        (:func:`fundamentals_scale_factor`)."""
        from specml.experiment import load_absorbance

        experiment = load_absorbance(NIST)
        factor = fundamentals_scale_factor(reference)
        scaled = None
        if factor is not None:  # a trial reference without harmonic fundamentals gets none
            scaled = {
                "scale_factor": factor,
                "source": "benchmarks/fundamentals.py global factor, fitted without methanol",
                **against_experiment(spectrum.scaled_wavenumbers(factor), experiment),
            }
        return {**against_experiment(spectrum, experiment), "frequency_scaled": scaled}

    def dft_md_cost(self, variant: str = "dft_only") -> dict:
        """Seconds per DFT force call of ``variant``'s reference (measured at its DFT minimum, kept on
        disk) x the MD steps of the production protocol (all trajectories, thermalisation included)."""
        from specml.reference import make_reference

        own = self.reference(variant) == self.config.reference
        path = self.root / ("dft_call_cost.json" if own else f"dft_call_cost_{variant}.json")
        if path.exists():
            measured = json.loads(path.read_text())
        else:
            minimum = self.workflow("dft_only" if own else variant).prepared()[0].atoms
            reference = make_reference(self.reference(variant))
            reference.label(minimum)  # first call: basis and grids set up
            start = time.perf_counter()
            for _ in range(DFT_COST_CALLS):
                reference.label(minimum)
            measured = {
                "s_per_call": (time.perf_counter() - start) / DFT_COST_CALLS,
                "calls_timed": DFT_COST_CALLS,
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(measured, indent=2))
            self.save_stage("DFT call cost")
        steps = self.config.n_trajectories * (self.config.thermalization_steps + self.config.production_steps)
        return {**measured, "md_steps": steps, "dft_md_s": measured["s_per_call"] * steps}

    # -- output -------------------------------------------------------------------------
    def best(self) -> str | None:
        """The recommended variant (:data:`BEST_RULE`), None before any has learnt."""
        rows = {k: v for k, v in self.rows.items() if "harmonic_mae_cm1" in v}
        if not rows:
            return None
        converged = {k: v for k, v in rows.items() if v["converged"]}
        if not converged:
            return min(rows, key=lambda k: rows[k]["harmonic_mae_cm1"])
        return min(converged, key=lambda k: converged[k]["dft_calls"])

    def ring_polymer_rows(self) -> dict:
        """The same committees' ring-polymer (quantum-nuclei) spectra against NIST, by run, from
        ``quantum_nuclei.json`` beside the results file (benchmarks/quantum_nuclei.py): PCC, WD
        and band maxima with the classical ones for comparison; empty before any has finished."""
        path = self.out.parent / "quantum_nuclei.json"
        results = json.loads(path.read_text()) if path.exists() else {}
        rows = {}
        for level, row in results.get("levels", {}).items():
            if row.get("status") != "done" or "multifidelity_run" not in row:
                continue
            rows[row["multifidelity_run"]] = {
                "level": level,
                "beads": results["beads"],
                **{k: row[k] for k in ("pcc_vs_experiment", "wd_vs_experiment", "band_maxima")},
                "classical_pcc_vs_experiment": row["classical"]["pcc_vs_experiment"],
            }
        return rows

    def write(self) -> None:
        rows, xtb = self.written_rows()
        self.rows = {**rows, **{v: r for v, r in self.rows.items() if v in self.changed}}
        self.xtb = self.xtb if "xtb_level" in self.changed else xtb
        out = {
            "molecule": "methanol",
            "expensive_reference": self.config.reference,
            "pretrain_reference": CHEAP,
            "experiment": "NIST gas phase, methanol.jdx",
            "range_cm1": RANGE_CM1,
            "settings": self.config.to_dict(),
            "dft_md_cost": self.dft_md_cost(),
            "variants": {
                v: {
                    "pcc_vs_experiment": None,
                    "wd_vs_experiment": None,
                    **self.rows.get(v, {"status": "not started"}),
                }
                for v in VARIANTS
            },
            "xtb_level": self.xtb or {"status": "not started"},
            "ring_polymer": self.ring_polymer_rows(),
            "best": self.best(),
            "best_rule": BEST_RULE,
            "notes": "dft_calls: DFT labels for training when the harmonic MAE first reached the target "
            "(all so far if never); geometry optimisation and the analytic Hessian are "
            "dft_calls_geometry_hessian. wall_time_s: summed over resumed invocations, the shared xTB "
            "pretraining counted in every multi-fidelity variant. Two CPU cores shared with other work. "
            "ring_polymer: the same committees with quantum nuclei (TRPMD, the same 3 x 50 ps protocol; "
            "benchmarks/quantum_nuclei.py), by run (pretrain_xtb is the xTB level).",
        }
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(out, indent=2, default=float))
        self.console.print(
            {
                v: {k: r.get(k) for k in ("status", "dft_calls", "harmonic_mae_cm1")}
                for v, r in out["variants"].items()
            }
        )


if __name__ == "__main__":
    main()
