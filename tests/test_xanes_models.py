"""XANES data, forward and inverse models: a tiny subset is learned, resumed and checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from xanes_data import XAS_DATA, needs_xas_data

from specml.errors import InputError, ModelError, UnsupportedElementError
from specml.spectra.spectrum import Spectrum
from specml.xanes.analysis import (
    edge_position,
    first_maximum,
    first_shell,
    half_step_energy,
    member_positions,
    position_spread,
    rise_ambiguity,
    spectral_features,
    white_line,
)
from specml.xanes.data import SPLITS, load_feff_set
from specml.xanes.ensemble import EnsembleSettings
from specml.xanes.models import XanesModel, dataset_shells, train_xanes

pytestmark = needs_xas_data
TINY = EnsembleSettings(members=2, hidden=(64,), epochs=600, bootstrap=False)


@pytest.fixture(scope="module")
def dataset():
    return load_feff_set(XAS_DATA)


@pytest.fixture(scope="module")
def tiny(dataset):
    return dataset.part("train").subset(np.arange(0, 300, 25))


@pytest.fixture(scope="module")
def model(tiny, tmp_path_factory):
    return train_xanes(tiny, tmp_path_factory.mktemp("xanes") / "model", ensemble=TINY, show_progress=False)


def test_split_is_by_material(dataset):
    materials = {name: set(dataset.part(name).material_id) for name in SPLITS}
    assert materials["train"] and materials["val"] and materials["test"]
    assert not materials["train"] & materials["test"]
    assert not materials["train"] & materials["val"]
    assert not materials["val"] & materials["test"]
    assert dataset.energy[0] == pytest.approx(-7.5) and np.all(np.diff(dataset.energy) > 0)


def test_unlabelled_spectra_of_held_out_materials_stay_out_of_training(dataset):
    train = dataset.part("train", include_unlabelled=True)
    held_out = set(dataset.part("val").material_id) | set(dataset.part("test").material_id)
    unlabelled = dataset.material_id[dataset.split == "unlabelled"]
    assert held_out & set(unlabelled)  # the source left out some sites of val and test materials
    assert not held_out & set(train.material_id)
    assert len(train) > len(dataset.part("train"))


def test_site_average_weights_multiplicity(dataset):
    rows = [r for r in range(len(dataset)) if len(dataset.material_rows(dataset.material_id[r])) > 1][:1]
    rows = dataset.material_rows(dataset.material_id[rows[0]])
    w = dataset.multiplicity[rows]
    expected = (w[:, None] * dataset.mu[rows]).sum(0) / w.sum()
    np.testing.assert_allclose(dataset.site_averaged(dataset.material_id[rows[0]]), expected, rtol=1e-6)


def test_first_shell_of_known_environments():
    fcc = bulk("Cu", "fcc", a=3.615)
    cn, distance = first_shell(fcc, 0)
    assert cn == 12 and distance == pytest.approx(3.615 / np.sqrt(2))
    square = Atoms(
        "CuO4O2",
        positions=[
            [0, 0, 0],
            [1.95, 0, 0],
            [-1.95, 0, 0],
            [0, 1.96, 0],
            [0, -1.96, 0],
            [0, 0, 2.78],
            [0, 0, -2.78],
        ],
    )
    cn, distance = first_shell(square, 0)  # Jahn-Teller: the apical O are not first shell
    assert cn == 4 and distance == pytest.approx(1.955)


def test_edge_and_first_maximum_of_a_model_edge():
    energy = np.linspace(-10, 40, 201)
    mu = 1 / (1 + np.exp(-(energy - 2.0) / 1.0)) + 0.4 * np.exp(-((energy - 9.0) ** 2) / 4.0)
    assert edge_position(energy, mu) == pytest.approx(2.0, abs=0.2)
    assert first_maximum(energy, mu) == pytest.approx(9.0, abs=0.5)
    assert half_step_energy(energy, mu) == pytest.approx(2.0, abs=0.1)
    mu_shoulder = mu + 0.3 / (1 + np.exp(-(energy + 3.0) / 0.3))  # a steep pre-edge shoulder at -3 eV
    assert edge_position(energy, mu_shoulder) == pytest.approx(-3.0, abs=0.3)  # the steepest rise moves
    assert white_line(energy, mu_shoulder) == pytest.approx(white_line(energy, mu), abs=0.3)  # this does not


@pytest.mark.parametrize("step_ev", [0.25, 1.0])
def test_arctan_edge_and_peak_are_found_between_grid_points(step_ev):
    """An arctan step at 3.37 eV and a Gaussian peak at 11.62 eV, on grids that miss both."""
    energy = np.arange(-10.0, 60.0, step_ev)
    mu = 0.5 + np.arctan((energy - 3.37) / 1.5) / np.pi + 0.3 * np.exp(-((energy - 11.62) ** 2) / 8.0)
    step = 0.5 + np.arctan((energy - 3.37) / 1.5) / np.pi
    assert half_step_energy(energy, step) == pytest.approx(3.37, abs=0.1)
    assert edge_position(energy, step) == pytest.approx(3.37, abs=0.1)
    features = spectral_features(energy, mu)
    assert features["edge"] == pytest.approx(3.37, abs=0.1)
    # the peak rides on the rising arctan tail, which pulls the maximum up by a fraction of an eV
    assert features["first_maximum"] == pytest.approx(11.62, abs=0.5)
    assert features["white_line"] == pytest.approx(features["first_maximum"], abs=1e-9)


def test_members_spread_of_positions_is_the_std_of_their_shifts():
    """Three members whose arctan edge and peak sit 0.6 eV apart: the position std is that of
    the shifts (0.49 eV); a member without a peak leaves the peak's std to the other two, and
    one member alone gives no std."""
    energy = np.arange(-10.0, 60.0, 0.25)

    def spectrum(shift: float, peak: float = 0.3) -> np.ndarray:
        return (
            0.5
            + np.arctan((energy - 3.0 - shift) / 1.5) / np.pi
            + peak * np.exp(-((energy - 12.0 - shift) ** 2) / 8.0)
        )

    shifts = np.array([-0.6, 0.0, 0.6])
    members = np.stack([[spectrum(d)] for d in shifts])  # (members, spectra, energy)
    positions = member_positions(energy, members)
    assert positions.shape == (3, 1, 2)
    np.testing.assert_allclose(positions[:, 0, 0] - positions[1, 0, 0], shifts, atol=0.05)
    np.testing.assert_allclose(position_spread(positions)[0], [shifts.std(), shifts.std()], atol=0.05)
    flat = np.stack([[spectrum(-0.6)], [spectrum(0.6)], [spectrum(0.0, peak=0.0)]])
    spread = position_spread(member_positions(energy, flat))[0]
    assert spread[1] == pytest.approx(0.6, abs=0.05)  # the two members with a peak
    assert np.isnan(position_spread(member_positions(energy, flat[2:]))[0]).all()


def test_half_step_edge_is_stable_where_the_steepest_rise_jumps():
    """A shoulder (0.3 of the step) as steep as the main rise 5 eV above it: a 7 % change of the
    shoulder's height moves the steepest rise by 5 eV, the half-step edge by less than 0.1 eV."""
    energy = np.arange(-10.0, 40.0, 0.25)

    def shoulder_and_rise(height: float) -> np.ndarray:
        shoulder = height / (1 + np.exp(-(energy + 2.0) / 0.3))
        return shoulder + (1 - height) / (1 + np.exp(-(energy - 3.0) / 0.7))

    lower, higher = shoulder_and_rise(0.29), shoulder_and_rise(0.31)
    assert rise_ambiguity(energy, lower) > 0.9 and rise_ambiguity(energy, higher) > 0.9
    assert abs(edge_position(energy, lower) - edge_position(energy, higher)) > 4.5
    assert abs(half_step_energy(energy, lower) - half_step_energy(energy, higher)) < 0.1
    single = 1 / (1 + np.exp(-(energy - 3.0) / 0.5))
    assert rise_ambiguity(energy, single) < 0.01  # spline ripples only


