"""Stage artifacts (issue 24): compact dipole files give the same spectra, label files keep every
row with provenance, and an export/restore round trip rebuilds a run directory's finished stages
without scratch files, deterministically. The end-to-end restore of a benchmark run is in
``test_palirs_small.py``."""

from __future__ import annotations

import gzip
import json
import multiprocessing

import numpy as np
import pytest
from ase import Atoms

from specml.dataset.database import LabelDatabase
from specml.dataset.label_files import read_label_file, write_label_file
from specml.errors import InputError
from specml.spectra.autocorrelation import ir_from_trajectories
from specml.workflow.artifacts import MANIFEST, export_artifacts, restore_artifacts
from specml.workflow.compact_md import compact_dipole_arrays, npz_bytes, trajectory_correlations
from specml.workflow.production import read_production_file, write_production_file

DEPTH_FS = 100.0


def dipoles(n: int, seed: int) -> np.ndarray:
    t = np.arange(n)[:, None]
    noise = np.random.default_rng(seed).normal(0.0, 0.01, (n, 3))
    return np.sin(2 * np.pi * t * np.array([0.03, 0.05, 0.11])) + noise


def production_runs(lengths=(600, 600, 300), stopped=(False, True, False)) -> list[dict]:
    return [
        {
            "dipoles": dipoles(n, k),
            "uncertainty": np.full(n, 0.1 * (k + 1)),
            "stopped": stop,
            "temperatures": np.full(n, 300.0 + k),
            "record_interval_fs": 1.0,
        }
        for k, (n, stop) in enumerate(zip(lengths, stopped, strict=True))
    ]


def test_compact_production_file_gives_the_same_spectra_bit_for_bit(tmp_path):
    raw, compact = tmp_path / "raw.npz", tmp_path / "compact.npz"
    write_production_file(raw, production_runs())
    compact.write_bytes(npz_bytes(compact_dipole_arrays(raw, DEPTH_FS, windows_ps=(0.25,))))
    full, short = read_production_file(raw), read_production_file(compact)
    assert short.dipoles == [] and short.n_frames == [600, 600, 300]
    assert short.stopped == full.stopped and short.mean_temperatures_k == full.mean_temperatures_k
    assert short.mean_uncertainties == pytest.approx(full.mean_uncertainties)
    for min_fs, max_ps in ((200.0, None), (0.0, None), (0.0, 0.25)):
        a = full.usable_correlations(DEPTH_FS, min_fs, max_ps)
        b = short.usable_correlations(DEPTH_FS, min_fs, max_ps)
        assert [n for _, n in a] == [n for _, n in b]
        spectrum_a = ir_from_trajectories(a, 1.0, DEPTH_FS, 400.0, 4000.0)
        spectrum_b = ir_from_trajectories(b, 1.0, DEPTH_FS, 400.0, 4000.0)
        assert np.array_equal(spectrum_a.intensity, spectrum_b.intensity)
    # the correlation route is the dipole route
    usable = full.usable_dipoles(min_fs=200.0)
    via_dipoles = ir_from_trajectories(usable, 1.0, DEPTH_FS, 400.0, 4000.0)
    via_acf = ir_from_trajectories(full.usable_correlations(DEPTH_FS, 200.0), 1.0, DEPTH_FS, 400.0, 4000.0)
    assert np.array_equal(via_dipoles.intensity, via_acf.intensity)
    with pytest.raises(InputError, match="first_0.1ps"):
        short.usable_correlations(DEPTH_FS, max_ps=0.1)  # a window that was not stored
    with pytest.raises(InputError, match="reach 100 fs"):
        short.usable_correlations(200.0)
    with pytest.raises(InputError, match="autocorrelations, not dipoles"):
        short.usable_dipoles()


def test_compact_reference_trajectory_keeps_its_cost_and_spectrum(tmp_path):
    raw, compact = tmp_path / "traj_0.npz", tmp_path / "compact.npz"
    np.savez(
        raw,
        dipoles=dipoles(500, 3),
        temperatures=np.full(500, 310.0),
        temperature_k=300.0,
        record_interval_fs=1.0,
        wall_time_s=12.5,
    )
    compact.write_bytes(npz_bytes(compact_dipole_arrays(raw, DEPTH_FS, windows_ps=(0.3,))))
    for max_ps in (None, 0.3):
        (a, n_a), dt_a = trajectory_correlations(raw, DEPTH_FS, max_ps)[0][0], 1.0
        ((b, n_b),), dt_b = trajectory_correlations(compact, DEPTH_FS, max_ps)
        assert np.array_equal(a, b) and n_a == n_b and dt_a == dt_b
    with np.load(compact) as data:
        assert "dipoles" not in data.files and float(data["wall_time_s"]) == 12.5
    assert npz_bytes(compact_dipole_arrays(raw, DEPTH_FS, (0.3,))) == compact.read_bytes()  # deterministic


