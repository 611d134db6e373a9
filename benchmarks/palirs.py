"""The PALIRS benchmark (issue 5): specml's active-learning IR workflow side by side with the
published study, at xTB level (all seven parts) and at DFT level (methanol, PySCF).

Trains one committee on ``../shared/molecules/train24.csv`` and computes

1. the Table 1 analogue (test-set energy, force and dipole errors);
2. learning curves and the reference calculations per molecule and in total;
3. Tables 2/3: ML-MD against reference MD (xTB driving the same protocol) and against
   the NIST spectra of ``../shared/data/nist-ir`` (matched by canonical SMILES);
4. convergence with trajectory length (the first ``convergence_ps`` of each trajectory
   against the whole production run);
5. a temperature series of methanol, ML against reference MD;
6. transferability to ``transfer8.csv`` with the committee uncertainty against the error;
7. the DFT case: methanol with a PySCF reference, its cost and an AIMD cost estimate.

It writes ``benchmark.md`` (tables, paper values, targets, figures) and
``results/palirs_benchmark.json`` under ``--out-dir``. Presets:

- ``full``: all 24 molecules at the workflow's default settings, everything above,
  written to ``docs/`` (hours on a 2-core machine; resumable: rerun to continue);
- ``small``: 2 molecules, the CI workflow settings, sub-ps MD, a 2-point temperature
  series, 1 transfer molecule, the DFT case only with ``--dft``. It writes
  ``results/palirs_small_*`` files and marks every number as a smoke test, and it
  refuses to overwrite a report of the full preset.

    python benchmarks/palirs.py --preset full
    python benchmarks/palirs.py --preset small --out-dir /tmp/palirs
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reference_md import (  # noqa: E402
    ReferenceMDPool,
    correlation_runs,
    reference_spectrum,
    spectrum_of_runs,
    trajectory_tasks,
)
from _stage_artifacts import SNAPSHOT_HELP, StageArtifacts, commit_folder  # noqa: E402
from training_recipe import RESULTS as TRAINING_RECIPE_RESULTS  # noqa: E402  (single-molecule retraining rows)

TRAIN_CSV = SHARED / "molecules" / "train24.csv"
TRANSFER_CSV = SHARED / "molecules" / "transfer8.csv"
NIST_DIR = SHARED / "data" / "nist-ir"
COMPARE_RANGE_CM1 = (500.0, 4000.0)
FULL_MARKER = "<!-- palirs-benchmark preset=full -->"
#: Stage artifacts of the benchmark presets (see specml.workflow.artifacts), committed.
ARTIFACTS = ROOT / "benchmarks" / "artifacts"

#: The published study's numbers (PALIRS, DFT level).
PAPER = {
    "energy_mae_meV": 2.64,
    "energy_rmse_meV": 3.61,
    "force_mae_meV_per_A": 3.96,
    "force_rmse_meV_per_A": 5.69,
    "dipole_mae_mD": 7.62,
    "dipole_rmse_mD": 12.46,
    "reference_calls_total": 16067,
    "n_molecules": 24,
    "reference_calls_per_molecule": 16067 / 24,
    "harmonic_mae_cm1": 4.37,
    "pcc_ml_vs_reference_mean": 0.80,
    "pcc_ml_vs_reference_std": 0.18,
    "pcc_ml_vs_experiment_mean": 0.81,
    "pcc_ml_vs_experiment_std": 0.15,
    "methanol_pcc_ml_vs_reference": 0.91,
    "methanol_pcc_ml_vs_experiment": 0.80,
}

#: Issue 5's acceptance targets at xTB level.
TARGETS = {"pcc_ml_vs_reference_mean": 0.90, "harmonic_mae_cm1": 5.0, "reference_calls_per_molecule": 300}

#: Sub-picosecond MD of the small preset (a 100 fs correlation depth needs >= 200 fs of data).
SMALL_MD = {"thermalization_ps": 0.05, "production_ps": 0.4, "max_correlation_fs": 100.0}

#: The full preset's test-set MD (the default is 100 ps and 2000 frames per molecule).
SHORT_TEST_MD = {"test_md_ps": 20.0, "test_frames": 400}

PRESETS = {
    "full": {
        "description": "all 24 train24 molecules at the workflow's default settings",
        # 3 iterations: 158 normal-mode samples per molecule on average (10 per mode + the
        # minimum) + 3 x 15 active-learning frames = 203 labels per molecule (target < 300).
        # Iterations cost about an hour each on 2 cores, and iterations 0 -> 1 moved the harmonic
        # MAE only from 25.6 to 24.4 cm-1: the hours go to production and reference MD instead.
        # Test set: 20 ps of MD per molecule (4 replicas x 5 ps, a frame every 50 fs) to choose the
        # 20 structures from, not the default 100 ps, which would take about 2.8 h of the 2 cores for 24 molecules.
        # Models: the "shared" preset (a 60,000-step budget, not 20,000): the step budget is what
        # held the lost run's committee at 19 cm-1 (benchmarks/committee_capacity.py).
        "workflow_preset": "default",
        "workflow_overrides": {"max_iterations": 3, "model_preset": "shared"} | SHORT_TEST_MD,
        "train": None,
        "transfer": None,  # None: every molecule of the table
        "temperatures_k": (100.0, 300.0, 500.0, 700.0, 900.0),
        "series_molecule": "methanol",
        "convergence_ps": 20.0,
        "dft": True,
        "dft_reference": "pyscf:B3LYP/6-31G*",
        "dft_workflow_preset": "default",
        "dft_overrides": {"max_iterations": 3} | SHORT_TEST_MD,  # the same budget as the xTB run above
        "dft_timing_calls": 5,
        # The final committee ships as this pretrained model set (specml/data/models/; issue 24).
        "model_set": "train24",
    },
    "small": {
        "description": "smoke test: 2 molecules, the CI workflow settings (tiny models, 10 epochs, one "
        "iteration), 0.4 ps trajectories",
        "workflow_preset": "ci",
        "workflow_overrides": SMALL_MD | {"model_epochs": 10},
        "train": ("methane", "methanol"),
        "transfer": ("acetone",),
        "temperatures_k": (300.0, 600.0),
        "series_molecule": "methanol",
        "convergence_ps": 0.2,
        "dft": False,
        "dft_reference": "pyscf:B3LYP/STO-3G",
        "dft_workflow_preset": "ci",
        "dft_overrides": SMALL_MD | {"model_epochs": 10},
        "dft_timing_calls": 2,
        "model_set": None,
    },
}


class BenchmarkError(Exception):
    """Bad input or settings for the benchmark (reported without a traceback)."""


# -- inputs -----------------------------------------------------------------------------
def select_molecules(table: Path, names) -> list:
    """Molecules of a name,smiles table, all or those named (in the table's order)."""
    from specml.molecules.inputs import molecule_from_smiles, read_molecule_table

    rows = read_molecule_table(table)
    if names is not None:
        unknown = sorted(set(names) - {name for name, _ in rows})
        if unknown:
            raise BenchmarkError(f"{table}: no molecule(s) named {', '.join(unknown)}")
        rows = [(name, smiles) for name, smiles in rows if name in names]
    return [molecule_from_smiles(smiles, name) for name, smiles in rows]


def experiment_index(nist_dir: Path = NIST_DIR) -> dict[str, list[Path]]:
    """Experimental files by canonical SMILES (from the folder's index.csv)."""
    from specml.molecules.inputs import canonical_smiles

    index = nist_dir / "index.csv"
    if not index.is_file():
        raise BenchmarkError(f"{index}: no such file (the shared NIST spectra are expected at {nist_dir})")
    files: dict[str, list[Path]] = {}
    with index.open(newline="") as fh:
        for row in csv.DictReader(fh):
            files.setdefault(canonical_smiles(row["smiles"]), []).append(nist_dir / row["file"])
    return files


def check_settings(settings: dict, config) -> None:
    """Refuse settings that cannot give every part of the report."""
    if settings["convergence_ps"] * 1000.0 < 2 * config.max_correlation_fs:
        raise BenchmarkError(
            f"convergence_ps {settings['convergence_ps']} is shorter than twice the correlation "
            f"depth ({config.max_correlation_fs} fs)"
        )
    if settings["convergence_ps"] >= config.production_ps:
        raise BenchmarkError("convergence_ps must be shorter than the production run")
    if config.production_temperature_k not in settings["temperatures_k"]:
        raise BenchmarkError("the temperature series must include the production temperature")


# -- small numeric helpers -------------------------------------------------------------------
def finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_std(values) -> dict:
    """Mean, sample standard deviation and count of the finite values (None when empty)."""
    vals = finite(values)
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {
        "mean": float(np.mean(vals)),
        "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
        "n": len(vals),
    }


def compare(reference, predicted) -> tuple[dict, object]:
    """PCC/WD/SIS of ``predicted`` against ``reference`` over the comparison range, and the
    comparison (None with an ``error`` entry when the spectra cannot be compared)."""
    from specml.comparison import compare_spectra
    from specml.errors import SpecmlError

    if reference is None or predicted is None:
        return {"pcc": None, "wd_cm1": None, "error": "spectrum missing"}, None
    try:
        result = compare_spectra(reference, predicted, *COMPARE_RANGE_CM1)
    except SpecmlError as exc:
        return {"pcc": None, "wd_cm1": None, "error": str(exc)}, None
    return {"pcc": result.pcc, "wd_cm1": result.wd_cm1, "sis": result.sis}, result


def against_experiment(spectrum, files: list[Path]) -> tuple[dict, object]:
    """Comparison with every experimental file of a molecule; the molecule's PCC/WD are the
    mean over its files. Returns the entry and the first preprocessed experimental spectrum."""
    from specml.errors import SpecmlError
    from specml.experiment import load_absorbance

    rows, shown = [], None
    for path in files:
        try:
            experiment = load_absorbance(path)
        except SpecmlError as exc:
            rows.append({"file": path.name, "pcc": None, "wd_cm1": None, "error": str(exc)})
            continue
        numbers, result = compare(experiment, spectrum)
        rows.append({"file": path.name, **numbers})
        if result is not None and shown is None:
            shown = result.a.with_metadata(label=f"experiment ({path.name})")
    return {
        "pcc": mean_std(r["pcc"] for r in rows)["mean"],
        "wd_cm1": mean_std(r["wd_cm1"] for r in rows)["mean"],
        "files": rows,
    }, shown


# -- reference MD ---------------------------------------------------------------------------
class ReferenceRuns:
    """Reference-MD trajectories of (molecule, temperature) pairs, started at once and collected later."""

    def __init__(self, pool: ReferenceMDPool, folder: Path, config):
        self.pool, self.folder, self.config = pool, folder, config
        self.handles: dict[tuple[str, float], list] = {}
        self.errors: dict[tuple[str, float], str] = {}
        self._paths: dict[tuple[str, float], list[str]] = {}

    def submit(self, name: str, atoms, temperature_k: float, seed: int) -> None:
        from specml.workflow.state import safe_name

        folder = self.folder / f"{temperature_k:.0f}K" / safe_name(name)
        self.handles[(name, temperature_k)] = self.pool.submit(
            trajectory_tasks(folder, atoms, self.config, seed, temperature_k)
        )

    def collect(self) -> None:
        for key, handles in self.handles.items():
            try:
                self._paths[key] = [self.pool.result(h) for h in handles]
            except Exception as exc:  # a blown-up reference trajectory is reported, not fatal
                self.errors[key] = f"{type(exc).__name__}: {exc}"

    def spectrum(self, name: str, temperature_k: float, max_ps: float | None = None):
        """Mean ± std reference spectrum and CPU seconds (None, 0 if the runs failed)."""
        paths = self._paths.get((name, temperature_k))
        if not paths:
            return None, 0.0
        label = f"xTB reference MD {temperature_k:.0f} K" + (f", first {max_ps:g} ps" if max_ps else "")
        return reference_spectrum(paths, self.config, label, max_ps)


def reference_minima(molecules: list, reference: str, path: Path) -> dict:
    """Reference-optimised structures of molecules outside the workflow (cached in ``path``)."""
    from ase import Atoms

    from specml.molecules.optimize import optimize_geometry
    from specml.reference import make_reference
    from specml.workflow.state import atomic_write_json

    cached = json.loads(path.read_text()) if path.exists() else {}
    method = make_reference(reference)
    for mol in molecules:
        if mol.name not in cached:
            minimum = optimize_geometry(mol.atoms, method, fmax=1e-4)
            cached[mol.name] = {
                "symbols": minimum.get_chemical_symbols(),
                "positions": minimum.positions.tolist(),
            }
            atomic_write_json(path, cached)
    return {name: Atoms(v["symbols"], positions=v["positions"]) for name, v in cached.items()}


# -- parts of the benchmark -----------------------------------------------------------------
def reference_call_counts(database, names: list[str], iterations: list[int]) -> dict:
    """Training-data reference calculations (labelled or failed, test set excluded) per
    molecule, and per molecule and iteration, counted in the label database."""
    per_molecule, per_iteration = {}, {}
    for name in names:
        per_molecule[name] = database.count(molecule=name) - database.count(molecule=name, kind="test")
        per_iteration[name] = {str(i): database.count(molecule=name, iteration=i) for i in iterations}
    return {
        "per_molecule": per_molecule,
        "per_molecule_and_iteration": per_iteration,
        "total": int(sum(per_molecule.values())),
    }


def ml_production_file(folder: Path, name: str) -> Path:
    from specml.workflow.state import safe_name

    return folder / f"{safe_name(name)}.npz"


def convergence_entry(
    name: str, ml_full, ml_file: Path, refs: ReferenceRuns, config, short_ps: float
) -> dict:
    """Spectra from the first ``short_ps`` of each trajectory against the whole production run."""
    runs, dt = correlation_runs(ml_file, config, short_ps)
    ml_short = (
        spectrum_of_runs(runs, dt, config, {"label": f"{name} ML-MD, first {short_ps:g} ps"})
        if runs
        else None
    )
    ref_full, _ = refs.spectrum(name, config.production_temperature_k)
    ref_short, _ = refs.spectrum(name, config.production_temperature_k, short_ps)
    return {
        "short_ps": short_ps,
        "full_ps": config.production_ps,
        "pcc_ml_short_vs_ml_full": compare(ml_full, ml_short)[0]["pcc"],
        "pcc_reference_short_vs_reference_full": compare(ref_full, ref_short)[0]["pcc"],
        "ml_vs_reference_short": compare(ref_short, ml_short)[0],
        "ml_vs_reference_full": compare(ref_full, ml_full)[0],
    }, ml_short


def uncertainty_error_correlation(rows: list[dict]) -> dict:
    """Spearman correlation between the committee uncertainty and the error (1 - PCC
    against reference MD); does a high uncertainty flag the poor predictions?"""
    from scipy.stats import spearmanr

    pairs = [
        (r["uncertainty"], 1.0 - r["pcc"])
        for r in rows
        if r.get("uncertainty") is not None
        and r.get("pcc") is not None
        and math.isfinite(r["uncertainty"])
        and math.isfinite(r["pcc"])
    ]
    out = {"n": len(pairs), "spearman_rho": None, "p_value": None}
    if len(pairs) >= 3:
        x, y = zip(*pairs, strict=True)
        if len(set(x)) > 1 and len(set(y)) > 1:
            rho, p = spearmanr(x, y)
            out.update(spearman_rho=float(rho), p_value=float(p))
    missing = [r for r in rows if r.get("ml_spectrum") is False]
    out["n_without_ml_spectrum"] = len(missing)
    out["n_without_ml_spectrum_flagged"] = sum(bool(r.get("out_of_domain")) for r in missing)
    flagged = [r["pcc"] for r in rows if r.get("out_of_domain") and r.get("pcc") is not None]
    unflagged = [r["pcc"] for r in rows if not r.get("out_of_domain") and r.get("pcc") is not None]
    out["pcc_flagged"] = mean_std(flagged)
    out["pcc_not_flagged"] = mean_std(unflagged)
    return out


def seconds_per_call(reference: str, atoms, n_calls: int, path: Path, seed: int = 0) -> dict:
    """Measured wall seconds of one reference energy+force+dipole call (fresh SCF each), on
    ``n_calls`` randomly displaced copies of ``atoms``; cached in ``path``."""
    from specml.reference import make_reference
    from specml.workflow.state import atomic_write_json

    if path.exists():
        return json.loads(path.read_text())
    method = make_reference(reference)
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(n_calls):
        work = atoms.copy()
        work.positions += rng.normal(0.0, 0.02, work.positions.shape)
        start = time.perf_counter()
        method.label(work)
        times.append(time.perf_counter() - start)
    out = {
        "reference": method.describe(),
        "n_calls": n_calls,
        "seconds": times,
        "seconds_per_call": float(np.mean(times)),
        "torch_threads": 1,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    atomic_write_json(path, out)
    return out


def dft_case(
    settings: dict, run_dir: Path, experiments: dict, executor, console, stage_done=None
) -> tuple[dict, dict]:
    """Part 7: the workflow on methanol with the PySCF reference; its cost, an estimate of the
    equivalent DFT MD (s per call x thermalisation + production steps) and Exp-ML agreement."""
    from specml.molecules.inputs import canonical_smiles, molecule_from_smiles
    from specml.workflow import IRWorkflow, get_workflow_config
    from specml.workflow.production import spectrum_key

    config = get_workflow_config(
        settings["dft_workflow_preset"], reference=settings["dft_reference"], **settings["dft_overrides"]
    )
    methanol = molecule_from_smiles("CO", "methanol")
    workflow = IRWorkflow(
        [methanol],
        run_dir / "dft_methanol",
        config,
        executor=executor,
        console=console,
        show_progress=executor.show_progress,
        stage_done=stage_done,
    )
    minimum = workflow.prepared()[0].atoms
    timing = seconds_per_call(
        config.reference,
        minimum,
        settings["dft_timing_calls"],
        run_dir / "dft_methanol" / "seconds_per_call.json",
    )
    result = workflow.run()
    spectrum = result.spectra.get(spectrum_key(methanol.name, config.production_temperature_k))
    vs_exp, shown = (
        against_experiment(spectrum, experiments.get(canonical_smiles("CO"), []))
        if spectrum is not None
        else ({"pcc": None, "wd_cm1": None, "files": []}, None)
    )
    steps = config.thermalization_steps + config.production_steps
    functional, _, basis = config.reference.partition(":")[2].partition("/")
    entry = {
        "status": "done",
        "reference": config.reference,
        "reference_description": result.summary["reference"],
        "functional": functional,
        "basis": basis,
        "workflow_preset": settings["dft_workflow_preset"],
        "reference_calls": result.summary["reference_calls"],
        "reference_calls_geometry_and_hessian": result.summary["reference_calls_evaluation"],
        "reference_calls_test_set": workflow.database.count(kind="test"),
        "wall_time_s": result.summary["wall_time_s_total"],
        "wall_time_s_by_stage": result.summary["wall_time_s_by_stage"],
        "seconds_per_force_call": timing["seconds_per_call"],
        "seconds_per_force_call_samples": timing["seconds"],
        "aimd_steps": steps,
        "aimd_cost_estimate_s": timing["seconds_per_call"] * steps,
        "aimd_cost_note": f"one trajectory of {config.thermalization_ps:g} + {config.production_ps:g} ps at "
        f"{config.timestep_fs:g} fs; the ML protocol runs {config.n_trajectories} of them",
        "harmonic_mae_cm1": result.learning_curve[-1]["harmonic_mae_cm1"],
        "iterations": result.summary["iterations"],
        "test_set": result.summary["test_set"],
        "pcc_vs_experiment": vs_exp["pcc"],
        "wd_vs_experiment": vs_exp["wd_cm1"],
        "experiment": vs_exp["files"],
        "learning_curve": result.learning_curve,
    }
    return entry, {"spectrum": spectrum, "experiment": shown, "curve": result.learning_curve}


def skipped_dft(settings: dict, reason: str) -> dict:
    return {
        "status": "skipped",
        "reason": reason,
        "reference": settings["dft_reference"],
        "reference_calls": None,
        "wall_time_s": None,
        "aimd_cost_estimate_s": None,
        "pcc_vs_experiment": None,
    }


# -- the run ----------------------------------------------------------------------------------
def stage_artifacts(settings: dict, config, run_dir: Path, artifacts: Path, commit: bool) -> StageArtifacts:
    """The stage artifacts of this benchmark's run directory (see ``--artifacts``)."""
    from rich.console import Console

    console = Console()
    windows = (settings["convergence_ps"],)
    stages = StageArtifacts(artifacts, run_dir, config.max_correlation_fs, windows, commit)
    stages.say = lambda message: console.print(message, highlight=False)
    return stages


def run(
    preset: str,
    settings: dict,
    run_dir: Path,
    workers: int,
    dft: bool,
    show_progress: bool,
    artifacts: Path | None = None,
    commit_artifacts: bool = False,
) -> tuple[dict, dict]:
    """Every computation of the benchmark; returns the results (JSON-able) and the spectra to plot.

    With ``artifacts`` (a folder) the finished stages stored there are restored into ``run_dir``
    first, and the folder is brought up to date after every stage (committed with ``commit_artifacts``)."""
    import torch
    from rich.console import Console

    from specml.workflow import IRWorkflow, get_workflow_config
    from specml.workflow.production import spectrum_key

    torch.set_num_threads(1)
    started = time.perf_counter()
    console = Console()
    config = get_workflow_config(settings["workflow_preset"], **settings["workflow_overrides"])
    check_settings(settings, config)
    train = select_molecules(TRAIN_CSV, settings["train"])
    transfer = select_molecules(TRANSFER_CSV, settings["transfer"])
    experiments = experiment_index()
    series = settings["series_molecule"]
    if series not in {m.name for m in train}:
        raise BenchmarkError(
            f"the temperature-series molecule {series!r} is not among the training molecules"
        )
    temperature = config.production_temperature_k
    stages = None
    if artifacts is not None:
        stages = stage_artifacts(settings, config, run_dir, artifacts, commit_artifacts)
        stages.restore()
    save_stage = stages.save if stages is not None else (lambda stage: None)

    with ReferenceMDPool(workers, show_progress) as pool:
        executor = pool.executor
        workflow = IRWorkflow(
            train,
            run_dir / "xtb",
            config,
            executor=executor,
            console=console,
            show_progress=show_progress,
            stage_done=save_stage,
        )
        minima = dict(workflow.prepared_structures())
        transfer_minima = reference_minima(
            transfer, config.reference, run_dir / "transfer" / "reference_minima.json"
        )
        # Reference MD is submitted first, at a lower priority than the workflow's tasks on the
        # same workers: it takes every worker the ML work leaves free.
        refs = ReferenceRuns(pool, run_dir / "reference_md", config)
        for i, (name, atoms) in enumerate(minima.items()):
            refs.submit(name, atoms, temperature, seed=10_000 + 100 * i)
        for j, t in enumerate(settings["temperatures_k"]):
            if t != temperature:
                refs.submit(series, minima[series], t, seed=20_000 + 100 * j)
        for i, mol in enumerate(transfer):
            refs.submit(mol.name, transfer_minima[mol.name], temperature, seed=30_000 + 100 * i)

        result = workflow.run()
        series_ml, transfer_ml, domain, unseen = extra_ml_spectra(
            workflow, result, series, settings["temperatures_k"], transfer, run_dir
        )
        save_stage("temperature series and transfer ML-MD")
        if dft:
            dft_entry, dft_plot = dft_case(settings, run_dir, experiments, executor, console, save_stage)
            save_stage("DFT methanol")
        else:
            dft_entry, dft_plot = (
                skipped_dft(settings, "not requested (the small preset runs it only with --dft)"),
                {},
            )
        refs.collect()
    save_stage("reference MD")

    names = [m.name for m in train]
    curve = result.learning_curve
    calls = reference_call_counts(workflow.database, names, [e["iteration"] for e in curve])
    if calls["total"] != result.summary["reference_calls"]:
        raise BenchmarkError(
            f"per-molecule reference calls ({calls['total']}) do not add up to the workflow's "
            f"count ({result.summary['reference_calls']})"
        )
    plots = {"train": {}, "transfer": {}, "series": {}, "dft": dft_plot, "curve": curve}

    # Tables 2 and 3, with the convergence of part 4.
    train_rows = []
    for mol in train:
        ml = result.spectra.get(spectrum_key(mol.name, temperature))
        row, plots["train"][mol.name] = ml_against_references(mol, ml, refs, temperature, experiments)
        conv, plots["train"][mol.name]["ml_short"] = (
            convergence_entry(
                mol.name,
                ml,
                ml_production_file(workflow.dirs.production(temperature), mol.name),
                refs,
                config,
                settings["convergence_ps"],
            )
            if ml is not None
            else (None, None)
        )
        train_rows.append(
            {
                **row,
                "convergence": conv,
                "reference_calls": calls["per_molecule"][mol.name],
                "harmonic_mae_cm1": curve[-1]["harmonic_per_molecule"].get(mol.name, {}).get("mae_cm1"),
                "uncertainty": ml.metadata.get("mean_relative_force_uncertainty") if ml is not None else None,
                "trajectories_stopped": ml.metadata.get("n_trajectories_stopped") if ml is not None else None,
            }
        )

    # Part 5: temperature series.
    series_rows = []
    for t in settings["temperatures_k"]:
        ref, _ = refs.spectrum(series, t)
        series_rows.append(
            {
                "temperature_k": t,
                **compare(ref, series_ml[t])[0],
                "reference_md_error": refs.errors.get((series, t)),
            }
        )
        plots["series"][t] = {"ml": series_ml[t], "reference": ref}

    # Part 6: transferability.
    transfer_rows = []
    for mol in transfer:
        row, plots["transfer"][mol.name] = ml_against_references(
            mol, transfer_ml.get(mol.name), refs, temperature, experiments
        )
        report = domain.get(mol.name, {})
        transfer_rows.append(
            {
                **row,
                "unseen_element": unseen.get(mol.name),
                "pcc": row["vs_reference"]["pcc"],
                "uncertainty_at_minimum": report.get("uncertainty_at_minimum"),
                "uncertainty": report.get("mean_uncertainty_md"),
                "out_of_domain": report.get("out_of_domain", True),
            }
        )

    results = {
        "preset": preset,
        "preset_description": settings["description"],
        "is_smoke_test": preset != "full",
        "settings": {
            **{k: v for k, v in settings.items() if k != "description"},
            "workflow": config.to_dict(),
        },
        "molecules": names,
        "transfer_molecules": [m.name for m in transfer],
        **table1_errors(result.summary["test_set"]),
        **learning_summary(result, calls, workflow.database.count(kind="test"), config.max_iterations),
        **spectra_summary(train_rows),
        "per_molecule": train_rows,
        "convergence": convergence_summary(train_rows, settings["convergence_ps"], config.production_ps),
        "temperature_series": {"molecule": series, "rows": series_rows},
        "transferability": transfer_summary(transfer_rows, train_rows),
        "final_training": training_budget(workflow.dirs.final_models),
        "single_molecule_retraining": single_molecule_retraining(run_dir / "xtb", curve),
        "dft_methanol": dft_entry,
        "wall_time_s_workflow": result.summary["wall_time_s_total"],
        "wall_time_s_by_stage": result.summary["wall_time_s_by_stage"],
        "reference_md_cpu_s": float(sum(r["reference_md_cpu_s"] for r in train_rows)),
        "wall_time_s_this_invocation": time.perf_counter() - started,
        "reference_md_errors": {f"{k[0]}@{k[1]:.0f}K": v for k, v in refs.errors.items()},
        "paper": PAPER,
        "targets": TARGETS,
        **artifact_entry(artifacts),
    }
    methanol = next((r for r in train_rows if r["canonical_smiles"] == "CO"), None)
    if methanol is not None:
        results["methanol"] = {
            "pcc_ml_vs_reference": methanol["vs_reference"]["pcc"],
            "pcc_ml_vs_experiment": (methanol["vs_experiment"] or {}).get("pcc"),
        }
    results["target_verdicts"] = target_verdicts(results)
    if settings["model_set"]:
        results["model_set"] = ship_model_set(
            settings["model_set"], workflow, minima, config, results, commit_artifacts
        )
    return results, plots


def ship_model_set(name: str, workflow, minima: dict, config, results: dict, commit: bool) -> str:
    """The final committee as the pretrained model set ``name`` (``specml/data/models/NAME``),
    with the benchmark's figures as provenance; committed with ``commit``. Returns its folder."""
    import subprocess

    from specml.models.model_sets import SHIPPED_MODEL_SETS, write_model_set

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    figures = (
        "harmonic_mae_cm1",
        "energy_mae_meV",
        "force_mae_meV_per_A",
        "dipole_mae_mD",
        "reference_calls_per_molecule",
        "pcc_ml_vs_reference_mean",
        "pcc_ml_vs_experiment_mean",
    )
    target = write_model_set(
        workflow.dirs.final_models,
        SHIPPED_MODEL_SETS / name,
        f"the committee of the PALIRS benchmark: {len(minima)} small organic molecules "
        "(train24), GFN2-xTB labels",
        config.reference,
        minima,
        config.temperatures_k,
        {
            "made_by": "benchmarks/palirs.py --preset full",
            "report": "docs/benchmark.md",
            "commit": head.stdout.strip() or None,
            "date": time.strftime("%Y-%m-%d"),
            "model_preset": config.model_preset,
            **{k: results.get(k) for k in figures},
        },
    )
    if commit:
        commit_folder(target, f"pretrained model set {name} from the full PALIRS benchmark")
    return os.path.relpath(target, ROOT)


def artifact_entry(folder: Path | None) -> dict:
    """Where the stage artifacts are and their size (``artifacts_mb``), when the run keeps them."""
    from specml.workflow.artifacts import artifact_summary

    if folder is None:
        return {"artifacts_mb": None, "artifacts": None}
    summary = artifact_summary(folder)
    shown = os.path.relpath(folder, ROOT) if Path(folder).resolve().is_relative_to(ROOT) else str(folder)
    return {"artifacts_mb": summary["total_mb"], "artifacts": {"folder": shown, **summary}}


def extra_ml_spectra(workflow, result, series: str, temperatures_k, transfer: list, run_dir: Path):
    """ML spectra from the final models, without retraining: the series molecule at each
    temperature and the never-trained molecules at the production temperature, with the
    committee's domain report; molecules with an element the committee does not know are
    listed apart, with the reason. All of this MD shares batches (small batches cost far more
    per step)."""
    from specml.errors import UnsupportedElementError
    from specml.workflow import ProductionJob, job_spectra, run_production
    from specml.workflow.prediction import domain_report, load_predicting_committee, prediction_structures
    from specml.workflow.production import spectrum_key
    from specml.workflow.state import temperature_folder

    config, models = workflow.config, workflow.dirs.final_models
    minimum = dict(workflow.prepared_structures())[series]
    series_jobs = {
        t: ProductionJob([(series, minimum)], t, temperature_folder(run_dir / "temperature_series", t))
        for t in temperatures_k
        if t != config.production_temperature_k
    }
    committee = load_predicting_committee(models)
    predictable, unseen = [], {}
    for mol in transfer:
        try:
            committee.check_elements(mol.atoms)
            predictable.append(mol)
        except UnsupportedElementError as exc:
            unseen[mol.name] = str(exc)
    jobs = list(series_jobs.values())
    transfer_job, domain = None, {}
    if predictable:
        structures, domain = prediction_structures(committee, predictable, run_dir / "transfer" / "ml_minima")
        transfer_t = config.production_temperature_k
        transfer_job = ProductionJob(
            structures, transfer_t, temperature_folder(run_dir / "transfer" / "production", transfer_t)
        )
        jobs.append(transfer_job)
    run_production(jobs, models, config, workflow.executor, run_dir / "extra_md_checkpoints")

    series_ml = {
        t: (
            job_spectra(series_jobs[t], models, config, workflow.say).get(series)
            if t in series_jobs
            else result.spectra.get(spectrum_key(series, t))
        )
        for t in temperatures_k
    }
    transfer_ml = {}
    if transfer_job is not None:
        transfer_ml = job_spectra(transfer_job, models, config, workflow.say)
        domain = domain_report(domain, {transfer_job.temperature_k: transfer_ml}, workflow.say)
    return series_ml, transfer_ml, domain, unseen


def ml_against_references(
    mol, ml, refs: ReferenceRuns, temperature_k: float, experiments: dict
) -> tuple[dict, dict]:
    """One molecule's ML spectrum against its reference MD and its experimental files."""
    from specml.molecules.inputs import canonical_smiles

    ref, ref_cpu = refs.spectrum(mol.name, temperature_k)
    smiles = canonical_smiles(mol.smiles)
    files = experiments.get(smiles, [])
    vs_exp, exp_shown = against_experiment(ml, files) if files and ml is not None else (None, None)
    row = {
        "molecule": mol.name,
        "smiles": mol.smiles,
        "canonical_smiles": smiles,
        "ml_spectrum": ml is not None,
        "vs_reference": compare(ref, ml)[0],
        "vs_experiment": vs_exp,
        "reference_md_error": refs.errors.get((mol.name, temperature_k)),
        "reference_md_cpu_s": ref_cpu,
    }
    return row, {"ml": ml, "reference": ref, "experiment": exp_shown}


def table1_errors(test: dict) -> dict:
    keys = (
        "energy_mae_meV",
        "energy_rmse_meV",
        "force_mae_meV_per_A",
        "force_rmse_meV_per_A",
        "dipole_mae_mD",
        "dipole_rmse_mD",
    )
    return {**{k: test.get(k) for k in keys}, "test_set": test}


def learning_summary(result, calls: dict, test_calls: int, max_iterations: int) -> dict:
    curve = result.learning_curve
    return {
        "harmonic_mae_cm1": curve[-1]["harmonic_mae_cm1"],
        "harmonic_rmse_cm1": curve[-1]["harmonic_rmse_cm1"],
        "iterations": result.summary["iterations"],
        "max_iterations": max_iterations,
        "converged": result.summary["converged"],
        "learning_curve": curve,
        "reference_calls_total": calls["total"],
        "reference_calls_per_molecule": calls["total"] / len(calls["per_molecule"]),
        "reference_calls_by_molecule": calls["per_molecule"],
        "reference_calls_by_molecule_and_iteration": calls["per_molecule_and_iteration"],
        "reference_calls_geometry_and_hessian": result.summary["reference_calls_evaluation"],
        "reference_calls_test_set": test_calls,
    }


def training_budget(models_dir: Path) -> dict:
    """How far the final potentials' training went: epochs run against the preset's epochs
    (a step cap shortens them), and whether the validation loss was still falling when stage
    one ended (the share it dropped over stage one's last fifth). Evidence for the harmonic
    MAE: a model stopped while still improving is limited by its training budget."""
    from specml.models.committee import MANIFEST_NAME

    committee = json.loads((models_dir / MANIFEST_NAME).read_text())
    preset = committee["preset"]
    members = []
    for h in committee["histories"]["energy"]:
        stage_one = h["valid_loss"][: (h["stage_two_from_epoch"] or h["epochs_run"] + 1) - 1]
        tail = max(1, len(stage_one) // 5)
        before, last = min(stage_one[:-tail], default=None), min(stage_one[-tail:], default=None)
        members.append(
            {
                "seed": h["seed"],
                "epochs_run": h["epochs_run"],
                "optimizer_steps": h["epochs_run"] * h["steps_per_epoch"],
                "stage_two_from_epoch": h["stage_two_from_epoch"],
                "train_time_s": h["train_time_s"],
                "valid_force_mae_meV_per_A": h["valid_mae"]["forces_meV_per_A"],
                "valid_energy_mae_meV": h["valid_mae"]["energy_meV"],
                "stage_one_valid_loss_drop_last_fifth": (before - last) / before if before else None,
            }
        )
    return {
        "preset": preset["name"],
        "preset_epochs": preset["epochs"],
        "max_steps": preset.get("max_steps"),
        "num_channels": preset["num_channels"],
        "max_L": preset["max_L"],
        "members": members,
    }


def single_molecule_retraining(workflow_dir: Path, curve: list[dict]) -> list[dict]:
    """Rows of ``benchmarks/training_recipe.py --molecule`` for this run: one potential retrained
    on one molecule's labels alone, beside that molecule's harmonic MAE in the committee at the
    same iteration. Separates what the architecture can learn from what the run's training
    budget gave it."""
    if not TRAINING_RECIPE_RESULTS.exists():
        return []
    by_iteration = {e["iteration"]: e["harmonic_per_molecule"] for e in curve}
    rows = []
    for line in TRAINING_RECIPE_RESULTS.read_text().splitlines():
        entry = json.loads(line)
        if (
            entry.get("molecule") is None
            or Path(entry["run"]).resolve() != workflow_dir.resolve()
            or ":" in entry["iterations"]
        ):
            continue
        committee = by_iteration.get(int(entry["iterations"]), {}).get(entry["molecule"], {})
        rows.append(
            {
                "molecule": entry["molecule"],
                "iteration": int(entry["iterations"]),
                "overrides": entry["overrides"],
                "n_structures": entry["n_structures"],
                "epochs_run": entry["epochs_run"],
                "train_time_s": sum(entry["train_time_s"]),
                "valid_force_mae_meV_per_A": entry["valid_mae"]["forces_meV_per_A"],
                "harmonic_mae_cm1_alone": entry["mae_cm1"],
                "harmonic_mae_cm1_in_committee": committee.get("mae_cm1"),
            }
        )
    return rows


def spectra_summary(rows: list[dict]) -> dict:
    """Tables 2 and 3: mean and std of PCC and WD over the molecules."""
    out = {}
    for against, key in (("reference", "vs_reference"), ("experiment", "vs_experiment")):
        for metric, field in (("pcc", "pcc"), ("wd", "wd_cm1")):
            stats = mean_std(r[key][field] for r in rows if r[key])
            out[f"{metric}_ml_vs_{against}_mean"], out[f"{metric}_ml_vs_{against}_std"] = (
                stats["mean"],
                stats["std"],
            )
            out[f"n_molecules_vs_{against}"] = stats["n"]
    return out


def convergence_summary(rows: list[dict], short_ps: float, full_ps: float) -> dict:
    done = [r["convergence"] for r in rows if r["convergence"]]
    return {
        "short_ps": short_ps,
        "full_ps": full_ps,
        "pcc_ml_vs_reference_short": mean_std(c["ml_vs_reference_short"]["pcc"] for c in done),
        "pcc_ml_vs_reference_full": mean_std(c["ml_vs_reference_full"]["pcc"] for c in done),
        "pcc_ml_short_vs_ml_full": mean_std(c["pcc_ml_short_vs_ml_full"] for c in done),
    }


def transfer_summary(rows: list[dict], train_rows: list[dict]) -> dict:
    in_domain = [
        {"uncertainty": r["uncertainty"], "pcc": r["vs_reference"]["pcc"], "out_of_domain": False}
        for r in train_rows
    ]
    return {
        "rows": rows,
        "pcc_ml_vs_reference": mean_std(r["pcc"] for r in rows),
        "pcc_ml_vs_experiment": mean_std(r["vs_experiment"]["pcc"] for r in rows if r["vs_experiment"]),
        "uncertainty_vs_error_transfer": uncertainty_error_correlation(rows),
        "uncertainty_vs_error_all": uncertainty_error_correlation(rows + in_domain),
    }


# -- targets --------------------------------------------------------------------------------
def target_verdicts(r: dict) -> list[dict]:
    """Each acceptance target: value, met or missed, and what the data say about a miss."""
    smoke = (
        (
            " These are the small preset's smoke-test settings (tiny models, one iteration, sub-ps MD): "
            "the targets apply to the full preset."
        )
        if r["is_smoke_test"]
        else ""
    )
    verdicts = []

    value = r["pcc_ml_vs_reference_mean"]
    worst = sorted(
        (row for row in r["per_molecule"] if row["vs_reference"]["pcc"] is not None),
        key=lambda row: row["vs_reference"]["pcc"],
    )[:3]
    reason = (
        "lowest: "
        + ", ".join(
            f"{w['molecule']} (PCC {w['vs_reference']['pcc']:.2f}, harmonic MAE {fmt(w['harmonic_mae_cm1'], 1)} cm-1, "
            f"uncertainty {fmt(w['uncertainty'], 3)}, {w['trajectories_stopped'] or 0} trajectories stopped)"
            for w in worst
        )
        + "."
    )
    verdicts.append(
        verdict(
            "mean ML-vs-reference PCC over the training molecules",
            "≥ 0.90",
            value,
            value is not None and value >= TARGETS["pcc_ml_vs_reference_mean"],
            reason + smoke,
        )
    )

    value = r["harmonic_mae_cm1"]
    worst = sorted(
        (
            (row["molecule"], row["harmonic_mae_cm1"])
            for row in r["per_molecule"]
            if row["harmonic_mae_cm1"] is not None
        ),
        key=lambda x: -x[1],
    )[:3]
    stop = (
        f"the loop hit its iteration limit ({r['iterations']} of max {r['max_iterations']}) before the target"
        if not r["converged"]
        else "converged"
    )
    reason = (
        f"{stop}; largest per-molecule MAE: "
        + ", ".join(f"{n} ({v:.1f} cm-1)" for n, v in worst)
        + ". "
        + training_budget_reason(r["final_training"])
        + retraining_reason(r["single_molecule_retraining"])
    )
    verdicts.append(
        verdict(
            "final harmonic-frequency MAE",
            "≤ 5 cm-1",
            value,
            value is not None and value <= TARGETS["harmonic_mae_cm1"],
            reason + smoke,
        )
    )

    value = r["reference_calls_per_molecule"]
    initial = [int(c.get("0", 0)) for c in r["reference_calls_by_molecule_and_iteration"].values()]
    reason = (
        f"the initial normal-mode data alone take {np.mean(initial):.0f} calls per molecule on average, "
        f"active learning the other {value - np.mean(initial):.0f}."
    )
    verdicts.append(
        verdict(
            "reference calculations per molecule (training data)",
            "< 300",
            value,
            value < TARGETS["reference_calls_per_molecule"],
            reason + smoke,
        )
    )
    return verdicts


def training_budget_reason(t: dict) -> str:
    m = t["members"]
    drops = finite(x["stage_one_valid_loss_drop_last_fifth"] for x in m)
    epochs = sorted({x["epochs_run"] for x in m})
    capped = t["max_steps"] and max(epochs) < t["preset_epochs"]
    return (
        f"The final potentials ({t['num_channels']} channels, L={t['max_L']}) trained "
        f"{'/'.join(map(str, epochs))} of the preset's {t['preset_epochs']} epochs"
        + (f", stopped by the cap of {t['max_steps']:,} optimiser steps" if capped else "")
        + f" (about {np.mean([x['train_time_s'] for x in m]) / 60:.0f} min each on one core); "
        + (
            f"their stage-one validation loss was still falling by {percent(float(np.mean(drops)))} over its last "
            f"fifth, "
            if drops
            else ""
        )
        + f"validation force MAE {np.mean([x['valid_force_mae_meV_per_A'] for x in m]):.1f} meV/Å "
        f"(paper test set: {PAPER['force_mae_meV_per_A']} meV/Å)."
    )


def retraining_reason(rows: list[dict]) -> str:
    if not rows:
        return ""
    return (
        " One potential retrained on one molecule's labels alone (part 2): "
        + "; ".join(
            f"{row['molecule']} ({describe_overrides(row['overrides'])}, {row['epochs_run']} epochs) "
            f"{row['harmonic_mae_cm1_alone']:.1f} cm-1 against {fmt(row['harmonic_mae_cm1_in_committee'], 1)} in the "
            f"committee"
            for row in rows
        )
        + "."
    )


def describe_overrides(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "default preset"


def verdict(name: str, target: str, value, met: bool, reason: str) -> dict:
    return {
        "target": name,
        "required": target,
        "value": value,
        "met": bool(met),
        "reason": None if met else reason,
    }


# -- figures ------------------------------------------------------------------------------------
def _cropped(spectrum, label: str):
    if spectrum is None:
        return None
    return spectrum.crop(*COMPARE_RANGE_CM1).with_metadata(label=label)


@contextlib.contextmanager
def saved_figure(path: Path, nrows: int = 1, ncols: int = 1, **kwargs):
    """``(fig, axes)`` of a new figure, laid out and saved to ``path`` (PNG) on leaving the block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def plot_overlay_grid(panels: dict[str, list], path: Path, ncols: int = 4) -> Path | None:
    """One panel per entry: normalised spectra with ±std bands (ML, reference MD, experiment)."""
    from specml.plotting import draw_spectra

    panels = {k: [s for s in v if s is not None] for k, v in panels.items()}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with saved_figure(path, nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False) as (fig, axes):
        for ax, (title, spectra) in zip(axes.flat, panels.items(), strict=False):
            draw_spectra(ax, spectra, normalize=True)
            ax.set_title(title, fontsize="medium")
            ax.legend(loc="upper left", fontsize="x-small")
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
    return path


def plot_pcc_bars(results: dict, path: Path) -> Path:
    """PCC per molecule: ML vs reference MD and ML vs experiment, training and transfer sets."""
    groups = [
        ("training molecules", results["per_molecule"]),
        ("transfer molecules", results["transferability"]["rows"]),
    ]
    widths = [max(len(rows), 1) for _, rows in groups]
    with saved_figure(
        path,
        1,
        2,
        figsize=(max(8.0, 0.45 * sum(widths) + 3), 4.2),
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    ) as (fig, axes):
        for ax, (title, rows) in zip(axes[0], groups, strict=True):
            x = np.arange(len(rows))
            ref = [nan_if_none(r["vs_reference"]["pcc"]) for r in rows]
            exp = [nan_if_none((r["vs_experiment"] or {}).get("pcc")) for r in rows]
            ax.bar(x - 0.2, ref, 0.4, label="ML vs reference MD")
            ax.bar(x + 0.2, exp, 0.4, label="ML vs experiment")
            for k, r in enumerate(rows):
                if not r.get("ml_spectrum", True):
                    ax.text(
                        k, 0.02, "no ML spectrum", rotation=90, ha="center", va="bottom", fontsize="x-small"
                    )
            ax.axhline(TARGETS["pcc_ml_vs_reference_mean"], color="k", ls="--", lw=0.8, label="target 0.90")
            ax.set_xticks(x, [r["molecule"] for r in rows], rotation=60, ha="right", fontsize="small")
            ax.set_ylim(min(0.0, np.nanmin(ref + exp + [0.0])), 1.0)
            ax.set_ylabel("PCC")
            ax.set_title(title)
        axes[0][0].legend(fontsize="small", loc="lower left")
    return path


def plot_reference_calls(results: dict, path: Path) -> Path:
    """Reference calculations per molecule, stacked by active-learning iteration."""
    table = results["reference_calls_by_molecule_and_iteration"]
    names = list(table)
    iterations = sorted({int(i) for c in table.values() for i in c})
    with saved_figure(path, figsize=(max(6.0, 0.45 * len(names) + 2), 4.0)) as (fig, ax):
        bottom = np.zeros(len(names))
        for i in iterations:
            counts = np.array([table[n].get(str(i), 0) for n in names], dtype=float)
            ax.bar(names, counts, bottom=bottom, label="initial data" if i == 0 else f"iteration {i}")
            bottom += counts
        ax.axhline(TARGETS["reference_calls_per_molecule"], color="k", ls="--", lw=0.8, label="target < 300")
        ax.set_ylabel("reference calculations")
        ax.tick_params(axis="x", rotation=60)
        ax.legend(fontsize="x-small", ncol=2)
    return path


def plot_uncertainty(results: dict, path: Path) -> Path:
    """Committee uncertainty against PCC (vs reference MD), training and transfer molecules."""
    with saved_figure(path, figsize=(6.0, 4.2)) as (fig, ax):
        for rows, marker, label in (
            (results["per_molecule"], "o", "training"),
            (results["transferability"]["rows"], "^", "transfer"),
        ):
            pts = [
                (r["uncertainty"], r["vs_reference"]["pcc"], r["molecule"])
                for r in rows
                if r["uncertainty"] is not None and r["vs_reference"]["pcc"] is not None
            ]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
                for u, p, n in pts:
                    ax.annotate(n, (u, p), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("mean relative force uncertainty along the ML-MD")
        ax.set_ylabel("PCC, ML vs reference MD")
        ax.legend(fontsize="small")
    return path


def write_figures(results: dict, plots: dict, folder: Path) -> dict[str, str]:
    """Every figure of the report; returns name -> file path."""
    from specml.plotting import plot_spectra
    from specml.workflow.report import plot_learning_curves

    folder.mkdir(parents=True, exist_ok=True)
    figures = {}

    def keep(name, path):
        if path is not None:
            figures[name] = str(path)

    def overlay(entry):
        return [
            _cropped(entry["ml"], "ML-MD"),
            _cropped(entry["reference"], "reference MD"),
            entry.get("experiment"),
        ]

    keep(
        "overlays_train",
        plot_overlay_grid({n: overlay(e) for n, e in plots["train"].items()}, folder / "overlays_train.png"),
    )
    keep(
        "overlays_transfer",
        plot_overlay_grid(
            {n: overlay(e) for n, e in plots["transfer"].items()}, folder / "overlays_transfer.png"
        ),
    )
    keep(
        "temperature_series",
        plot_overlay_grid(
            {
                f"{results['temperature_series']['molecule']} {t:.0f} K": [
                    _cropped(e["ml"], "ML-MD"),
                    _cropped(e["reference"], "reference MD"),
                ]
                for t, e in plots["series"].items()
            },
            folder / "temperature_series.png",
            ncols=5,
        ),
    )
    short = results["convergence"]["short_ps"]
    full = results["convergence"]["full_ps"]
    keep(
        "convergence",
        plot_overlay_grid(
            {
                n: [
                    _cropped(e["ml_short"], f"ML-MD {short:g} ps"),
                    _cropped(e["ml"], f"ML-MD {full:g} ps"),
                    _cropped(e["reference"], f"reference MD {full:g} ps"),
                ]
                for n, e in plots["train"].items()
            },
            folder / "convergence.png",
        ),
    )
    keep("learning_curves", plot_learning_curves(plots["curve"], folder / "learning_curves.png"))
    keep("reference_calls", plot_reference_calls(results, folder / "reference_calls.png"))
    keep("pcc_bars", plot_pcc_bars(results, folder / "pcc_bars.png"))
    keep("uncertainty", plot_uncertainty(results, folder / "uncertainty_vs_pcc.png"))
    dft = plots.get("dft") or {}
    if dft.get("spectrum") is not None:
        shown = [_cropped(dft["spectrum"], "ML-MD (DFT-trained)")] + (
            [dft["experiment"]] if dft["experiment"] else []
        )
        keep(
            "dft_methanol",
            plot_spectra(
                shown, folder / "dft_methanol.png", title=f"methanol, {results['dft_methanol']['reference']}"
            ),
        )
        keep("dft_learning_curves", plot_learning_curves(dft["curve"], folder / "dft_learning_curves.png"))
    return figures


# -- the report ----------------------------------------------------------------------------------
def nan_if_none(value) -> float:
    return float("nan") if value is None else float(value)


def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def percent(fraction) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.0f} %"


def pm(stats: dict, digits: int = 2) -> str:
    if stats["mean"] is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} (n={stats['n']})"


def summary_pm(r: dict, metric: str, against: str, digits: int = 2) -> str:
    """``pm`` of a Table 2/3 statistic stored flat in the results (see :func:`spectra_summary`)."""
    return pm(
        {
            "mean": r[f"{metric}_ml_vs_{against}_mean"],
            "std": r[f"{metric}_ml_vs_{against}_std"],
            "n": r[f"n_molecules_vs_{against}"],
        },
        digits,
    )


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


PENDING = (
    "> **Pending the full run.** The numbers in this section come from the `small` preset, a smoke test "
    "of the benchmark code (tiny models, one active-learning iteration, sub-picosecond MD); they are not "
    "benchmark results. Run `python benchmarks/palirs.py --preset full` to fill it in.\n"
)


class _Doc:
    """Sections (with the pending banner of a smoke test) and figure links of one report."""

    def __init__(self, results: dict, figures: dict[str, str], base: Path):
        self.r, self.figures, self.base = results, figures, base
        self.cfg = results["settings"]["workflow"]

    def section(self, title: str) -> list[str]:
        return [f"## {title}", ""] + ([PENDING] if self.r["is_smoke_test"] else [])

    def fig(self, name: str, alt: str) -> list[str]:
        if name not in self.figures:
            return []
        return [f"![{alt}]({os.path.relpath(self.figures[name], self.base)})", ""]


def render_markdown(r: dict, figures: dict[str, str], base: Path, json_path: Path) -> str:
    """The report: seven parts, paper values side by side, targets, figures."""
    doc = _Doc(r, figures, base)
    sections = (
        _targets,
        _part1_test_set,
        _part2_learning,
        _part3_tables,
        _part4_convergence,
        _part5_temperature,
        _part6_transfer,
        _part7_dft,
        _cost,
    )
    parts = [_header(doc, json_path)] + [section(doc) for section in sections]
    return "\n".join(line for part in parts for line in part)


def _header(doc: _Doc, json_path: Path) -> list[str]:
    r, cfg, smoke = doc.r, doc.cfg, doc.r["is_smoke_test"]
    lines = ([] if smoke else [FULL_MARKER]) + [
        "# Benchmark: specml against the published PALIRS study",
        "",
        f"Preset **{r['preset']}** ({r['preset_description']}). Reference method of the training data and of "
        f"the reference MD: `{cfg['reference']}`. Molecules: {len(r['molecules'])} of "
        f"`shared/molecules/train24.csv`; transfer set: {len(r['transfer_molecules'])} of `transfer8.csv`. "
        f"Every number below is computed by `benchmarks/palirs.py`; the settings and all numbers are in "
        f"`{os.path.relpath(json_path, doc.base)}`. The paper's numbers are at DFT level.",
        "",
    ]
    if smoke:
        lines += [
            "> **This report comes from the `small` preset (a smoke test).** No full run has finished "
            "(`docs/results/paper-reproduction.md` says why): every section is pending it.",
            "",
        ]
    lines += [
        "## How to run",
        "",
        "```bash",
        "python benchmarks/palirs.py --preset full            # hours on 2 cores; resumable: rerun to continue",
        "python benchmarks/palirs.py --preset small --out-dir /tmp/palirs   # the CI smoke test, minutes",
        "```",
        "",
        "The full preset trains on all 24 molecules at the workflow's default settings. The xTB reference MD "
        "runs on the workflow's Dask workers (`--workers`, default 2) whenever the workflow leaves one free. "
        "The DFT case uses "
        f"`{PRESETS['full']['dft_reference']}` (PySCF, density fitting). It writes this file, "
        "`docs/results/palirs_benchmark.json` and `docs/results/palirs_figures/`. The run directory "
        "(`--run-dir`, default `runs/palirs_full`) holds every trajectory and label; killing and rerunning "
        "continues where it stopped.",
        "",
        "**Stage artifacts.** After every stage (each active-learning iteration, the final models, the test "
        "set, production MD, the temperature series and transfer MD, the DFT case, the reference MD) the "
        "full preset brings `benchmarks/artifacts/palirs_full/` up to date (`--artifacts DIR` elsewhere, "
        "`--commit-artifacts` to commit the folder after each stage): the labels of every iteration as "
        "`labels/iter_NNN.extxyz.gz` (every row, failures too, with key, provenance and reference "
        "settings), the final committee and dipole model (the latest iteration's while the loop runs), and "
        "per-trajectory autocorrelation functions of the dipole derivative of every production, "
        "temperature-series, transfer and reference trajectory, over the whole run and its first "
        "`convergence_ps`, instead of the dipole series (spectra from them equal the originals bit for bit); "
        "never snapshots, logs or raw trajectories. `MANIFEST.json` lists each file with the run-directory "
        "file it restores and its SHA-256. On a fresh clone with an empty run directory the script first "
        "restores every finished stage from the folder and computes only what is missing "
        "(`specml.workflow.artifacts`; format and sizes: `docs/concepts/stage-artifacts.md`)."
        + (
            f" This run's artifacts: {r['artifacts_mb']:.2f} MB." if r.get("artifacts_mb") is not None else ""
        ),
        "",
        f"Comparison metrics: Pearson correlation (PCC) and Wasserstein distance (WD, cm-1) of max-normalised "
        f"spectra after resolution matching, on {COMPARE_RANGE_CM1[0]:.0f}-{COMPARE_RANGE_CM1[1]:.0f} cm-1. ML "
        f"spectra: {cfg['n_trajectories']} trajectories × {cfg['production_ps']:g} ps at "
        f"{cfg['production_temperature_k']:.0f} K after {cfg['thermalization_ps']:g} ps thermalisation; reference "
        "MD: the same protocol driven by the reference method.",
        "",
    ]
    return lines


def _targets(doc: _Doc) -> list[str]:
    r = doc.r
    lines = doc.section("Targets")
    lines += table(
        ["target", "required", "value", "verdict", "reason found"],
        [
            [
                v["target"],
                v["required"],
                fmt(v["value"]),
                "met" if v["met"] else "**missed**",
                v["reason"] or "",
            ]
            for v in r["target_verdicts"]
        ],
    )
    return lines


def _part1_test_set(doc: _Doc) -> list[str]:
    r, cfg = doc.r, doc.cfg
    t = r["test_set"]
    lines = doc.section("1. Test-set errors (Table 1 analogue)")
    lines += [
        f"MBTR/KMeans test set: {t.get('n_structures', 'n/a')} structures "
        f"({cfg['test_clusters']} clusters × {cfg['test_per_cluster']} per molecule) from "
        f"{cfg['test_md_ps']:g} ps of 300 K ML-MD per molecule.",
        "",
    ]
    lines += table(
        ["quantity", "MAE (specml)", "RMSE (specml)", "MAE (paper)", "RMSE (paper)"],
        [
            [
                "energy (meV)",
                fmt(t.get("energy_mae_meV")),
                fmt(t.get("energy_rmse_meV")),
                PAPER["energy_mae_meV"],
                PAPER["energy_rmse_meV"],
            ],
            [
                "force (meV/Å)",
                fmt(t.get("force_mae_meV_per_A")),
                fmt(t.get("force_rmse_meV_per_A")),
                PAPER["force_mae_meV_per_A"],
                PAPER["force_rmse_meV_per_A"],
            ],
            [
                "dipole (mDebye)",
                fmt(t.get("dipole_mae_mD")),
                fmt(t.get("dipole_rmse_mD")),
                PAPER["dipole_mae_mD"],
                PAPER["dipole_rmse_mD"],
            ],
        ],
    )
    return lines


def _part2_learning(doc: _Doc) -> list[str]:
    r = doc.r
    lines = doc.section("2. Learning curves and reference calculations")
    lines += table(
        ["", "specml", "paper"],
        [
            [
                "reference calculations (training data), total",
                fmt(r["reference_calls_total"]),
                fmt(PAPER["reference_calls_total"]),
            ],
            [
                "per molecule",
                fmt(r["reference_calls_per_molecule"], 0),
                fmt(PAPER["reference_calls_per_molecule"], 0),
            ],
            ["final harmonic MAE (cm-1)", fmt(r["harmonic_mae_cm1"]), PAPER["harmonic_mae_cm1"]],
            [
                "active-learning iterations",
                f"{r['iterations']} (max {r['max_iterations']}, "
                f"{'converged' if r['converged'] else 'not converged'})",
                "n/a",
            ],
        ],
    )
    lines += [
        f"Not counted above: {fmt(r['reference_calls_geometry_and_hessian'])} calculations for the "
        f"reference geometries and Hessians (the harmonic-frequency yardstick) and "
        f"{fmt(r['reference_calls_test_set'])} test-set labels.",
        "",
    ]
    lines += table(
        [
            "iteration",
            "reference calls",
            "harmonic MAE (cm-1)",
            "harmonic RMSE (cm-1)",
            "valid E MAE (meV)",
            "valid F MAE (meV/Å)",
            "valid dipole MAE (mD)",
            "Stage Two",
        ],
        [
            [
                e["iteration"],
                fmt(e["reference_calls"]),
                fmt(e["harmonic_mae_cm1"]),
                fmt(e["harmonic_rmse_cm1"]),
                fmt(e["valid_energy_mae_meV"]),
                fmt(e["valid_force_mae_meV_per_A"]),
                fmt(e["valid_dipole_mae_mD"]),
                stage_two_text(e),
            ]
            for e in r["learning_curve"]
        ],
    )
    lines += [
        "Stage Two: whether the potentials ended with MACE's energy-weighted stage (from which epoch). "
        '"not recorded" marks iterations trained before specml had it (without it).',
        "",
    ]
    t = r["final_training"]
    lines += [
        f"Training of the final potentials (preset `{t['preset']}`: {t['num_channels']} channels, "
        f"L={t['max_L']}, {t['preset_epochs']} epochs, "
        + (f"at most {fmt(t['max_steps'])} optimiser steps):" if t["max_steps"] else "no step cap):"),
        "",
    ]
    lines += table(
        [
            "member",
            "epochs",
            "optimiser steps",
            "Stage Two from epoch",
            "stage-one valid loss drop, last fifth",
            "valid E MAE (meV)",
            "valid F MAE (meV/Å)",
            "time (min)",
        ],
        [
            [
                m["seed"],
                m["epochs_run"],
                fmt(m["optimizer_steps"]),
                m["stage_two_from_epoch"] or "none",
                percent(m["stage_one_valid_loss_drop_last_fifth"]),
                fmt(m["valid_energy_mae_meV"], 1),
                fmt(m["valid_force_mae_meV_per_A"], 1),
                fmt(m["train_time_s"] / 60, 1),
            ]
            for m in t["members"]
        ],
    )
    if r.get("single_molecule_retraining"):
        lines += [
            "Single potentials retrained on one molecule's labels alone (`benchmarks/training_recipe.py "
            "--molecule`, results in `results/training_recipe.jsonl`), against the same molecule in the "
            "committee trained on the same labels of all molecules:",
            "",
        ]
        lines += table(
            [
                "molecule",
                "labels (iterations ≤)",
                "model",
                "epochs",
                "time (min)",
                "valid F MAE (meV/Å)",
                "harmonic MAE alone (cm-1)",
                "harmonic MAE in the committee (cm-1)",
            ],
            [
                [
                    row["molecule"],
                    f"{row['n_structures']} (≤ {row['iteration']})",
                    describe_overrides(row["overrides"]),
                    row["epochs_run"],
                    fmt(row["train_time_s"] / 60, 1),
                    fmt(row["valid_force_mae_meV_per_A"], 1),
                    fmt(row["harmonic_mae_cm1_alone"], 1),
                    fmt(row["harmonic_mae_cm1_in_committee"], 1),
                ]
                for row in r["single_molecule_retraining"]
            ],
        )
    lines += doc.fig("learning_curves", "learning curves")
    lines += doc.fig("reference_calls", "reference calculations per molecule")
    return lines


def _part3_tables(doc: _Doc) -> list[str]:
    r = doc.r
    lines = doc.section("3. ML-MD against reference MD and experiment (Tables 2 and 3 analogues)")
    methanol = r.get("methanol", {})
    lines += table(
        ["", "specml", "paper (DFT)"],
        [
            ["PCC ML vs reference MD, mean ± std", summary_pm(r, "pcc", "reference"), "0.80 ± 0.18"],
            ["WD ML vs reference MD (cm-1), mean ± std", summary_pm(r, "wd", "reference", 1), "n/a"],
            ["PCC ML vs experiment, mean ± std", summary_pm(r, "pcc", "experiment"), "0.81 ± 0.15"],
            ["WD ML vs experiment (cm-1), mean ± std", summary_pm(r, "wd", "experiment", 1), "n/a"],
            [
                "methanol PCC ML vs reference MD",
                fmt(methanol.get("pcc_ml_vs_reference")),
                PAPER["methanol_pcc_ml_vs_reference"],
            ],
            [
                "methanol PCC ML vs experiment",
                fmt(methanol.get("pcc_ml_vs_experiment")),
                PAPER["methanol_pcc_ml_vs_experiment"],
            ],
        ],
    )
    lines += table(
        [
            "molecule",
            "PCC vs ref",
            "WD vs ref (cm-1)",
            "PCC vs exp",
            "WD vs exp (cm-1)",
            "experiment file(s)",
            "harmonic MAE (cm-1)",
            "uncertainty",
            "note",
        ],
        [
            [
                row["molecule"],
                fmt(row["vs_reference"]["pcc"]),
                fmt(row["vs_reference"]["wd_cm1"], 1),
                fmt((row["vs_experiment"] or {}).get("pcc")),
                fmt((row["vs_experiment"] or {}).get("wd_cm1"), 1),
                ", ".join(f["file"] for f in (row["vs_experiment"] or {}).get("files", [])) or "none",
                fmt(row["harmonic_mae_cm1"], 1),
                fmt(row["uncertainty"], 3),
                row_note(row),
            ]
            for row in r["per_molecule"]
        ],
    )
    lines += doc.fig("pcc_bars", "PCC per molecule") + doc.fig(
        "overlays_train", "ML, reference MD and experiment"
    )
    return lines


def _part4_convergence(doc: _Doc) -> list[str]:
    r = doc.r
    c = r["convergence"]
    lines = doc.section(
        f"4. Convergence with trajectory length ({c['short_ps']:g} ps against {c['full_ps']:g} ps)"
    )
    lines += [
        f"The first {c['short_ps']:g} ps of each production trajectory against the whole "
        f"{c['full_ps']:g} ps (ML and reference MD alike).",
        "",
    ]
    lines += table(
        ["", f"{c['short_ps']:g} ps", f"{c['full_ps']:g} ps"],
        [
            [
                "PCC ML vs reference MD, mean ± std",
                pm(c["pcc_ml_vs_reference_short"]),
                pm(c["pcc_ml_vs_reference_full"]),
            ],
            [f"PCC ML {c['short_ps']:g} ps vs ML {c['full_ps']:g} ps", pm(c["pcc_ml_short_vs_ml_full"]), "1"],
        ],
    )
    lines += table(
        [
            "molecule",
            f"PCC ML vs ref, {c['short_ps']:g} ps",
            f"PCC ML vs ref, {c['full_ps']:g} ps",
            f"PCC ML {c['short_ps']:g} vs {c['full_ps']:g} ps",
            f"PCC ref {c['short_ps']:g} vs {c['full_ps']:g} ps",
        ],
        [
            [
                row["molecule"],
                fmt(row["convergence"]["ml_vs_reference_short"]["pcc"]),
                fmt(row["convergence"]["ml_vs_reference_full"]["pcc"]),
                fmt(row["convergence"]["pcc_ml_short_vs_ml_full"]),
                fmt(row["convergence"]["pcc_reference_short_vs_reference_full"]),
            ]
            for row in r["per_molecule"]
            if row["convergence"]
        ],
    )
    lines += doc.fig("convergence", "spectra at two trajectory lengths")
    return lines


def _part5_temperature(doc: _Doc) -> list[str]:
    r = doc.r
    s = r["temperature_series"]
    lines = doc.section(f"5. Temperature series ({s['molecule']})")
    lines += table(
        ["T (K)", "PCC ML vs ref", "WD ML vs ref (cm-1)", "note"],
        [
            [
                f"{row['temperature_k']:.0f}",
                fmt(row["pcc"]),
                fmt(row["wd_cm1"], 1),
                row.get("reference_md_error") or row.get("error") or "",
            ]
            for row in s["rows"]
        ],
    )
    lines += doc.fig("temperature_series", "temperature series")
    return lines


def _part6_transfer(doc: _Doc) -> list[str]:
    r = doc.r
    tr = r["transferability"]
    lines = doc.section("6. Transferability (transfer8, never trained on)")
    lines += [
        "ML spectra of the trained committee on molecules it never saw, against reference MD and, where a "
        "NIST file exists, experiment. Uncertainty: mean relative force uncertainty of the committee along "
        "the ML-MD (flagged out of domain above the `predict_spectra` threshold).",
        "",
    ]
    lines += table(
        [
            "molecule",
            "uncertainty (MD)",
            "uncertainty (minimum)",
            "flagged",
            "PCC vs ref",
            "WD vs ref (cm-1)",
            "PCC vs exp",
            "note",
        ],
        [
            [
                row["molecule"],
                fmt(row["uncertainty"], 3),
                fmt(row["uncertainty_at_minimum"], 3),
                "yes" if row["out_of_domain"] else "no",
                fmt(row["vs_reference"]["pcc"]),
                fmt(row["vs_reference"]["wd_cm1"], 1),
                fmt((row["vs_experiment"] or {}).get("pcc")),
                transfer_note(row),
            ]
            for row in tr["rows"]
        ],
    )
    lines += table(
        ["", "value"],
        [
            ["PCC ML vs reference MD (transfer), mean ± std", pm(tr["pcc_ml_vs_reference"])],
            ["PCC ML vs experiment (transfer), mean ± std", pm(tr["pcc_ml_vs_experiment"])],
            [
                "Spearman ρ(uncertainty, 1 − PCC), transfer molecules",
                correlation_text(tr["uncertainty_vs_error_transfer"]),
            ],
            [
                "Spearman ρ(uncertainty, 1 − PCC), training + transfer",
                correlation_text(tr["uncertainty_vs_error_all"]),
            ],
            [
                "PCC of flagged / unflagged transfer molecules",
                f"{pm(tr['uncertainty_vs_error_transfer']['pcc_flagged'])} / "
                f"{pm(tr['uncertainty_vs_error_transfer']['pcc_not_flagged'])}",
            ],
        ],
    )
    c = tr["uncertainty_vs_error_transfer"]
    if c["n_without_ml_spectrum"]:
        lines += [
            f"{c['n_without_ml_spectrum']} transfer molecule(s) gave no ML spectrum (every trajectory ended "
            f"at the sanity stop); {c['n_without_ml_spectrum_flagged']} of them were flagged out of domain.",
            "",
        ]
    lines += [flag_conclusion(tr), ""]
    lines += doc.fig("uncertainty", "uncertainty against PCC") + doc.fig(
        "overlays_transfer", "transfer molecules"
    )
    return lines


def _part7_dft(doc: _Doc) -> list[str]:
    r = doc.r
    d = r["dft_methanol"]
    lines = doc.section("7. DFT case: methanol with PySCF")
    if d["status"] != "done":
        lines += [
            f"Skipped: {d['reason']}. This preset's DFT reference: `{d['reference']}`; the full preset uses "
            f"`{PRESETS['full']['dft_reference']}`.",
            "",
        ]
    else:
        lines += [
            f"Reference `{d['reference']}` (functional {d['functional']}, basis {d['basis']}; "
            f"{d['reference_description']}), workflow preset `{d['workflow_preset']}`.",
            "",
        ]
        lines += table(
            ["", "specml", "paper"],
            [
                ["reference calculations (training data)", fmt(d["reference_calls"]), "n/a"],
                [
                    "+ geometry/Hessian and test-set calculations",
                    f"{fmt(d['reference_calls_geometry_and_hessian'])} + {fmt(d['reference_calls_test_set'])}",
                    "n/a",
                ],
                ["workflow wall time (s)", fmt(d["wall_time_s"], 0), "n/a"],
                ["measured s per DFT force call", fmt(d["seconds_per_force_call"]), "n/a"],
                [
                    f"estimated DFT MD cost: s per call × {d['aimd_steps']:,} steps (s)",
                    fmt(d["aimd_cost_estimate_s"], 0),
                    "n/a",
                ],
                ["final harmonic MAE (cm-1)", fmt(d["harmonic_mae_cm1"]), "n/a"],
                [
                    "PCC ML vs experiment (NIST methanol)",
                    fmt(d["pcc_vs_experiment"]),
                    PAPER["methanol_pcc_ml_vs_experiment"],
                ],
                ["WD ML vs experiment (cm-1)", fmt(d["wd_vs_experiment"], 1), "n/a"],
            ],
        )
        lines += [
            f"AIMD estimate: {d['aimd_cost_note']}. The benchmark does not run that DFT MD, so the paper's "
            "DFT–ML PCC (0.91) has no counterpart here; the estimate is what it would cost at the measured "
            "seconds per call.",
            "",
        ]
        lines += doc.fig("dft_methanol", "DFT methanol") + doc.fig(
            "dft_learning_curves", "DFT learning curves"
        )
    return lines


def _cost(doc: _Doc) -> list[str]:
    r, cfg = doc.r, doc.cfg
    return [
        "## Cost of this run",
        "",
        f"Workflow wall time {fmt(r['wall_time_s_workflow'], 0)} s (summed over resumed invocations; by stage: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in r["wall_time_s_by_stage"].items())
        + f"); reference MD {fmt(r['reference_md_cpu_s'], 0)} CPU s for the training molecules at "
        f"{cfg['production_temperature_k']:.0f} K. One CPU thread per process.",
        "",
    ]


def stage_two_text(entry: dict) -> str:
    starts = entry.get("stage_two_from_epoch")
    if starts is None:
        return "not recorded"
    if not any(starts):
        return "no"
    return "from epoch " + "/".join(str(s) for s in starts)


def row_note(row: dict) -> str:
    notes = []
    if row["reference_md_error"]:
        notes.append(f"reference MD failed: {row['reference_md_error']}")
    if not row["ml_spectrum"]:
        notes.append("no ML spectrum (every trajectory hit the sanity stop)")
    elif row["trajectories_stopped"]:
        notes.append(f"{row['trajectories_stopped']} ML trajectories stopped")
    return "; ".join(notes)


def transfer_note(row: dict) -> str:
    if row["unseen_element"]:
        return f"not predicted: {row['unseen_element']}"
    if not row["ml_spectrum"]:
        return "no ML spectrum: every trajectory hit the sanity stop (uncertainty > stop threshold)"
    return row["reference_md_error"] or row["vs_reference"].get("error") or ""


def correlation_text(c: dict) -> str:
    if c["spearman_rho"] is None:
        return f"n/a (needs ≥ 3 molecules with varying values; have {c['n']})"
    return f"{c['spearman_rho']:.2f} (p = {c['p_value']:.2g}, n = {c['n']})"


def flag_conclusion(tr: dict) -> str:
    """What the data say: does high uncertainty flag the poor predictions?"""
    c = tr["uncertainty_vs_error_all"]
    if c["spearman_rho"] is None:
        return "Too few molecules to test whether high uncertainty flags the poor predictions."
    strength = (
        "flags" if c["spearman_rho"] >= 0.5 and (c["p_value"] or 1) < 0.05 else "does not reliably flag"
    )
    return (
        f"Over training and transfer molecules, higher committee uncertainty goes with lower PCC with Spearman "
        f"ρ = {c['spearman_rho']:.2f} (p = {c['p_value']:.2g}): the uncertainty {strength} the poor predictions "
        "(criterion: ρ ≥ 0.5 at p < 0.05)."
    )


# -- output -------------------------------------------------------------------------------------
def json_safe(value):
    """NaN and infinities (e.g. the uncertainty of a run that hit the sanity stop) become null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def output_paths(preset: str, out_dir: Path) -> dict[str, Path]:
    stem = "palirs" if preset == "full" else f"palirs_{preset}"
    return {
        "markdown": out_dir / "benchmark.md",
        "json": out_dir / "results" / f"{stem}_benchmark.json",
        "figures": out_dir / "results" / f"{stem}_figures",
    }


def check_out_dir(preset: str, out_dir: Path) -> None:
    """A smoke-test preset never overwrites a report of the full preset."""
    markdown = output_paths(preset, out_dir)["markdown"]
    if preset != "full" and markdown.exists() and FULL_MARKER in markdown.read_text():
        raise BenchmarkError(
            f"{markdown} is a report of the full preset; the {preset!r} preset does not overwrite "
            "it: choose another --out-dir"
        )


def write_report(results: dict, plots: dict, out_dir: Path) -> dict[str, Path]:
    from specml.workflow.state import atomic_write_json, atomic_write_text

    paths = output_paths(results["preset"], out_dir)
    figures = write_figures(results, plots, paths["figures"])
    results["figures"] = {k: os.path.relpath(v, out_dir) for k, v in figures.items()}
    atomic_write_json(paths["json"], json_safe(results))
    atomic_write_text(paths["markdown"], render_markdown(results, figures, out_dir, paths["json"]))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--run-dir", help="work directory (resumable); default runs/palirs_PRESET")
    parser.add_argument(
        "--out-dir", help="report directory (default: docs/ for full, RUN_DIR/report otherwise)"
    )
    parser.add_argument(
        "--dft",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the DFT methanol case (default: on for full, off for small)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Dask worker processes shared by the workflow and the reference MD, which takes the "
        "workers the workflow leaves free (0: everything in this process, reference MD last)",
    )
    parser.add_argument(
        "--artifacts",
        help="stage-artifact folder: finished stages are restored from it and written to it after each "
        "stage (default: benchmarks/artifacts/palirs_full for the full preset, none otherwise)",
    )
    parser.add_argument(
        "--no-artifacts", action="store_true", help="neither restore nor write stage artifacts"
    )
    parser.add_argument(
        "--commit-artifacts", action="store_true", help="git-commit the artifact folder after each stage"
    )
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help=SNAPSHOT_HELP,
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    settings = PRESETS[args.preset]
    run_dir = Path(args.run_dir) if args.run_dir else ROOT / "runs" / f"palirs_{args.preset}"
    default_out = ROOT / "docs" if args.preset == "full" else run_dir / "report"
    out_dir = Path(args.out_dir) if args.out_dir else default_out
    artifacts = None
    if not args.no_artifacts:
        default_artifacts = ARTIFACTS / "palirs_full" if args.preset == "full" else None
        artifacts = Path(args.artifacts) if args.artifacts else default_artifacts
    for flag, asked in (("--commit-artifacts", args.commit_artifacts), ("--snapshot", args.snapshot)):
        if asked and artifacts is None:
            parser.error(f"{flag} needs a stage-artifact folder (--artifacts)")
    from specml.errors import SpecmlError

    if args.snapshot:
        from specml.workflow import get_workflow_config

        config = get_workflow_config(settings["workflow_preset"], **settings["workflow_overrides"])
        try:
            stage_artifacts(settings, config, run_dir, artifacts, args.commit_artifacts).snapshot()
        except SpecmlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        check_out_dir(args.preset, out_dir)
        for path in (TRAIN_CSV, TRANSFER_CSV):
            if not path.is_file():
                raise BenchmarkError(f"{path}: no such file (the shared data are expected at {SHARED})")
        dft = settings["dft"] if args.dft is None else args.dft
        results, plots = run(
            args.preset,
            settings,
            run_dir,
            args.workers,
            dft,
            not args.no_progress,
            artifacts,
            args.commit_artifacts,
        )
        paths = write_report(results, plots, out_dir)
    except (BenchmarkError, SpecmlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {
        k: results[k]
        for k in (
            "energy_mae_meV",
            "force_mae_meV_per_A",
            "dipole_mae_mD",
            "harmonic_mae_cm1",
            "reference_calls_per_molecule",
            "pcc_ml_vs_reference_mean",
            "pcc_ml_vs_reference_std",
            "pcc_ml_vs_experiment_mean",
        )
    }
    print(json.dumps(summary, indent=2, default=float))
    print(f"report: {paths['markdown']}\nresults: {paths['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
