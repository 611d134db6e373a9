"""Stage artifacts (issue 24): compact dipole files give the same spectra, label files keep every
row with provenance, and an export/restore round trip rebuilds a run directory's finished stages
without scratch files, deterministically. The end-to-end restore of a benchmark run is in
``test_palirs_small.py``."""

from __future__ import annotations

import gzip
import json

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
        assert np.allclose(row.positions, original.positions, atol=1e-8)
        if row.get("status") == "ok":
            assert row.energy == original.energy and np.allclose(row.forces, original.forces, atol=1e-8)
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
    assert not any("checkpoint" in n or n.endswith((".log", ".db")) or "/." in n for n in names)
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


def test_restore_refuses_edited_artifacts(tmp_path):
    run, artifacts = tmp_path / "run", tmp_path / "artifacts"
    fake_run(run)
    export_artifacts(run, artifacts, DEPTH_FS)
    path = artifacts / "xtb" / "config.json.gz"
    path.write_bytes(gzip.compress(b'{"config": {}}'))
    with pytest.raises(InputError, match="does not match MANIFEST.json"):
        restore_artifacts(artifacts, tmp_path / "fresh")


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