def labelled_database(path) -> LabelDatabase:
    database = LabelDatabase(path)
    rng = np.random.default_rng(0)
    for i in range(3):
        atoms = Atoms("CH4", positions=rng.normal(0.0, 1.0, (5, 3)))
        provenance = {"molecule": "methane", "iteration": i % 2, "kind": "normal_mode", "temperature": 500.0}
        settings = {"method": "GFN2-xTB", "note": 'quoted "name"'}
        database.add_label(
            f"methane:{i}", atoms, -4.2 - i, rng.normal(size=(5, 3)), rng.normal(size=3), provenance, settings
        )
    database.add_failure(
        "methane:fail",
        Atoms("CH4"),
        'SCF "did not" converge\nat step 3',
        {"molecule": "methane", "iteration": 1},
        {},
    )
    database.add_label(
        "methane:test:0", Atoms("CH4"), -4.0, np.zeros((5, 3)), np.zeros(3), {"kind": "test"}, {}
    )
    return database


def test_label_file_round_trip_keeps_rows_failures_and_provenance(tmp_path):
    source = labelled_database(tmp_path / "a.db")
    path = tmp_path / "labels.extxyz.gz"
    assert write_label_file(source, path, lambda pairs: True) == 5
    copy = LabelDatabase(tmp_path / "b.db")
    assert read_label_file(path, copy) == 5
    rows = {r.key: r for r in source.rows()}
    for row in copy.rows():
        original = rows[row.key]
        assert row.key_value_pairs == original.key_value_pairs and row.data == original.data
        assert np.array_equal(row.positions, original.positions)  # bit for bit: see LABEL_DECIMALS
        if row.get("status") == "ok":
            assert row.energy == original.energy and np.array_equal(row.forces, original.forces)
            assert np.array_equal(row.dipole, original.dipole)
    assert read_label_file(path, copy) == 5 and copy.count() == 5  # nothing duplicated
    before = path.read_bytes()
    write_label_file(source, path, lambda pairs: True)
    assert path.read_bytes() == before


def fake_run(root) -> None:
    """A run directory with the file kinds of a benchmark run (contents are stand-ins)."""
    workflow = root / "xtb"
    (workflow / "molecules").mkdir(parents=True)
    (workflow / "config.json").write_text(json.dumps({"config": {"max_correlation_fs": DEPTH_FS}}))
    (workflow / "molecules" / "00_methane.json").write_text(json.dumps({"hessian": [[1.0] * 9] * 9}))
    labelled_database(workflow / "labels.db")
    for name in ("iter_000", "iter_001"):
        (workflow / "models" / name).mkdir(parents=True)
        (workflow / "models" / name / "committee.json").write_text(name)
        (workflow / "models" / name / "energy_member_0.pt").write_bytes(name.encode() * 100)
    (workflow / "iterations" / "iter_001" / "md_checkpoints").mkdir(parents=True)
    (workflow / "iterations" / "iter_001" / "md_checkpoints" / "batch_0.pt").write_bytes(b"snapshot")
    np.savez(workflow / "iterations" / "iter_001" / "md_state.npz", positions=np.ones((5, 3)))
    (workflow / "specml.log").write_text("log")
    (workflow / "production" / "300K").mkdir(parents=True)
    write_production_file(workflow / "production" / "300K" / "methane.npz", production_runs())
    reference = root / "reference_md" / "300K" / "methane"
    reference.mkdir(parents=True)
    np.savez(
        reference / "traj_0.npz",
        dipoles=dipoles(400, 1),
        temperatures=np.full(400, 300.0),
        temperature_k=300.0,
        record_interval_fs=1.0,
        wall_time_s=3.0,
    )
    (reference / "traj_1_checkpoint.pt").write_bytes(b"half a trajectory")
    (reference / ".traj_1.npz.4242.npz").write_bytes(b"being written by a worker")


