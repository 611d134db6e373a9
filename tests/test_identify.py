"""Identification: library caching, ranking, bad candidates, functional groups, calibration, CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specml.errors import InputError, SpectrumFormatError
from specml.experiment import load_absorbance
from specml.identification import (
    Candidate,
    LibraryEntry,
    Method,
    SpectralLibrary,
    band_evidence,
    ensemble_name,
    fill_library,
    group_agreement,
    identify,
    load_parameters,
    methods_for,
    supported_groups,
)
from specml.identification.calibration import fit_weights, ranks
from specml.identification.scoring import (
    FALLBACK_METHOD,
    ScoringParameters,
    band_width_cm1,
    compare,
    compare_members,
    map_frequencies,
    prepare_query,
    rotational_contour_cm1,
)
from specml.reference import XTBReference
from specml.spectra.broadening import broaden_sticks
from specml.spectra.spectrum import Spectrum

ROOT = Path(__file__).resolve().parents[1]
SMALL_MOLECULES = [
    ("water", "O"),
    ("methane", "C"),
    ("methanol", "CO"),
    ("ethane", "CC"),
    ("ethylene", "C=C"),
    ("acetylene", "C#C"),
    ("hydrogen cyanide", "C#N"),
    ("formaldehyde", "C=O"),
    ("ammonia", "N"),
    ("carbon dioxide", "O=C=O"),
    ("ethanol", "CCO"),
    ("dimethyl ether", "COC"),
    ("acetaldehyde", "CC=O"),
    ("formic acid", "OC=O"),
    ("methylamine", "CN"),
    ("acetonitrile", "CC#N"),
    ("ketene", "C=C=O"),
    ("formamide", "NC=O"),
    ("ethylene oxide", "C1CO1"),
    ("propane", "CCC"),
    ("propene", "C=CC"),
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
    params = load_parameters(method=FALLBACK_METHOD)  # the xTB ensemble's: the probe is scored with xTB
    with SpectralLibrary(library_path) as library:
        # Any query works for filling; this one is replaced below by the real perturbed query.
        probe = Spectrum(
            np.arange(500.0, 4000.0),
            np.exp(-(((np.arange(500.0, 4000.0) - 1700) / 30) ** 2)),
            metadata={"intensity_units": "absorbance"},
        )
        CountingXTB.calls = 0
        first = identify(probe, candidates, reference=CountingXTB(), library=library, parameters=params)
        xtb = Method.harmonic(XTBReference())
        entry = library.get("CC=O", xtb.name, xtb.settings)
    calls_first = CountingXTB.calls
    # "Experiment": the xTB sticks as the calibrated scorer expects them, but with a different line
    # shape and width than the scorer uses, plus 2 % noise.
    grid = np.arange(450.0, 4000.0, 0.5)
    real = entry.x > 0
    positions = map_frequencies(entry.x[real], params.scale_low, params.scale_high, params.split_cm1)
    clean = broaden_sticks(
        positions, entry.y[real], grid, band_width_cm1(entry, params, 0.6 * params.fwhm_cm1), "lorentzian"
    )
    noisy = clean / clean.max() + 0.02 * np.random.default_rng(0).standard_normal(grid.size)
    query = Spectrum(grid, np.clip(noisy, 0, None), metadata={"intensity_units": "absorbance"}).to_csv(
        tmp / "acetaldehyde.csv"
    )
    return {
        "tmp": tmp,
        "candidates": candidates,
        "library": library_path,
        "query": query,
        "first": first,
        "calls_first": calls_first,
        "params": params,
    }


def test_true_molecule_ranked_first_among_21(workspace):
    with SpectralLibrary(workspace["library"]) as library:
        result = identify(
            workspace["query"],
            workspace["candidates"],
            reference=CountingXTB(),
            library=library,
            parameters=workspace["params"],
        )
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
        result = identify(
            workspace["query"],
            workspace["candidates"],
            reference=CountingXTB(),
            library=library,
            parameters=workspace["params"],
        )
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
        xtb = Method.harmonic(XTBReference())
        entry = library.get("CO", xtb.name, xtb.settings)
    grid = np.arange(500.0, 4000.0, 1.0)
    query = Spectrum(
        grid,
        broaden_sticks(entry.x[entry.x > 0], entry.y[entry.x > 0], grid, 15.0, "gaussian"),
        metadata={"intensity_units": "absorbance"},
    )
    unit_scale = type(workspace["params"]).from_json(
        {
            **workspace["params"].to_json(),
            "scale_low": 1.0,
            "scale_high": 1.0,
            "fwhm_cm1": 15.0,
            "contour_factor": 0.0,
        }
    )
    with SpectralLibrary(workspace["library"]) as library:
        result = identify(
            query, SMALL_MOLECULES, reference="gfn2+gfn1", library=library, parameters=unit_scale
        )
    assert result.ranking[0].smiles == "CO"


def test_functional_group_evidence_and_agreement():
    grid = np.arange(500.0, 4000.0, 1.0)
    carbonyl = Spectrum(
        grid, np.exp(-(((grid - 1740.0) / 15.0) ** 2)) + 0.3 * np.exp(-(((grid - 2950.0) / 20.0) ** 2))
    )
    evidence = band_evidence(carbonyl)
    assert evidence["C=O"] == pytest.approx(1.0, abs=1e-3)
    supported = supported_groups(carbonyl)
    assert supported["C=O"] and not supported["O-H"] and not supported["aromatic ring"]
    assert group_agreement(supported, "CC(C)=O").summary() == "consistent"
    ethanol = group_agreement(supported, "CCO")
    assert set(ethanol.missing) == {"O-H", "C-O"} and ethanol.unexplained == ("C=O",)
    # A band in the N-H window is explained by an O-H group too (overlapping windows).
    hydroxyl = Spectrum(grid, np.exp(-(((grid - 3400.0) / 40.0) ** 2)))
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
    return subprocess.run(
        [sys.executable, "-m", "specml", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_cli_identify_prints_table_and_writes_overlay(workspace):
    out = workspace["tmp"] / "overlay.png"
    done = run_cli(
        "identify",
        workspace["query"],
        "--candidates",
        workspace["candidates"],
        "--library",
        workspace["library"],
        "--reference",
        "gfn2+gfn1",
        "--out",
        out,
        cwd=workspace["tmp"],
    )
    assert done.returncode == 0, done.stderr
    assert (
        "acetaldehyde" in done.stdout and "confidence" in done.stdout and "Skipped candidates" in done.stdout
    )
    first_row = next(line for line in done.stdout.splitlines() if line.strip().startswith("│ 1"))
    assert "acetaldehyde" in first_row
    assert out.stat().st_size > 10_000


def test_cli_malformed_query_is_one_line_error(workspace):
    bad = workspace["tmp"] / "bad.csv"
    bad.write_text("wavenumber,intensity\n1000,abc\nnot,numbers\n")
    done = run_cli(
        "identify",
        bad,
        "--candidates",
        workspace["candidates"],
        "--library",
        workspace["library"],
        cwd=workspace["tmp"],
    )
    assert done.returncode != 0
    assert done.stderr.strip().startswith("error:") and "Traceback" not in done.stderr


def test_xtb_ensemble_scores_both_xtb_hamiltonians(workspace):
    """GFN2+GFN1: GFN1 entries are stored next to the GFN2 ones and scored with them."""
    methods = methods_for("gfn2+gfn1")
    assert [m.settings["method"] for m in methods] == ["GFN2-xTB", "GFN1-xTB"]
    assert ensemble_name(methods) == FALLBACK_METHOD
    assert load_parameters(method=FALLBACK_METHOD).provenance.get("fallback") is None
    with SpectralLibrary(workspace["library"]) as library:
        result = identify(workspace["query"], workspace["candidates"], reference="gfn2+gfn1", library=library)
        assert all(library.get("CC=O", m.name, m.settings).ok for m in methods)
    assert result.method == FALLBACK_METHOD
    assert result.ranking[0].smiles == "CC=O"
    uranium = next(w for w in result.warnings if w.name == "uranium atom")
    assert uranium.reason.startswith(methods[0].name) and "not supported" in uranium.reason


def test_reference_lists_are_checked():
    assert [m.name for m in methods_for("xtb")] == ["harmonic:gfn2-xtb"]
    with pytest.raises(InputError, match="empty member"):
        methods_for("xtb+")
    with pytest.raises(InputError, match="twice"):
        methods_for("xtb+gfn2")


def test_cli_library_build(tmp_path):
    candidates = write_candidates(tmp_path / "c.csv", [("water", "O"), ("methane", "C"), ("bad", "C1CC")])
    library = tmp_path / "lib.sqlite"
    done = run_cli("library", "build", candidates, "--library", library, "--reference", "xtb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 ok" in done.stdout and "bad" in done.stdout
    with SpectralLibrary(library) as store:
        assert {e.smiles for e in store.entries(status="ok")} == {"O", "C"}
        xtb = Method.harmonic(XTBReference())
        water = store.get("O", xtb.name, xtb.settings)
    assert water.x.size == 3 and water.xyz.startswith("3\n")
    # --conformers: entries of the conformer-averaged protocol, beside the single-structure ones
    done = run_cli(
        "library",
        "build",
        candidates,
        "--library",
        library,
        "--reference",
        "xtb",
        "--conformers",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    with SpectralLibrary(library) as store:
        mixed = Method.harmonic(XTBReference(), conformers=True)
        assert store.get("O", mixed.name, mixed.settings).x.size == 3
        assert len(store.entries(status="ok")) == 4


def test_malformed_query_raises_specific_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("just text\n")
    with pytest.raises(SpectrumFormatError):
        identify(bad, [("water", "O")], library=SpectralLibrary(tmp_path / "l.sqlite"))


# ---------------------------------------------------------------- scoring pieces


def test_rotational_contour_follows_the_moments_of_inertia():
    co = "2\nCO\nC 0 0 0\nO 0 0 1.128"  # linear: one zero moment, B = 1.93 cm-1
    water = "3\nH2O\nO 0 0 0.119\nH 0 0.763 -0.477\nH 0 -0.763 -0.477"
    assert rotational_contour_cm1(co) == pytest.approx(2.358 * np.sqrt(1.93 * 298.0), rel=0.03)  # ~57 cm-1
    assert rotational_contour_cm1(water) > 2.5 * rotational_contour_cm1(co)
    assert rotational_contour_cm1(None) == 0.0 and rotational_contour_cm1("1\nHe\nHe 0 0 0") == 0.0
    with pytest.raises(InputError, match="XYZ"):
        rotational_contour_cm1("2\nbad\nC 0 0\nO x y z")


def _params(**changes) -> ScoringParameters:
    base = {
        "scale_low": 1.0,
        "scale_high": 1.0,
        "fwhm_cm1": 20.0,
        "weights": {},
        "intensity_power": 0.5,
        "contour_factor": 0.0,
        "tolerances": (0.03, 0.10),
    }
    return ScoringParameters.from_json({**base, **changes})


def test_band_matching_tolerates_relative_shifts():
    """A band 6 % off is 'found' at the wide (10 %) tolerance only; one 1 % off at both; one 40 % off at neither."""
    grid = np.arange(500.0, 4000.0, 1.0)
    query = Spectrum(
        grid, np.exp(-0.5 * ((grid - 1000.0) / 6.0) ** 2), metadata={"intensity_units": "absorbance"}
    )
    params = _params()
    prepared = prepare_query(query, params)

    def found(position):
        entry = LibraryEntry("C", "test", {}, "ok", np.array([position]), np.array([1.0]))
        return compare(prepared, entry, params)[1]

    close, off, far = found(1010.0), found(1060.0), found(1400.0)
    assert close["bands_found_narrow"] > 0.9 and close["bands_found_wide"] > 0.9
    # (intensities**0.5 lift the Gaussian tails, hence 0.25 rather than 0)
    assert off["bands_found_narrow"] < 0.25 and off["bands_found_wide"] > 0.9
    assert off["query_explained_narrow"] < 0.25 and off["query_explained_wide"] > 0.9
    assert far["bands_found_wide"] < 0.1 and far["query_explained_wide"] < 0.1


def test_members_are_scored_by_their_mean_metrics():
    grid = np.arange(500.0, 4000.0, 1.0)
    query = Spectrum(
        grid, np.exp(-0.5 * ((grid - 1000.0) / 6.0) ** 2), metadata={"intensity_units": "absorbance"}
    )
    params = _params()
    prepared = prepare_query(query, params)
    members = [
        LibraryEntry("C", name, {}, "ok", np.array([position]), np.array([1.0]))
        for name, position in (("a", 1005.0), ("b", 1150.0))
    ]
    single = [compare(prepared, m, params)[1] for m in members]
    spectrum, mean = compare_members(prepared, members, params)
    for key in mean:
        assert mean[key] == pytest.approx(0.5 * (single[0][key] + single[1][key]))
    assert spectrum.metadata["method"] == "a+b" and spectrum.intensity.max() == pytest.approx(1.0)


def test_prediction_outside_the_query_range_is_a_clear_error():
    grid = np.arange(1500.0, 2500.0, 1.0)
    query = Spectrum(
        grid, np.exp(-0.5 * ((grid - 2000.0) / 10.0) ** 2), metadata={"intensity_units": "absorbance"}
    )
    prepared = prepare_query(query, _params())
    entry = LibraryEntry("CCl", "test", {}, "ok", np.array([700.0]), np.array([5.0]))
    with pytest.raises(SpectrumFormatError, match="no bands"):
        compare(prepared, entry, _params())


def test_bad_scoring_parameters_are_rejected():
    with pytest.raises(InputError, match="unknown feature"):
        _params(weights={"pearsn": 1.0})
    with pytest.raises(InputError, match="intensity_power"):
        _params(intensity_power=0.0)
    with pytest.raises(InputError, match="fwhm"):
        _params(fwhm_cm1=-1.0)


def test_group_evidence_needs_a_band_maximum_and_half_a_window():
    # Measured from 575 cm-1 (as some NIST files): the C-Cl window 550-850 is still judged.
    grid = np.arange(575.0, 4000.0, 1.0)
    chloro = Spectrum(grid, np.exp(-0.5 * ((grid - 760.0) / 8.0) ** 2))
    assert supported_groups(chloro)["C-Cl"] is True
    # A strong aliphatic C-H band at 2960 whose wing reaches into 3000-3110 is no aromatic C-H band,
    # even with ring-like absorption at 1500.
    alkyl = Spectrum(
        grid, np.exp(-0.5 * ((grid - 2960.0) / 40.0) ** 2) + 0.3 * np.exp(-0.5 * ((grid - 1500.0) / 8) ** 2)
    )
    assert band_evidence(alkyl)["aromatic ring"] == 0.0
    # Less than half of the window measured: no evidence either way.
    short = Spectrum(
        np.arange(800.0, 4000.0, 1.0), np.exp(-0.5 * ((np.arange(800.0, 4000.0) - 1700) / 9) ** 2)
    )
    assert supported_groups(short)["C-Cl"] is None and supported_groups(short)["C=O"] is True


# ---------------------------------------------------------------- ML-MD (--models)


def _labelled(names, n, seed=0, amplitude=0.08):
    """Rattled small molecules with GFN2-xTB energy, forces and dipole (training data of a tiny committee)."""
    from ase.build import molecule
    from tblite.ase import TBLite

    rng = np.random.default_rng(seed)
    calc = TBLite(method="GFN2-xTB", verbosity=0)
    structures = []
    for name in names:
        for _ in range(n):
            atoms = molecule(name)
            atoms.positions += rng.normal(scale=amplitude, size=atoms.positions.shape)
            atoms.calc = calc
            energy, forces, dipole = (
                atoms.get_potential_energy(),
                atoms.get_forces(),
                atoms.get_dipole_moment(),
            )
            atoms.calc = None
            atoms.info["energy"], atoms.info["dipole"] = energy, dipole
            atoms.arrays["forces"] = forces
            structures.append(atoms)
    return structures


@pytest.fixture(scope="module")
def ml_workspace(tmp_path_factory):
    """A tiny MACE committee (H, C, O) and a library filled with its ML-MD spectra ('ci' MD preset)."""
    torch = pytest.importorskip("torch")
    from specml.models import get_preset, train_committee

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("identify_ml")
    data = _labelled(["CH3OH", "H2O", "CH4"], 20)
    models = train_committee(data, get_preset("tiny"), n_members=2, seeds=(0, 1), device="cpu").save(
        tmp / "committee"
    )
    # Another model: same data, other seeds.
    other = train_committee(data, get_preset("tiny"), n_members=2, seeds=(2, 3), device="cpu").save(
        tmp / "other"
    )
    candidates = write_candidates(
        tmp / "candidates.csv", [("methanol", "CO"), ("water", "O"), ("methane", "C"), ("ammonia", "N")]
    )
    library_path = tmp / "library.sqlite"
    probe = Spectrum(
        np.arange(500.0, 4000.0),
        np.exp(-(((np.arange(500.0, 4000.0) - 1100) / 40) ** 2)),
        metadata={"intensity_units": "absorbance"},
    )
    with SpectralLibrary(library_path) as library:
        first = identify(probe, candidates, models_dir=models, library=library, ml_preset="ci")
        method = Method.ml(models, "ci")
        methanol = library.get("CO", method.name, method.settings)
    query = Spectrum(methanol.x, methanol.y, metadata={"intensity_units": "absorbance"}).to_csv(
        tmp / "methanol_ml.csv"
    )
    return {
        "tmp": tmp,
        "models": models,
        "other": other,
        "candidates": candidates,
        "library": library_path,
        "first": first,
        "query": query,
    }


def test_ml_models_rank_their_own_spectrum_first_from_the_cache(ml_workspace, monkeypatch):
    first = ml_workspace["first"]
    assert first.method == "ml-md" and first.library_misses == 4
    assert {r.smiles for r in first.ranking} == {"CO", "O", "C"}
    assert [w.name for w in first.warnings] == ["ammonia"] and "N" in first.warnings[0].reason
    from specml.identification import library as library_module

    calls = []
    real = library_module.ml_predictor

    def counting_predictor():
        predict = real()
        return lambda *args, **kwargs: calls.append(args) or predict(*args, **kwargs)

    monkeypatch.setattr(library_module, "ml_predictor", counting_predictor)
    with SpectralLibrary(ml_workspace["library"]) as library:
        result = identify(
            ml_workspace["query"],
            ml_workspace["candidates"],
            models_dir=ml_workspace["models"],
            library=library,
            ml_preset="ci",
        )
    assert calls == [] and result.library_hits == 4 and result.library_misses == 0
    assert result.ranking[0].smiles == "CO"
    assert result.ranking[0].confidence > result.ranking[1].confidence
    # Its own curve is the nearest by Wasserstein distance, which tolerates the shift that the xTB
    # fallback scorer's frequency scales give the candidate curve (not the query); PCC does not.
    distance = {r.smiles: r.metrics["wasserstein_cm1"] for r in result.ranking}
    assert distance["CO"] == min(distance.values())
    # No ML-MD fit ships: the xTB-fitted scorer is used and says so.
    assert FALLBACK_METHOD in result.parameters.provenance["fallback"]


def test_ml_cache_is_keyed_by_the_model_and_its_md_settings(ml_workspace):
    models, other = ml_workspace["models"], ml_workspace["other"]
    same, copied = Method.ml(models, "ci"), Method.ml(_copy_tree(models, ml_workspace["tmp"] / "copy"), "ci")
    assert copied.settings == same.settings  # keyed by content, not by path
    assert Method.ml(other, "ci").settings["committee_sha256"] != same.settings["committee_sha256"]
    assert Method.ml(models, "quick").settings != same.settings
    with SpectralLibrary(ml_workspace["library"]) as library:
        assert library.get("CO", "ml-md", Method.ml(other, "ci").settings) is None
        # The other model computes its own entry (ok, or failed if its MD hits the sanity stop) ...
        entries = fill_library(library, [Candidate("methanol", "CO")], Method.ml(other, "ci"))
        assert library.misses == 1 and library.hits == 0
        assert (
            entries["CO"].settings["committee_sha256"] == Method.ml(other, "ci").settings["committee_sha256"]
        )
        # ... and the first model's entry is untouched.
        assert library.get("CO", "ml-md", same.settings).ok
    with pytest.raises(InputError, match="unknown workflow preset"):
        Method.ml(models, "no-such-preset")


def test_cli_identify_with_models(ml_workspace):
    done = run_cli(
        "identify",
        ml_workspace["query"],
        "--candidates",
        ml_workspace["candidates"],
        "--models",
        ml_workspace["models"],
        "--preset",
        "ci",
        "--library",
        ml_workspace["library"],
        cwd=ml_workspace["tmp"],
    )
    assert done.returncode == 0, done.stderr
    assert "ml-md" in done.stdout and "4 cached, 0 computed" in done.stdout
    first_row = next(line for line in done.stdout.splitlines() if line.strip().startswith("│ 1"))
    assert "methanol" in first_row
    assert not (
        ml_workspace["tmp"] / "specml-output"
    ).exists()  # MD files do not land in the working directory
    missing = run_cli(
        "identify",
        ml_workspace["query"],
        "--candidates",
        ml_workspace["candidates"],
        "--models",
        ml_workspace["tmp"] / "nowhere",
        cwd=ml_workspace["tmp"],
    )
    assert (
        missing.returncode != 0
        and missing.stderr.strip().startswith("error:")
        and "Traceback" not in missing.stderr
    )


def _copy_tree(source: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(source, target))


def test_condensed_phase_queries_are_flagged(shared_dir):
    """Band evidence alone (the declared state removed) flags exactly the two condensed-phase NIST files."""
    nist = shared_dir / "data" / "nist-ir"
    params = load_parameters()
    flagged = set()
    for row in csv.DictReader((nist / "index.csv").open()):
        measured = load_absorbance(nist / row["file"])
        undeclared = Spectrum(
            measured.wavenumber,
            measured.intensity,
            metadata={k: v for k, v in measured.metadata.items() if k != "state"},
        )
        caution = prepare_query(undeclared, params).condensed_phase
        if caution is not None:
            assert "hydrogen-bonded O-H" in caution
            flagged.add(row["file"])
    assert flagged == {"ethanol2.jdx", "isopropanol_ASDF.jdx"}
    # A declared state wins over band evidence, both ways.
    ethanol2 = load_absorbance(nist / "ethanol2.jdx")
    assert prepare_query(ethanol2.with_metadata(state="GAS"), params).condensed_phase is None
    methanol = load_absorbance(nist / "methanol.jdx")
    assert methanol.metadata["state"] == "GAS"
    assert (
        "'liquid film'" in prepare_query(methanol.with_metadata(state="liquid film"), params).condensed_phase
    )


def test_cli_identify_cautions_about_a_condensed_phase_query(workspace, shared_dir):
    done = run_cli(
        "identify",
        shared_dir / "data" / "nist-ir" / "ethanol2.jdx",
        "--candidates",
        workspace["candidates"],
        "--library",
        workspace["library"],
        "--reference",
        "xtb",
        cwd=workspace["tmp"],
    )
    assert done.returncode == 0, done.stderr
    assert "caution:" in done.stdout and "hydrogen-bonded O-H" in done.stdout


def test_saturated_query_bands_are_a_caution_not_an_error(workspace, shared_dir):
    with SpectralLibrary(workspace["library"]) as library:
        result = identify(
            shared_dir / "data" / "nist-ir" / "ethylene.jdx",
            workspace["candidates"],
            reference="xtb",
            library=library,
        )
    assert result.ranking[0].name == "ethylene"
    assert (
        len(result.cautions) == 1
        and "saturated" in result.cautions[0]
        and "946-950 cm-1" in result.cautions[0]
    )


def test_shipped_library_is_a_read_only_fallback(tmp_path):
    """Entries written to a shipped file are found by a library whose own cache is empty, counted as
    hits, and not recomputed; the file keeps its provenance."""
    import gzip
    import json

    from specml.identification.shipped_library import read_library_file, write_library_file

    xtb = Method.harmonic(XTBReference())
    candidates = [Candidate("water", "O"), Candidate("methane", "C")]
    with SpectralLibrary(tmp_path / "build.sqlite", shipped=False) as build:
        built = fill_library(build, candidates, xtb)
    shipped_dir = tmp_path / "shipped"
    path = write_library_file(shipped_dir / "xtb.json.gz", list(built.values()), {"date": "today"})
    with gzip.open(path, "rt") as fh:
        provenance = json.load(fh)["provenance"]
    assert provenance["method"] == xtb.name and provenance["n_entries"] == 2 and provenance["date"] == "today"
    assert [e.smiles for e in read_library_file(path)] == ["C", "O"]
    CountingXTB.calls = 0
    counting = Method.harmonic(CountingXTB())
    with SpectralLibrary(tmp_path / "user.sqlite", shipped=shipped_dir) as user:
        found = fill_library(user, candidates, counting)
        assert (user.hits, user.misses, CountingXTB.calls) == (2, 0, 0)
        assert len(user) == 0  # the user's cache is not filled with shipped entries
    np.testing.assert_allclose(found["O"].x, np.round(built["O"].x, 2))
    with SpectralLibrary(tmp_path / "other.sqlite", shipped=False) as plain:
        assert plain.get("O", xtb.name, xtb.settings) is None


def test_killed_library_build_resumes_without_recomputing(tmp_path):
    """SIGKILL a library build once its first entries are committed; the rerun computes only the rest."""
    import signal
    import sqlite3
    import time

    rows = [
        ("water", "O"),
        ("methane", "C"),
        ("ethane", "CC"),
        ("ethylene", "C=C"),
        ("methanol", "CO"),
        ("acetaldehyde", "CC=O"),
        ("propane", "CCC"),
        ("ethanol", "CCO"),
    ]
    candidates = write_candidates(tmp_path / "c.csv", rows)
    library = tmp_path / "lib.sqlite"
    command = [
        sys.executable,
        "-m",
        "specml",
        "library",
        "build",
        str(candidates),
        "--library",
        str(library),
        "--reference",
        "xtb",
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "SPECML_LIBRARY": str(library)},
    )

    def committed() -> int:
        try:
            with sqlite3.connect(library) as db:
                return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        except sqlite3.Error:  # not created yet
            return 0

    deadline = time.time() + 120
    while committed() < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = committed()
    assert 2 <= before < len(rows), "the build must be killed part-way"
    done = run_cli("library", "build", candidates, "--library", library, "--reference", "xtb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{before} already present, {len(rows) - before} computed now" in done.stdout


def test_condensed_phase_picture_moves_free_oh_to_the_hydrogen_bonded_band():
    from specml.identification.sample_phase import (
        HBONDED_OH_CENTRE_CM1,
        HBONDED_OH_FWHM_CM1,
        HBONDED_OH_INTENSITY_GAIN,
        condensed_phase_sticks,
    )

    sticks = np.array([1050.0, 2950.0, 3300.0, 3660.0]), np.array([50.0, 30.0, 5.0, 20.0])
    positions, intensities, extra = condensed_phase_sticks(*sticks, "CCO")
    np.testing.assert_allclose(positions, [1050.0, 2950.0, 3300.0, HBONDED_OH_CENTRE_CM1])
    np.testing.assert_allclose(intensities, [50.0, 30.0, 5.0, 20.0 * HBONDED_OH_INTENSITY_GAIN])
    np.testing.assert_allclose(extra, [0.0, 0.0, 0.0, HBONDED_OH_FWHM_CM1])
    # No O-H group (propyne's C-H at 3300, a made-up stick at 3660): nothing moves.
    positions, intensities, extra = condensed_phase_sticks(*sticks, "C#CC")
    np.testing.assert_allclose(positions, sticks[0])
    np.testing.assert_allclose(intensities, sticks[1])
    assert not extra.any()


def test_liquid_ethanol_matches_its_condensed_phase_picture_better(tmp_path, shared_dir):
    """The liquid ethanol NIST file against the shipped B3LYP sticks: the condensed-phase picture
    (hydrogen-bonded O-H, no contours) raises ethanol's PCC and puts it above propyne, whose
    alkyne C-H band sits where the liquid's O-H band is."""
    import dataclasses

    from specml.identification.library import DFT_REFERENCE

    method = Method.harmonic(DFT_REFERENCE)
    params = ScoringParameters(0.986, 0.963, 32.0, {"pearson": 1.0}, intensity_power=0.5, contour_factor=1.0)
    query = load_absorbance(shared_dir / "data" / "nist-ir" / "ethanol2.jdx")
    condensed = prepare_query(query, params)
    assert condensed.condensed_phase is not None
    as_gas = dataclasses.replace(condensed, condensed_phase=None)
    with SpectralLibrary(tmp_path / "empty.sqlite") as library:
        ethanol, propyne = (library.get(s, method.name, method.settings) for s in ("CCO", "C#CC"))
    assert ethanol is not None and propyne is not None  # shipped with specml
    pcc = {
        (name, phase): compare(prepared, entry, params)[1]["pearson"]
        for name, entry in (("ethanol", ethanol), ("propyne", propyne))
        for phase, prepared in (("condensed", condensed), ("gas", as_gas))
    }
    assert pcc["ethanol", "condensed"] > pcc["ethanol", "gas"] + 0.1
    assert pcc["ethanol", "condensed"] > pcc["propyne", "condensed"]
    assert pcc["propyne", "gas"] > pcc["ethanol", "gas"]  # what the gas picture got wrong