def test_first_maximum_skips_a_shoulder_below_the_edge_step():
    """A bump on the rise (μ about 0.75) is a shoulder; the first maximum is the resonance above
    the edge step (μ > 1), unless any height is asked for."""
    energy = np.arange(-10.0, 50.0, 0.25)
    rise = 0.7 / (1 + np.exp(-(energy + 1.0) / 0.4)) + 0.3 / (1 + np.exp(-(energy - 6.0) / 0.8))
    mu = rise + 0.08 * np.exp(-((energy - 2.0) ** 2) / 0.5) + 0.35 * np.exp(-((energy - 10.0) ** 2) / 6.0)
    assert half_step_energy(energy, mu) < 2.0
    assert first_maximum(energy, mu) == pytest.approx(10.0, abs=0.7)
    assert first_maximum(energy, mu, min_mu=-np.inf) == pytest.approx(2.0, abs=0.3)


def test_half_step_before_the_grid_is_not_a_position():
    energy = np.arange(-7.5, 40.0, 0.25)
    late_grid = 1 / (1 + np.exp(-(energy + 9.0) / 1.0))  # the rise is half done before -7.5 eV
    assert np.isnan(half_step_energy(energy, late_grid))
    assert np.isnan(half_step_energy(energy, 0.3 * np.ones_like(energy)))  # never reaches 0.5