def test_export_keeps_finished_stages_only_and_restore_rebuilds_them(tmp_path):
    run, artifacts, fresh = tmp_path / "run", tmp_path / "artifacts", tmp_path / "fresh"
    fake_run(run)
    manifest = export_artifacts(run, artifacts, DEPTH_FS, windows_ps=(0.25,))
    names = set(manifest["files"])
    assert "xtb/models/iter_001/energy_member_0.pt" in names  # the latest iteration's models ...
    assert not any("iter_000" in n and "models" in n for n in names)  # ... and no earlier ones
    assert not any(
        "checkpoint" in n or n.endswith((".log", ".db")) or "/." in n for n in names
    )  # no snapshots
    assert {
        "xtb/labels/iter_000.extxyz.gz",
        "xtb/labels/iter_001.extxyz.gz",
        "xtb/labels/test.extxyz.gz",
    } <= names
    assert manifest["files"]["xtb/production/300K/methane.npz"]["form"] == "autocorrelations"
    assert manifest["total_bytes"] == sum(
        p.stat().st_size for p in artifacts.rglob("*") if p.is_file() and p.name != MANIFEST
    )
    for path in artifacts.rglob("*.npz"):
        with np.load(path) as data:
            assert not any(k.startswith("dipoles") for k in data.files)
    snapshot = {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()}
    assert export_artifacts(run, artifacts, DEPTH_FS, windows_ps=(0.25,)) == manifest
    assert {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()} == snapshot  # deterministic

    restored = restore_artifacts(artifacts, fresh)
    assert "xtb/labels.db" in restored and "xtb/models/iter_001/committee.json" in restored
    assert (fresh / "xtb" / "models" / "iter_001" / "committee.json").read_text() == "iter_001"
    assert (
        LabelDatabase(fresh / "xtb" / "labels.db").count() == LabelDatabase(run / "xtb" / "labels.db").count()
    )
    assert (fresh / "xtb" / "molecules" / "00_methane.json").read_bytes() == (
        run / "xtb" / "molecules" / "00_methane.json"
    ).read_bytes()
    assert not (fresh / "xtb" / "specml.log").exists()
    ml = read_production_file(fresh / "xtb" / "production" / "300K" / "methane.npz")
    original = read_production_file(run / "xtb" / "production" / "300K" / "methane.npz")
    for a, b in zip(
        ml.usable_correlations(DEPTH_FS, 200.0), original.usable_correlations(DEPTH_FS, 200.0), strict=True
    ):
        assert np.array_equal(a[0], b[0])
    assert restore_artifacts(artifacts, fresh) == []  # nothing missing any more
    # a restored run exports the same bytes: a rerun on a fresh clone commits no spurious changes
    again = export_artifacts(fresh, tmp_path / "again", DEPTH_FS, windows_ps=(0.25,))
    assert again["files"] == manifest["files"]

    # a later stage replaces the models of the latest iteration by the final ones
    (run / "xtb" / "models" / "final").mkdir()
    (run / "xtb" / "models" / "final" / "committee.json").write_text("final")
    names = set(export_artifacts(run, artifacts, DEPTH_FS, windows_ps=(0.25,))["files"])
    assert "xtb/models/final/committee.json.gz" in names and not any("iter_001/e" in n for n in names)
    assert not (artifacts / "xtb" / "models" / "iter_001").exists()


def _restore_after(barrier, artifacts, run_dir, results) -> None:
    barrier.wait()
    try:
        results.put(sorted(restore_artifacts(artifacts, run_dir)))
    except Exception as error:  # reported to the test, which fails on it
        results.put(repr(error))


