"""Experimental Raman spectra in: JCAMP-DX Raman files and CSV on a Raman shift axis, and
``specml raman --compare``."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from specml.errors import SpectrumFormatError
from specml.experiment import load_absorbance, load_raman, read_spectrum, to_absorbance
from specml.spectra.spectrum import Spectrum

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TANNIC = (
    SHARED / "data" / "jcamp-suite" / "other" / "tannic_acid.jdx"
)  # Ocean Optics R2000, ##XYDATA=(XY..XY)
METHANOL_IR = SHARED / "data" / "nist-ir" / "methanol.jdx"


def test_jcamp_raman_file_reads_with_its_header_values():
    """The (XY..XY) pairs as stored: NPOINTS, FIRSTX/LASTX, FIRSTY and MAXY of the header, and the
    uneven spacing of a grating spectrometer (2.21 cm-1 at 100 cm-1, 0.86 at 2850)."""
    s = read_spectrum(TANNIC, technique="raman")
    assert s.wavenumber.size == 1949
    assert s.wavenumber[0] == pytest.approx(100.595) and s.wavenumber[-1] == pytest.approx(2854.713)
    assert s.intensity[0] == pytest.approx(42.644)
    assert s.intensity.max() == pytest.approx(300.889)
    assert s.wavenumber[np.argmax(s.intensity)] == pytest.approx(419.227)
    assert np.diff(s.wavenumber)[0] == pytest.approx(2.21, abs=1e-3)
    assert np.diff(s.wavenumber)[-1] == pytest.approx(0.859, abs=1e-3)
    assert s.metadata["technique"] == "raman" and s.metadata["yunits"] == "ARBITRARY UNITS"


def test_load_raman_removes_the_background_and_keeps_units():
    s = load_raman(TANNIC)
    assert s.metadata["intensity_units"] == "ARBITRARY UNITS"
    assert s.metadata["x_quantity"] == "Raman shift / cm-1" and s.metadata["baseline"] == "arpls"
    assert np.all(s.intensity >= 0)
    raw = read_spectrum(TANNIC, technique="raman")
    # the fluorescence/dark background (the file's minimum is 4.7 counts) is gone below the bands
    assert np.median(s.intensity) < 0.5 * np.median(raw.intensity)


def test_raman_and_infrared_files_are_not_mixed_up(tmp_path):
    with pytest.raises(SpectrumFormatError, match=re.escape("not an infrared spectrum (DATA TYPE: RAMAN")):
        read_spectrum(TANNIC)
    with pytest.raises(SpectrumFormatError, match="specml compare --raman read Raman spectra"):
        load_absorbance(TANNIC)
    with pytest.raises(SpectrumFormatError, match=re.escape("not a Raman spectrum (DATA TYPE: INFRARED")):
        load_raman(METHANOL_IR)
    ir_csv = Spectrum(np.arange(500.0, 600.0), np.ones(100), metadata={"technique": "infrared"})
    with pytest.raises(SpectrumFormatError, match="holds infrared data, not raman"):
        load_raman(ir_csv.to_csv(tmp_path / "ir.csv"))
    raman = Spectrum(np.arange(500.0, 600.0), np.ones(100), metadata={"technique": "raman"})
    with pytest.raises(SpectrumFormatError, match="a Raman spectrum has no absorbance"):
        to_absorbance(raman)


def test_csv_raman_spectrum_loads_on_its_shift_axis(tmp_path):
    """A plain two-column CSV (no metadata) given as Raman is Raman: its band stays where it was."""
    shift = np.arange(200.0, 1800.0, 2.0)
    intensity = 5.0 + 100.0 * np.exp(-0.5 * ((shift - 1001.0) / 4.0) ** 2)  # flat background + band
    path = tmp_path / "benzene_band.csv"
    path.write_text("shift,counts\n" + "\n".join(f"{x},{y}" for x, y in zip(shift, intensity, strict=True)))
    s = load_raman(path)
    assert s.metadata["technique"] == "raman"
    assert s.wavenumber[np.argmax(s.intensity)] == pytest.approx(1000.0, abs=2.0)
    assert s.intensity.max() == pytest.approx(100.0, rel=0.05)


def test_cli_raman_compare_scores_against_the_experiment(tmp_path):
    """``specml raman O --compare FILE``: the JSON holds the metrics; a spectrum compared with its
    own CSV output (read back as Raman, its background fit trimming the line wings) scores PCC 1."""
    from typer.testing import CliRunner

    from specml.cli import app

    runner = CliRunner()
    first = runner.invoke(app, ["raman", "O", "--out", str(tmp_path / "a"), "--json"])
    assert first.exit_code == 0, first.output
    (water,) = json.loads(first.stdout)
    own_csv = water["files"]["csv"]
    again = runner.invoke(app, ["raman", "O", "--out", str(tmp_path / "b"), "--compare", own_csv, "--json"])
    assert again.exit_code == 0, again.output
    (water,) = json.loads(again.stdout)
    assert water["vs_experiment"]["pcc"] == pytest.approx(1.0, abs=1e-6)
    assert water["vs_experiment"]["wd_cm1"] < 5.0  # the background fit trims the Lorentzian wings
    tannic = runner.invoke(
        app, ["raman", "O", "--out", str(tmp_path / "c"), "--compare", str(TANNIC), "--json"]
    )
    assert tannic.exit_code == 0, tannic.output
    (water,) = json.loads(tannic.stdout)
    assert -1.0 <= water["vs_experiment"]["pcc"] < 0.9  # water is not tannic acid
    bad = runner.invoke(app, ["raman", "O", "--out", str(tmp_path / "d"), "--compare", str(METHANOL_IR)])
    assert bad.exit_code == 1 and "not a Raman spectrum" in bad.output  # a file error, not usage
