"""The command line's surface: fast start, output for people and programs, options checked before any work."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specml.cli import app

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
METHANOL = SHARED / "data" / "nist-ir" / "methanol.jdx"
SUBCOMMANDS = [
    [],
    ["ir"],
    ["harmonic"],
    ["raman"],
    ["md"],
    ["compare"],
    ["identify"],
    ["library"],
    ["library", "build"],
    ["models"],
]
HEAVY = {
    "torch",
    "mace",
    "e3nn",
    "pyscf",
    "tblite",
    "dask",
    "distributed",
    "rdkit",
    "matplotlib",
    "scipy",
    "sklearn",
    "pybaselines",
    "dscribe",
    "geometric",
}
# Long enough that an 80-column table would cut it.
LONG_NAME = "1,1,1-trichloroethane (methyl chloroform, a candidate name longer than a narrow column)"
CANDIDATES = [("methanol", "CO"), (LONG_NAME, "CC(Cl)(Cl)Cl"), ("pyrrole", "c1cc[nH]c1"), ("water", "O")]

runner = CliRunner()


def specml(*args, cwd: Path, columns: int = 80) -> subprocess.CompletedProcess:
    """``specml ARGS`` in a subprocess, stdout piped, on a narrow terminal width."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "specml", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the rich tables in ``text``, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")
    ]


# -- fast start -------------------------------------------------------------------------------------


