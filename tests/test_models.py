"""Tests of specml.models on tiny MACE models and GFN2-xTB methanol data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import molecule

from specml.errors import InputError, ModelError, UnsupportedElementError
from specml.models import (
    Committee,
    ModelPreset,
    get_preset,
    select_device,
    torch_dtype,
    train_committee,
    train_dipole_model,
    train_potential,
    train_valid_split,
    uncertainty,
)

tblite_ase = pytest.importorskip("tblite.ase")

# e3nn/MACE modules trigger a harmless TorchScript annotation warning on build.
pytestmark = pytest.mark.filterwarnings("ignore:The TorchScript type system:UserWarning")

N_STRUCTURES = 30


def _labelled(name: str, n: int, seed: int, amplitude: float = 0.05) -> list:
    """Rattled molecules with GFN2-xTB energy (eV), forces (eV/Å), dipole (e·Å)."""
    rng = np.random.default_rng(seed)
    calc = tblite_ase.TBLite(method="GFN2-xTB", verbosity=0)
    structures = []
    for _ in range(n):
        atoms = molecule(name)
        atoms.positions += rng.normal(scale=amplitude, size=atoms.positions.shape)
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        dipole = atoms.get_dipole_moment()
        atoms.calc = None
        atoms.info.update(energy=energy, dipole=dipole, molecule=name)
        atoms.arrays["forces"] = forces
        structures.append(atoms)
    return structures


def _labelled_methanol(n: int, seed: int, amplitude: float = 0.05):
    return _labelled("CH3OH", n, seed, amplitude)


@pytest.fixture(scope="module")
def dataset():
    torch.set_num_threads(1)
    return _labelled_methanol(N_STRUCTURES, seed=0)


@pytest.fixture(scope="module")
def preset():
    return get_preset("tiny")


@pytest.fixture(scope="module")
def committee(dataset, preset):
    return train_committee(dataset, preset, n_members=3, seeds=(0, 1, 2), device="cpu")


@pytest.fixture(scope="module")
def saved_dir(committee, tmp_path_factory):
    return committee.save(tmp_path_factory.mktemp("committee"))


# --------------------------------------------------------------------- presets


def test_paper_preset_matches_palirs():
    paper = get_preset("paper")
    assert str(paper.hidden_irreps) == "128x0e+128x1o"
    assert (paper.r_max, paper.num_interactions, paper.correlation) == (3.0, 2, 2)


def test_preset_overrides_and_unknown_names():
    assert get_preset("tiny", epochs=3).epochs == 3
    with pytest.raises(ModelError, match="unknown model preset 'huge'.*paper"):
        get_preset("huge")
    with pytest.raises(ModelError, match="nonsense"):
        get_preset("tiny", nonsense=1)
    assert ModelPreset.from_dict(get_preset("default").as_dict()) == get_preset("default")


def test_device_and_dtype_selection():
    assert select_device("cpu") == torch.device("cpu")
    assert torch_dtype("float64") is torch.float64
    with pytest.raises(ModelError):
        torch_dtype("float16")


def test_split_is_80_20_seeded_and_disjoint():
    train, valid = train_valid_split(30, seed=3)
    assert (len(train), len(valid)) == (24, 6)
    assert not set(train) & set(valid)
    assert train_valid_split(30, seed=3) == (train, valid)
    assert train_valid_split(30, seed=4) != (train, valid)


def test_keyed_split_is_stable_as_data_grows():
    keys = [f"CO:{i}" for i in range(200)]
    train_a, valid_a = train_valid_split(120, seed=0, keys=keys[:120])
    train_b, valid_b = train_valid_split(200, seed=0, keys=keys)
    assert set(valid_a) == {i for i in valid_b if i < 120}  # old structures keep their side
    assert 0.1 < len(valid_b) / 200 < 0.3
    assert train_valid_split(200, seed=1, keys=keys)[1] != valid_b


def test_missing_labels_raise_input_error(preset):
    atoms = molecule("CH3OH")
    with pytest.raises(InputError, match="energy"):
        train_potential([atoms, atoms.copy()], preset)


# -------------------------------------------------------------------- training


def test_training_lowers_validation_errors(committee):
    for history in committee.histories["energy"]:
        before, after = history["initial_valid_mae"], history["valid_mae"]
        assert after["forces_meV_per_A"] < before["forces_meV_per_A"]
        assert history["best_valid_loss"] < history["initial_valid_loss"]
        assert len(history["train_loss"]) == history["epochs_run"] > 0


def test_members_disagree_but_mean_follows_reference(committee, dataset):
    prediction = committee.predict(dataset)
    assert np.all(prediction["force_std"] > 0)
    assert np.all(prediction["relative_force_uncertainty"] > 0)
    members = np.stack(prediction["forces_members"])  # (n, members, atoms, 3)
    assert not np.allclose(members[:, 0], members[:, 1])
    reference = np.concatenate([a.arrays["forces"] for a in dataset]).ravel()
    mean = np.concatenate(prediction["forces"]).ravel()
    assert np.corrcoef(reference, mean)[0, 1] > 0.5


def test_dipole_model_beats_mean_predictor(committee, dataset, preset):
    train, valid = train_valid_split(len(dataset), seed=0, valid_fraction=preset.valid_fraction)
    reference = np.array([dataset[i].info["dipole"] for i in valid])
    baseline = np.array([dataset[i].info["dipole"] for i in train]).mean(axis=0)
    predicted = committee.predict([dataset[i] for i in valid])["dipole"]
    model_mae = np.abs(predicted - reference).mean()
    baseline_mae = np.abs(baseline - reference).mean()
    assert model_mae < baseline_mae
    assert committee.histories["dipole"]["valid_mae"]["dipole_mD"] > 0


def test_dipole_training_needs_dipole_labels(dataset, preset):
    unlabelled = [a.copy() for a in dataset[:4]]
    for atoms in unlabelled:
        del atoms.info["dipole"]
    with pytest.raises(InputError, match="dipole"):
        train_dipole_model(unlabelled, preset)


def test_warm_start_begins_from_lower_validation_loss(committee, preset):
    new_data = _labelled_methanol(12, seed=1)
    short = get_preset("tiny", epochs=1)
    warm = train_committee(new_data, short, n_members=1, seeds=(7,), init=committee, train_dipole=False)
    cold = train_committee(new_data, short, n_members=1, seeds=(7,), train_dipole=False)
    warm_history = warm.histories["energy"][0]
    cold_history = cold.histories["energy"][0]
    assert warm_history["warm_start"] and not cold_history["warm_start"]
    assert warm_history["initial_valid_loss"] < cold_history["initial_valid_loss"]


def test_cosine_schedule_anneals_to_the_floor_and_times_each_phase(dataset):
    preset = get_preset("tiny", epochs=4, lr_schedule="cosine", lr_min_factor=0.1, learning_rate=0.01)
    rates = []
    _, history = train_potential(dataset, preset, progress=lambda e, n, m: rates.append(m["lr"]))
    assert rates == pytest.approx([0.01 * (0.1 + 0.9 * (1 + np.cos(np.pi * e / 4)) / 2) for e in range(1, 5)])
    phases = history["time_breakdown_s"]
    assert set(phases) == {"data", "forward", "backward", "optimizer", "validation"}
    assert all(t > 0 for t in phases.values()) and sum(phases.values()) <= history["train_time_s"]


def test_step_budget_cuts_epochs_and_shrinks_patience_in_proportion():
    from specml.models.training import epoch_budget

    preset = get_preset("default")  # 600 epochs, patience 200, max_steps 20,000
    assert epoch_budget(preset, 13) == (600, 200, 50)  # methanol-sized set: the budget does not bind
    assert epoch_budget(preset, 377) == (54, 18, 4)  # train24-sized set: ceil(20000 / 377) epochs
    assert epoch_budget(get_preset("default", max_steps=None), 377) == (600, 200, 50)
    assert epoch_budget(get_preset("shared"), 377)[0] == 160  # 3x the steps: ceil(60000 / 377)


def test_balanced_sampling_draws_each_molecule_equally_often():
    from ase import Atoms

    from specml.models.data import make_loader
    from specml.models.training import molecule_balance_weights

    structures = [Atoms("H2", info={"molecule": "big"})] * 90 + [Atoms("H2", info={"molecule": "small"})] * 10
    weights = molecule_balance_weights(structures)
    assert weights is not None and sum(weights[:90]) == pytest.approx(sum(weights[90:]))
    assert molecule_balance_weights(structures[:90]) is None  # one molecule: plain shuffling
    loader = make_loader(list(range(100)), 10, shuffle=True, seed=0, weights=weights)
    drawn = [int(i) for _ in range(20) for batch in loader for i in batch]
    assert len(drawn) == 2000  # an epoch is still len(data) draws
    assert 0.45 < np.mean(np.array(drawn) >= 90) < 0.55  # the 10 % molecule gets half the draws
    again = [
        int(i)
        for batch in make_loader(list(range(100)), 10, shuffle=True, seed=0, weights=weights)
        for i in batch
    ]
    assert again == drawn[:100]  # seeded


def test_step_budget_limits_training_epochs(dataset):
    preset = get_preset("tiny", epochs=50, max_steps=14, batch_size=4)  # 24 train structures: 6 steps/epoch
    reported = []
    _, history = train_potential(dataset, preset, progress=lambda e, n, m: reported.append((e, n)))
    assert history["steps_per_epoch"] == 6 and history["epochs_planned"] == 3
    assert reported == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("killed_after", [2, 5])  # in stage one, in stage two
def test_interrupted_fit_resumes_exactly_from_its_checkpoint(dataset, tmp_path, monkeypatch, killed_after):
    import specml.checkpoint

    monkeypatch.setattr(specml.checkpoint, "CHECKPOINT_INTERVAL_S", 0.0)  # save after every epoch
    preset = get_preset("tiny", epochs=6, stage_two_fraction=1 / 3)  # stage two from epoch 5
    dataset = [a.copy() for a in dataset]
    for i, atoms in enumerate(dataset):
        atoms.info["molecule"] = f"methanol {i % 2}"  # two tags, so that stage two runs
    straight, straight_history = train_potential(dataset, preset, seed=3)
    assert straight_history["stage_two_from_epoch"] == 5

    class Killed(Exception):
        pass

    def kill(epoch, n_epochs, metrics):
        if epoch == killed_after:
            raise Killed

    path = tmp_path / "member.pt"
    with pytest.raises(Killed):
        train_potential(dataset, preset, seed=3, checkpoint=path, progress=kill)
    assert path.exists()
    epochs_seen = []
    resumed, resumed_history = train_potential(
        dataset, preset, seed=3, checkpoint=path, progress=lambda e, n, m: epochs_seen.append(e)
    )
    assert epochs_seen == list(range(killed_after + 1, 7))  # no epoch is trained twice
    assert resumed_history["valid_loss"] == pytest.approx(straight_history["valid_loss"], rel=1e-5)
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # A checkpoint of another fit (other seed) is ignored, not resumed.
    epochs_seen.clear()
    train_potential(dataset, preset, seed=4, checkpoint=path, progress=lambda e, n, m: epochs_seen.append(e))
    assert epochs_seen == [1, 2, 3, 4, 5, 6]


def test_stage_two_learns_the_energy_difference_between_isomers():
    """Ethanol and dimethyl ether have the same composition, so the E0 fit cannot tell them
    apart: their energy difference must come from the network. With the force-dominated
    loss alone it stays hundreds of meV off; Stage Two's energy weight fixes it."""
    from specml.models import Committee

    data = _labelled("CH3CH2OH", 20, 0) + _labelled("CH3OCH3", 20, 1)

    def isomer_offset_meV(fraction: float) -> tuple[float, dict]:
        preset = get_preset("tiny", epochs=150, stage_two_fraction=fraction)
        model, history = train_potential(data, preset, seed=0)
        calc = Committee([model], None, preset).calculator()
        errors = {}
        for atoms in data:
            probe = atoms.copy()
            probe.calc = calc
            errors.setdefault(atoms.info["molecule"], []).append(
                probe.get_potential_energy() - atoms.info["energy"]
            )
        return 1000 * abs(np.mean(errors["CH3CH2OH"]) - np.mean(errors["CH3OCH3"])), history

    without, history_one = isomer_offset_meV(0.0)
    with_stage_two, history_two = isomer_offset_meV(0.25)
    assert history_one["stage_two_from_epoch"] is None
    assert history_two["stage_two_from_epoch"] == 150 - round(0.25 * 150) + 1
    assert without > 200 and with_stage_two < 0.25 * without