def test_tiny_model_reproduces_its_training_spectra(model, tiny):
    predicted = np.array([model.predict_sites(*_site(tiny, r))[0][0] for r in range(len(tiny))])
    mse = np.mean((predicted - tiny.mu) ** 2)
    baseline = np.mean((tiny.mu - tiny.mu.mean(0)) ** 2)
    assert mse < 0.05 * baseline


def test_tiny_inverse_model_recovers_first_shell(model, tiny):
    shells = dataset_shells(tiny)
    got = [model.invert(Spectrum(tiny.energy, mu)) for mu in tiny.mu]
    assert [g["coordination_number_rounded"] for g in got] == shells[:, 0].astype(int).tolist()
    np.testing.assert_allclose([g["first_shell_A"] for g in got], shells[:, 1], atol=0.03)


def test_site_prediction_has_uncertainty_band(model, tiny):
    atoms, site = _site(tiny, 0)
    spectrum = model.predict(atoms, site=site[0])
    assert spectrum.std is not None and spectrum.std.shape == spectrum.intensity.shape
    assert np.all(spectrum.std >= 0) and spectrum.std.max() > 0
    average = model.predict(atoms)
    assert average.metadata["n_sites"] == sum(atoms.symbols == "Cu")


def test_absolute_axis_is_aligned_at_the_edge(model, tiny):
    wide = np.arange(-30.0, 150.0, 0.5)
    mu = np.interp(wide, tiny.energy, tiny.mu[0])
    edge = edge_position(wide, mu)
    measured = Spectrum(wide + 8979.0 - edge, mu)  # as a beamline would record it, edge at 8979 eV
    expected = np.interp(model.energy, wide - edge + model.edge_ev, mu)
    np.testing.assert_allclose(model.on_grid(measured), expected, atol=1e-6)
    assert model.edge_ev == pytest.approx(np.median([edge_position(tiny.energy, m) for m in tiny.mu]))


def test_inversion_outside_the_training_range_is_flagged(model, tiny):
    spectrum = Spectrum(tiny.energy, tiny.mu[0])
    assert model.invert(spectrum)["cautions"] == []
    lo, hi = model.shell_range
    assert lo[0] >= 1 and hi[0] <= 12 and 1.5 < lo[1] <= hi[1] < 3.5
    narrow = XanesModel.load(model.folder)
    narrow.shell_range = (np.array([20.0, 5.0]), np.array([24.0, 6.0]))  # no real site is there
    cautions = narrow.invert(spectrum)["cautions"]
    assert len(cautions) == 2 and "outside the training range" in cautions[0]


