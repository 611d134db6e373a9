"""The ML polarizability model (MACE's AtomicDielectricMACE): equivariance, batching, training."""

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from specml.errors import InputError, ModelError
from specml.models import get_preset
from specml.models.polarizability import (
    PolarizabilityModel,
    polarizability_errors,
    train_polarizability_model,
)
from specml.reference import make_reference

TOY = "ase:reference_doubles:ToyWater"  # analytic bond-polarizability water (Å^3)


def water_frames(n: int, seed: int) -> list[Atoms]:
    """Randomly distorted (0.05 Å) and randomly oriented waters labelled with the toy polarizability."""
    from test_raman_md import toy_water

    rng = np.random.default_rng(seed)
    reference = make_reference(TOY)
    frames = []
    for rotation in Rotation.random(n, random_state=seed).as_matrix():
        atoms = toy_water()
        atoms.positions = (atoms.positions + rng.normal(0, 0.05, (3, 3))) @ rotation.T
        atoms.info["polarizability"] = reference.polarizability(atoms).reshape(9)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def trained():
    preset = get_preset("tiny", epochs=40, learning_rate=0.01)
    model, history = train_polarizability_model(water_frames(40, seed=1), preset, seed=0)
    return PolarizabilityModel(model), history


def test_polarizability_is_rotation_equivariant_and_batches(trained):
    """alpha(R x) = R alpha(x) R^T for a rotated structure, symmetric; one batch of several graphs
    gives what each graph gives alone (MACE's own autograd derivatives do not batch; this does)."""
    model, _ = trained
    frames = water_frames(3, seed=5)
    alpha = model.predict(frames)
    assert alpha.shape == (3, 3, 3)
    np.testing.assert_allclose(alpha, np.swapaxes(alpha, 1, 2), atol=1e-10)
    for i, atoms in enumerate(frames):
        np.testing.assert_allclose(model(atoms), alpha[i], atol=1e-10)
    rotation = Rotation.from_euler("zyx", [0.7, -0.4, 2.1]).as_matrix()
    turned = frames[0].copy()
    turned.positions = frames[0].positions @ rotation.T
    np.testing.assert_allclose(model(turned), rotation @ alpha[0] @ rotation.T, atol=1e-8)


def test_training_lowers_the_error_and_reports_on_a_test_set(trained, tmp_path):
    model, history = trained
    assert history["kind"] == "polarizability"
    before, after = (
        history["initial_valid_mae"]["polarizability_A3"],
        history["valid_mae"]["polarizability_A3"],
    )
    assert after < 0.5 * before, (before, after)
    test = water_frames(10, seed=9)
    report = polarizability_errors(model, test)
    spread = np.array([a.info["polarizability"] for a in test])
    mean_predictor = float(np.mean(np.abs(spread - spread.mean(axis=0))))
    assert report["n_structures"] == 10
    assert report["polarizability_mae_A3"] < mean_predictor, (report, mean_predictor)
    assert report["polarizability_rmse_A3"] >= report["polarizability_mae_A3"]
    model.save(tmp_path)
    np.testing.assert_allclose(PolarizabilityModel.load(tmp_path).predict(test), model.predict(test))


def test_missing_labels_and_models_are_clear_errors(tmp_path):
    from test_raman_md import toy_water

    with pytest.raises(InputError, match="no 'polarizability' label"):
        train_polarizability_model([toy_water(), toy_water()], get_preset("tiny"))
    with pytest.raises(ModelError, match="no polarizability model"):
        PolarizabilityModel.load(tmp_path)