def test_stage_two_only_for_more_than_one_molecule(dataset):
    _, history = train_potential(dataset, get_preset("tiny", epochs=4, stage_two_fraction=0.5), seed=0)
    assert history["stage_two_from_epoch"] is None and history["epochs_run"] == 4  # methanol alone


def test_early_stopping_in_stage_one_starts_stage_two(dataset):
    preset = get_preset("tiny", epochs=200, patience=2, stage_two_fraction=0.05)  # 10 stage-two epochs
    data = [a.copy() for a in dataset]
    for i, atoms in enumerate(data):
        atoms.info["molecule"] = f"methanol {i % 2}"  # two tags: as if two molecules
    _, history = train_potential(data, preset, seed=0)
    start = history["stage_two_from_epoch"]
    assert start is not None and start < 191  # stage one stopped early ...
    assert start < history["epochs_run"] <= start + 9  # ... and stage two ran after it


def test_unknown_learning_rate_schedule_is_a_model_error(dataset):
    with pytest.raises(ModelError, match="lr_schedule"):
        train_potential(dataset, get_preset("tiny", epochs=1, lr_schedule="linear"))


def test_committee_trains_in_parallel_on_dask_like_in_process(dataset, preset, committee):
    from dask.distributed import Client, LocalCluster

    from specml.executor import make_executor

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        parallel = train_committee(
            dataset,
            preset,
            n_members=3,
            seeds=(0, 1, 2),
            device="cpu",
            executor=make_executor(client, show_progress=False),
        )
    assert len(parallel) == 3 and parallel.dipole_model is not None
    assert [h["seed"] for h in parallel.histories["energy"]] == [0, 1, 2]
    # Same seeds, data and split: the members are the ones trained in-process.
    here, there = committee.predict(dataset[:5]), parallel.predict(dataset[:5])
    np.testing.assert_allclose(np.concatenate(there["forces"]), np.concatenate(here["forces"]), atol=1e-4)
    np.testing.assert_allclose(there["dipole"], here["dipole"], atol=1e-4)


