"""The XANES model shipped with specml: present, traceable, and physically right on cuprite."""

from __future__ import annotations

import json

import numpy as np
from ase.io import write
from typer.testing import CliRunner
from xanes_data import XAS_DATA, cuprite_cell, needs_xas_data

from specml.cli import app
from specml.xanes.models import DEFAULT_MODEL, SHIPPED_MODELS, XanesModel, shipped_models


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_the_default_model_ships_with_its_provenance():
    assert DEFAULT_MODEL in shipped_models()
    meta = json.loads((SHIPPED_MODELS / DEFAULT_MODEL / "model.json").read_text())
    assert meta["absorber"] == "Cu" and meta["descriptor"]["kind"] == "soap+chem"
    assert "benchmarks/xanes.py" in meta["provenance"]["made_by"]
    assert meta["provenance"]["versions"]["scikit-learn"]
    model = XanesModel.load(DEFAULT_MODEL)
    assert all(e.complete and e.std_scale is not None for e in model.ensembles.values())
    assert not (model.folder / "features.npz").exists()  # the training cache stays behind


def test_cuprite_predicted_then_inverted_is_linear_cu_i(tmp_path):
    """Cu2O: each Cu(I) sits between two O at 1.85 Å. The predicted spectrum is normalised (the
    edge step is 1) and, inverted, gives back two neighbours at that distance."""
    cif, csv_path = tmp_path / "cuprite.cif", tmp_path / "cuprite.csv"
    write(cif, cuprite_cell())
    code, out, err = run("xanes", "predict", cif, "--out", csv_path, "--json")
    assert code == 0, err
    result = json.loads(out)
    energy, mu = np.asarray(result["energy_ev"]), np.asarray(result["mu"])
    assert abs(mu[(energy >= 60) & (energy <= 122)].mean() - 1.0) < 0.05
    assert result["edge_ev"] < result["first_maximum_ev"]
    # the shipped model's position std is calibrated on the val split (benchmarks/xanes_positions.py)
    assert result["position_std_calibrated"] and result["edge_std_ev"] > 0
    assert result["cautions"] == []  # cuprite is like the training sites
    code, out, err = run("xanes", "invert", csv_path, "--json")
    assert code == 0, err
    inverted = json.loads(out)
    assert inverted["coordination_number_rounded"] == 2
    assert abs(inverted["first_shell_A"] - 1.85) < 0.05
    assert inverted["cautions"] == []


@needs_xas_data
def test_measured_cuo_inverts_to_four_neighbours():
    """Tenorite's Cu(II) is square-planar: four O at 1.95-1.96 Å (the apical two at 2.78 Å are
    outside the first shell)."""
    code, out, err = run("xanes", "invert", XAS_DATA / "measured_cu" / "CuO_tenorite_13K_01.xdi", "--json")
    assert code == 0, err
    inverted = json.loads(out)
    assert inverted["coordination_number_rounded"] == 4
    assert 1.8 < inverted["first_shell_A"] < 2.05


def test_models_lists_the_shipped_model_with_its_domain():
    code, out, err = run("xanes", "models", "--json")
    assert code == 0, err
    info = json.loads(out)[DEFAULT_MODEL]
    assert info["absorber"] == "Cu" and info["energy_range_ev"] == [-7.5, 122.5]
    assert "energy_ev" not in info and {"O", "Cu", "Au"} <= set(info["elements"])
    code, out, _ = run("xanes", "models")
    assert code == 0 and DEFAULT_MODEL in out


def test_a_models_elements_are_summarised_by_what_it_lacks():
    from specml.cli.commands_xanes import _elements_summary

    assert _elements_summary(["O", "H", "C"]) == "3 of H-O (not He, Li, Be, B, N)"
    assert _elements_summary(["H", "He"]) == "2 of H-He"


def test_a_site_unlike_any_training_site_is_flagged(tmp_path):
    """Cuprite squeezed to Cu-O 1.56 Å (no Cu-O bond is that short) is outside the training
    range of the descriptor: the prediction says it extrapolates."""
    path = tmp_path / "squeezed.cif"
    write(path, cuprite_cell(3.6))
    code, out, err = run("xanes", "predict", path, "--json")
    assert code == 0, err
    (caution,) = json.loads(out)["cautions"]
    assert "unlike any training site" in caution
