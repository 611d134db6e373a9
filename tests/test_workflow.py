"""The active-learning IR workflow end to end (tiny 'ci' settings), resumption and failure paths."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from processes import sigkill_when_rows

from specml.dataset.database import LabelDatabase
from specml.errors import InputError, ModelError, UnsupportedElementError
from specml.executor import make_executor
from specml.molecules import load_molecules
from specml.reference import make_reference
from specml.workflow import IRWorkflow, get_workflow_config
from specml.workflow.labelling import Candidate, label_candidates
from specml.workflow.md_tasks import Replica, exploration_task, replica_seed, select_most_uncertain
from specml.workflow.production import read_production_file

TESTS = Path(__file__).resolve().parent
CI = get_workflow_config("ci")


def expected_label_count(config, n_atoms=6, n_molecules=1):
    initial = n_molecules * (1 + (3 * n_atoms - 6) * config.n_per_mode)
    per_iteration = n_molecules * len(config.temperatures_k) * config.n_select_per_temperature
    return initial + config.max_iterations * per_iteration


@pytest.fixture(scope="module")
def methanol_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("methanol_ci")
    workflow = IRWorkflow(load_molecules("CO"), run_dir, CI, show_progress=False)
    return workflow, workflow.run()


def test_end_to_end_gives_spectrum_with_std(methanol_run):
    workflow, result = methanol_run
    spectrum = result.spectra["CO@300K"]
    assert spectrum.std is not None and spectrum.std.max() > 0
    assert spectrum.metadata["n_trajectories"] == CI.n_trajectories
    # Methanol's strongest ML-MD bands fall in the C-H / C-O stretch regions, not in empty ones.
    x, y = spectrum.wavenumber, spectrum.intensity
    assert y[(x > 2700) & (x < 3300)].max() > 5 * y[(x > 1900) & (x < 2300)].max()
    curve = result.learning_curve
    assert [e["iteration"] for e in curve] == [0, 1]
    n_test = CI.test_clusters * CI.test_per_cluster
    assert curve[-1]["reference_calls"] == expected_label_count(CI)
    assert workflow.database.count(status="ok") == expected_label_count(CI) + n_test
    assert workflow.database.count(kind="test") == n_test
    assert np.isfinite(curve[-1]["harmonic_mae_cm1"])
    assert {"energy_mae_meV", "force_mae_meV_per_A", "dipole_mae_mD"} <= set(result.summary["test_set"])
    assert result.summary["test_set"]["n_structures"] == CI.test_clusters * CI.test_per_cluster
    assert (workflow.dirs.final_models / "committee.json").exists()


def test_database_rows_carry_provenance(methanol_run):
    workflow, _ = methanol_run
    rows = workflow.database.labelled_atoms()
    active = [a for a in rows if a.info.get("kind") == "active"]
    assert len(active) == len(CI.temperatures_k) * CI.n_select_per_temperature
    assert {a.info["temperature"] for a in active} == set(CI.temperatures_k)
    assert all(a.info["uncertainty"] > 0 and a.info["iteration"] == 1 for a in active)
    assert all("xtb" in a.info["reference"] for a in rows)


def test_rerun_resumes_without_new_calculations(methanol_run):
    workflow, result = methanol_run
    before = workflow.database.count()
    again = IRWorkflow(load_molecules("CO"), workflow.dirs.root, CI, show_progress=False).run()
    assert workflow.database.count() == before
    np.testing.assert_allclose(again.spectra["CO@300K"].intensity, result.spectra["CO@300K"].intensity)


def test_changed_settings_refuse_to_mix_into_a_run(methanol_run):
    workflow, _ = methanol_run
    with pytest.raises(InputError, match="other settings"):
        IRWorkflow(
            load_molecules("CO"), workflow.dirs.root, CI.with_overrides(n_per_mode=2), show_progress=False
        )


def test_stopping_settings_may_change_until_the_loop_has_ended(methanol_run, tmp_path):
    workflow, _ = methanol_run
    with pytest.raises(InputError, match="other settings"):  # its loop has ended: final models exist
        IRWorkflow(
            load_molecules("CO"), workflow.dirs.root, CI.with_overrides(max_iterations=3), show_progress=False
        )
    IRWorkflow(load_molecules("CO"), tmp_path, CI, show_progress=False)  # a run that has not ended
    IRWorkflow(
        load_molecules("CO"),
        tmp_path,
        CI.with_overrides(max_iterations=3, target_harmonic_mae_cm1=2.0),
        show_progress=False,
    )
    assert json.loads((tmp_path / "config.json").read_text())["config"]["max_iterations"] == 3
    with pytest.raises(InputError, match="other settings"):  # anything else still refuses
        IRWorkflow(
            load_molecules("CO"),
            tmp_path,
            CI.with_overrides(max_iterations=3, n_per_mode=2),
            show_progress=False,
        )


def test_stop_reason_target_stall_and_replay():
    from specml.workflow.active_learning import stop_reason

    def curve(*maes):
        return [{"iteration": i, "harmonic_mae_cm1": m} for i, m in enumerate(maes)]

    config = get_workflow_config("default", target_harmonic_mae_cm1=5.0, stall_iterations=3)
    assert stop_reason(curve(12.0, 4.9), config).startswith("harmonic MAE 4.9 cm-1")
    assert stop_reason(curve(12.0, 6.0, 7.0, 6.5), config) is None  # two iterations above the best
    stalled = stop_reason(curve(12.0, 6.0, 7.0, 6.5, 6.0), config)  # equal is not lower
    assert stalled == "stalled: 3 iterations without a harmonic MAE below the best, 6.0 cm-1 at iteration 1"
    assert stop_reason(curve(12.0, 6.0, 7.0, 6.5, 5.9), config) is None  # a new best restarts the count
    assert stop_reason(curve(12.0, 6.0, 7.0, 6.5, 6.0), config.with_overrides(stall_iterations=0)) is None
    assert get_workflow_config("paper").stall_iterations == 0  # the paper runs its iterations out
    with pytest.raises(InputError, match="stall_iterations"):
        get_workflow_config("default", stall_iterations=-1)


def test_config_stored_before_the_stall_rule_resumes(tmp_path):
    """A run stored without ``stall_iterations`` (older specml) resumes under the default rule."""
    IRWorkflow(load_molecules("CO"), tmp_path, CI, show_progress=False)
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["config"]["stall_iterations"]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    (tmp_path / "models" / "final").mkdir(parents=True)  # the loop has ended: stopping settings closed
    IRWorkflow(load_molecules("CO"), tmp_path, CI, show_progress=False)


def test_test_set_settings_may_change_until_its_structures_are_chosen(methanol_run, tmp_path):
    workflow, _ = methanol_run
    with pytest.raises(InputError, match="other settings"):  # its test set has been chosen
        IRWorkflow(
            load_molecules("CO"), workflow.dirs.root, CI.with_overrides(test_md_ps=0.2), show_progress=False
        )
    IRWorkflow(load_molecules("CO"), tmp_path, CI, show_progress=False)
    (tmp_path / "models" / "final").mkdir(parents=True)  # the loop has ended; the test set is not chosen
    IRWorkflow(
        load_molecules("CO"), tmp_path, CI.with_overrides(test_md_ps=0.2, test_frames=10), show_progress=False
    )
    assert json.loads((tmp_path / "config.json").read_text())["config"]["test_md_ps"] == 0.2
    with pytest.raises(InputError, match="other settings"):  # the stopping settings are closed now
        IRWorkflow(
            load_molecules("CO"),
            tmp_path,
            CI.with_overrides(test_md_ps=0.2, test_frames=10, max_iterations=3),
            show_progress=False,
        )


def test_stage_wall_time_is_on_disk_while_the_stage_runs(tmp_path, monkeypatch):
    """A killed stage resumes from its snapshots, so its time must already be in timings.json."""
    from specml.workflow import state

    monkeypatch.setattr(state, "TIMING_HEARTBEAT_S", 0.05)
    monkeypatch.setattr(state, "MIN_RECORDED_S", 0.05)
    dirs = state.RunDirectory(tmp_path)
    with dirs.timed("training"):
        time.sleep(0.4)
        running = json.loads(dirs.timings.read_text())["training"]  # as a SIGKILL now would leave it
    finished = json.loads(dirs.timings.read_text())["training"]
    assert 0.2 < running <= finished and finished >= 0.4
    with pytest.raises(RuntimeError):
        with dirs.timed("training"):  # time of a stage that fails still counts, once
            time.sleep(0.1)
            raise RuntimeError
    assert finished + 0.1 <= dirs.total_time_s() < finished + 0.3
    # a resume that finds the stage done comes back at once: the file is not rewritten
    written = dirs.timings.stat().st_mtime_ns, dirs.timings.read_text()
    with dirs.timed("training"):
        pass
    assert (dirs.timings.stat().st_mtime_ns, dirs.timings.read_text()) == written
    with dirs.timed("test_set"):  # a new stage is recorded however short
        pass
    assert "test_set" in json.loads(dirs.timings.read_text())


def test_sanity_stop_ends_trajectory_at_once(methanol_run):
    workflow, _ = methanol_run
    replicas = [Replica("CO", workflow.prepared()[0].atoms, 300.0, seed=1)]
    settings = {
        "n_steps": 50,
        "timestep_fs": 0.5,
        "friction_per_fs": 0.01,
        "record_interval": 1,
        "uncertainty_stop": 1e-9,
        "precision": "float64",
    }
    (outcome,) = exploration_task((str(workflow.dirs.final_models), replicas, settings))
    assert outcome["stopped"] and outcome["stop_step"] == 1
    assert "uncertainty" in outcome["stop_reason"]
    assert select_most_uncertain(np.array([0.1, 0.5, 0.45, np.nan, 0.3]), 2) == [1, 4]


def test_trained_models_predict_new_molecule_and_reject_unseen_element(methanol_run, tmp_path):
    workflow, _ = methanol_run
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "specml",
            "ir",
            "CCl",
            "--models",
            str(workflow.dirs.root),
            "--preset",
            "ci",
            "--run-dir",
            str(tmp_path / "p"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Cl" in lines[0]
    assert not (tmp_path / "p").exists()  # refused before the folder was claimed for this committee
    with pytest.raises(UnsupportedElementError, match="U"):
        IRWorkflow(load_molecules("[U]"), tmp_path / "u", CI, show_progress=False)


def test_scf_failures_are_recorded_and_skipped(tmp_path):
    reference = make_reference("ase:reference_doubles:FlakyXTB")
    db = LabelDatabase(tmp_path / "labels.db")
    rng = np.random.default_rng(0)
    candidates = []
    for i in range(12):
        atoms = molecule("H2O")
        atoms.positions += rng.normal(0, 0.02, atoms.positions.shape)
        candidates.append(
            Candidate(f"w:{i}", atoms, {"molecule": "water", "iteration": 0, "kind": "test_case"})
        )
    counts = label_candidates(candidates, db, reference, make_executor(show_progress=False))
    assert counts["failed"] > 0 and counts["new"] > 0 and counts["new"] + counts["failed"] == 12
    assert db.count(status="failed") == counts["failed"]
    with sqlite3.connect(tmp_path / "labels.db") as con:
        errors = [
            json.loads(v) if v.startswith('"') else v
            for (v,) in con.execute("select value from text_key_values where key='error'")
        ]
    assert all("SCF" in e for e in errors)
    again = label_candidates(candidates, db, reference, make_executor(show_progress=False))
    assert again == {"new": 0, "failed": 0, "skipped": 12}


def test_dask_executor_gives_same_labels_as_in_process(tmp_path):
    reference = make_reference("xtb")
    rng = np.random.default_rng(1)
    candidates = []
    for i in range(6):
        atoms = molecule("CH3OH")
        atoms.positions += rng.normal(0, 0.03, atoms.positions.shape)
        candidates.append(Candidate(f"m:{i}", atoms, {"molecule": "methanol", "iteration": 0}))
    local = LabelDatabase(tmp_path / "local.db")
    label_candidates(candidates, local, reference, make_executor(show_progress=False))
    executor = make_executor("local:2", show_progress=False)  # a real dask LocalCluster, 2 processes
    try:
        distributed = LabelDatabase(tmp_path / "dask.db")
        label_candidates(candidates, distributed, reference, executor)
        assert len(executor.client().scheduler_info()["workers"]) == 2
    finally:
        executor.close()
    a = {x.info["key"]: x for x in local.labelled_atoms()}
    b = {x.info["key"]: x for x in distributed.labelled_atoms()}
    assert set(a) == set(b) and len(a) == 6
    for key in a:
        assert a[key].info["energy"] == pytest.approx(b[key].info["energy"], abs=1e-10)
        np.testing.assert_allclose(a[key].arrays["forces"], b[key].arrays["forces"], atol=1e-10)
        np.testing.assert_allclose(a[key].info["dipole"], b[key].info["dipole"], atol=1e-10)


def test_training_data_does_not_depend_on_the_order_labels_arrive_in(tmp_path):
    # An executor finishes labels in any order; the training set (and so the models) must not follow it.
    water = molecule("H2O")
    labels = [(f"water:0:nm{i:03d}", -10.0 - i) for i in range(5)]
    keys = []
    for name, order in (("forward", labels), ("reverse", labels[::-1])):
        db = LabelDatabase(tmp_path / f"{name}.db")
        for key, energy in order:
            db.add_label(
                key, water, energy, np.zeros((3, 3)), np.zeros(3), {"molecule": "water", "iteration": 0}, {}
            )
        images = db.labelled_atoms()
        keys.append([a.info["key"] for a in images])
        assert [a.info["energy"] for a in images] == [e for _, e in labels]
    assert keys[0] == keys[1] == [k for k, _ in labels]


def test_md_replicas_never_share_a_random_stream():
    # Every stage, molecule, temperature and replica of a 12-iteration run gets its own seed (the
    # old offsets gave exploration of iteration 5 the production seeds, and every production
    # temperature the same ones), and a seed does not depend on the process (PYTHONHASHSEED).
    stages = [f"exploration:{i}" for i in range(12)] + ["test_set", "production"]
    seeds = [
        replica_seed(0, stage, name, t, k)
        for stage in stages
        for name in ("methanol", "ethanol")
        for t in (100.0, 300.0, 500.0, 700.0, 900.0)
        for k in range(4)
    ]
    assert len(set(seeds)) == len(seeds)
    assert replica_seed(0, "production", "methanol", 300.0, 0) != replica_seed(
        1, "production", "methanol", 300.0, 0
    )
    code = "from specml.workflow.md_tasks import replica_seed; print(replica_seed(0, 'production', 'methanol', 300, 2))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    ).stdout
    assert int(out) == replica_seed(0, "production", "methanol", 300.0, 2)


def test_malformed_local_scheduler_is_an_input_error():
    with pytest.raises(InputError, match="local:N"):
        make_executor("local:two").client()


def test_sigkill_mid_iteration_loses_and_duplicates_nothing(tmp_path):
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable,
        "-m",
        "specml",
        "ir",
        "CO",
        "--preset",
        "ci",
        "--run-dir",
        str(run_dir),
        "--reference",
        'ase:reference_doubles:SlowXTB@{"delay": 0.1}',
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = run_dir / "labels.db"
    n_before = sigkill_when_rows(proc, db_path, 10)  # once labelling of iteration 0 is well under way
    assert 10 <= n_before < expected_label_count(CI)
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-2000:]
    with sqlite3.connect(db_path) as con:
        keys = [k for (k,) in con.execute("select value from text_key_values where key='key'")]
    assert len(keys) == len(set(keys)) == expected_label_count(CI) + CI.test_clusters * CI.test_per_cluster
    assert (run_dir / "spectrum_CO_300K.csv").exists()


def test_label_database_ignores_a_lock_file_left_by_a_killed_writer(tmp_path):
    """ASE's lock file outlives a SIGKILLed holder; a resumed run must still be able to write."""
    (tmp_path / "labels.db.lock").write_text("")  # as a writer killed mid-write leaves it
    code = (
        "import sys, numpy as np; from ase.build import molecule; "
        "from specml.dataset.database import LabelDatabase; "
        "db = LabelDatabase(sys.argv[1]); a = molecule('H2O'); "
        "db.add_label('w', a, -1.0, np.zeros((3, 3)), np.zeros(3), {'molecule': 'water'}, {}); "
        "print(db.count(key='w'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "labels.db")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"


def test_progress_reporting_does_not_change_the_trajectory(methanol_run):
    from specml.workflow.md_tasks import production_task

    workflow, _ = methanol_run
    replicas = [Replica("CO", workflow.prepared()[0].atoms, 300.0, seed=5)]
    settings = {
        "thermalization_steps": 100,
        "production_steps": 1200,
        "timestep_fs": 0.5,
        "friction_per_fs": 0.001,
        "record_interval": 2,
        "uncertainty_stop": 0.5,
        "precision": "float64",
    }
    seen = []
    chunked = production_task(
        (
            str(workflow.dirs.final_models),
            replicas,
            {**settings, "progress": lambda done, total: seen.append((done, total))},
        )
    )
    single = production_task((str(workflow.dirs.final_models), replicas, settings))
    np.testing.assert_array_equal(chunked[0]["dipoles"], single[0]["dipoles"])
    assert len(chunked[0]["dipoles"]) == 600
    assert seen[-1] == (1300, 1300) and len(seen) >= 3


def test_quantum_nuclei_rerun_a_finished_run_into_their_own_folder(methanol_run, tmp_path):
    """``production_beads`` changes only the production stage: a finished run rerun with ring
    polymers labels nothing, keeps its classical trajectories and stores the new ones apart."""
    workflow, _ = methanol_run
    run_dir = tmp_path / "run"
    shutil.copytree(workflow.dirs.root, run_dir)
    classical = (run_dir / "production" / "300K" / "CO.npz").read_bytes()
    labels = workflow.database.count(status="ok")
    quantum = IRWorkflow(
        load_molecules("CO"), run_dir, CI.with_overrides(production_beads=2), show_progress=False
    )
    spectrum = quantum.run().spectra["CO@300K"]
    assert quantum.database.count(status="ok") == labels
    assert (run_dir / "production" / "300K" / "CO.npz").read_bytes() == classical
    assert (run_dir / "production" / "300K_2beads" / "CO.npz").exists()
    assert spectrum.metadata["ring_polymer_beads"] == 2
    assert 200.0 < spectrum.metadata["mean_kinetic_temperature_k"] < 400.0  # bead temperature / P


def test_production_continues_the_thermalisation_stream(methanol_run):
    """Thermalisation + production is one uninterrupted Langevin trajectory: its production
    frames are those of a single engine run over both phases (no replayed random kicks)."""
    from specml.dynamics.batched import BatchedMD
    from specml.models import Committee
    from specml.workflow.md_tasks import _start, production_task

    workflow, _ = methanol_run
    replica = Replica("CO", workflow.prepared()[0].atoms, 300.0, seed=5)
    settings = {
        "thermalization_steps": 100,
        "production_steps": 200,
        "timestep_fs": 0.5,
        "friction_per_fs": 0.01,
        "record_interval": 2,
        "uncertainty_stop": np.inf,
        "precision": "float64",
    }
    (produced,) = production_task((str(workflow.dirs.final_models), [replica], settings))
    committee = Committee.load(workflow.dirs.final_models)
    engine = BatchedMD(
        committee.energy_models,
        [_start(replica)],
        dipole_model=committee.dipole_model,
        temperatures_K=300.0,
        friction_per_fs=0.01,
        seeds=[5],
        uncertainty_threshold=np.inf,
        record_interval=2,
        record_positions=False,
        precision="float64",
    )
    (continuous,) = engine.run(300).replicas
    np.testing.assert_allclose(produced["dipoles"], continuous.dipoles[50:], rtol=0, atol=1e-10)


class Killed(Exception):
    pass


def kill_at(step: int):
    """A progress callback that stops a task once it has run ``step`` steps."""

    def progress(done, total):
        if done >= step:
            raise Killed

    return progress


# Chunks of 500 steps: killed in thermalisation (at 500 of 700) or in production (at 500 of 800);
# classical nuclei, and ring polymers of two beads.
@pytest.mark.parametrize("kill_step, resumed_at, beads", [(500, 700, 1), (1200, 1500, 1), (1200, 1500, 2)])
def test_killed_production_task_resumes_exactly_from_its_snapshot(
    methanol_run, tmp_path, monkeypatch, kill_step, resumed_at, beads
):
    import specml.checkpoint
    from specml.workflow.md_tasks import production_task

    monkeypatch.setattr(specml.checkpoint, "CHECKPOINT_INTERVAL_S", 0.0)  # a snapshot after every chunk
    workflow, _ = methanol_run
    models = str(workflow.dirs.final_models)
    replicas = [
        Replica("CO", workflow.prepared()[0].atoms, t, seed=5 + k) for k, t in enumerate((300.0, 600.0))
    ]
    settings = {
        "thermalization_steps": 700,
        "production_steps": 800,
        "timestep_fs": 0.5,
        "friction_per_fs": 0.01,
        "record_interval": 2,
        "uncertainty_stop": np.inf,
        "precision": "float64",
        **({"beads": beads} if beads > 1 else {}),
    }
    straight = production_task((models, replicas, settings))
    snapshot = tmp_path / "batch_0.pt"
    with pytest.raises(Killed):
        production_task(
            (models, replicas, {**settings, "checkpoint": str(snapshot), "progress": kill_at(kill_step)})
        )
    steps_seen = []
    resumed = production_task(
        (
            models,
            replicas,
            {
                **settings,
                "checkpoint": str(snapshot),
                "progress": lambda done, total: steps_seen.append(done),
            },
        )
    )
    assert steps_seen[0] == resumed_at  # the first chunk after the killed run's snapshot, not from step 0
    for a, b in zip(straight, resumed, strict=True):
        assert len(a["dipoles"]) == 400
        np.testing.assert_allclose(b["dipoles"], a["dipoles"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(b["temperatures"], a["temperatures"], rtol=0, atol=1e-8)
    # Finished: a rerun returns the saved output without running a step.
    steps_seen.clear()
    again = production_task(
        (
            models,
            replicas,
            {
                **settings,
                "checkpoint": str(snapshot),
                "progress": lambda done, total: steps_seen.append(done),
            },
        )
    )
    assert steps_seen == [] and np.array_equal(again[1]["dipoles"], resumed[1]["dipoles"])
    # Other settings: the snapshot is not this task's, so it runs from the start.
    other = production_task(
        (
            models,
            replicas,
            {
                **settings,
                "production_steps": 600,
                "checkpoint": str(snapshot),
                "progress": lambda done, total: steps_seen.append(done),
            },
        )
    )
    assert steps_seen[0] == 500 and len(other[0]["dipoles"]) == 300


def test_killed_exploration_task_resumes_exactly(methanol_run, tmp_path, monkeypatch):
    import specml.checkpoint

    monkeypatch.setattr(specml.checkpoint, "CHECKPOINT_INTERVAL_S", 0.0)
    workflow, _ = methanol_run
    models = str(workflow.dirs.final_models)
    replicas = [Replica("CO", workflow.prepared()[0].atoms, 500.0, seed=11)]
    settings = {
        "n_steps": 1200,
        "timestep_fs": 0.5,
        "friction_per_fs": 0.01,
        "record_interval": 10,
        "uncertainty_stop": np.inf,
        "precision": "float64",
    }
    (straight,) = exploration_task((models, replicas, settings))
    snapshot = str(tmp_path / "batch_0.pt")
    with pytest.raises(Killed):
        exploration_task((models, replicas, {**settings, "checkpoint": snapshot, "progress": kill_at(1000)}))
    (resumed,) = exploration_task((models, replicas, {**settings, "checkpoint": snapshot}))
    assert len(resumed["positions"]) == 120
    np.testing.assert_array_equal(resumed["steps"], straight["steps"])
    np.testing.assert_allclose(resumed["positions"], straight["positions"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(resumed["final_momenta"], straight["final_momenta"], rtol=0, atol=1e-10)


def test_md_batches_for_workers_are_balanced_by_atoms():
    from specml.workflow.md_tasks import balanced_batches

    water, ethanol = molecule("H2O"), molecule("CH3CH2OH")  # 3 and 9 atoms
    replicas = [Replica("ethanol", ethanol, 300.0, k) for k in range(3)] + [
        Replica("water", water, 300.0, k) for k in range(3)
    ]
    batches = balanced_batches(replicas, 2)
    assert sorted(sum(len(r.atoms) for r in b) for b in batches) == [18, 18]
    assert sorted(r.seed for b in batches for r in b if r.molecule == "water") == [0, 1, 2]
    assert len(balanced_batches(replicas, 10)) == 6 and balanced_batches(replicas[:1], 4) == [replicas[:1]]


def test_run_from_before_a_new_setting_still_resumes(methanol_run):
    workflow, _ = methanol_run
    original = workflow.dirs.config.read_text()
    stored = json.loads(original)
    try:
        stored["config"].pop("model_epochs")  # as written before that setting existed
        workflow.dirs.config.write_text(json.dumps(stored))
        IRWorkflow(load_molecules("CO"), workflow.dirs.root, CI, show_progress=False)  # no error
        stored["config"]["no_such_setting"] = 1
        workflow.dirs.config.write_text(json.dumps(stored))
        with pytest.raises(InputError, match="no_such_setting"):
            IRWorkflow(load_molecules("CO"), workflow.dirs.root, CI, show_progress=False)
    finally:
        workflow.dirs.config.write_text(original)  # the run is shared by the tests of this module


def test_trained_models_predict_without_retraining(methanol_run, tmp_path):
    workflow, _ = methanol_run
    n_labels = workflow.database.count()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "specml",
            "ir",
            "CO",
            "--models",
            str(workflow.dirs.root),
            "--preset",
            "ci",
            "--run-dir",
            str(tmp_path / "p"),
            "-T",
            "100",
            "-T",
            "600",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    domain = summary["domain"]["CO"]
    assert domain["uncertainty_at_minimum"] >= 0
    assert set(domain["mean_uncertainty_md_by_temperature_k"]) == {"100", "600"}
    assert domain["mean_uncertainty_md"] == max(domain["mean_uncertainty_md_by_temperature_k"].values())
    for t in (100, 600):
        assert (tmp_path / "p" / f"spectrum_CO_{t}K.csv").exists()
    # Each temperature's trajectories ran at that temperature.
    cold, hot = (
        read_production_file(tmp_path / "p" / "production" / f"{t}K" / "CO.npz").mean_temperatures_k
        for t in (100, 600)
    )
    assert max(cold) < 250.0 < 350.0 < min(hot)  # 600 K: see test_production_temperatures_share_one_batch
    assert not (tmp_path / "p" / "production" / "md_checkpoints").exists()
    assert (tmp_path / "p" / "minima" / "CO.npz").exists() and (tmp_path / "p" / "prediction.json").exists()
    assert workflow.database.count() == n_labels  # no reference calls, no training


def test_prediction_minima_are_stored_and_reused(methanol_run, tmp_path, monkeypatch):
    """A resumed prediction must start its MD from the very same structures (its snapshots are
    named by them), so the committee minima are stored, not relaxed again."""
    import specml.workflow.prediction as prediction

    workflow, _ = methanol_run
    committee = prediction.load_predicting_committee(workflow.dirs.root)
    [(_, minimum)], report = prediction.prediction_structures(committee, load_molecules("CO"), tmp_path)
    monkeypatch.setattr(prediction, "ml_minimum", lambda *a, **k: pytest.fail("relaxed again"))
    [(_, again)], report_again = prediction.prediction_structures(committee, load_molecules("CO"), tmp_path)
    assert np.array_equal(again.positions, minimum.positions)
    assert again.get_chemical_symbols() == minimum.get_chemical_symbols() and report_again == report
    moved = load_molecules("CO")
    moved[0].atoms.positions[0, 0] += 0.1  # another structure under the stored name
    with pytest.raises(InputError, match="another structure"):
        prediction.prediction_structures(committee, moved, tmp_path)


def test_prediction_dir_belongs_to_one_committee_and_md_settings(methanol_run, tmp_path):
    import shutil

    from specml.workflow.prediction import claim_prediction_dir

    workflow, _ = methanol_run
    models = workflow.dirs.final_models
    claim_prediction_dir(tmp_path / "p", models, CI)
    claim_prediction_dir(tmp_path / "p", models, CI)  # a rerun of the same prediction
    with pytest.raises(InputError, match="other MD settings"):
        claim_prediction_dir(
            tmp_path / "p", models, get_workflow_config("ci", production_ps=CI.production_ps * 2)
        )
    shutil.copytree(models, tmp_path / "retrained")
    manifest = tmp_path / "retrained" / "committee.json"
    manifest.write_text(manifest.read_text() + "\n")
    with pytest.raises(InputError, match="another committee"):
        claim_prediction_dir(tmp_path / "p", tmp_path / "retrained", CI)
    with pytest.raises(InputError, match="training run"):
        claim_prediction_dir(workflow.dirs.root, models, CI)


def test_production_file_reader_leaves_out_stopped_and_short_runs(tmp_path):
    path = tmp_path / "mol.npz"
    lengths, stopped = (3000, 3000, 1500), (False, True, False)
    arrays = {"record_interval_fs": np.array(1.0)}
    for k, (n, stop) in enumerate(zip(lengths, stopped, strict=True)):
        arrays[f"dipoles_{k}"] = np.full((n, 3), float(k))
        arrays[f"uncertainty_{k}"] = np.full(n, 0.1 * (k + 1))
        arrays[f"stopped_{k}"] = np.array(stop)
        arrays[f"mean_temperature_{k}"] = np.array(300.0 + k)
    np.savez(path, **arrays)
    runs = read_production_file(path)
    assert runs.stopped == [False, True, False] and runs.mean_temperatures_k == [300.0, 301.0, 302.0]
    assert runs.mean_uncertainties == pytest.approx([0.1, 0.2, 0.3])
    usable = runs.usable_dipoles(min_fs=2000.0)  # run 1 stopped, run 2 only 1.5 ps long
    assert [d[0, 0] for d in usable] == [0.0]
    assert [len(d) for d in runs.usable_dipoles(max_ps=1.0)] == [1000, 1000]
    np.savez(path, record_interval_fs=np.array(1.0))
    with pytest.raises(InputError, match="no production trajectories"):
        read_production_file(path)


def test_md_task_outputs_come_back_in_replica_order():
    """On Dask, batches are balanced by atoms and so reorder the replicas; outputs must not be."""
    from specml.executor import Executor, TaskResult
    from specml.workflow.md_tasks import run_md_tasks

    class TwoWorkers(Executor):
        distributed = True

        def n_workers(self):
            return 2

        def map(self, fn, items, description="working"):
            return [TaskResult(i, fn(item)) for i, item in enumerate(items)]

    def echo(args):
        return [{"molecule": r.molecule, "seed": r.seed} for r in args[1]]

    replicas = [Replica("water", molecule("H2O"), 300.0, k) for k in range(2)] + [
        Replica("ethanol", molecule("CH3CH2OH"), 300.0, k) for k in range(2, 4)
    ]
    outputs = run_md_tasks(TwoWorkers(show_progress=False), "models", echo, replicas, {}, "echo")
    assert [(o["molecule"], o["seed"]) for o in outputs] == [(r.molecule, r.seed) for r in replicas]


def test_production_temperatures_share_one_batch(methanol_run, tmp_path, monkeypatch):
    import shutil

    import specml.workflow.production as production

    workflow, _ = methanol_run
    shutil.copytree(workflow.dirs.root, tmp_path / "run")
    copy = IRWorkflow(load_molecules("CO"), tmp_path / "run", CI, show_progress=False)
    calls = []
    counted = production.run_md_tasks
    monkeypatch.setattr(
        production, "run_md_tasks", lambda *a, **k: calls.append(len(a[3])) or counted(*a, **k)
    )
    # 600 K, not higher: the CI committee explored 300 and 600 K, and beyond that its tiny models
    # can hit the sanity stop (900 K did on this machine), which is not what this test is about.
    spectra = copy.production((100.0, 600.0))
    assert calls == [2 * CI.n_trajectories]  # one batch for both temperatures
    assert not (tmp_path / "run" / "production" / "md_checkpoints").exists()
    cold, hot = spectra[100.0]["CO"], spectra[600.0]["CO"]
    assert cold.metadata["temperature_k"] == 100.0 and hot.metadata["temperature_k"] == 600.0
    # Each temperature's file holds the trajectories run at that temperature (the kinetic temperature
    # of 1 ps after a 50 fs thermalisation sits below the target: energy flows into the potential).
    assert (
        cold.metadata["mean_kinetic_temperature_k"]
        < 250.0
        < 350.0
        < hot.metadata["mean_kinetic_temperature_k"]
    )
    assert (tmp_path / "run" / "production" / "600K" / "CO.npz").exists()
    copy.production((100.0, 600.0))
    assert len(calls) == 1  # stored trajectories are not run again


def test_a_model_set_is_named_instead_of_a_folder_and_flags_molecules_outside_its_training(
    methanol_run, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from specml.cli import app
    from specml.models import model_sets
    from specml.workflow.prediction import predict_spectra, resolve_models_dir

    workflow, _ = methanol_run
    monkeypatch.setattr(model_sets, "SHIPPED_MODEL_SETS", tmp_path / "sets")
    shipped = model_sets.write_model_set(
        workflow.dirs.final_models,
        tmp_path / "sets" / "methanol-ci",
        "CI-sized methanol committee",
        CI.reference,
        dict(workflow.prepared_structures()),
        CI.temperatures_k,
        {"made_by": "tests/test_workflow.py"},
    )
    assert resolve_models_dir("methanol-ci") == shipped
    listed = json.loads(CliRunner().invoke(app, ["models", "--json"]).stdout)
    assert listed["methanol-ci"]["domain"] == {
        "elements": ["H", "C", "O"],  # by atomic number
        "atoms_per_molecule": [6, 6],
        "heavy_atoms_per_molecule": [2, 2],
        "temperatures_k": [300.0, 600.0],
    }
    with pytest.raises(ModelError, match="shipped: methanol-ci"):
        resolve_models_dir("train24")

    said: list[str] = []
    hot = CI.with_overrides(production_ps=0.5)
    spectra, report = predict_spectra(
        "methanol-ci", load_molecules("CCO"), tmp_path / "p", (700.0,), hot, say=said.append
    )
    assert report["CCO"]["outside_training_domain"] == [
        "9 atoms (trained on 6-6)",
        "3 heavy atoms (trained on 2-2)",
        "700 K (active learning explored 300-600 K)",
    ]
    assert report["CCO"]["out_of_domain"] and any("training domain" in line for line in said)
    methanol = predict_spectra(
        "methanol-ci", load_molecules("CO"), tmp_path / "q", (300.0,), hot, say=said.append
    )[1]
    assert methanol["CO"]["outside_training_domain"] == []
