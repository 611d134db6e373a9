"""Multi-fidelity active learning (issue 23): GFN2-xTB pretraining adapted to GFN1-xTB as the
'expensive' reference, on water with tiny settings; and the two ways of carrying a committee
from one reference method to another."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule
from processes import sigkill_when_rows

from specml.dataset.database import LabelDatabase
from specml.dataset.sampling import sample_normal_modes
from specml.errors import ModelError
from specml.models import Committee, get_preset, train_committee
from specml.models.fidelity import delta_committee, difference_labels, refit_atomic_energies
from specml.reference import make_reference
from specml.spectra.harmonic import optimized_harmonic_analysis
from specml.workflow.fidelity_config import MultiFidelitySettings
from specml.workflow.multifidelity import TWIN_PREFIX

TESTS = Path(__file__).resolve().parent
# MACE's model construction warns about TorchScript annotations; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The TorchScript type system")
EXPENSIVE = 'ase:reference_doubles:SlowXTB@{"delay": 0.1, "method": "GFN1-xTB"}'


def test_two_fidelity_run_resumes_after_sigkill_and_gives_a_spectrum(tmp_path):
    run_dir = tmp_path / "water_mf"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    # Tiny settings ('ci'), 0.5 ps production: enough for the 200 fs correlation window.
    command = [sys.executable, "-m", "specml", "ir", "O", "--preset", "ci", "--run-dir", str(run_dir)]
    command += ["--reference", EXPENSIVE, "--pretrain", "xtb", "--adaptation", "delta"]
    command += ["--production-ps", "0.5", "--json"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    expensive_db = run_dir / "labels.db"
    n_before = sigkill_when_rows(proc, expensive_db, 3)  # while the first expensive labels arrive
    assert (run_dir / "pretrain" / "models" / "final" / "committee.json").exists()  # stage 1 was done
    settings = MultiFidelitySettings()
    n_modes = 3  # water
    n_initial = 1 + n_modes * settings.n_per_mode + settings.n_uncertain + settings.n_coverage
    # Killed mid-run: usually while the first expensive labels arrive, later on a starved machine.
    assert proc.returncode == -signal.SIGKILL and n_before >= 3

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-2000:]
    summary = json.loads(finished.stdout)["summary"]

    # Expensive labels: the first set, one iteration of active learning, the test set; once each.
    n_active = 2 * 3  # 'ci': two exploration temperatures, three frames each
    n_test = 2 * 2
    expensive = LabelDatabase(expensive_db)
    assert len(expensive.keys()) == expensive.count() == n_initial + n_active + n_test
    assert summary["reference_calls"] == n_initial + n_active
    rows = expensive.labelled_atoms(exclude_kinds=())
    assert {a.info["reference"] for a in rows} == {make_reference(EXPENSIVE).describe()}
    assert "method=GFN1-xTB" in rows[0].info["reference"]
    assert {a.info["kind"] for a in rows} == {
        "minimum",
        "normal_mode",
        "uncertain",
        "coverage",
        "active",
        "test",
    }

    # Cheap labels keep their own fidelity; every expensive training label has its cheap twin.
    cheap = LabelDatabase(run_dir / "pretrain" / "labels.db")
    cheap_rows = cheap.labelled_atoms()
    assert {a.info["reference"] for a in cheap_rows} == {make_reference("xtb").describe()}
    twins = {
        a.info["key"][len(TWIN_PREFIX) :]: a for a in cheap_rows if a.info["key"].startswith(TWIN_PREFIX)
    }
    training = [a for a in rows if a.info["kind"] != "test"]
    assert set(twins) == {a.info["key"] for a in training}
    for hi in training:
        lo = twins[hi.info["key"]]
        np.testing.assert_allclose(lo.positions, hi.positions)
        assert not np.allclose(lo.arrays["forces"], hi.arrays["forces"], atol=1e-3)  # two methods
    assert summary["pretrain"]["reference_calls"] == len(cheap.keys())
    assert summary["pretrain"]["reference_calls_delta_twins"] == len(training)
    assert summary["adaptation"]["chosen"] == "delta"

    spectrum = np.loadtxt(run_dir / "spectrum_O_300K.csv", delimiter=",", skiprows=2)
    x, y = spectrum[:, 0], spectrum[:, 1]
    assert np.all(np.isfinite(y)) and y.max() > 0
    # Water absorbs in its bend and stretch regions; nothing of it lies between them.
    assert y[(x > 1300) & (x < 4000)].max() > 3 * y[(x > 2200) & (x < 2600)].max()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--adaptation", "delta"], "--adaptation needs --pretrain"),
        (["--pretrain", "xtb", "--reference", "gfn2-xtb"], "same method"),
        (["--pretrain", "xtb", "--reference", "gfn1-xtb", "--adaptation", "mix"], "adaptation 'mix'"),
    ],
)
def test_multifidelity_options_fail_with_one_line(tmp_path, args, fragment):
    proc = subprocess.run(
        [sys.executable, "-m", "specml", "ir", "O", "--run-dir", str(tmp_path / "run"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


def _labelled(structures, spec):
    reference = make_reference(spec)
    out = []
    for atoms in structures:
        label = reference.label(atoms)
        atoms = atoms.copy()
        atoms.info.update(energy=label.energy, dipole=label.dipole)
        atoms.arrays["forces"] = label.forces
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def water_two_fidelities():
    harmonic = optimized_harmonic_analysis(molecule("H2O"), "xtb")
    structures = [harmonic.atoms.copy()] + [a for a, _ in sample_normal_modes(harmonic, 4, 500.0)]
    for k, atoms in enumerate(structures):
        atoms.info["key"] = f"w{k:02d}"
    cheap, expensive = _labelled(structures, "xtb"), _labelled(structures, "gfn1-xtb")
    preset = get_preset("tiny", epochs=3)
    base = train_committee(cheap, preset, n_members=2, seeds=(0, 1))
    return cheap, expensive, base, preset


def test_refitted_e0s_carry_the_energy_offset_and_leave_forces_alone(water_two_fidelities):
    cheap, expensive, base, _ = water_two_fidelities
    labels = np.array([a.info["energy"] for a in expensive])
    before = base.predict(expensive)
    shifted = refit_atomic_energies(base, expensive)
    after = shifted.predict(expensive)
    # GFN1 and GFN2 total energies of water differ by eV; after the refit no mean offset remains.
    assert np.abs(before["energy_members"] - labels).mean() > 0.5
    np.testing.assert_allclose((after["energy_members"] - labels).mean(axis=1), 0.0, atol=5e-3)
    # A constant per element shift: energy differences and forces are those of the base model.
    np.testing.assert_allclose(
        np.diff(after["energy_members"], axis=1), np.diff(before["energy_members"], axis=1), atol=2e-3
    )
    for f_after, f_before in zip(after["forces_members"], before["forces_members"], strict=True):
        np.testing.assert_allclose(f_after, f_before, atol=1e-5)


def test_delta_committee_is_base_plus_correction_and_survives_save(water_two_fidelities, tmp_path):
    cheap, expensive, base, preset = water_two_fidelities
    differences = difference_labels(expensive, cheap)
    assert differences[0].info["energy"] == pytest.approx(
        expensive[0].info["energy"] - cheap[0].info["energy"]
    )
    correction = train_committee(differences, preset, n_members=2, seeds=(5, 6))
    combined = delta_committee(base, correction)
    parts = [base.predict(expensive), correction.predict(expensive)]
    together = combined.predict(expensive)
    np.testing.assert_allclose(
        together["energy_members"], parts[0]["energy_members"] + parts[1]["energy_members"], atol=1e-3
    )
    for name in ("forces", "forces_members"):
        for t, a, b in zip(together[name], parts[0][name], parts[1][name], strict=True):
            np.testing.assert_allclose(t, a + b, atol=1e-4)
    np.testing.assert_allclose(together["dipole"], parts[0]["dipole"] + parts[1]["dipole"], atol=1e-5)
    combined.save(tmp_path / "delta")
    reloaded = Committee.load(tmp_path / "delta").predict(expensive)
    np.testing.assert_allclose(reloaded["energy"], together["energy"], atol=1e-5)
    with pytest.raises(ModelError, match="not the same structure"):
        difference_labels(expensive[:2], cheap[1:3])
