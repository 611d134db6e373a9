"""Committee members evaluated as one vmapped model (issue 24): the same energies, forces and
parameter gradients as each member evaluated on its own, with and without the training fast path."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from ase.build import molecule

from specml.errors import ModelError
from specml.models import get_preset, train_committee, train_potential
from specml.models.data import make_loader
from specml.models.fast_training import training_fast_path
from specml.models.stacked import StackedPotentials
from specml.models.training import build_energy_model, prepare_data, train_potentials_stacked

pytestmark = pytest.mark.filterwarnings("ignore:The TorchScript type system:UserWarning")


@pytest.fixture(scope="module")
def structures() -> list:
    """Rattled methanol and ethanol (two molecules, so Stage Two runs) with made-up labels."""
    rng = np.random.default_rng(2)
    out = []
    for name in ("CH3OH", "CH3CH2OH"):
        reference = molecule(name)
        for _ in range(10):
            atoms = reference.copy()
            atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
            delta = atoms.positions - reference.positions
            atoms.info["energy"] = float(0.5 * (delta**2).sum()) - 10.0 * len(atoms)
            atoms.info["dipole"] = delta.sum(0) + 0.5
            atoms.arrays["forces"] = -delta
            out.append(atoms)
    return out


@pytest.fixture(scope="module")
def prepared(structures):
    """The structures as float64 graphs."""
    return prepare_data(structures, ("energy", "forces"), 4.0, torch.float64)


def members(prepared, n: int = 3, **overrides) -> list[torch.nn.Module]:
    preset = get_preset("tiny", **overrides)
    models = []
    for seed in range(n):
        torch.manual_seed(seed)
        models.append(build_energy_model(preset, prepared))
    return models


def batch_of(prepared) -> dict:
    return next(iter(make_loader(prepared.train, 5))).to_dict()


def force_loss(energies: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
    return (energies**2).mean() + (forces**2).mean()


@pytest.mark.parametrize("fast", [False, True])
def test_stacked_members_match_their_own_forward_and_gradients(prepared, fast):
    torch.set_num_threads(1)
    models = members(prepared, num_interactions=2)  # as the default potential
    with contextlib.ExitStack() as patches:
        if fast:  # every member patched, as in a fit
            assert [patches.enter_context(training_fast_path(m)) for m in models] == [4, 4, 4]
        stacked = StackedPotentials(models)
        data = batch_of(prepared)
        energies, forces = stacked.energy_forces(dict(data))
        assert energies.shape == (3, 5) and forces.shape == (3, data["positions"].shape[0], 3)
        sum(force_loss(energies[k], forces[k]) for k in range(3)).backward()
        stacked_grads = [{n: p.grad.clone() for n, p in m.named_parameters()} for m in models]
        for k, model in enumerate(models):
            model.zero_grad()
            own = model(dict(data), training=True, compute_force=True)
            assert torch.allclose(energies[k], own["energy"], rtol=1e-10, atol=1e-10)
            assert torch.allclose(forces[k], own["forces"], rtol=1e-10, atol=1e-10)
            force_loss(own["energy"], own["forces"]).backward()
            for name, parameter in model.named_parameters():
                assert torch.allclose(stacked_grads[k][name], parameter.grad, rtol=1e-8, atol=1e-12), name
    # The members differ (their own seeds), so the check above is not of one model thrice.
    assert not torch.allclose(energies[0], energies[1])


def test_stacked_sees_the_members_updated_weights(prepared):
    models = members(prepared, n=2)
    stacked = StackedPotentials(models)
    data = batch_of(prepared)
    before, _ = stacked.energy_forces(dict(data), create_graph=False)
    with torch.no_grad():  # as an optimiser step would: in place
        models[1].readouts[0].linear.weight.add_(0.1)
    after, _ = stacked.energy_forces(dict(data), create_graph=False)
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1])
    own = models[1](dict(data), training=False, compute_force=False)["energy"]
    assert torch.allclose(after[1], own, rtol=1e-10)


def test_stacking_refuses_one_member_or_two_architectures(prepared):
    with pytest.raises(ModelError, match="at least two"):
        StackedPotentials(members(prepared, n=1))
    narrow, wide = members(prepared, n=1)[0], members(prepared, n=1, num_channels=8)[0]
    with pytest.raises(ModelError, match="one architecture"):
        StackedPotentials([narrow, wide])


# --------------------------------------------------------------- the stacked fit


def test_a_stacked_member_trains_as_its_own_fit(structures):
    torch.set_num_threads(1)
    # One epoch (the best for both fits); a clip tight enough to act on every step.
    preset = get_preset("tiny", epochs=1, num_interactions=2, clip_grad=1e-3)
    members, history = train_potentials_stacked(structures, preset, seeds=[0, 1], dtype="float64")
    alone, alone_history = train_potential(structures, preset, seed=0, dtype="float64")
    assert history["best_epoch"] == alone_history["best_epoch"] == 1
    assert history["stacked_seeds"] == [0, 1]
    for name, value in alone.state_dict().items():
        torch.testing.assert_close(members[0].state_dict()[name], value, rtol=1e-10, atol=1e-12)
    weight = "readouts.0.linear.weight"  # the members' own initialisations
    assert not torch.equal(members[0].state_dict()[weight], members[1].state_dict()[weight])


def test_a_stacked_fit_validates_on_several_batches(structures):
    # Validation runs in batches of 64: 70 of 100 structures make two, of unequal size.
    many = [a.copy() for a in structures for _ in range(5)]
    for k, atoms in enumerate(many):
        atoms.positions += 1e-3 * k  # all distinct, so the split keeps 70 of the 100
    preset = get_preset("tiny", epochs=1, valid_fraction=0.7)
    _, history = train_potentials_stacked(many, preset, seeds=[0, 1])
    assert history["n_valid"] > 64  # two validation batches (64 per batch), of unequal size
    assert np.isfinite(history["valid_mae"]["energy_meV"])


def test_a_warm_started_stacked_member_trains_as_its_own_fine_tuning(structures):
    preset = get_preset("tiny", epochs=1, num_interactions=2)
    starts, _ = train_potentials_stacked(structures, preset, seeds=[0, 1], dtype="float64")
    members, history = train_potentials_stacked(
        structures, preset, seeds=[5, 6], dtype="float64", init_models=starts
    )
    alone, _ = train_potential(structures, preset, seed=5, dtype="float64", init_model=starts[0])
    assert history["warm_start"] and all(m is not s for m, s in zip(members, starts, strict=True))
    for name, value in alone.state_dict().items():
        torch.testing.assert_close(members[0].state_dict()[name], value, rtol=1e-10, atol=1e-12)
    weight = "readouts.0.linear.weight"  # moved from where the warm start left it
    assert not torch.equal(members[1].state_dict()[weight], starts[1].state_dict()[weight])
    with pytest.raises(ModelError, match="1 warm-start models for 2 seeds"):
        train_potentials_stacked(structures, preset, seeds=[5, 6], init_models=starts[:1])


def test_an_interrupted_stacked_fit_resumes_exactly(structures, tmp_path, monkeypatch):
    import specml.checkpoint

    monkeypatch.setattr(specml.checkpoint, "CHECKPOINT_INTERVAL_S", 0.0)  # save after every epoch
    preset = get_preset("tiny", epochs=4, stage_two_fraction=0.25)
    straight, straight_history = train_potentials_stacked(structures, preset, seeds=[0, 1])

    class Killed(Exception):
        pass

    def kill(epoch, n_epochs, metrics):
        if epoch == 2:
            raise Killed

    path = tmp_path / "stacked.pt"
    with pytest.raises(Killed):
        train_potentials_stacked(structures, preset, seeds=[0, 1], checkpoint=path, progress=kill)
    seen = []
    resumed, history = train_potentials_stacked(
        structures, preset, seeds=[0, 1], checkpoint=path, progress=lambda e, n, m: seen.append(e)
    )
    assert seen == [3, 4] and history["stage_two_from_epoch"] == straight_history["stage_two_from_epoch"] == 4
    for mine, theirs in zip(resumed, straight, strict=True):
        for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_stacked_committee_trains_alike_in_process_and_on_dask(structures):
    from dask.distributed import Client, LocalCluster

    from specml.executor import make_executor

    preset = get_preset("tiny", epochs=2)
    here = train_committee(structures, preset, n_members=2, seeds=(0, 1), device="cpu", stacked=True)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        there = train_committee(
            structures,
            preset,
            n_members=2,
            seeds=(0, 1),
            device="cpu",
            stacked=True,
            executor=make_executor(client, show_progress=False),
        )
    assert len(here) == len(there) == 2 and there.dipole_model is not None
    assert [h["stacked_seeds"] for h in there.histories["energy"]] == [[0, 1], [0, 1]]
    a, b = here.predict(structures[:4]), there.predict(structures[:4])
    np.testing.assert_allclose(a["energy_members"], b["energy_members"], rtol=1e-6)
    np.testing.assert_allclose(a["dipole"], b["dipole"], atol=1e-6)
    assert a["energy_std"].min() > 0  # two different members


def test_a_stacked_fit_needs_two_different_seeds(structures):
    with pytest.raises(ModelError, match="two different seeds"):
        train_potentials_stacked(structures, get_preset("tiny", epochs=1), seeds=[3, 3])


def test_the_workflow_trains_its_committee_stacked_when_asked(structures, tmp_path):
    from specml.molecules import load_molecules
    from specml.workflow import IRWorkflow, get_workflow_config

    config = get_workflow_config("ci", stacked_committee=True)
    workflow = IRWorkflow(load_molecules("CO"), tmp_path / "run", config, show_progress=False)
    committee = workflow.fit_committee(
        structures, get_preset("tiny", epochs=1), None, tmp_path / "fits", "test"
    )
    assert len(committee) == config.n_committee and committee.dipole_model is not None
    assert [h["stacked_seeds"] for h in committee.histories["energy"]] == [
        list(config.committee_seeds)[: config.n_committee]
    ] * config.n_committee
