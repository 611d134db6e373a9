"""Similarity metrics against hand-computed values."""

import math
from pathlib import Path

import numpy as np
import pytest

from specml.comparison import (
    compare_spectra,
    cosine,
    pearson,
    spectral_information_similarity,
    wasserstein,
)
from specml.errors import SpectrumFormatError
from specml.experiment import load_absorbance
from specml.plotting import plot_comparison, plot_spectra
from specml.spectra.spectrum import Spectrum

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_pearson_hand_value():
    # deviations (-1,0,1) and (-4/3,-1/3,5/3): r = 3 / (sqrt(2) * sqrt(42)/3) = 9/sqrt(84)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_cosine_hand_value():
    assert cosine([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert cosine([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)


def test_wasserstein_of_shifted_deltas_is_the_shift():
    x = np.arange(1000.0, 1100.0, 1.0)
    a, b = np.zeros_like(x), np.zeros_like(x)
    a[10], b[47] = 1.0, 3.0  # height does not matter, position does
    assert wasserstein(a, b, wavenumber=x) == pytest.approx(37.0)
    sa, sb = Spectrum(x, a), Spectrum(x, b)
    assert wasserstein(sa, sb) == pytest.approx(37.0)


def test_wasserstein_two_halves():
    # half the weight moves 2 cm-1: distance 1 cm-1
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert wasserstein([1, 1, 0, 0], [1, 0, 0, 1], wavenumber=x) == pytest.approx(1.0)


def test_sis_hand_value():
    # p=(1/2,1/2), q=(1/4,3/4): SID = sum (p-q) ln(p/q) = 1/4 ln 2 - 1/4 ln(2/3) = 1/4 ln 3
    sid = 0.25 * math.log(3.0)
    assert spectral_information_similarity([1, 1], [1, 3]) == pytest.approx(1 / (1 + sid), rel=1e-6)


def test_self_similarity():
    x = np.linspace(500, 4000, 300)
    y = np.exp(-(((x - 1700) / 30) ** 2)) + 0.5 * np.exp(-(((x - 2900) / 50) ** 2))
    s = Spectrum(x, y)
    assert pearson(s, s) == pytest.approx(1.0)
    assert wasserstein(s, s) == pytest.approx(0.0, abs=1e-9)
    assert spectral_information_similarity(s, s) == pytest.approx(1.0)
    assert cosine(s, s) == pytest.approx(1.0)


def test_sis_is_finite_with_disjoint_support():
    value = spectral_information_similarity([1, 0, 0], [0, 0, 1])
    assert 0 < value < 0.1


def test_mismatched_grids_raise():
    a = Spectrum(np.arange(10.0), np.arange(10.0))
    b = Spectrum(np.arange(10.0) + 0.5, np.arange(10.0))
    for metric in (pearson, cosine, wasserstein, spectral_information_similarity):
        with pytest.raises(SpectrumFormatError, match="not on the same wavenumber grid"):
            metric(a, b)
    with pytest.raises(SpectrumFormatError, match="equal length"):
        pearson([1, 2, 3], [1, 2])
    with pytest.raises(SpectrumFormatError, match="needs the shared wavenumber axis"):
        wasserstein([1, 2], [2, 1])
    with pytest.raises(SpectrumFormatError, match="all-zero"):
        spectral_information_similarity([0, 0], [1, 1])


def test_compare_nist_self_and_different(tmp_path):
    methanol = load_absorbance(SHARED / "data" / "nist-ir" / "methanol.jdx")
    benzene = load_absorbance(SHARED / "data" / "nist-ir" / "benzene.jdx")
    same = compare_spectra(methanol, methanol, 500, 4000, 2.0)
    assert same.pcc == pytest.approx(1.0) and same.sis == pytest.approx(1.0)
    assert same.wd_cm1 == pytest.approx(0.0, abs=1e-6)
    other = compare_spectra(methanol, benzene, 500, 4000, 2.0)
    assert other.pcc < 0.5 and other.sis < same.sis and other.wd_cm1 > 50
    png = plot_comparison(other, tmp_path / "cmp.png", title="$$ odd $ title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_spectra_with_std_band(tmp_path):
    x = np.linspace(500, 4000, 200)
    y = np.exp(-(((x - 1700) / 30) ** 2))
    s = Spectrum(x, y, std=0.1 * y, metadata={"label": "50% $T"})
    out = plot_spectra([s, Spectrum(x, 0.5 * y)], tmp_path / "sub" / "p.png", title="test")
    assert out == tmp_path / "sub" / "p.png" and out.stat().st_size > 1000