# --------------------------------------------------------- save, load, predict


def test_save_load_gives_identical_predictions(committee, saved_dir, dataset):
    loaded = Committee.load(saved_dir, device="cpu")
    before, after = committee.predict(dataset[:5]), loaded.predict(dataset[:5])
    np.testing.assert_array_equal(before["energy"], after["energy"])
    np.testing.assert_array_equal(np.stack(before["forces"]), np.stack(after["forces"]))
    np.testing.assert_array_equal(before["dipole"], after["dipole"])
    assert loaded.atomic_numbers == [1, 6, 8]
    assert loaded.preset == committee.preset and loaded.seeds == [0, 1, 2]


def test_loading_missing_or_corrupt_directory_raises(tmp_path, saved_dir):
    with pytest.raises(ModelError, match="no committee directory"):
        Committee.load(tmp_path / "does-not-exist")
    with pytest.raises(ModelError, match="committee.json"):
        Committee.load(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "committee.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt"):
        Committee.load(broken)
    manifest = json.loads((saved_dir / "committee.json").read_text())
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "committee.json").write_text(json.dumps(manifest))
    (truncated / "energy_member_0.pt").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="energy_member_0.pt"):
        Committee.load(truncated)


def test_calculator_gives_committee_mean_and_conservative_forces(saved_dir, dataset):
    committee = Committee.load(saved_dir, device="cpu").to(dtype="float64")
    atoms = dataset[0].copy()
    atoms.calc = committee.calculator()
    forces = atoms.get_forces()
    expected = committee.predict([atoms])
    np.testing.assert_allclose(forces, expected["forces"][0], rtol=0, atol=1e-12)
    assert atoms.calc.results["force_std"] == pytest.approx(expected["force_std"][0])
    assert atoms.calc.results["relative_force_uncertainty"] > 0
    assert atoms.get_dipole_moment().shape == (3,)

    step, atom, axis = 1e-4, 1, 0  # Å
    energies = []
    for sign in (1, -1):
        displaced = atoms.copy()
        displaced.positions[atom, axis] += sign * step
        displaced.calc = committee.calculator()
        energies.append(displaced.get_potential_energy())
    finite_difference = -(energies[0] - energies[1]) / (2 * step)
    assert finite_difference == pytest.approx(forces[atom, axis], abs=1e-6, rel=1e-5)


