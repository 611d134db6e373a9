"""``specml ir ... --raman``: one active-learning run labels polarizabilities, trains the
polarizability model and writes IR and Raman spectra from one set of production trajectories."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specml.cli import app
from specml.workflow.production import read_production_file


@pytest.fixture(scope="module")
def raman_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("methanol_raman")
    result = CliRunner().invoke(
        app, ["ir", "CO", "--preset", "ci", "--raman", "--run-dir", str(run_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    return run_dir, json.loads(result.stdout)


def test_ir_and_raman_come_from_the_same_trajectories(raman_run):
    run_dir, out = raman_run
    runs = read_production_file(run_dir / "production" / "300K" / "CO.npz")
    assert runs.polarizabilities is not None and len(runs.polarizabilities) == len(runs.dipoles) == 2
    for alpha, dipoles in zip(runs.polarizabilities, runs.dipoles, strict=True):
        assert alpha.shape == (len(dipoles), 3, 3)  # one polarizability per recorded dipole
        np.testing.assert_allclose(alpha, np.swapaxes(alpha, 1, 2), atol=1e-6)
        mean = np.trace(alpha, axis1=1, axis2=2) / 3
        assert 0.5 < np.median(mean) < 6.0  # Å^3: GFN2-xTB methanol is about 2 (measured 3.3)
    assert set(out["spectra"]) == {"CO@300K"} and set(out["raman_spectra"]) == {"CO@300K"}


def test_raman_spectra_files_and_components(raman_run):
    from specml.spectra.spectrum import Spectrum

    run_dir, out = raman_run
    total = Spectrum.from_csv(out["raman_spectra"]["CO@300K"])
    assert total.metadata["technique"] == "raman" and total.metadata["n_trajectories"] == 2
    assert total.std is not None and total.metadata["quantum_correction"] == "harmonic"
    parts = {c: Spectrum.from_csv(run_dir / f"raman_CO_300K_{c}.csv") for c in ("vv", "vh", "isotropic")}
    np.testing.assert_allclose(
        parts["vv"].intensity + parts["vh"].intensity, total.intensity, rtol=1e-6, atol=1e-12
    )
    assert (run_dir / "raman_CO_300K.png").stat().st_size > 0


def test_polarizability_model_and_its_test_set_report(raman_run):
    run_dir, out = raman_run
    assert (run_dir / "models" / "final" / "polarizability_model.pt").is_file()
    report = out["summary"]["raman"]
    assert report["units"] == "A^3" and report["n_training_structures"] > 20
    test = report["test_set"]
    assert test["n_structures"] > 0 and np.isfinite(test["polarizability_mae_A3"])
    labels = run_dir / "raman" / "polarizability_labels.extxyz"
    assert labels.stat().st_size > 0


def test_raman_with_trained_models_only_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["ir", "CO", "--models", str(tmp_path), "--raman"])
    assert result.exit_code == 2 and "--raman needs a training run" in result.output
