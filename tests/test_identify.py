"""Identification: library caching, ranking, bad candidates, functional groups, calibration, CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specml.errors import SpectrumFormatError
from specml.identification import SpectralLibrary, band_evidence, group_agreement, identify, load_parameters, \
    supported_groups
from specml.identification.calibration import fit_weights, ranks
from specml.identification.scoring import map_frequencies
from specml.reference import XTBReference
from specml.spectra.broadening import broaden_sticks
from specml.spectra.spectrum import Spectrum

ROOT = Path(__file__).resolve().parents[1]
SMALL_MOLECULES = [
    ("water", "O"), ("methane", "C"), ("methanol", "CO"), ("ethane", "CC"), ("ethylene", "C=C"),
    ("acetylene", "C#C"), ("hydrogen cyanide", "C#N"), ("formaldehyde", "C=O"), ("ammonia", "N"),
    ("carbon dioxide", "O=C=O"), ("ethanol", "CCO"), ("dimethyl ether", "COC"), ("acetaldehyde", "CC=O"),
    ("formic acid", "OC=O"), ("methylamine", "CN"), ("acetonitrile", "CC#N"), ("ketene", "C=C=O"),
    ("formamide", "NC=O"), ("ethylene oxide", "C1CO1"), ("propane", "CCC"), ("propene", "C=CC"),
]
BAD = [("broken ring", "C1CC"), ("uranium atom", "[U]")]


class CountingXTB(XTBReference):
    """GFN2-xTB that counts the calculators it hands out (one per optimisation or single point)."""

    calls = 0

    def calculator(self):
        type(self).calls += 1
        return super().calculator()


def write_candidates(path: Path, rows) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["name", "smiles"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A library filled by a first identification, and a perturbed query of acetaldehyde."""
    tmp = tmp_path_factory.mktemp("identify")
    candidates = write_candidates(tmp / "candidates.csv", SMALL_MOLECULES + BAD)
    library_path = tmp / "library.sqlite"
    params = load_parameters()
    with SpectralLibrary(library_path) as library:
        # Any query works for filling; this one is replaced below by the real perturbed query.
        probe = Spectrum(np.arange(500.0, 4000.0), np.exp(-((np.arange(500.0, 4000.0) - 1700) / 30) ** 2),
                         metadata={"intensity_units": "absorbance"})
        CountingXTB.calls = 0
        first = identify(probe, candidates, reference=CountingXTB(), library=library, parameters=params)
        entry = library.get("CC=O", "harmonic:xtb", XTBReference().settings)
    calls_first = CountingXTB.calls
    # "Experiment": the xTB sticks as the calibrated scorer expects them, but with a different line
    # shape and width than the scorer uses, plus 2 % noise.
    grid = np.arange(450.0, 4000.0, 0.5)
    real = entry.x > 0
    positions = map_frequencies(entry.x[real], params.scale_low, params.scale_high, params.split_cm1)
    clean = broaden_sticks(positions, entry.y[real], grid, 0.6 * params.fwhm_cm1, "lorentzian")
    noisy = clean / clean.max() + 0.02 * np.random.default_rng(0).standard_normal(grid.size)
    query = Spectrum(grid, np.clip(noisy, 0, None), metadata={"intensity_units": "absorbance"}).to_csv(
        tmp / "acetaldehyde.csv")
    return {"tmp": tmp, "candidates": candidates, "library": library_path, "query": query, "first": first,
            "calls_first": calls_first, "params": params}


def test_true_molecule_ranked_first_among_21(workspace):
    with SpectralLibrary(workspace["library"]) as library:
        result = identify(workspace["query"], workspace["candidates"], reference=CountingXTB(), library=library,
                          parameters=workspace["params"])
    assert len(result.ranking) == len(SMALL_MOLECULES)
    assert result.ranking[0].smiles == "CC=O"
    assert result.ranking[0].confidence > result.ranking[1].confidence
    assert sum(r.confidence for r in result.ranking) == pytest.approx(1.0)
    assert result.supported_groups["C=O"] is True
    assert result.ranking[0].groups.missing == ()


def test_cache_hits_do_not_recompute(workspace):
    assert workspace["calls_first"] > 0
    assert workspace["first"].library_misses == len(SMALL_MOLECULES) + 1  # + the unsupported element
    CountingXTB.calls = 0
    with SpectralLibrary(workspace["library"]) as library:
        result = identify(workspace["query"], workspace["candidates"], reference=CountingXTB(), library=library,
                          parameters=workspace["params"])
    assert CountingXTB.calls == 0
    assert result.library_misses == 0 and result.library_hits == len(SMALL_MOLECULES) + 1


def test_bad_candidates_are_reported_and_skipped(workspace):
    warnings = {w.name: w.reason for w in workspace["first"].warnings}
    assert set(warnings) == {"broken ring", "uranium atom"}
    assert "invalid SMILES" in warnings["broken ring"]
    assert "U" in warnings["uranium atom"] and "not supported" in warnings["uranium atom"]
    with SpectralLibrary(workspace["library"]) as library:
        failed = library.entries(status="failed")
    assert [e.smiles for e in failed] == ["[U]"]  # stored, so it is not retried on the next query


