"""Measured XDI spectra: columns, μ from the counts, calibration against the foil, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from xanes_data import XAS_DATA, needs_xas_data

from specml.errors import SpectrumFormatError
from specml.xanes.analysis import edge_position
from specml.xanes.xdi import CU_K_EDGE_EV, calibration_shift, normalized_xanes, read_xdi

MEASURED = XAS_DATA / "measured_cu"
FILES = sorted(MEASURED.glob("*.xdi")) if MEASURED.is_dir() else []


@needs_xas_data
def test_cuo_columns_and_mu_from_the_counts():
    xdi = read_xdi(MEASURED / "CuO_tenorite_13K_01.xdi")
    assert set(xdi.columns) == {"energy", "i0", "itrans", "irefer"}
    assert xdi.units["energy"] == "eV"
    assert xdi.energy[0] == pytest.approx(8760.019) and xdi.energy.size == 398
    # first data row: 8760.0190 46739.301000 214243.319029 15327.389233
    assert xdi.mu()[0] == pytest.approx(np.log(46739.301 / 214243.319029))
    assert xdi.reference_mu()[0] == pytest.approx(np.log(214243.319029 / 15327.389233))
    assert xdi.fields["element.symbol"] == "Cu" and xdi.fields["element.edge"] == "K"


@needs_xas_data
def test_calibration_puts_the_foil_edge_at_the_tabulated_energy():
    xdi = read_xdi(MEASURED / "CuO_tenorite_13K_01.xdi")
    shift = calibration_shift(xdi)
    assert abs(shift) < 3.0  # a nominal d-spacing is a few eV off at most
    assert edge_position(xdi.energy + shift, xdi.reference_mu()) == pytest.approx(CU_K_EDGE_EV, abs=0.06)


@needs_xas_data
def test_copper_ii_edges_lie_above_the_metal():
    """Chemical shift: Cu(II) in CuO and azurite absorbs at higher energy than Cu(0)."""
    metal = normalized_xanes(MEASURED / "cu_metal_rt.xdi").metadata["e0_ev"]
    for name in ("CuO_tenorite_13K_01.xdi", "Cu_azurite_13K_01.xdi"):
        assert normalized_xanes(MEASURED / name).metadata["e0_ev"] > metal + 2.0


@needs_xas_data
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_shared_file_normalises_to_zero_before_and_one_after_the_edge(path):
    spectrum = normalized_xanes(path)
    e, mu, e0 = spectrum.wavenumber, spectrum.intensity, spectrum.metadata["e0_ev"]
    assert 8970 < e0 < 9000
    assert abs(mu[e < e0 - 30].mean()) < 0.02
    assert mu[(e > e0 + 50) & (e < e0 + 150)].mean() == pytest.approx(1.0, abs=0.12)
    assert spectrum.metadata["axis"] == "energy_eV"


def test_not_an_xdi_file(tmp_path):
    path = tmp_path / "x.xdi"
    path.write_text("energy mu\n1 2\n")
    with pytest.raises(SpectrumFormatError, match="not an XDI file"):
        read_xdi(path)
    path.write_text("# XDI/1.0\n# Column.1: mu\n# ///\n#----\n1.0\n2.0\n")
    with pytest.raises(SpectrumFormatError, match="no 'Column.N: energy'"):
        read_xdi(path)
    path.write_text("# XDI/1.0\n# Column.1: energy eV\n# Column.2: i0\n# ///\n#----\n1.0 2.0\n2.0 3.0\n")
    with pytest.raises(SpectrumFormatError, match="no itrans column"):
        read_xdi(path).mu()