def test_two_processes_restoring_one_run_directory_take_turns(tmp_path):
    """Two benchmarks started side by side restore the same run directory on a fresh clone."""
    run, artifacts, fresh = tmp_path / "run", tmp_path / "artifacts", tmp_path / "fresh"
    fake_run(run)
    export_artifacts(run, artifacts, DEPTH_FS, windows_ps=(0.25,))
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_restore_after, args=(barrier, artifacts, fresh, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
    assert all(isinstance(o, list) for o in outcomes), outcomes  # no "table systems already exists"
    first, second = sorted(outcomes, key=len, reverse=True)
    assert "xtb/labels.db" in first and "xtb/labels.db" not in second  # one of them wrote the rows
    assert (
        LabelDatabase(fresh / "xtb" / "labels.db").count() == LabelDatabase(run / "xtb" / "labels.db").count()
    )


def test_snapshots_are_exported_on_request_kept_while_running_and_dropped_once_finished(tmp_path):
    run, artifacts, fresh = tmp_path / "run", tmp_path / "artifacts", tmp_path / "fresh"
    fake_run(run)
    md_snapshot = "xtb/iterations/iter_001/md_checkpoints/batch_0.pt"
    reference_snapshot = "reference_md/300K/methane/traj_1_checkpoint.pt"
    manifest = export_artifacts(run, artifacts, DEPTH_FS, snapshots=True)
    snapshots = {e["restores"]: name for name, e in manifest["files"].items() if e["form"] == "snapshot"}
    assert set(snapshots) == {md_snapshot, reference_snapshot}
    assert not any(
        "/." in e["restores"] or e["restores"].endswith(".log") for e in manifest["files"].values()
    )

    # a stage finishing meanwhile exports without snapshots: the earlier ones stay, unchanged
    (run / reference_snapshot).write_bytes(b"three quarters of a trajectory")
    again = export_artifacts(run, artifacts, DEPTH_FS)
    assert again["files"] == manifest["files"]

    restore_artifacts(artifacts, fresh)
    assert (fresh / md_snapshot).read_bytes() == b"snapshot"
    assert (fresh / reference_snapshot).read_bytes() == b"half a trajectory"  # the last one asked for

    # the MD stage finished and removed its snapshots: so do the artifacts
    for path in (run / md_snapshot).parent.iterdir():
        path.unlink()
    (run / md_snapshot).parent.rmdir()
    names = {e["restores"] for e in export_artifacts(run, artifacts, DEPTH_FS)["files"].values()}
    assert md_snapshot not in names and reference_snapshot in names
    assert not (artifacts / md_snapshot).parent.exists()


def test_a_fit_snapshot_resumes_on_labels_restored_from_artifacts(tmp_path):
    """Labels restore bit for bit, so a restored training snapshot matches its data fingerprint
    and the fit continues from it instead of starting again."""
    from specml.models import get_preset
    from specml.models.training import train_potential

    database = LabelDatabase(tmp_path / "run" / "labels.db")
    rng = np.random.default_rng(3)
    for i in range(12):
        atoms = Atoms("CO", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 1.13]] + rng.normal(0.0, 0.03, (2, 3)))
        distance = atoms.get_distance(0, 1)
        forces = np.outer([1.0, -1.0], atoms.positions[1] - atoms.positions[0]) * (distance - 1.13) / distance
        database.add_label(f"co:{i:02d}", atoms, 0.5 * (distance - 1.13) ** 2, forces, np.zeros(3), {}, {})
    preset = get_preset("tiny", epochs=2)
    snapshot = tmp_path / "run" / "training_checkpoints" / "member_0_seed_0.pt"
    train_potential(database.labelled_atoms(), preset, seed=0, checkpoint=snapshot)

    export_artifacts(tmp_path / "run", tmp_path / "artifacts", DEPTH_FS, snapshots=True)
    restore_artifacts(tmp_path / "artifacts", tmp_path / "fresh")
    restored = LabelDatabase(tmp_path / "fresh" / "labels.db").labelled_atoms()
    epochs = []
    train_potential(
        restored,
        preset,
        seed=0,
        checkpoint=tmp_path / "fresh" / "training_checkpoints" / "member_0_seed_0.pt",
        progress=lambda epoch, n, metrics: epochs.append(epoch),
    )
    assert epochs == []  # the finished fit was taken from the snapshot, not repeated


def test_restore_refuses_edited_artifacts(tmp_path):
    run, artifacts = tmp_path / "run", tmp_path / "artifacts"
    fake_run(run)
    export_artifacts(run, artifacts, DEPTH_FS)
    path = artifacts / "xtb" / "config.json.gz"
    path.write_bytes(gzip.compress(b'{"config": {}}'))
    with pytest.raises(InputError, match="does not match MANIFEST.json"):
        restore_artifacts(artifacts, tmp_path / "fresh")