def test_unscaled_harmonic_query_of_another_molecule(workspace):
    """Library sticks are reusable with other parameters: a methanol query with raw xTB frequencies."""
    with SpectralLibrary(workspace["library"]) as library:
        entry = library.get("CO", "harmonic:xtb", XTBReference().settings)
    grid = np.arange(500.0, 4000.0, 1.0)
    query = Spectrum(grid, broaden_sticks(entry.x[entry.x > 0], entry.y[entry.x > 0], grid, 15.0, "gaussian"),
                     metadata={"intensity_units": "absorbance"})
    unit_scale = type(workspace["params"]).from_json({**workspace["params"].to_json(), "scale_low": 1.0,
                                                      "scale_high": 1.0, "fwhm_cm1": 15.0})
    with SpectralLibrary(workspace["library"]) as library:
        result = identify(query, SMALL_MOLECULES, library=library, parameters=unit_scale)
    assert result.ranking[0].smiles == "CO"


def test_functional_group_evidence_and_agreement():
    grid = np.arange(500.0, 4000.0, 1.0)
    carbonyl = Spectrum(grid, np.exp(-((grid - 1740.0) / 15.0) ** 2) + 0.3 * np.exp(-((grid - 2950.0) / 20.0) ** 2))
    evidence = band_evidence(carbonyl)
    assert evidence["C=O"] == pytest.approx(1.0, abs=1e-3)
    supported = supported_groups(carbonyl)
    assert supported["C=O"] and not supported["O-H"] and not supported["aromatic ring"]
    assert group_agreement(supported, "CC(C)=O").summary() == "consistent"
    ethanol = group_agreement(supported, "CCO")
    assert set(ethanol.missing) == {"O-H", "C-O"} and ethanol.unexplained == ("C=O",)
    # A band in the N-H window is explained by an O-H group too (overlapping windows).
    hydroxyl = Spectrum(grid, np.exp(-((grid - 3400.0) / 40.0) ** 2))
    assert group_agreement(supported_groups(hydroxyl), "O").unexplained == ()


def test_conditional_logit_learns_which_feature_identifies():
    rng = np.random.default_rng(1)
    n_queries, n_candidates = 30, 8
    features = rng.normal(size=(n_queries, n_candidates, 2))
    truth = rng.integers(0, n_candidates, n_queries)
    features[np.arange(n_queries), truth, 0] += 2.5  # feature 0 is informative, feature 1 noise
    weights, _ = fit_weights(features, truth)
    assert weights[0] > 1.0 and abs(weights[1]) < weights[0] / 3
    rank, probabilities = ranks(features, truth, weights)
    assert np.mean(rank == 1) > 0.7
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def run_cli(*args, cwd: Path):
    env = {**os.environ, "COLUMNS": "200"}  # a wide console so rich does not wrap names in the table
    return subprocess.run([sys.executable, "-m", "specml", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_cli_identify_prints_table_and_writes_overlay(workspace):
    out = workspace["tmp"] / "overlay.png"
    done = run_cli("identify", workspace["query"], "--candidates", workspace["candidates"], "--library",
                   workspace["library"], "--out", out, cwd=workspace["tmp"])
    assert done.returncode == 0, done.stderr
    assert "acetaldehyde" in done.stdout and "confidence" in done.stdout and "Skipped candidates" in done.stdout
    first_row = next(line for line in done.stdout.splitlines() if line.strip().startswith("│ 1"))
    assert "acetaldehyde" in first_row
    assert out.stat().st_size > 10_000


def test_cli_malformed_query_is_one_line_error(workspace):
    bad = workspace["tmp"] / "bad.csv"
    bad.write_text("wavenumber,intensity\n1000,abc\nnot,numbers\n")
    done = run_cli("identify", bad, "--candidates", workspace["candidates"], "--library", workspace["library"],
                   cwd=workspace["tmp"])
    assert done.returncode != 0
    assert done.stderr.strip().startswith("error:") and "Traceback" not in done.stderr


def test_cli_library_build(tmp_path):
    candidates = write_candidates(tmp_path / "c.csv", [("water", "O"), ("methane", "C"), ("bad", "C1CC")])
    library = tmp_path / "lib.sqlite"
    done = run_cli("library", "build", candidates, "--library", library, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 ok" in done.stdout and "bad" in done.stdout
    with SpectralLibrary(library) as store:
        assert {e.smiles for e in store.entries(status="ok")} == {"O", "C"}
        water = store.get("O", "harmonic:xtb", XTBReference().settings)
    assert water.x.size == 3 and water.xyz.startswith("3\n")


def test_malformed_query_raises_specific_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("just text\n")
    with pytest.raises(SpectrumFormatError):
        identify(bad, [("water", "O")], library=SpectralLibrary(tmp_path / "l.sqlite"))

