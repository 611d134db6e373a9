"""Reading experimental spectra: NIST IR files, the JCAMP conformance suite, bad input."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from spectrum_files import nist_like_jcamp

from specml.errors import InputError, SpecmlError, SpectrumFormatError
from specml.experiment import (
    load_absorbance,
    match_resolution,
    preprocess_pair,
    read_jcamp,
    read_spectrum,
    to_absorbance,
    to_common_grid,
)
from specml.spectra.spectrum import Spectrum

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NIST_FILES = sorted((SHARED / "data" / "nist-ir").glob("*.jdx"))
SUITE_DIR = SHARED / "data" / "jcamp-suite"
SUITE_FILES = sorted(p for p in SUITE_DIR.rglob("*") if p.is_file())


def _id(path: Path) -> str:
    return path.name


def test_shared_data_present(shared_dir):
    assert len(NIST_FILES) == 25
    assert len(SUITE_FILES) == 76


@pytest.mark.parametrize("path", NIST_FILES, ids=_id)
def test_nist_file_loads_as_absorbance(path):
    s = load_absorbance(path)
    assert s.metadata["source"] == str(path)
    assert s.wavenumber.size > 100
    assert 100 <= s.wavenumber[0] < s.wavenumber[-1] <= 8000
    assert np.all(np.isfinite(s.intensity))
    assert np.all(s.intensity >= 0)
    assert s.intensity.max() > 0
    assert s.metadata["resolution_cm1"] > 0


# Band maxima (cm-1) of strong, well-known gas-phase bands, with tolerance.
KNOWN_BANDS = [
    ("methanol.jdx", (900, 1200), 1033, 15),  # C-O stretch
    ("acetone.jdx", (1600, 1900), 1737, 15),  # C=O stretch
    ("benzene.jdx", (600, 800), 673, 10),  # C-H out-of-plane bend Q branch
    ("methane.jdx", (1200, 1400), 1306, 10),  # nu4 Q branch
    ("ethylene.jdx", (850, 1050), 949, 10),  # CH2 wag nu7
    ("chloroform.jdx", (700, 850), 773, 10),  # C-Cl stretch
    ("carbon dioxide.jdx", (2200, 2450), 2349, 25),  # antisymmetric stretch (P/R envelope)
]


@pytest.mark.parametrize("name,window,centre,tol", KNOWN_BANDS, ids=[b[0] for b in KNOWN_BANDS])
def test_known_band_position(name, window, centre, tol):
    s = load_absorbance(SHARED / "data" / "nist-ir" / name).crop(*window)
    assert abs(s.wavenumber[np.argmax(s.intensity)] - centre) <= tol


def test_methanol_co_stretch_is_strongest_band():
    s = load_absorbance(SHARED / "data" / "nist-ir" / "methanol.jdx")
    assert abs(s.wavenumber[np.argmax(s.intensity)] - 1033) <= 15


def test_nist_metadata_and_units():
    quant = read_jcamp(SHARED / "data" / "nist-ir" / "acetone.jdx")
    assert quant.metadata["yunits"] == "(micromol/mol)-1m-1 (base 10)"
    assert quant.metadata["resolution_cm1"] == pytest.approx(0.482)
    assert quant.spacing_cm1 == pytest.approx(0.2411, abs=1e-3)
    assert to_absorbance(quant).metadata["intensity_units"] == "(micromol/mol)-1m-1 (base 10)"
    water = read_jcamp(SHARED / "data" / "nist-ir" / "water.jdx")
    assert water.metadata["label"] == "Water"
    assert water.metadata["molform"] == "H 2 O"
    assert water.metadata["data_type"] == "INFRARED SPECTRUM"
    # ethanol2's TITLE is only a "$$" comment: fall back to the file name
    assert read_jcamp(SHARED / "data" / "nist-ir" / "ethanol2.jdx").label == "ethanol2"


def test_asdf_file_decodes_to_npoints():
    s = read_jcamp(SHARED / "data" / "nist-ir" / "isopropanol_ASDF.jdx")
    assert s.wavenumber.size == 9541
    assert s.wavenumber[0] == pytest.approx(400.1963)
    assert s.wavenumber[-1] == pytest.approx(5000.042)
    # first ordinate "A058" = 1058 * YFACTOR
    assert s.intensity[0] == pytest.approx(1058 * 2.840445172462318e-05)


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: str(p.relative_to(SUITE_DIR)))
def test_suite_file_loads_or_raises_specml_error(path):
    try:
        s = read_spectrum(path)
    except SpecmlError as exc:
        assert str(exc).startswith(str(path)) or str(path) in str(exc)
        return
    assert s.wavenumber.size == s.intensity.size > 100
    assert np.all(np.isfinite(s.intensity))
    assert s.wavenumber[0] > 0


# (file, NPOINTS, FIRSTX, LASTX) read from the files' headers; FIRSTX > LASTX means
# the file runs high to low, the Spectrum is always ascending.
KNOWN_GOOD = [
    ("Robert_J_Lancashire_test_data/dupdec1.jdx", 3951, 4400.0, 450.0),
    ("Robert_J_Lancashire_test_data/fixinc1.jdx", 3736, 399.263973, 4001.31938),
    ("Robert_J_Lancashire_test_data/pacdec1.jdx", 3301, 4000.0, 700.0),
    ("jcamp-dx.org_official_test_data/BRUKER1.JCM", 3735, 4000.655017, 400.1619262),
    ("other/heptane-2,3-dimethylpentane.jdx", 2687, 200.705, 3988.26),
    ("test/scientific_notation_example.jdx", 1867, 399.361384615384, 3999.40169230769),
]


@pytest.mark.parametrize("rel,npoints,firstx,lastx", KNOWN_GOOD, ids=[k[0] for k in KNOWN_GOOD])
def test_known_good_suite_files(rel, npoints, firstx, lastx):
    s = read_spectrum(SUITE_DIR / rel)
    assert s.wavenumber.size == npoints
    assert s.wavenumber[0] == pytest.approx(min(firstx, lastx))
    assert s.wavenumber[-1] == pytest.approx(max(firstx, lastx))


@pytest.mark.parametrize(
    "encoding,body",
    [
        ("AFFN", "1000 100 200 300 300\n1008 300 250 250 260\n"),
        ("SQZ", "1000A00B00C00C00\n1008C00B50B50B60\n"),
        # DIF: each line repeats the previous line's last ordinate as its Y-check
        ("DIF", "1000A00J00J00%%\n1008C00n0%J0\n"),
        ("DIFDUP", "1000A00J00J00%T\n1008C00n0%J0\n"),
        ("PAC", "1000+100+200+300+300\n1008+300+250+250+260\n"),
    ],
)
def test_compressed_encodings_decode_to_the_same_values(tmp_path, encoding, body):
    header = HEADER.replace("YFACTOR=0.001", "YFACTOR=0.01").replace("FIRSTY=0.1", "FIRSTY=1.0")
    s = read_spectrum(_write(tmp_path, f"{encoding}.jdx", header + body + "##END=\n"))
    np.testing.assert_allclose(s.wavenumber, np.arange(1000.0, 1015.0, 2.0))
    np.testing.assert_allclose(s.intensity, [1.0, 2.0, 3.0, 3.0, 3.0, 2.5, 2.5, 2.6])


def test_compound_file_takes_first_infrared_block():
    s = read_spectrum(SUITE_DIR / "Robert_J_Lancashire_test_data/compound.jdx")
    assert s.wavenumber.size == 1976
    assert s.metadata["data_type"] == "INFRARED SPECTRUM"


@pytest.mark.parametrize(
    "rel,message",
    [
        ("other/ethanol_nmr.jdx", "compound file has no infrared spectrum block"),
        ("other/ethanol_ms.jdx", "not an infrared spectrum (DATA TYPE: MASS SPECTRUM)"),
        ("other/tannic_acid.jdx", "not an infrared spectrum (DATA TYPE: RAMAN SPECTRUM)"),
        ("other/toluene.jdx", "not an infrared spectrum (DATA TYPE: UV/VIS SPECTRUM)"),
        ("Robert_J_Lancashire_test_data/fixdec2.jdx", "not an infrared spectrum (DATA TYPE: NMR SPECTRUM)"),
        ("jcamp-dx.org_official_test_data/BRUKER2.JCM", "Y-check"),
        ("test/1HQuinine.jdx", "x units 'HZ' cannot be converted to cm-1"),
        ("jcamp-dx.org_official_test_data/TESTNTUP.DX", "NTUPLES"),
    ],
)
def test_unusable_suite_files_raise_specific_errors(rel, message):
    with pytest.raises(SpectrumFormatError, match=re.escape(message)):
        read_spectrum(SUITE_DIR / rel)


# -- malformed and missing input ----------------------------------------------

HEADER = """##TITLE=test
##JCAMP-DX=4.24
##DATA TYPE=INFRARED SPECTRUM
##XUNITS=1/CM
##YUNITS=ABSORBANCE
##XFACTOR=1.0
##YFACTOR=0.001
##FIRSTX=1000
##LASTX=1014
##NPOINTS=8
##FIRSTY=0.1
##XYDATA=(X++(Y..Y))
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_handmade_jcamp(tmp_path):
    path = _write(tmp_path, "ok.jdx", HEADER + "1000 100 200 300 400\n1008 500 600 700 800\n##END=\n")
    s = read_spectrum(path)
    np.testing.assert_allclose(s.wavenumber, [1000, 1002, 1004, 1006, 1008, 1010, 1012, 1014])
    np.testing.assert_allclose(s.intensity, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])