def test_calibration_scales_the_std_to_cover_68_percent_of_held_out_errors(model, dataset, tmp_path):
    import shutil

    from specml.xanes.ensemble import Ensemble
    from specml.xanes.models import dataset_descriptors

    folder = shutil.copytree(model.folder / "forward", tmp_path / "forward")
    ensemble = Ensemble.load(folder)
    held_out = dataset.part("val").subset(np.arange(0, 400, 40))
    x = dataset_descriptors(held_out, model.descriptor)
    mean, raw = ensemble.predict(x)
    scale = ensemble.calibrate(x, held_out.mu, folder)
    assert scale.shape == (held_out.mu.shape[1],) and np.all(scale > 0)
    _, std = Ensemble.load(folder).predict(x)  # the factor is saved with the ensemble
    np.testing.assert_allclose(std, raw * scale)
    within = np.abs(mean - held_out.mu) <= std
    assert within.mean() == pytest.approx(0.683, abs=0.05)
    assert (np.abs(mean - held_out.mu) <= raw).mean() < 0.5  # a tiny ensemble is overconfident


def test_position_std_is_calibrated_on_held_out_spectra_and_shipped(model, dataset, tmp_path):
    """The edge and first-maximum std (the members' spread) scaled so that 68 % of held-out
    position errors fall within it; the factors are saved, used by predict and shipped."""
    import shutil

    from specml.xanes.models import POSITIONS_FILE, dataset_descriptors, ship_model

    folder = shutil.copytree(model.folder, tmp_path / "model")
    copy = XanesModel.load(folder)
    assert copy.position_std_scale is None
    held_out = dataset.part("val").subset(np.arange(0, 400, 20))
    x = dataset_descriptors(held_out, model.descriptor)
    scale = copy.calibrate_positions(x, held_out.mu)
    assert set(scale) == {"edge", "first_maximum"} and all(f > 0 for f in scale.values())
    reloaded = XanesModel.load(folder)
    assert reloaded.position_std_scale == scale
    values, std = reloaded.positions(x)
    _, raw = reloaded.positions(x, calibrated=False)
    np.testing.assert_allclose(std, raw * [scale["edge"], scale["first_maximum"]])
    true = member_positions(held_out.energy, held_out.mu[None])[0]
    errors = np.abs(values - true)
    counted = np.isfinite(errors / raw)
    coverage = (errors[counted[:, 0], 0] <= std[counted[:, 0], 0]).mean()
    assert coverage == pytest.approx(0.683, abs=0.1)
    atoms, site = held_out.site(0)
    prediction = reloaded.predict(atoms, site)
    assert prediction.metadata["position_std_calibrated"] is True
    edge_std = prediction.metadata["position_std_ev"]["edge"]
    assert edge_std == pytest.approx(reloaded.positions(x[:1])[1][0, 0])
    shipped = XanesModel.load(ship_model(folder, tmp_path / "shipped", {"made_by": "a test"}))
    assert (shipped.folder / POSITIONS_FILE).is_file() and shipped.position_std_scale == scale


def test_resume_trains_only_missing_members(model, tiny):
    folder = model.folder
    kept = (folder / "forward" / "member_000.npz").stat().st_mtime_ns
    (folder / "forward" / "member_001.npz").unlink()
    assert len(XanesModel.load(folder).ensembles["forward"].members) == 1
    with pytest.raises(ModelError, match="not fully trained"):
        XanesModel.load(folder).predict(tiny.site(0)[0])
    resumed = train_xanes(tiny, folder, ensemble=TINY, show_progress=False)
    assert (folder / "forward" / "member_000.npz").stat().st_mtime_ns == kept
    assert len(resumed.ensembles["forward"].members) == 2