def test_conformer_averaged_entries_are_keyed_apart_and_weighted(tmp_path):
    """A conformer-averaged entry has its own key and shipped file, holds every conformer's bands
    with intensities times populations, and keeps second derivatives only for a rigid molecule."""
    from specml.identification.library import HARMONIC_FMAX, entry_key, shipped_library_path
    from specml.molecules.conformers import conformers_from_smiles
    from specml.spectra.harmonic import conformer_averaged_harmonic

    single, mixed = Method.harmonic(XTBReference()), Method.harmonic(XTBReference(), conformers=True)
    assert "conformers" in mixed.settings and "conformers" not in single.settings
    assert mixed.name == single.name  # one method, two protocols, two keys
    assert entry_key("CCO", mixed.name, mixed.settings) != entry_key("CCO", single.name, single.settings)
    assert shipped_library_path(mixed).name == "harmonic_gfn2-xtb_conformers.json.gz"
    # the keyed protocol names the screen and window that conformer_averaged_harmonic uses
    import inspect

    from specml.identification.library import CONFORMER_PROTOCOL
    from specml.spectra.harmonic import SCREEN_WINDOW_EV

    window = inspect.signature(conformer_averaged_harmonic).parameters["energy_window_eV"].default
    assert f"screen {SCREEN_WINDOW_EV:g} eV, window {window:g} eV" in CONFORMER_PROTOCOL
    with SpectralLibrary(tmp_path / "lib.sqlite", shipped=False) as library:
        found = fill_library(library, [Candidate("ethanol", "CCO"), Candidate("methane", "C")], mixed)
    ethanol, methane = found["CCO"], found["C"]
    # per-conformer checkpoints beside the library: 3 optimisations and 2 analyses for ethanol
    (folder,) = [p for p in (tmp_path / "conformers").iterdir() if p.name.startswith("CCO_")]
    assert len(list(folder.glob("optimised_*.json"))) == 3 and len(list(folder.glob("analysed_*.json"))) == 2
    assert ethanol.x.size == 2 * 21 and ethanol.second_derivatives is None  # trans + gauche (x2)
    assert methane.x.size == 9 and methane.second_derivatives is not None
    # each conformer's bands times its population, the populations summing to one
    mixture = conformer_averaged_harmonic(conformers_from_smiles("CCO"), XTBReference(), fmax=HARMONIC_FMAX)
    populations = [
        ethanol.y[21 * k : 21 * (k + 1)].sum() / r.intensities_km_mol.sum()
        for k, r in enumerate(mixture.results)
    ]
    np.testing.assert_allclose(populations, mixture.weights, rtol=1e-6)
    assert sum(populations) == pytest.approx(1.0)
    with pytest.raises(InputError, match="ML-MD"):
        methods_for("xtb", models_dir=tmp_path, conformers=True)