def test_truncated_data_raises(tmp_path):
    path = _write(tmp_path, "short.jdx", HEADER + "1000 100 200 300 400\n")
    with pytest.raises(SpectrumFormatError, match=r"decoded 4 points but ##NPOINTS=8"):
        read_spectrum(path)


def test_garbage_data_raises(tmp_path):
    path = _write(tmp_path, "garbage.jdx", HEADER + "1000 10#0 2!00 ~~\n##END=\n")
    with pytest.raises(SpectrumFormatError, match="malformed JCAMP-DX"):
        read_spectrum(path)


def test_header_without_equals_raises(tmp_path):
    path = _write(tmp_path, "noeq.jdx", "##TITLE test\n##XYDATA\n1 2 3\n")
    with pytest.raises(SpectrumFormatError, match=str(path.name)):
        read_spectrum(path)


def test_dif_y_check_failure_raises(tmp_path):
    # second line's Y-check (first ordinate) must repeat the last value of line one (400)
    body = "1000A00J00J00J00\n1006D99J00J00J00\n1012G00J00\n##END=\n"
    path = _write(tmp_path, "ycheck.jdx", HEADER.replace("YFACTOR=0.001", "YFACTOR=0.001") + body)
    with pytest.raises(SpectrumFormatError, match="Y-check"):
        read_spectrum(path)


