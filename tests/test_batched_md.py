"""Batched ML-MD engine against ASE's integrators, with tiny random MACE models.

Random-weight models are deterministic, smooth and conservative (forces are
autograd gradients), which is all the integrator tests need; ZBL pair repulsion
keeps atoms from collapsing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from mace import modules  # before e3nn: mace makes e3nn's constants loadable with torch>=2.6

# isort: split
from e3nn import o3

from specml.dynamics.ase_loop import run_mace_replica
from specml.dynamics.batched import BatchedMD
from specml.errors import DynamicsError, ModelError

Z = (1, 6, 8)


def build_mace(seed: int, dipole: bool = False, dtype=torch.float64) -> torch.nn.Module:
    """A tiny ScaleShiftMACE (or AtomicDipolesMACE) with fixed random weights."""
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        common = dict(
            r_max=4.0,
            num_bessel=8,
            num_polynomial_cutoff=5,
            max_ell=1,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=1,
            num_elements=len(Z),
            hidden_irreps=o3.Irreps("8x0e"),
            MLP_irreps=o3.Irreps("4x0e"),
            avg_num_neighbors=4.0,
            atomic_numbers=list(Z),
            correlation=1,
            gate=torch.nn.functional.silu,
            radial_MLP=[8],
        )
        if dipole:
            common.update(hidden_irreps=o3.Irreps("4x0e+4x1o"))
            return modules.AtomicDipolesMACE(atomic_energies=None, **common)
        return modules.ScaleShiftMACE(
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
            atomic_energies=np.array([-13.6, -1030.0, -2040.0]),
            pair_repulsion=True,
            **common,
        )
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core machine; also keeps timings stable
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def committee():
    return [build_mace(seed) for seed in (0, 1)]


@pytest.fixture(scope="module")
def dipole_model():
    return build_mace(7, dipole=True)


def with_velocities(atoms: Atoms, seed: int, scale: float = 0.01) -> Atoms:
    atoms = atoms.copy()
    atoms.set_velocities(np.random.default_rng(seed).normal(size=(len(atoms), 3)) * scale)
    return atoms


# --------------------------------------------------------------------------- NVE
@pytest.fixture(scope="module")
def nve_runs(committee):
    atoms = with_velocities(molecule("H2O"), seed=3)
    eng = BatchedMD(
        committee[:1],
        [atoms],
        ensemble="nve",
        timestep_fs=0.5,
        uncertainty_threshold=np.inf,
        precision="float64",
    )
    batched = eng.run(1000)
    ase_traj, _ = run_mace_replica(committee[:1], atoms, 1000, ensemble="nve", timestep_fs=0.5)
    return atoms, batched, ase_traj


def test_nve_positions_match_ase_velocity_verlet(nve_runs):
    _, batched, ase_traj = nve_runs
    assert batched[0].positions.shape == ase_traj.positions.shape == (1000, 3, 3)
    assert np.abs(batched[0].positions[-1] - ase_traj.positions[-1]).max() < 1e-6
    # the molecule moved: the comparison is not trivially between static frames
    assert np.abs(batched[0].positions[-1] - batched[0].positions[0]).max() > 1e-2


def test_nve_energy_drift_bound(nve_runs):
    atoms, batched, _ = nve_runs
    r = batched[0]
    n = len(atoms)
    etot = r.energies + 1.5 * n * units.kB * r.temperatures  # eV
    # Measured: 1.3e-5 eV/atom max |E(t) - E(0)| over 1000 steps of 0.5 fs
    # (float64, this model, T ~ 40 K); documented bound 1e-4 eV/atom.
    assert np.abs(etot - etot[0]).max() / n < 1e-4
    assert batched.precision == "float64"


def test_float32_runs_and_records_precision(committee):
    eng = BatchedMD(
        committee,
        [with_velocities(molecule("CH3OH"), 1)],
        ensemble="nve",
        precision="float32",
        uncertainty_threshold=np.inf,
    )
    res = eng.run(20)
    assert res.precision == "float32" and eng.pos.dtype == torch.float32
    assert np.all(np.isfinite(res[0].positions))


# --------------------------------------------------------------------------- Langevin
def test_langevin_matches_ase_langevin_with_same_stream(committee, dipole_model):
    atoms = with_velocities(molecule("CH3OH"), seed=2)
    eng = BatchedMD(
        committee,
        [atoms, molecule("H2O")],
        dipole_model=dipole_model,
        temperatures_K=[500.0, 300.0],
        seeds=[11, 12],
        record_interval=5,
        uncertainty_threshold=np.inf,
        noise_block=7,
    )
    res = eng.run(150)
    ref, final = run_mace_replica(
        committee, atoms, 150, temperature_K=500.0, seed=11, record_interval=5, dipole_model=dipole_model
    )
    np.testing.assert_allclose(res[0].positions, ref.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res[0].dipoles, ref.dipoles, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res[0].rel_uncertainty, ref.rel_uncertainty, rtol=1e-8)
    np.testing.assert_allclose(res[0].force_std, ref.force_std, rtol=1e-8)
    np.testing.assert_allclose(res.final_atoms[0].get_momenta(), final.get_momenta(), atol=1e-10)
    np.testing.assert_allclose(res[0].times_fs, np.arange(5, 151, 5) * 0.5)


def test_langevin_temperatures_per_replica_mixed_batch(committee):
    targets = {"H2O": 300.0, "CH4": 600.0, "CH3OH": 900.0}
    names = [name for name in targets for _ in range(3)]
    atoms = [molecule(n) for n in names]
    eng = BatchedMD(
        committee[:1],
        atoms,
        temperatures_K=[targets[n] for n in names],
        timestep_fs=0.5,
        friction_per_fs=0.02,
        seeds=range(100, 109),
    )
    n_steps, equil, block = 2400, 400, 200  # 0.5 fs steps; friction time 50 fs
    res = eng.run(n_steps)
    for name, target in targets.items():
        block_means = []
        for r, n in zip(res.replicas, names, strict=True):
            if n == name:
                assert not r.stopped
                t = r.temperatures[equil:]
                block_means += list(t.reshape(-1, block).mean(1))
        block_means = np.array(block_means)
        mean = block_means.mean()
        sigma = block_means.std(ddof=1) / np.sqrt(len(block_means))
        assert abs(mean - target) < 4 * sigma + 1e-9, (name, mean, target, sigma)
        assert sigma < 0.1 * target  # the check is not vacuous


def test_sanity_stop_removes_only_offending_replicas(committee):
    base = [with_velocities(molecule(n), s) for s, n in enumerate(["H2O", "CH3OH", "CH4"])]
    blown = with_velocities(molecule("H2O"), 9)
    blown.set_velocities(np.full((3, 3), np.inf))
    uncertain = molecule("CH4")
    kw = dict(temperatures_K=[300.0, 400.0, 500.0], seeds=[1, 2, 3])
    ref = BatchedMD(committee, base, **kw, uncertainty_threshold=np.inf).run(60)
    eng = BatchedMD(
        committee,
        [base[0], blown, base[1], uncertain, base[2]],
        temperatures_K=[300.0, 300.0, 400.0, 300.0, 500.0],
        seeds=[1, 50, 2, 51, 3],
        uncertainty_threshold=[np.inf, np.inf, np.inf, 1e-6, np.inf],
    )
    res = eng.run(60)
    assert list(res.stopped) == [False, True, False, True, False]
    assert res[1].stop_step == 1 and "non-finite" in res[1].stop_reason
    assert res[3].stop_step == 1 and "uncertainty" in res[3].stop_reason
    assert len(res[3].steps) == 1  # the offending frame is recorded, then nothing
    for i, j in zip([0, 2, 4], [0, 1, 2], strict=True):
        assert np.array_equal(res[i].positions, ref[j].positions)
        assert np.array_equal(res.final_atoms[i].get_momenta(), ref.final_atoms[j].get_momenta())


def test_continuation_equals_single_run(committee, dipole_model):
    atoms = [with_velocities(molecule("CH3OH"), 4), molecule("H2O")]
    kw = dict(
        temperatures_K=[350.0, 700.0],
        seeds=[21, 22],
        uncertainty_threshold=np.inf,
        record_interval=10,
        noise_block=64,
    )
    one = BatchedMD(committee, atoms, dipole_model=dipole_model, **kw).run(400)
    first_engine = BatchedMD(committee, atoms, dipole_model=dipole_model, **kw)
    first = first_engine.run(200)
    state = first_engine.state_dict()
    second = BatchedMD.from_state(
        state, committee, dipole_model=dipole_model, record_interval=10, noise_block=64
    ).run(200)
    for r in range(2):
        joined = np.concatenate([first[r].positions, second[r].positions])
        np.testing.assert_allclose(joined, one[r].positions, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            np.concatenate([first[r].dipoles, second[r].dipoles]), one[r].dipoles, rtol=0, atol=1e-12
        )
        np.testing.assert_array_equal(np.concatenate([first[r].steps, second[r].steps]), one[r].steps)
        np.testing.assert_allclose(
            second.final_atoms[r].get_momenta(), one.final_atoms[r].get_momenta(), rtol=0, atol=1e-12
        )
    v = state["replicas"][0]["velocities_A_per_fs"]
    assert np.allclose(v, first.final_atoms[0].get_velocities() * units.fs)


# --------------------------------------------------------------------------- pair list
def test_pair_list_never_crosses_replicas_and_skin_is_exact(committee):
    atoms = [with_velocities(molecule(n), s, 0.02) for s, n in enumerate(["CH3OH", "H2O", "CH4"])]
    # Put the replicas on top of each other: a cross-replica pair would be within r_max.
    kw = dict(temperatures_K=600.0, seeds=[1, 2, 3], uncertainty_threshold=np.inf)
    eng = BatchedMD(committee, atoms, skin=1.0, **kw)
    res = eng.run(80)
    b = eng.batch
    assert torch.equal(b[eng.edge_index[0]], b[eng.edge_index[1]])
    assert 1 < eng.neighbour_rebuilds < 81
    every_step = BatchedMD(committee, atoms, skin=0.0, **kw)
    res0 = every_step.run(80)
    assert every_step.neighbour_rebuilds >= 80
    for r in range(3):
        np.testing.assert_allclose(res[r].positions, res0[r].positions, rtol=0, atol=1e-12)


def test_errors(committee):
    with pytest.raises(ModelError, match="elements"):
        BatchedMD(committee, [molecule("NH3")], temperatures_K=300.0)
    with pytest.raises(DynamicsError, match="temperatures"):
        BatchedMD(committee, [molecule("H2O")])
    with pytest.raises(DynamicsError, match="seeds"):
        BatchedMD(committee, [molecule("H2O")], temperatures_K=300.0, seeds=[1, 2])


# --------------------------------------------------------------------------- fast path, uncertainty
def test_fast_path_replaces_modules_and_keeps_the_trajectory(committee, dipole_model):
    atoms = [with_velocities(molecule("CH3OH"), 5), with_velocities(molecule("H2O"), 6)]
    kw = dict(
        dipole_model=dipole_model,
        temperatures_K=[400.0, 300.0],
        seeds=[31, 32],
        uncertainty_threshold=np.inf,
        record_interval=5,
    )
    fast = BatchedMD(committee, atoms, **kw)
    plain = BatchedMD(committee, atoms, fast_path=False, **kw)
    # both members: one convolution and one contraction each (1 interaction)
    assert fast.fast_path_modules["conv_tp"] >= 2 and fast.fast_path_modules["contraction"] >= 2
    assert plain.fast_path_modules == {}
    a, b = fast.run(100), plain.run(100)
    for r in range(2):
        np.testing.assert_allclose(a[r].positions, b[r].positions, rtol=0, atol=1e-10)
        np.testing.assert_allclose(a[r].dipoles, b[r].dipoles, rtol=0, atol=1e-10)
        np.testing.assert_allclose(a[r].rel_uncertainty, b[r].rel_uncertainty, rtol=1e-8)


def test_uncertainty_is_the_committee_definition(committee):
    from specml.models.committee import FORCE_UNCERTAINTY_EPS, uncertainty

    atoms = [with_velocities(molecule("CH3OH"), 8), with_velocities(molecule("CH4"), 9)]
    eng = BatchedMD(committee, atoms, temperatures_K=300.0, uncertainty_threshold=np.inf)
    assert eng.uncertainty_eps == FORCE_UNCERTAINTY_EPS
    res = eng.run(3)
    eng.pack_replicas(eng.active)  # forces of the members on the final positions
    members = eng.committee_forces()[2].numpy()
    for r in range(2):
        sl = slice(int(eng.ptr[r]), int(eng.ptr[r + 1]))
        rel, std = uncertainty(members[:, sl], FORCE_UNCERTAINTY_EPS)
        assert res[r].rel_uncertainty[-1] == pytest.approx(rel, rel=1e-10)
        assert res[r].force_std[-1] == pytest.approx(std, rel=1e-10)
        assert rel > 0


def test_compiled_models_fall_back_to_eager_on_failure(committee):
    atoms = [with_velocities(molecule("CH3OH"), 3)]
    kw = dict(temperatures_K=300.0, seeds=[5], uncertainty_threshold=np.inf)
    eager = BatchedMD(committee, atoms, **kw).run(20)
    eng = BatchedMD(committee, atoms, **kw)

    def broken(*args, **kwargs):
        raise RuntimeError("compiler exploded")

    eng.compiled_models = [broken] * len(committee)  # as if torch.compile had produced these
    with pytest.warns(UserWarning, match="compiler exploded"):
        res = eng.run(20)
    assert eng.compiled_models is None
    np.testing.assert_allclose(res[0].positions, eager[0].positions, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_compiled_models_match_eager(committee):
    atoms = [with_velocities(molecule("CH3OH"), 3), with_velocities(molecule("H2O"), 4)]
    kw = dict(temperatures_K=[300.0, 500.0], seeds=[5, 6], uncertainty_threshold=np.inf)
    eager = BatchedMD(committee, atoms, **kw).run(30)
    eng = BatchedMD(committee, atoms, compile_models=True, **kw)
    assert eng.compiled_models is not None
    res = eng.run(30)
    assert eng.compiled_models is not None and eng._compiled_checked  # used, not fallen back
    for r in range(2):
        np.testing.assert_allclose(res[r].positions, eager[r].positions, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_compiled_delta_model_matches_eager(committee):
    """A Δ model (multi-fidelity: base + correction) is compiled part by part, not run eagerly."""
    from specml.models.fidelity import DeltaModel

    delta = [DeltaModel(committee[0], committee[1])]
    atoms = [with_velocities(molecule("CH3OH"), 3)]
    kw = dict(temperatures_K=300.0, seeds=[5], uncertainty_threshold=np.inf)
    eager = BatchedMD(delta, atoms, **kw).run(20)
    eng = BatchedMD(delta, atoms, compile_models=True, **kw)
    assert isinstance(eng.compiled_models[0], DeltaModel)
    res = eng.run(20)
    assert eng.compiled_models is not None and eng._compiled_checked  # used, not fallen back
    np.testing.assert_allclose(res[0].positions, eager[0].positions, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_every_compiled_model_stays_compiled_in_a_long_lived_process(monkeypatch):
    """Each compiled model takes one entry of dynamo's cache of MACE's forward; without room for
    it dynamo falls back to eager (3x slower steps) with only a logged warning. A limit of 1 makes
    the second model the one that would have fallen back."""
    import logging

    import torch._dynamo
    import torch._dynamo.config as dynamo_config

    torch._dynamo.reset()  # entries of the other tests' compiled models
    monkeypatch.setattr(dynamo_config, "recompile_limit", 1)
    hits = []

    class LimitWarnings(logging.Handler):
        def emit(self, record):
            if "recompile_limit" in record.getMessage():
                hits.append(record.getMessage())

    handler = LimitWarnings()
    logging.getLogger("torch._dynamo").addHandler(handler)
    try:
        atoms = [with_velocities(molecule("CH3OH"), 3)]
        kw = dict(temperatures_K=300.0, seeds=[5], uncertainty_threshold=np.inf, precision="float32")
        for seed in (11, 12):
            eng = BatchedMD([build_mace(seed, dtype=torch.float32)], atoms, compile_models=True, **kw)
            eng.run(3)
            assert eng.compiled_models is not None and eng._compiled_checked
    finally:
        logging.getLogger("torch._dynamo").removeHandler(handler)
    assert hits == []
    assert dynamo_config.recompile_limit == 3
