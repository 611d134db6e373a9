"""The CLI: a real harmonic run, and one-line errors for bad input."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "specml", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def test_harmonic_methanol_against_nist(tmp_path, shared_dir):
    proc = run_cli(
        "harmonic",
        "CO",
        "--out",
        str(tmp_path),
        "--fwhm",
        "30",
        "--compare",
        str(shared_dir / "data/nist-ir/methanol.jdx"),
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "CO_harmonic_xtb.json").read_text())
    assert (tmp_path / "CO_harmonic_xtb.png").stat().st_size > 10000
    assert (tmp_path / "CO_harmonic_xtb.csv").exists()
    # Harmonic xTB vs gas-phase experiment: clearly correlated, far from perfect ...
    pcc = summary["vs_experiment"]["pcc"]
    assert 0.5 < pcc < 0.95
    # ... and exactly the figure the README reports for this preprocessing.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    reported = float(re.search(r"PCC = ([0-9.]+)\*\*", readme).group(1))
    assert pcc == pytest.approx(reported, abs=0.0015)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["harmonic", "C1CC"], ["invalid SMILES", "C1CC"]),
        (["harmonic", "missing_structure.xyz"], ["missing_structure.xyz"]),
        (["harmonic", "[U]"], ["U", "not supported"]),
        (["compare", "nope.jdx", "nope2.jdx"], ["nope.jdx"]),
    ],
)
def test_bad_inputs_fail_with_one_line(tmp_path, args, fragments):
    assert_one_line_error(
        run_cli(*args, "--out", str(tmp_path)) if args[0] == "harmonic" else run_cli(*args, cwd=tmp_path),
        *fragments,
    )


def test_malformed_jcamp_fails_with_one_line(tmp_path):
    bad = tmp_path / "broken.jdx"
    bad.write_text(
        "##TITLE=broken\n##JCAMP-DX=4.24\n##DATA TYPE=INFRARED SPECTRUM\n##XYDATA=(X++(Y..Y))\n"
        "4000 1 2 garbage\n##END=\n"
    )
    assert_one_line_error(
        run_cli("harmonic", "CO", "--out", str(tmp_path), "--compare", str(bad)), "broken.jdx"
    )


def test_thread_count_must_be_positive():
    result = run_cli("--threads", "0", "harmonic", "CO")
    assert result.returncode == 2
    assert "--threads" in result.stderr and "greater than or equal to 1" in result.stderr


def test_harmonic_conformer_average_of_ethanol(tmp_path):
    from ase.build import molecule
    from ase.io import write

    proc = run_cli("harmonic", "CCO", "--conformers", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "CCO_harmonic_xtb_conformers.json").read_text())
    conformers = summary["conformers"]
    assert len(conformers) == 2  # trans, and gauche counted twice for its mirror image
    assert sorted(c["degeneracy"] for c in conformers) == [1, 2]
    (checkpoint,) = tmp_path.glob("CCO_harmonic_xtb_conformers_checkpoint_*")  # resumable per conformer
    assert len(list(checkpoint.glob("analysed_*.json"))) == 2
    assert sum(c["population"] for c in conformers) == pytest.approx(1.0)
    assert min(c["relative_energy_meV"] for c in conformers) == 0.0
    assert all(len(c["frequencies_cm1"]) == 21 for c in conformers)
    write(tmp_path / "ethanol.xyz", molecule("CH3CH2OH"))
    assert_one_line_error(
        run_cli("harmonic", str(tmp_path / "ethanol.xyz"), "--conformers", "--out", str(tmp_path)),
        "--conformers needs SMILES",
    )
    assert_one_line_error(
        run_cli("harmonic", "CCO", "--conformers", "-T", "-5", "--out", str(tmp_path)),
        "temperature must be positive",
    )


def test_harmonic_gas_contour_matches_the_gas_phase_measurement_better(tmp_path, shared_dir):
    nist = str(shared_dir / "data/nist-ir/methanol.jdx")
    proc = run_cli("harmonic", "CO", "--gas-contour", "--out", str(tmp_path), "--compare", nist)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "CO_harmonic_xtb.json").read_text())
    assert summary["rotational_contour_k"] == 298.15 and summary["line_shape"] == "gaussian"
    # P/Q/R contours at 10 cm-1 resolution: PCC 0.86, against 0.72 for 30 cm-1 Lorentzians (README).
    assert summary["vs_experiment"]["pcc"] > 0.8
    assert_one_line_error(
        run_cli("harmonic", "CO", "--gas-contour", "--shape", "lorentzian", "--out", str(tmp_path)),
        "--gas-contour",
        "Gaussian",
    )
    assert_one_line_error(
        run_cli("harmonic", "CO", "--gas-contour", "-T", "0", "--out", str(tmp_path)), "must be positive"
    )
    assert_one_line_error(
        run_cli("harmonic", "CO", "--gas-contour", "--fwhm", "0.5", "--out", str(tmp_path)), "at least 1 cm-1"
    )


def test_reference_md_resumes_after_a_failed_reference_call(tmp_path):
    tests_dir = Path(__file__).resolve().parent
    calls = tmp_path / "calls.log"
    command = [
        sys.executable,
        "-m",
        "specml",
        "md",
        "O",
        "--reference",
        'ase:reference_doubles:XTBFailingOnRequest@{"fail_at": 150}',
        "--time",
        "0.1",
        "--thermalization",
        "0.02",
        "--max-correlation",
        "20",
        "--out",
        str(tmp_path / "out"),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tests_dir), os.environ.get("PYTHONPATH", "")]),
        "SPECML_TEST_CALL_LOG": str(calls),
    }
    failed = subprocess.run(
        command, env={**env, "SPECML_TEST_FAIL": "1"}, capture_output=True, text=True, timeout=600
    )
    assert_one_line_error(failed, "failed: SCF not converged", "rerun to continue")
    snapshot = tmp_path / "out" / "O_md_300K_checkpoint.pt"
    assert snapshot.exists()
    first_calls = len(calls.read_text().splitlines())
    calls.unlink()
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not snapshot.exists()
    trajectory = np.load(tmp_path / "out" / "O_md_300K_trajectory.npz")
    assert trajectory["dipoles_eA"].shape == (200, 3)  # 0.1 ps at 0.5 fs, every step recorded
    assert (tmp_path / "out" / "O_md_300K.csv").exists()
    # Both runs optimise the start first (the same calls). The MD's 150th call failed: the first step
    # costs 2 calls and every later one 1, so steps 1-148 were complete and saved. The rerun costs
    # the forces at the saved state plus steps 149-240, not the 241 calls of the whole MD.
    optimisation_calls = first_calls - 150
    assert len(calls.read_text().splitlines()) == optimisation_calls + 1 + (240 - 148)