def test_wrong_firstx_raises(tmp_path):
    text = HEADER + "1000 100 200 300 400\n1008 500 600 700 800\n##END=\n"
    text = text.replace("##FIRSTY=0.1", "##FIRSTY=0.5")
    with pytest.raises(SpectrumFormatError, match="FIRSTY"):
        read_spectrum(_write(tmp_path, "firsty.jdx", text))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_spectrum(tmp_path / "absent.jdx")
    with pytest.raises(InputError, match="empty"):
        read_spectrum(_write(tmp_path, "empty.jdx", ""))


def test_unknown_suffix_dispatch(tmp_path):
    jcamp_text = HEADER + "1000 100 200 300 400\n1008 500 600 700 800\n##END=\n"
    assert read_spectrum(_write(tmp_path, "spec.data", jcamp_text)).wavenumber.size == 8
    with pytest.raises(SpectrumFormatError, match="unknown spectrum format"):
        read_spectrum(_write(tmp_path, "spec.data2", "1,2\n3,4\n"))


def test_csv_dispatch(tmp_path):
    path = Spectrum(np.array([1000.0, 1001.0, 1002.0]), np.array([0.0, 1.0, 0.5])).to_csv(tmp_path / "s.csv")
    np.testing.assert_allclose(read_spectrum(path).intensity, [0.0, 1.0, 0.5])


# -- units and preprocessing -----------------------------------------------------


def _spectrum(y, yunits, x=None):
    x = np.arange(1000.0, 1000.0 + len(y)) if x is None else x
    return Spectrum(x, np.asarray(y, dtype=float), metadata={"yunits": yunits})


def test_transmittance_fraction_to_absorbance():
    a = to_absorbance(_spectrum([1.0, 0.1, 0.01], "TRANSMITTANCE"))
    np.testing.assert_allclose(a.intensity, [0.0, 1.0, 2.0], atol=1e-12)
    assert a.metadata["intensity_units"] == "absorbance"
    assert a.metadata["transmittance_percent"] is False


def test_transmittance_percent_is_detected():
    a = to_absorbance(_spectrum([100.0, 10.0, 1.0], "TRANSMITTANCE"))
    np.testing.assert_allclose(a.intensity, [0.0, 1.0, 2.0], atol=1e-12)
    assert a.metadata["transmittance_percent"] is True


def test_zero_transmittance_is_floored():
    a = to_absorbance(_spectrum([0.5, 0.0, -0.01], "TRANSMITTANCE"))
    np.testing.assert_allclose(a.intensity[1:], [4.0, 4.0])