def test_other_settings_in_a_used_folder_are_refused(model, tiny):
    with pytest.raises(ModelError, match="other data or settings"):
        train_xanes(
            tiny, model.folder, ensemble=EnsembleSettings(members=3, hidden=(64,)), show_progress=False
        )


def test_bad_structures_and_spectra(model, tiny):
    with pytest.raises(InputError, match="no Cu atom"):
        model.predict(Atoms("ZnO", positions=[[0, 0, 0], [2, 0, 0]]))
    with pytest.raises(UnsupportedElementError, match="Og"):
        model.predict(Atoms("CuOg", positions=[[0, 0, 0], [2, 0, 0]]))
    atoms, _ = _site(tiny, 0)
    with pytest.raises(InputError, match="not a Cu atom"):
        model.predict(atoms, site=[i for i, s in enumerate(atoms.symbols) if s != "Cu"][0])
    with pytest.raises(InputError, match="off the grid"):
        model.invert(Spectrum(tiny.energy[:100], tiny.mu[0][:100]))


def _site(data, row):
    atoms, site = data.site(row)
    return atoms, [site]


def test_descriptors_beyond_the_training_range_are_clipped(tmp_path):
    """A column nearly constant in training (a rare neighbour at a rare distance) must not send
    an unusual site thousands of standard deviations out: inputs are clipped to the training
    range, and the range is saved with the ensemble."""
    from specml.xanes.ensemble import Ensemble

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=60), np.r_[np.zeros(59), 1e-6]])
    y = np.column_stack([np.sin(x[:, 0]), np.cos(x[:, 0])])
    settings = EnsembleSettings(members=1, hidden=(8,), epochs=50, bootstrap=False)
    ensemble = Ensemble.for_data(x, y, settings, clip_inputs=True).fit(x, y, tmp_path)
    far, edge = np.array([[0.3, 5.0]]), np.array([[0.3, 1e-6]])
    np.testing.assert_array_equal(ensemble.predict(far)[0], ensemble.predict(edge)[0])
    reloaded = Ensemble.load(tmp_path)
    np.testing.assert_array_equal(reloaded.x_max, x.max(0))
    np.testing.assert_array_equal(reloaded.predict(far)[0], ensemble.predict(far)[0])
    unclipped = Ensemble.for_data(x, y, settings).fit(x, y)
    assert unclipped.x_min is None
    assert not np.array_equal(unclipped.predict(far)[0], unclipped.predict(edge)[0])


def test_only_the_forward_model_clips_its_inputs(model):
    """Descriptors are clipped to the training range; spectra (inverse inputs) are not."""
    assert model.ensembles["forward"].x_min is not None
    assert model.ensembles["inverse_shell"].x_min is None
    assert model.ensembles["inverse_descriptor"].x_min is None


def test_a_shipped_copy_predicts_as_the_trained_model(model, tiny, tmp_path):
    """ship_model keeps what prediction and inversion need (float16 weights, the training
    sites' range, provenance) and leaves the training cache behind."""
    from specml.xanes.models import model_folder, ship_model

    target = ship_model(model.folder, tmp_path / "shipped", {"made_by": "a test"})
    assert not (target / "features.npz").exists()
    shipped = XanesModel.load(target)
    assert json.loads((target / "model.json").read_text())["provenance"] == {"made_by": "a test"}
    atoms = tiny.site(0)[0]
    trained, copy = model.predict(atoms), shipped.predict(atoms)
    assert np.abs(copy.intensity - trained.intensity).max() < 1e-2
    np.testing.assert_allclose(copy.std, trained.std, rtol=0.05, atol=1e-3)
    for low_high_trained, low_high_shipped in zip(model.shell_range, shipped.shell_range, strict=True):
        np.testing.assert_allclose(low_high_shipped, low_high_trained)
    # a name is looked up among the shipped models; an unknown one says which there are
    assert model_folder("shipped", root=tmp_path) == target
    with pytest.raises(ModelError, match=r"no shipped XANES model of that name \(shipped: shipped\)"):
        model_folder("cu-l3", root=tmp_path)