def test_unseen_element_is_rejected(committee):
    chloromethane = molecule("CH3Cl")
    with pytest.raises(UnsupportedElementError, match="Cl") as error:
        committee.check_elements(chloromethane)
    assert "CH3Cl" in str(error.value) and error.value.elements == ["Cl"]
    with pytest.raises(UnsupportedElementError):
        committee.predict([chloromethane])
    chloromethane.calc = committee.calculator()
    with pytest.raises(UnsupportedElementError):
        chloromethane.get_potential_energy()


def test_uncertainty_formula():
    forces = np.zeros((2, 1, 3))
    forces[0, 0] = [1.0, 0.0, 0.0]
    forces[1, 0] = [3.0, 0.0, 0.0]
    # variance per component: (1, 0, 0) -> mean 1/3; mean force magnitude 2 eV/Å.
    relative, absolute = uncertainty(forces, eps=0.1)
    assert absolute == pytest.approx(np.sqrt(1 / 3))
    assert relative == pytest.approx(np.sqrt(1 / 3) / 2.1)
    with pytest.raises(ModelError):
        uncertainty(forces[:1])


def test_unwritable_checkpoint_warns_and_training_goes_on(dataset, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.warns(UserWarning, match="cannot write training checkpoint"):
        model, history = train_potential(
            dataset, get_preset("tiny", epochs=2), checkpoint=blocker / "member.pt"
        )
    assert history["epochs_run"] == 2