def test_saturated_bands_are_recorded_and_named(shared_dir):
    from specml.experiment.yunits import saturation_caution

    x = np.arange(900.0, 1100.0, 1.0)
    # A saturated band (flat at 0.2 % transmittance, below 1 % over 1000 +- 6 cm-1) and a weaker one at 950.
    band = np.clip(1.0 - 1.5 * np.exp(-(((x - 1000.0) / 10.0) ** 2)), 0.002, None)
    t = band - 0.5 * np.exp(-(((x - 950.0) / 6.0) ** 2))
    a = to_absorbance(Spectrum(x, t, metadata={"yunits": "TRANSMITTANCE"}))
    assert a.metadata["saturated_cm1"] == [[994.0, 1006.0]]
    assert "994-1006 cm-1" in saturation_caution(a, 500, 4000)
    assert saturation_caution(a, 1100, 4000) is None  # outside the compared window
    # NIST: ethylene's CH2 wag reaches zero transmittance; the ethanol file never drops below 14 %.
    nist = shared_dir / "data" / "nist-ir"
    ethylene = load_absorbance(nist / "ethylene.jdx")
    assert ethylene.metadata["saturated_cm1"] and 940 < ethylene.metadata["saturated_cm1"][0][0] < 955
    assert load_absorbance(nist / "ethanol.jdx").metadata["saturated_cm1"] == []


def test_a_loaded_spectrum_saved_as_csv_loads_back_unchanged(shared_dir, tmp_path):
    """Transmittance -> absorbance and the baseline happen once, not again on the saved copy."""
    first = load_absorbance(shared_dir / "data" / "nist-ir" / "ethylene.jdx")
    again = load_absorbance(first.to_csv(tmp_path / "ethylene.csv"))
    np.testing.assert_allclose(again.wavenumber, first.wavenumber)
    np.testing.assert_allclose(again.intensity, first.intensity, rtol=1e-6, atol=1e-9)
    assert again.metadata["saturated_cm1"] == first.metadata["saturated_cm1"]


def test_absorbance_unchanged_and_unknown_units_rejected():
    s = _spectrum([0.1, 0.2, 0.3], "ABSORBANCE")
    np.testing.assert_array_equal(to_absorbance(s).intensity, s.intensity)
    with pytest.raises(SpectrumFormatError, match="unknown y units 'COUNTS'"):
        to_absorbance(_spectrum([1, 2, 3], "COUNTS"))


def _gaussian_band(x, centre, fwhm, height=1.0):
    sigma = fwhm / 2.3548200450309493
    return height * np.exp(-0.5 * ((x - centre) / sigma) ** 2)


def test_baseline_correction_removes_slope_keeps_band(tmp_path):
    x = np.arange(500.0, 4000.0, 2.0)
    y = 0.2 + 1e-4 * (x - 500.0) + _gaussian_band(x, 1700.0, 20.0)
    s = Spectrum(x, y, metadata={"yunits": "ABSORBANCE"})
    from specml.experiment import correct_baseline

    c = correct_baseline(to_absorbance(s))
    assert np.all(c.intensity >= 0)
    assert c.intensity[np.argmin(abs(x - 1700))] == pytest.approx(1.0, abs=0.05)
    assert np.max(c.crop(2500, 3900).intensity) < 0.02


def test_match_resolution_broadens_only_the_sharper():
    x = np.arange(1000.0, 2000.0, 0.25)
    sharp = Spectrum(x, _gaussian_band(x, 1500, 1.0), metadata={"resolution_cm1": 1.0})
    broad = Spectrum(x, _gaussian_band(x, 1500, 8.0), metadata={"resolution_cm1": 8.0})
    a, b = match_resolution(sharp, broad)
    assert b is broad
    assert a.metadata["resolution_cm1"] == 8.0
    # Gaussian widths add in quadrature: the broadened band is 8 cm-1 FWHM
    half = a.intensity >= a.intensity.max() / 2
    assert x[half][-1] - x[half][0] == pytest.approx(8.0, abs=0.5)
    np.testing.assert_allclose(a.intensity, b.intensity / b.intensity.max() * a.intensity.max(), atol=0.02)


def test_common_grid_overlap_and_no_aliasing():
    x_fine = np.arange(600.0, 3000.0, 0.25)
    # rotational-like comb: lines every 1 cm-1, 0.3 cm-1 wide, on a broad envelope
    comb = 0.5 * (1 + np.cos(2 * np.pi * x_fine / 1.0)) ** 8 * _gaussian_band(x_fine, 1500, 200)
    fine = Spectrum(x_fine, comb, metadata={"resolution_cm1": 0.25})
    coarse_x = np.arange(400.0, 2500.0, 4.0)
    coarse = Spectrum(coarse_x, _gaussian_band(coarse_x, 1500, 200), metadata={"resolution_cm1": 4.0})
    a, b = to_common_grid([fine, coarse], lo=500, hi=4000, step=4.0)
    assert a.wavenumber[0] == 600.0 and a.wavenumber[-1] == 2496.0
    np.testing.assert_array_equal(a.wavenumber, b.wavenumber)
    # without smoothing, sampling every 4 cm-1 would hit comb peaks or troughs only;
    # smoothed, the envelope survives and varies smoothly
    assert np.max(np.abs(np.diff(a.intensity, 2))) < 0.01 * a.intensity.max()
    assert a.metadata["resolution_cm1"] >= 8.0


