"""The PALIRS benchmark (issue 5), small preset end to end: the script runs, writes the report and
the results file with sane numbers for all seven parts, counts reference calls as the label
database does, resumes without new work, and refuses bad input."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ase.db import connect

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "palirs.py"
REQUIRED = (
    "energy_mae_meV",
    "force_mae_meV_per_A",
    "dipole_mae_mD",
    "harmonic_mae_cm1",
    "reference_calls_per_molecule",
    "pcc_ml_vs_reference_mean",
    "pcc_ml_vs_reference_std",
    "pcc_ml_vs_experiment_mean",
)


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1200
    )


def outputs(out: Path) -> tuple[dict, str]:
    results = json.loads((out / "results" / "palirs_small_benchmark.json").read_text())
    return results, (out / "benchmark.md").read_text()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, shared_dir):
    tmp = tmp_path_factory.mktemp("palirs_small")
    proc = run_script(
        "--preset",
        "small",
        "--run-dir",
        str(tmp / "run"),
        "--out-dir",
        str(tmp / "out"),
        "--artifacts",
        str(tmp / "artifacts"),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return tmp, *outputs(tmp / "out")


def all_values(data, key: str):
    """Every value stored under ``key`` anywhere in nested dicts/lists."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key:
                yield v
            yield from all_values(v, key)
    elif isinstance(data, list):
        for v in data:
            yield from all_values(v, key)


def test_results_file_has_the_required_keys_with_sane_numbers(small_run):
    _, results, _ = small_run
    for key in REQUIRED:
        assert isinstance(results[key], (int, float)) and math.isfinite(results[key]), key
    for key in ("energy_mae_meV", "force_mae_meV_per_A", "dipole_mae_mD", "harmonic_mae_cm1"):
        assert results[key] > 0
    assert results["energy_rmse_meV"] >= results["energy_mae_meV"]
    assert results["force_rmse_meV_per_A"] >= results["force_mae_meV_per_A"]
    assert results["pcc_ml_vs_reference_std"] >= 0
    assert set(results["dft_methanol"]) >= {
        "reference_calls",
        "wall_time_s",
        "aimd_cost_estimate_s",
        "pcc_vs_experiment",
    }
    assert results["is_smoke_test"] and results["preset"] == "small"
    pccs = [v for v in all_values(results, "pcc") if v is not None]
    pccs += [v for k in ("pcc_ml_vs_reference_mean", "pcc_ml_vs_experiment_mean") for v in [results[k]]]
    assert len(pccs) >= 6
    assert all(-1.0 <= v <= 1.0 for v in pccs)
    assert all(v > 0 for v in all_values(results, "wd_cm1") if v is not None)


def test_reference_calls_match_the_label_database(small_run):
    tmp, results, _ = small_run
    db = connect(str(tmp / "run" / "xtb" / "labels.db"))
    test_rows = db.count(kind="test")
    assert results["reference_calls_total"] == db.count() - test_rows
    assert results["reference_calls_test_set"] == test_rows > 0
    by_molecule = results["reference_calls_by_molecule"]
    assert set(by_molecule) == {"methane", "methanol"}
    for name, count in by_molecule.items():
        assert count == db.count(molecule=name) - db.count(molecule=name, kind="test") > 0
        assert sum(results["reference_calls_by_molecule_and_iteration"][name].values()) == count
    assert sum(by_molecule.values()) == results["reference_calls_total"]
    assert results["reference_calls_per_molecule"] == pytest.approx(results["reference_calls_total"] / 2)
    assert results["learning_curve"][-1]["reference_calls"] == results["reference_calls_total"]