def test_files_of_another_format_are_refused_by_name(tmp_path):
    """Artifacts, model sets and library files written by another specml version are refused
    with the file and both format tags, before any field is read."""
    from specml.errors import ModelError
    from specml.identification.compact_json import read_tagged_json, write_tagged_json
    from specml.models.model_sets import MODEL_SET_FILE, read_model_set

    run, artifacts = tmp_path / "run", tmp_path / "artifacts"
    fake_run(run)
    export_artifacts(run, artifacts, DEPTH_FS)
    manifest = json.loads((artifacts / MANIFEST).read_text())
    (artifacts / MANIFEST).write_text(json.dumps(manifest | {"format": 99}))
    with pytest.raises(InputError, match=r"MANIFEST.json: artifact format 99, this specml reads 1"):
        restore_artifacts(artifacts, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()

    (tmp_path / "set").mkdir()
    (tmp_path / "set" / MODEL_SET_FILE).write_text(json.dumps({"format": "x"}))
    with pytest.raises(ModelError, match=r"model-set format 'x', this specml reads 1"):
        read_model_set(tmp_path / "set")
    assert read_model_set(tmp_path) is None  # an ordinary committee folder

    write_tagged_json(tmp_path / "lib.json.gz", {"format": "specml-library/0", "rows": []})
    with pytest.raises(
        InputError, match=r"library format 'specml-library/0', this specml reads 'specml-library/1'"
    ):
        read_tagged_json(tmp_path / "lib.json.gz", "specml-library/1", "library")


def test_commit_folder_commits_only_the_artifact_folder(tmp_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _stage_artifacts import commit_folder

    def git(*args: str) -> str:
        identity = ("-c", "user.name=t", "-c", "user.email=t@specml.invalid")
        return subprocess.run(
            ["git", *identity, *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "start")
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "MANIFEST.json").write_text("{}")
    (tmp_path / "other.txt").write_text("not an artifact")
    git("add", "other.txt")  # staged elsewhere: must stay out of the artifact commit
    for name in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{name}_NAME", "specml tests")
        monkeypatch.setenv(f"{name}_EMAIL", "tests@specml.invalid")
    assert commit_folder(folder, "stage artifacts: iteration 0")
    assert git("show", "--name-only", "--format=%s", "HEAD").split() == [
        "stage",
        "artifacts:",
        "iteration",
        "0",
        "artifacts/MANIFEST.json",
    ]
    assert not commit_folder(folder, "nothing new")
    assert "other.txt" in git("diff", "--cached", "--name-only")


def rows_by_key(path) -> dict:
    """Every row of a label database: columns (provenance and fidelity), settings, results."""
    rows = {}
    for row in LabelDatabase(path).rows():
        ok = row.get("status") == "ok"
        rows[row.key] = (
            row.key_value_pairs,
            row.data["reference_settings"],
            np.round(row.positions, 7),
            (row.energy, np.round(row.forces, 7), tuple(row.dipole)) if ok else None,
        )
    return rows


def same_rows(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        (pairs_a, settings_a, pos_a, res_a), (pairs_b, settings_b, pos_b, res_b) = a[key], b[key]
        if pairs_a != pairs_b or settings_a != settings_b or not np.allclose(pos_a, pos_b, atol=1e-7):
            return False
        if (res_a is None) != (res_b is None):
            return False
        if res_a is not None:
            same = (
                res_a[0] == res_b[0] and res_a[2] == res_b[2] and np.allclose(res_a[1], res_b[1], atol=1e-7)
            )
            if not same:
                return False
    return True


def test_multifidelity_benchmark_root_round_trips(tmp_path):
    """The layout of ``benchmarks/multifidelity.py``: a shared cheap pretraining run beside a
    multi-fidelity run with its own ``pretrain/`` run, expensive labels, Δ twins, ``adaptation.json``
    and an adaptation committee folder. Labels are real (GFN1-xTB as the expensive reference, GFN2-xTB
    as the cheap one, labelled by the workflow's own code); model files are stand-ins, which
    artifacts copy byte for byte whatever they hold."""
    import shutil

    from ase.build import molecule

    from specml.molecules import load_molecules
    from specml.workflow import get_workflow_config
    from specml.workflow.fidelity_config import MultiFidelitySettings
    from specml.workflow.labelling import Candidate, label_candidates, read_candidates, write_candidates
    from specml.workflow.multifidelity import TWIN_PREFIX, MultiFidelityWorkflow
    from specml.workflow.state import atomic_write_json

    root, artifacts = tmp_path / "bench", tmp_path / "artifacts"
    config = get_workflow_config("ci", reference="gfn1-xtb", run_test_set=False)
    settings = MultiFidelitySettings(pretrain="xtb", adaptation="delta")

    def open_run() -> MultiFidelityWorkflow:
        return MultiFidelityWorkflow(
            load_molecules("O"), root / "delta", config, settings, show_progress=False
        )

    workflow = open_run()
    rng = np.random.default_rng(1)
    water = molecule("H2O")

    def candidates(iteration: int, kinds: tuple[str, ...]) -> list[Candidate]:
        out = []
        for k, kind in enumerate(kinds):
            atoms = water.copy()
            atoms.positions += rng.normal(0.0, 0.03, atoms.positions.shape)
            provenance = {"molecule": "O", "iteration": iteration, "kind": kind, "temperature": 300.0}
            out.append(Candidate(f"O:{iteration}:{kind}:{k}", atoms, provenance))
        return out

    pretrain = workflow.pretrain
    label_candidates(
        candidates(0, ("normal_mode",) * 3), pretrain.database, pretrain.reference, workflow.executor
    )
    for name in ("iter_000", "final"):
        (pretrain.dirs.root / "models" / name).mkdir(parents=True)
        (pretrain.dirs.root / "models" / name / "committee.json").write_text(f'{{"cheap": "{name}"}}')
        (pretrain.dirs.root / "models" / name / "energy_member_0.pt").write_bytes(rng.bytes(2000))
    shutil.copytree(pretrain.dirs.root, root / "pretrain_xtb")  # as the benchmark shares its pretraining

    first = candidates(0, ("minimum", "normal_mode", "uncertain", "coverage"))
    write_candidates(root / "delta" / "multifidelity" / "survey.extxyz", first[2:])
    label_candidates(
        first + candidates(1, ("active",) * 2), workflow.database, workflow.reference, workflow.executor
    )
    workflow.database.add_failure("O:1:active:9", water, "SCF did not converge", {"iteration": 1}, {})
    expensive = workflow.database.labelled_atoms()
    twins = workflow.cheap_twins(expensive)  # cheap labels of the expensive structures
    assert set(twins) == {a.info["key"] for a in expensive}
    atomic_write_json(workflow.adaptation_file, {"chosen": "delta", "n_labels": 4, "scores": {"delta": 3.5}})
    for folder in ("models/iter_000", "models/iter_001", "adaptation/finetune"):
        (root / "delta" / folder).mkdir(parents=True)
        (root / "delta" / folder / "committee.json").write_text(f'{{"expensive": "{folder}"}}')
        (root / "delta" / folder / "energy_member_0.pt").write_bytes(rng.bytes(3000))
    for scratch in ("adaptation/scratch_checkpoints/member_0.pt", "multifidelity/md_checkpoints/batch_0.pt"):
        (root / "delta" / scratch).parent.mkdir(parents=True)
        (root / "delta" / scratch).write_bytes(b"snapshot")
    (root / "dft_call_cost.json").write_text(json.dumps({"s_per_call": 2.1, "calls_timed": 3}))

    databases = ("delta/labels.db", "delta/pretrain/labels.db", "pretrain_xtb/labels.db")
    labels = {db: rows_by_key(root / db) for db in databases}
    kept = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in (".db", ".log", ".lock") and "checkpoints" not in p.as_posix()
    }
    assert {"delta/adaptation.json", "delta/models/iter_001/committee.json", "dft_call_cost.json"} <= set(
        kept
    )
    manifest = export_artifacts(root, artifacts, DEPTH_FS)
    names = set(manifest["files"])
    assert {"delta/labels/iter_000.extxyz.gz", "delta/pretrain/labels/iter_000.extxyz.gz"} <= names
    assert "pretrain_xtb/models/final/committee.json.gz" in names
    assert not any(n.startswith("delta/models/iter_000") for n in names)  # the latest iteration's only
    assert not any("checkpoints" in n or n.endswith((".db", ".log")) for n in names)

    shutil.rmtree(root)
    restored = restore_artifacts(artifacts, root)
    assert set(databases) <= set(restored)
    for db in databases:  # every row with its fidelity (``reference``), provenance and twin link
        assert same_rows(rows_by_key(root / db), labels[db]), db
    twin_rows = [
        pairs
        for key, (pairs, *_) in labels["delta/pretrain/labels.db"].items()
        if key.startswith(TWIN_PREFIX)
    ]
    assert len(twin_rows) == len(expensive) == 6
    assert {p["reference"] for p in twin_rows} == {pretrain.reference.describe()}
    assert {p["twin_of"] for p in twin_rows} == {a.info["key"] for a in expensive}
    # every file comes back byte for byte, except the models of iterations that a later one replaced
    restored_files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for name, data in kept.items():
        if "/models/iter_000/" in name:
            assert name not in restored_files
        else:
            assert restored_files[name] == data, name
    assert not (root / "delta" / "adaptation" / "scratch_checkpoints").exists()

    # the workflow takes the restored run as its own: same settings, pretrained models, twins found
    again = open_run()
    assert again.pretrained_models().is_dir()
    assert [c.key for c in read_candidates(root / "delta" / "multifidelity" / "survey.extxyz")] == [
        c.key for c in first[2:]
    ]
    n_cheap = again.pretrain.database.count()
    assert set(again.cheap_twins(again.database.labelled_atoms())) == set(twins)
    assert again.pretrain.database.count() == n_cheap  # nothing labelled twice
    # and exports the same artifacts: a fresh clone's rerun commits nothing spurious
    assert export_artifacts(root, tmp_path / "again", DEPTH_FS)["files"] == manifest["files"]


def test_multifidelity_benchmark_keeps_artifacts_of_its_own_settings_only():
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import multifidelity as bench

    def folder(**changes):
        args = {"no_artifacts": False, "artifacts": None, "expensive": bench.EXPENSIVE, "preset": "default"}
        return bench.artifact_folder(argparse.Namespace(**{**args, "set": [], **changes}))

    assert folder() == bench.ARTIFACTS == bench.ROOT / "benchmarks" / "artifacts" / "multifidelity"
    assert folder(expensive="gfn1-xtb") is None and folder(set=["max_iterations=1"]) is None
    assert folder(expensive="gfn1-xtb", artifacts="elsewhere") == Path("elsewhere")
    assert folder(no_artifacts=True) is None


def test_a_failed_artifact_commit_does_not_end_the_run(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _stage_artifacts import StageArtifacts

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository around tmp_path
    fake_run(tmp_path / "run")
    said: list[str] = []
    stages = StageArtifacts(
        tmp_path / "artifacts", tmp_path / "run", DEPTH_FS, (), True, said.append, benchmark="multifidelity"
    )
    stages.save("iteration 0")
    assert (tmp_path / "artifacts" / MANIFEST).is_file()
    assert len(said) == 1 and "(iteration 0) not committed" in said[0]


def test_multifidelity_benchmarks_side_by_side_keep_each_others_rows(tmp_path):
    """Two invocations with other --variants write one results file: neither drops the other's rows."""
    import sys
    from pathlib import Path

    from rich.console import Console

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import multifidelity as bench

    from specml.workflow import get_workflow_config

    config = get_workflow_config("default", reference=bench.EXPENSIVE, run_test_set=False)
    out = tmp_path / "multifidelity.json"
    quiet = Console(quiet=True)
    (tmp_path / "root").mkdir()  # a measured DFT call cost, so the rows are all that is written
    (tmp_path / "root" / "dft_call_cost.json").write_text(json.dumps({"s_per_call": 2.0, "calls_timed": 3}))
    first, second = (bench.Benchmark(tmp_path / "root", config, out, quiet) for _ in range(2))
    first.record("delta", {"status": "done", "pcc_vs_experiment": 0.9})
    first.write()
    second.record("scratch", {"status": "done", "pcc_vs_experiment": 0.8})
    second.write()  # knew nothing of delta's row when it started
    variants = json.loads(out.read_text())["variants"]
    assert variants["delta"]["pcc_vs_experiment"] == 0.9 and variants["scratch"]["pcc_vs_experiment"] == 0.8
    assert variants["dft_only"]["status"] == "not started"

    # a third, started before delta's production finished, passes delta's learning without
    # writing its row back as merely "learned" (which dropped the spectrum's numbers once)
    third = bench.Benchmark(tmp_path / "root", config, out, quiet)
    first.record("delta", {"status": "done", "pcc_vs_experiment": 0.95, "frequency_scaled": {}})
    first.write()
    third.learn("delta")
    third.record("dft_only", {"status": "learned"})
    third.write()
    variants = json.loads(out.read_text())["variants"]
    assert variants["delta"]["pcc_vs_experiment"] == 0.95 and variants["dft_only"]["status"] == "learned"