def test_no_overlap_raises():
    a = _spectrum(np.ones(10), "ABSORBANCE", x=np.arange(500.0, 510.0))
    b = _spectrum(np.ones(10), "ABSORBANCE", x=np.arange(600.0, 610.0))
    with pytest.raises(SpectrumFormatError, match="do not overlap"):
        to_common_grid([a, b])


def test_preprocess_pair_normalises_on_shared_grid():
    exp = load_absorbance(SHARED / "data" / "nist-ir" / "acetone.jdx")
    ref = load_absorbance(SHARED / "data" / "nist-ir" / "methanol.jdx")
    a, b = preprocess_pair(exp, ref, lo=500, hi=4000, step=2.0)
    np.testing.assert_array_equal(a.wavenumber, b.wavenumber)
    assert a.wavenumber[0] >= 575 and a.wavenumber[-1] <= 3806
    assert np.all(np.diff(a.wavenumber) == pytest.approx(2.0))
    assert a.intensity.max() == pytest.approx(1.0) and b.intensity.max() == pytest.approx(1.0)


def test_sqz_value_followed_by_dup_is_rejected_not_misdecoded(tmp_path):
    body = "1000A00B00C00T\n1008C00B50T B60\n##END=\n"
    with pytest.raises(SpectrumFormatError, match="DUP repeat after an SQZ value"):
        read_spectrum(_write(tmp_path, "sqzdup.jdx", HEADER + body))


def test_micrometre_axis_converted_to_wavenumber(tmp_path):
    text = (
        HEADER.replace("XUNITS=1/CM", "XUNITS=MICROMETERS")
        .replace("FIRSTX=1000", "FIRSTX=2.5")
        .replace("LASTX=1014", "LASTX=10.0")
        .replace("NPOINTS=8", "NPOINTS=4")
        + "##XYPOINTS=(XY..XY)\n"
    ).replace("##XYDATA=(X++(Y..Y))\n", "")
    text += "2.5, 100\n5.0, 200\n8.0, 300\n10.0, 400\n##END=\n"
    s = read_spectrum(_write(tmp_path, "um.jdx", text))
    np.testing.assert_allclose(s.wavenumber, [1000.0, 1250.0, 2000.0, 4000.0])
    np.testing.assert_allclose(s.intensity, [0.4, 0.3, 0.2, 0.1])


def test_deltax_a_few_percent_off_loads_with_a_caution(tmp_path):
    """As in real NIST files: ##DELTAX 4 % off the spacing that FIRSTX, LASTX and NPOINTS give."""
    spectrum = load_absorbance(_write(tmp_path, "nist_like.jdx", nist_like_jcamp(1.04)))
    (caution,) = spectrum.metadata["cautions"]
    assert "nist_like.jdx" in caution and "##DELTAX=2.08" in caution and "4.0%" in caution
    assert spectrum.wavenumber[0] == pytest.approx(450.0) and spectrum.wavenumber[-1] == pytest.approx(3970.0)
    assert abs(spectrum.wavenumber[np.argmax(spectrum.intensity)] - 1030) <= 2  # the axis is right
    assert "cautions" not in read_spectrum(_write(tmp_path, "exact.jdx", nist_like_jcamp(1.0))).metadata


def test_deltax_far_off_and_undecodable_data_are_still_refused(tmp_path):
    with pytest.raises(SpectrumFormatError, match=r"##DELTAX=2\.4 by 20%"):
        read_spectrum(_write(tmp_path, "far.jdx", nist_like_jcamp(1.2)))
    broken = nist_like_jcamp(1.04).replace("\n450.000 ", "\n450.000 x!? ", 1)
    with pytest.raises(SpectrumFormatError, match="broken.jdx"):
        read_spectrum(_write(tmp_path, "broken.jdx", broken))


def test_cli_shows_the_caution_of_a_loaded_file(tmp_path):
    from typer.testing import CliRunner

    from specml.cli import app

    path = _write(tmp_path, "nist_like.jdx", nist_like_jcamp(1.04))
    result = CliRunner().invoke(app, ["compare", str(path), str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("caution: nist_like.jdx: point spacing")
    assert len(json.loads(result.stdout)["cautions"]) == 2
