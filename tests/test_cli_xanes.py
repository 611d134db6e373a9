"""``specml xanes train|predict|invert`` in process: outputs, resume and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.io import write
from typer.testing import CliRunner
from xanes_data import XAS_DATA, needs_xas_data

from specml.cli import app
from specml.errors import InputError
from specml.xanes.data import load_feff_set
from specml.xanes.ensemble import EnsembleSettings
from specml.xanes.models import XanesModel, dataset_descriptors, train_xanes

pytestmark = needs_xas_data
AZURITE = "mp-23733"


@pytest.fixture(scope="module")
def dataset():
    return load_feff_set(XAS_DATA)


@pytest.fixture(scope="module")
def model_dir(dataset, tmp_path_factory):
    train = dataset.part("train")
    rows = np.union1d(np.arange(0, 200, 25), np.flatnonzero(train.material_id == AZURITE))
    folder = tmp_path_factory.mktemp("cli") / "model"
    train_xanes(
        train.subset(rows),
        folder,
        ensemble=EnsembleSettings(members=2, hidden=(32,), epochs=100),
        show_progress=False,
    )
    return folder


@pytest.fixture(scope="module")
def azurite_cif(dataset, tmp_path_factory):
    row = dataset.material_rows(AZURITE)[0]
    path = tmp_path_factory.mktemp("structures") / "azurite.cif"
    write(path, dataset.structures[int(dataset.structure_index[row])])
    return path


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_predict_writes_csv_plot_and_json(model_dir, azurite_cif, tmp_path):
    csv_path, png = tmp_path / "azurite.csv", tmp_path / "azurite.png"
    code, out, err = run(
        "xanes", "predict", azurite_cif, "--model", model_dir, "--out", csv_path, "--plot", png
    )
    assert code == 0, err
    assert "first maximum" in out and "±" in out
    assert "not calibrated" in out  # trained without held-out spectra
    assert png.read_bytes()[:4] == b"\x89PNG"
    lines = csv_path.read_text().splitlines()
    assert lines[1] == "energy_eV,mu,std"
    data = np.loadtxt(lines[2:], delimiter=",")
    assert data.shape == (521, 3) and np.all(data[:, 2] >= 0)
    code, out, _ = run("xanes", "predict", azurite_cif, "--model", model_dir, "--site", 0, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["site"] == 0 and len(result["mu"]) == 521 and result["edge_ev"] < result["first_maximum_ev"]
    assert result["edge_std_ev"] > 0  # the two members' edges differ


def test_invert_measured_azurite(model_dir):
    code, out, err = run(
        "xanes", "invert", XAS_DATA / "measured_cu" / "Cu_azurite_13K_01.xdi", "--model", model_dir, "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert 1 <= result["coordination_number_rounded"] <= 12
    assert 1.5 < result["first_shell_A"] < 3.0 and result["first_shell_std_A"] >= 0
    assert isinstance(result["cautions"], list)


def test_train_cli_resumes(tmp_path, dataset):
    args = (
        "xanes",
        "train",
        "--data",
        XAS_DATA,
        "--out",
        tmp_path / "m",
        "--limit",
        4,
        "--members",
        1,
        "--epochs",
        5,
        "--width",
        8,
        "--descriptor",
        "wacsf",
        "--json",
    )
    code, out, err = run(*args)
    assert code == 0, err
    assert json.loads(out)["parts"] == {"forward": 1, "inverse_descriptor": 1, "inverse_shell": 1}
    assert not (tmp_path / "m" / "positions.json").exists()  # one member: no spread to calibrate
    one_member = XanesModel.load(tmp_path / "m")
    held_out = dataset.part("val").subset(np.arange(3))
    with pytest.raises(InputError, match="at least two members"):
        one_member.calibrate_positions(dataset_descriptors(held_out, one_member.descriptor), held_out.mu)
    stamp = (tmp_path / "m" / "forward" / "member_000.npz").stat().st_mtime_ns
    assert run(*args)[0] == 0
    assert (tmp_path / "m" / "forward" / "member_000.npz").stat().st_mtime_ns == stamp


def _one_line_error(code, _out, err, expected_code, fragment):
    assert code == expected_code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err


def test_structure_without_copper(model_dir, tmp_path):
    path = tmp_path / "zno.xyz"
    write(path, Atoms("ZnO", positions=[[0, 0, 0], [2, 0, 0]]))
    _one_line_error(*run("xanes", "predict", path, "--model", model_dir), 2, "no Cu atom")


def test_unknown_element(model_dir, tmp_path):
    path = tmp_path / "cuau.xyz"
    write(path, Atoms("CuAu", positions=[[0, 0, 0], [2.5, 0, 0]]))
    _one_line_error(
        *run("xanes", "predict", path, "--model", model_dir), 2, "Au were not in the training set"
    )


def test_site_that_is_not_copper(model_dir, azurite_cif):
    from ase.io import read

    other = next(i for i, s in enumerate(read(azurite_cif).get_chemical_symbols()) if s != "Cu")
    _one_line_error(
        *run("xanes", "predict", azurite_cif, "--model", model_dir, "--site", other), 2, "not a Cu atom"
    )


def test_spectrum_off_the_grid(model_dir, tmp_path):
    path = tmp_path / "short.csv"
    energy = np.arange(-5.0, 50.0, 0.5)
    path.write_text("energy_eV,mu\n" + "\n".join(f"{e},{1 / (1 + np.exp(-e))}" for e in energy))
    _one_line_error(*run("xanes", "invert", path, "--model", model_dir), 2, "off the grid")


def test_missing_model_and_bad_descriptor(azurite_cif, tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line_error(
        *run("xanes", "predict", azurite_cif, "--model", tmp_path / "empty"), 1, "no XANES model here"
    )
    _one_line_error(
        *run("xanes", "predict", azurite_cif, "--model", tmp_path / "absent"),
        1,
        "no such model folder and no shipped XANES model of that name",
    )
    _one_line_error(
        *run("xanes", "train", "--data", XAS_DATA, "--out", tmp_path / "m", "--descriptor", "mace"),
        2,
        "not known",
    )