def test_every_part_is_computed(small_run):
    _, results, _ = small_run
    # 1-3: test set, learning curve, ML against reference MD and against the NIST files
    assert results["test_set"]["n_structures"] > 0
    assert [e["iteration"] for e in results["learning_curve"]] == [0, 1]
    for row in results["per_molecule"]:
        assert row["vs_reference"]["pcc"] is not None, row
        assert row["vs_experiment"]["files"], row  # methane and methanol both have NIST files
    assert results["n_molecules_vs_experiment"] == 2
    assert results["methanol"]["pcc_ml_vs_experiment"] is not None
    # the final potentials' training: the CI preset's 10 epochs, one entry per committee member
    training = results["final_training"]
    assert [m["seed"] for m in training["members"]] == results["settings"]["workflow"]["committee_seeds"]
    for member in training["members"]:
        assert member["epochs_run"] == training["preset_epochs"] == 10
        assert member["optimizer_steps"] >= member["epochs_run"] and member["valid_force_mae_meV_per_A"] > 0
    # 4: convergence, the first part of each trajectory against the whole
    conv = results["convergence"]
    assert conv["short_ps"] < conv["full_ps"] and conv["pcc_ml_short_vs_ml_full"]["n"] == 2
    # 5: temperature series
    rows = results["temperature_series"]["rows"]
    assert [r["temperature_k"] for r in rows] == [300.0, 600.0] and all(r["pcc"] is not None for r in rows)
    # 6: transferability: a spectrum with its uncertainty, or a flagged molecule without one
    (acetone,) = results["transferability"]["rows"]
    assert acetone["molecule"] == "acetone" and acetone["uncertainty_at_minimum"] > 0
    assert acetone["pcc"] is not None or (acetone["out_of_domain"] and not acetone["ml_spectrum"])
    assert results["transferability"]["uncertainty_vs_error_all"]["n"] >= 2
    # 7: DFT case: the small preset runs it only on request
    assert (
        results["dft_methanol"]["status"] == "skipped" and results["dft_methanol"]["reference_calls"] is None
    )
    # targets: each has a verdict, a miss has a reason
    assert len(results["target_verdicts"]) == 3
    for v in results["target_verdicts"]:
        assert v["met"] or v["reason"]


def test_report_has_all_parts_paper_values_and_figures(small_run):
    tmp, results, text = small_run
    for title in (
        "## 1. Test-set errors",
        "## 2. Learning curves",
        "## 3. ML-MD against reference MD",
        "## 4. Convergence",
        "## 5. Temperature series",
        "## 6. Transferability",
        "## 7. DFT case",
        "## Targets",
        "## How to run",
    ):
        assert title in text
    assert text.count("Pending the full run") >= 8  # the small preset never passes for the benchmark
    assert "palirs-benchmark preset=full" not in text
    for paper in (
        "2.64",
        "3.61",
        "3.96",
        "5.69",
        "7.62",
        "12.46",
        "16,067",
        "4.37",
        "0.80 ± 0.18",
        "0.81 ± 0.15",
    ):
        assert paper in text, paper
    assert "**missed**" in text and "python benchmarks/palirs.py --preset full" in text
    assert f"{results['harmonic_mae_cm1']:.2f}" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 7
    for image in images:
        assert (tmp / "out" / image).stat().st_size > 5000, image
    assert "overlays_train" in results["figures"] and "pcc_bars" in results["figures"]