def test_saturated_query_ranges_are_censored_for_query_and_candidates():
    """A query whose strongest band is clipped (transmittance below 1 %): within the comparison
    width of the saturated range both curves are left out, so the true compound matches the rest
    of the spectrum exactly, while without censoring the clipped top costs it correlation."""
    import dataclasses

    from specml.identification.library import LibraryEntry
    from specml.identification.scoring import compare, prepare_query

    params = ScoringParameters(1.0, 1.0, 16.0, {"pearson": 1.0}, intensity_power=1.0, contour_factor=0.0)
    grid = np.arange(500.0, 3500.0, 1.0)
    sticks = np.array([1000.0, 1500.0, 2000.0]), np.array([100.0, 20.0, 30.0])
    clean = broaden_sticks(*sticks, grid, 16.0, "gaussian")
    clipped = np.minimum(clean, 0.3 * clean.max())  # the 1000 cm-1 band's top is lost
    top = grid[clean > 0.3 * clean.max()]
    saturated = [[float(top.min()), float(top.max())]]
    query = Spectrum(grid, clipped, metadata={"resolution_cm1": 16.0, "saturated_cm1": saturated})
    truth = LibraryEntry("X", "harmonic:test", {}, "ok", *sticks)
    prepared = prepare_query(query, params)
    assert prepared.censored[np.abs(prepared.grid - 1000.0) <= 16.0].all()
    assert not prepared.censored[np.abs(prepared.grid - 1500.0) <= 30.0].any()
    censored_pcc = compare(prepared, truth, params)[1]["pearson"]
    uncensored = prepare_query(dataclasses.replace(query, metadata={"resolution_cm1": 16.0}), params)
    assert censored_pcc > 0.999 > compare(uncensored, truth, params)[1]["pearson"] + 0.05
