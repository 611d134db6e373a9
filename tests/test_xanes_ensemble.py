"""Ensemble members are stored as weights: the same predictions as scikit-learn, no pickle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from specml.errors import ModelError
from specml.xanes.ensemble import Ensemble, EnsembleSettings, Network


def _fitted(n_outputs: int, activation: str = "relu"):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = np.column_stack([np.sin(x[:, 0]) + x[:, k % 4] for k in range(n_outputs)])
    network = MLPRegressor(hidden_layer_sizes=(16, 8), activation=activation, max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        network.fit(x, y if n_outputs > 1 else y[:, 0])
    return network, x


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_weights_predict_what_scikit_learn_predicts(n_outputs, tmp_path):
    network, x = _fitted(n_outputs)
    member = Network.from_sklearn(network)
    expected = network.predict(x).reshape(len(x), -1)
    np.testing.assert_allclose(member.predict(x), expected, rtol=1e-5, atol=1e-5)
    member.save(tmp_path / "member.npz")
    np.testing.assert_array_equal(Network.load(tmp_path / "member.npz").predict(x), member.predict(x))
    # float16 storage (a shipped model) changes the outputs by about 1e-3 of their size
    member.save(tmp_path / "half.npz", dtype=np.float16)
    half = Network.load(tmp_path / "half.npz").predict(x)
    assert np.abs(half - expected).max() < 1e-2 * np.abs(expected).max()


def test_only_relu_regressors_are_stored():
    network, _ = _fitted(1, activation="tanh")
    with pytest.raises(ModelError, match="only ReLU regressors"):
        Network.from_sklearn(network)


def test_an_ensemble_of_an_older_specml_loads_its_pickled_members(tmp_path):
    import joblib

    network, x = _fitted(3)
    settings = EnsembleSettings(members=1, hidden=(16, 8))
    ensemble = Ensemble.for_data(x, network.predict(x), settings)
    ensemble.save_scalers(tmp_path)
    joblib.dump(network, tmp_path / "member_000.joblib")
    loaded = Ensemble.load(tmp_path, settings)
    assert loaded.complete
    scaled = (x - loaded.x_mean) / loaded.x_scale
    np.testing.assert_allclose(
        loaded.members[0].predict(scaled), network.predict(scaled), rtol=1e-5, atol=1e-5
    )