def test_rerun_resumes_without_new_work(small_run):
    tmp, results, _ = small_run
    proc = run_script(
        "--preset", "small", "--run-dir", str(tmp / "run"), "--out-dir", str(tmp / "again"), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    again, _ = outputs(tmp / "again")
    assert "new labels" not in proc.stdout
    for key in REQUIRED + ("reference_calls_total",):
        assert again[key] == results[key], key


def test_small_preset_refuses_to_overwrite_a_full_report(tmp_path):
    (tmp_path / "benchmark.md").write_text("<!-- palirs-benchmark preset=full -->\n# report\n")
    proc = run_script("--preset", "small", "--run-dir", str(tmp_path / "run"), "--out-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "full preset" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, message", [(["--preset", "huge"], "invalid choice"), (["--workers", "-1"], "must be >= 0")]
)
def test_bad_arguments_are_rejected_clearly(args, message, tmp_path):
    proc = run_script(*args, "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_single_molecule_retraining_rows_belong_to_this_run(tmp_path, monkeypatch):
    """Only training_recipe.py results of this run's molecules, trained from scratch, join the
    report, each beside the same molecule's harmonic MAE in the committee at that iteration."""
    sys.path.insert(0, str(SCRIPT.parent))
    import palirs

    run = tmp_path / "run" / "xtb"
    run.mkdir(parents=True)
    recipe = {
        "run": str(run),
        "molecule": "ethylene",
        "iterations": "2",
        "overrides": {"max_L": 1},
        "n_structures": 151,
        "epochs_run": 600,
        "train_time_s": [470.0],
        "valid_mae": {"forces_meV_per_A": 6.4},
        "mae_cm1": 5.9,
    }
    lines = [
        recipe,
        {**recipe, "run": str(tmp_path / "other" / "xtb")},  # another run
        {**recipe, "molecule": None},  # a single-molecule run's recipe (no --molecule)
        {**recipe, "iterations": "0:2"},
    ]  # a warm start, not a retraining
    results = tmp_path / "training_recipe.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setattr(palirs, "TRAINING_RECIPE_RESULTS", results)
    curve = [{"iteration": i, "harmonic_per_molecule": {"ethylene": {"mae_cm1": 60.0 - i}}} for i in range(3)]

    (row,) = palirs.single_molecule_retraining(run, curve)
    assert row["harmonic_mae_cm1_alone"] == 5.9 and row["harmonic_mae_cm1_in_committee"] == 58.0
    assert (
        "ethylene (max_L=1, 600 epochs) 5.9 cm-1 against 58.0 in the committee"
        in palirs.retraining_reason([row])
    )
    monkeypatch.setattr(palirs, "TRAINING_RECIPE_RESULTS", tmp_path / "missing.jsonl")
    assert palirs.single_molecule_retraining(run, curve) == []


def git(cwd: Path, *args: str) -> None:
    identity = ("-c", "user.name=specml tests", "-c", "user.email=tests@specml.invalid")
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def test_fresh_clone_restores_every_finished_stage_and_recomputes_nothing(small_run, tmp_path, monkeypatch):
    """Issue 24: the stage artifacts of a finished run, committed to a repository and cloned, rebuild
    an empty run directory; the rerun labels, trains, runs MD and optimises nothing, and reports
    the same numbers."""
    tmp, results, _ = small_run
    folder = Path("benchmarks") / "artifacts" / "palirs_small"
    repo, clone = tmp_path / "repo", tmp_path / "clone"
    shutil.copytree(tmp / "artifacts", repo / folder)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "stage artifacts")
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    manifest = json.loads((clone / folder / "MANIFEST.json").read_text())
    assert results["artifacts_mb"] == pytest.approx(manifest["total_bytes"] / 1e6)
    assert not any(name.endswith((".db", ".pt")) and "models" not in name for name in manifest["files"])

    import specml.dynamics
    import specml.models
    import specml.molecules.optimize
    import specml.workflow.active_learning as active_learning
    import specml.workflow.production as production

    def recomputed(what):
        def fail(*args, **kwargs):
            raise AssertionError(f"the rerun recomputed a finished stage: {what}")

        return fail

    monkeypatch.setattr(specml.models, "train_committee", recomputed("training"))
    monkeypatch.setattr(active_learning, "label_candidates", recomputed("reference labels"))
    monkeypatch.setattr(active_learning, "run_md_tasks", recomputed("exploration or test-set MD"))
    monkeypatch.setattr(production, "run_md_tasks", recomputed("production MD"))
    monkeypatch.setattr(specml.dynamics, "run_reference_md", recomputed("reference MD"))
    monkeypatch.setattr(specml.molecules.optimize, "optimize_geometry", recomputed("reference optimisation"))
    sys.path.insert(0, str(SCRIPT.parent))
    import palirs

    run_dir = tmp_path / "run"  # empty: only the artifacts know the run
    args = ["--preset", "small", "--run-dir", str(run_dir), "--out-dir", str(tmp_path / "out")]
    assert palirs.main([*args, "--artifacts", str(clone / folder), "--workers", "0", "--no-progress"]) == 0
    again, _ = outputs(tmp_path / "out")
    for key in REQUIRED + ("reference_calls_total", "reference_calls_test_set", "harmonic_mae_cm1"):
        assert again[key] == results[key], key
    assert again["temperature_series"] == results["temperature_series"]
    assert again["transferability"]["rows"] == results["transferability"]["rows"]
    assert again["convergence"] == results["convergence"]
    assert (
        connect(str(run_dir / "xtb" / "labels.db")).count()
        == connect(str(tmp / "run" / "xtb" / "labels.db")).count()
    )