def test_help_and_version_import_no_heavy_library():
    code = (
        "import json, sys\nfrom typer.testing import CliRunner\nfrom specml.cli import app\n"
        f"for args in {SUBCOMMANDS!r} + [['--version']]:\n"
        "    assert CliRunner().invoke(app, [*args, '--help'] if args != ['--version'] else args).exit_code == 0\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert HEAVY.isdisjoint(json.loads(done.stdout)), HEAVY & set(json.loads(done.stdout))


def test_version():
    from specml import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"specml {__version__}"


# -- options checked before any work ----------------------------------------------------------------


@pytest.fixture()
def no_work(monkeypatch, tmp_path):
    """Records any reference calculation or workflow start; runs in an empty folder."""
    from specml.cli import commands_ir
    from specml.reference import PySCFReference, XTBReference

    calls = []
    for cls in (XTBReference, PySCFReference):
        monkeypatch.setattr(cls, "calculator", lambda self: calls.append(self.name))
    monkeypatch.setattr(commands_ir, "_train", lambda *a, **k: calls.append("workflow"))
    monkeypatch.setattr(commands_ir, "_predict", lambda *a, **k: calls.append("prediction"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPECML_LIBRARY", str(tmp_path / "library.sqlite"))
    (tmp_path / "cands.csv").write_text("name,smiles\nwater,O\n")
    return calls


INVALID = [
    ("ir CO -T -5", "--temperature"),
    ("ir CO -T 0", "--temperature"),
    ("ir CO -T 300 -T nan", "--temperature"),
    ("ir CO --production-ps -1", "--production-ps must be positive"),
    ("ir CO --preset nope", "preset"),
    ("ir CO --max-iterations -1", "--max-iterations must"),
    ("ir CO --stall-iterations -2", "--stall-iterations"),
    ("ir CO --beads 0", "--beads must be a whole number of at least 1"),
    ("ir CO --beads 600", "--beads"),
    ("ir CO --beads 2 --raman", "use --beads 1 with --raman"),
    ("ir CO --scheduler local:0", "--scheduler"),
    ("ir CO --reference nope", "reference"),
    ("ir CO --compare missing.jdx", "missing.jdx"),
    ("ir CO --models missing_dir", "--models"),
    ("ir C1CC", "SMILES"),
    ("harmonic CO --fwhm -3", "line width"),
    ("harmonic CO --fwhm 0", "line width"),
    ("harmonic CO --fwhm inf", "line width"),
    ("harmonic CO --fwhm abc", "--fwhm"),
    ("harmonic CO --range 4000 500", "--range"),
    ("harmonic CO -T -5", "--temperature"),
    ("harmonic CO --shape square", "line shape"),
    ("harmonic CO --gas-contour --fwhm 0.5", "at least 1 cm-1"),
    ("harmonic CO --gas-contour --shape lorentzian", "--gas-contour"),
    ("harmonic CO --compare missing.jdx", "missing"),
    ("harmonic CO --out cands.csv", "--out"),
    ("harmonic [U]", "not supported"),
    ("harmonic C1CC", "SMILES"),
    ("raman CO --laser-nm -3", "--laser-nm"),
    ("raman CO --laser-nm 1e9", "--laser-nm"),
    ("raman CO -T 0", "--temperature"),
    ("raman CO --range 4000 500", "--range"),
    ("raman CO --fwhm 0", "line width"),
    ("raman CO --out cands.csv", "--out"),
    ("raman [U]", "not supported"),
    ("md CO -T -5", "temperature"),
    ("md CO --time 0", "production time"),
    ("md CO --timestep 0", "time step"),
    ("md CO --friction -1", "friction"),
    ("md CO --max-correlation 1e9", "correlation depth"),
    ("md CO --seed -1", "seed"),
    ("md CO --thermalization -1", "thermalisation"),
    (f"compare {METHANOL} {METHANOL} --step 0", "step"),
    (f"compare {METHANOL} {METHANOL} --range 500 500", "range"),
    (f"compare {METHANOL} {METHANOL} --out overlay.jpg", "--out"),
    ("compare missing.jdx missing.jdx", "missing"),
    (f"identify {METHANOL} -c cands.csv --reference nope", "reference"),
    (f"identify {METHANOL} -c cands.csv --reference xtb+", "empty member"),
    (f"identify {METHANOL} -c cands.csv --scheduler nowhere", "--scheduler"),
    (f"identify {METHANOL} -c cands.csv --top 0", "--top"),
    (f"identify {METHANOL} -c cands.csv --preset nope", "preset"),
    (f"identify {METHANOL} -c cands.csv --json --csv", "--csv"),
    ("identify missing.jdx -c cands.csv", "missing"),
    (f"identify {METHANOL} -c missing.csv", "missing.csv"),
    ("library build cands.csv --reference xtb+gfn2", "twice"),
    ("library build cands.csv --preset nope", "preset"),
    ("library build missing.csv", "missing.csv"),
]


@pytest.mark.parametrize("command,fragment", INVALID, ids=[c for c, _ in INVALID])
def test_invalid_parameter_exits_2_before_any_work(no_work, tmp_path, command, fragment):
    result = runner.invoke(app, command.split())
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr
    assert no_work == []  # no reference method was called, no workflow started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cands.csv"]  # no run folder or output claimed


def test_invalid_options_leave_an_existing_run_folder_alone(no_work, tmp_path):
    run = tmp_path / "runs" / "methanol"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    for args in (["-T", "-5"], ["--production-ps", "0"], ["--preset", "nope"]):
        result = runner.invoke(app, ["ir", "CO", "--run-dir", str(run), *args])
        assert result.exit_code == 2, result.output
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == before
    assert no_work == []


def test_api_checks_settings_too():
    from specml.checks import MAX_TEMPERATURE_K
    from specml.comparison import compare_spectra
    from specml.dynamics.settings import check_md_settings
    from specml.errors import InputError
    from specml.executor import check_scheduler
    from specml.spectra.spectrum import Spectrum
    from specml.workflow import get_workflow_config

    with pytest.raises(InputError, match="temperatures_k"):
        get_workflow_config("ci", temperatures_k=(300.0, -1.0))
    with pytest.raises(InputError, match="production_ps"):
        get_workflow_config("quick", production_ps=0.0)
    assert get_workflow_config("ci", max_iterations=0).max_iterations == 0
    with pytest.raises(InputError, match="at most"):
        check_md_settings(2 * MAX_TEMPERATURE_K, 10, 5, 0.5, 0.001, 1000, 0)
    assert check_md_settings(300, 10, 5, 0.5, 0.001, 1000, 0) == (20000, 10000)
    assert (
        check_scheduler("tcp://10.0.0.5:8786")
        and check_scheduler("local:4")
        and check_scheduler(None) is None
    )
    x = np.arange(500.0, 4000.0)
    spectrum = Spectrum(x, np.exp(-(((x - 1700) / 20) ** 2)))
    with pytest.raises(InputError, match="range"):
        compare_spectra(spectrum, spectrum, 4000, 500)


# -- output for people and programs -----------------------------------------------------------------


def synthetic_entry(task: tuple) -> dict:
    """Sticks for a library entry without a calculation: 8 bands, fixed by the SMILES."""
    smiles, _reference = task
    rng = np.random.default_rng(sum(map(ord, smiles)))
    return {
        "x": np.sort(rng.uniform(700, 3600, 8)).tolist(),
        "y": rng.uniform(5, 100, 8).tolist(),
        "xyz": None,
        "seconds": 0.0,
        "kind": "sticks",
    }


@pytest.fixture(scope="module")
def warm_library(tmp_path_factory):
    """A library that already holds every candidate's xTB sticks, and a query made from methanol's."""
    from specml.identification import (
        Method,
        SpectralLibrary,
        fill_library,
        resolve_candidates,
    )
    from specml.identification import library as library_module
    from specml.spectra.broadening import broaden_sticks
    from specml.spectra.spectrum import Spectrum

    tmp = tmp_path_factory.mktemp("warm")
    with (tmp / "candidates.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([("name", "smiles"), *CANDIDATES])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(library_module, "compute_harmonic_entry", synthetic_entry)
        with SpectralLibrary(tmp / "library.sqlite") as store:
            fill_library(store, resolve_candidates(CANDIDATES)[0], Method.harmonic("xtb"))
    grid = np.arange(500.0, 4000.0, 1.0)
    sticks = synthetic_entry(("CO", None))
    Spectrum(
        grid, broaden_sticks(sticks["x"], sticks["y"], grid, 20.0), metadata={"intensity_units": "absorbance"}
    ).to_csv(tmp / "query.csv")
    return tmp


def identify_args(tmp: Path, *extra: str) -> list[str]:
    return [
        "identify",
        str(tmp / "query.csv"),
        "--candidates",
        str(tmp / "candidates.csv"),
        "--reference",
        "xtb",
        "--library",
        str(tmp / "library.sqlite"),
        *extra,
    ]


def test_piped_identify_keeps_full_names_and_smiles(warm_library):
    done = specml(*identify_args(warm_library, "--top", "10"), cwd=warm_library, columns=80)
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert {(row[1], row[2]) for row in rows} == {(name, smiles) for name, smiles in CANDIDATES}
    assert "library: 4 cached, 0 computed" in done.stdout


def test_identify_json_and_csv_match_the_table(warm_library):
    from specml.cli.commands_identify import RANKING_COLUMNS

    table = table_rows(specml(*identify_args(warm_library, "--top", "10"), cwd=warm_library).stdout)
    as_json = specml(*identify_args(warm_library, "--json"), cwd=warm_library)
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)  # stdout is the JSON and nothing else
    assert result["method"] == "harmonic:gfn2-xtb" and result["library"]["cached"] == 4
    assert len(result["ranking"]) == len(table) == len(CANDIDATES)
    for row, shown in zip(result["ranking"], table, strict=True):
        assert [fmt.format(row[field]) for _, field, fmt in RANKING_COLUMNS] == shown
    assert sum(row["confidence"] for row in result["ranking"]) == pytest.approx(1.0)
    as_csv = specml(*identify_args(warm_library, "--csv"), cwd=warm_library)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["name"] for r in rows] == [r["name"] for r in result["ranking"]]
    assert [float(r["score"]) for r in rows] == pytest.approx([r["score"] for r in result["ranking"]])


def test_compare_json_matches_the_table_and_writes_no_overlay_unasked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = runner.invoke(app, ["compare", str(METHANOL), str(METHANOL), "--step", "2"])
    assert table.exit_code == 0, table.output
    shown = {row[0]: row[1] for row in table_rows(table.stdout)}
    result = json.loads(
        runner.invoke(app, ["compare", str(METHANOL), str(METHANOL), "--step", "2", "--json"]).stdout
    )
    assert shown == {
        "PCC": f"{result['pcc']:.3f}",
        "WD (cm-1)": f"{result['wd_cm1']:.2f}",
        "SIS": f"{result['sis']:.3f}",
        "cosine": f"{result['cosine']:.3f}",
    }
    assert result["overlay"] is None and result["range_cm1"] == [500.0, 4000.0]
    assert list(tmp_path.iterdir()) == []  # no overlay.png in the working folder


def test_harmonic_json_matches_the_modes_table(tmp_path):
    result = runner.invoke(app, ["harmonic", "O", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    (water,) = json.loads(result.stdout)  # the modes table went to stderr
    modes = table_rows(result.stderr)
    assert [row[1] for row in modes] == [f"{nu:.1f}" for nu in water["frequencies_cm1"]]
    assert [row[2] for row in modes] == [f"{i:.1f}" for i in water["intensities_km_mol"]]
    assert json.loads(Path(water["files"]["json"]).read_text())["frequencies_cm1"] == water["frequencies_cm1"]


def test_names_that_look_like_markup_are_printed_as_they_are(warm_library):
    done = runner.invoke(app, identify_args(warm_library, "--top", "10"))
    assert "c1cc[nH]c1" in done.stdout  # rich would have taken [nH] for a style
