"""Ordinate units of experimental spectra, and conversion to absorbance."""

from __future__ import annotations

import re

import numpy as np

from specml.errors import SpectrumFormatError
from specml.spectra.spectrum import Spectrum

# Transmittance is clipped to this floor before A = -log10(T): A <= 4, beyond the
# photometric range of any IR spectrometer, so zero or negative (noise) T values
# give a finite, saturated absorbance instead of inf/NaN.
TRANSMITTANCE_FLOOR = 1.0e-4
# A maximum above this means the transmittance is in percent (a fraction never exceeds
# ~1.1 even with baseline drift; percent data are rarely all below 1.5 %).
PERCENT_THRESHOLD = 1.5

_TRANSMITTANCE = re.compile(r"^(%\s*)?(T|TRANSMITTANCE|TRANSMISSION|%T|PERCENT TRANSMITTANCE)$", re.I)
_ABSORBANCE = re.compile(r"^(A|ABSORBANCE|ABS|ABSORPTION)$", re.I)
# Absorption coefficients (e.g. NIST Quant-IR "(micromol/mol)-1m-1 (base 10)", molar
# absorptivity, cross sections) are proportional to absorbance at fixed path and amount.
_COEFFICIENT = re.compile(r"mol.*m-1|\(base 10\)|absorptivity|cross.?section|epsilon|cm2|m\^?2", re.I)


def y_kind(yunits: str) -> str:
    """Classify ``yunits`` as ``"transmittance"``, ``"absorbance"``, ``"coefficient"`` or ``""``."""
    text = " ".join(str(yunits).split())
    if _TRANSMITTANCE.match(text):
        return "transmittance"
    if _ABSORBANCE.match(text):
        return "absorbance"
    if _COEFFICIENT.search(text):
        return "coefficient"
    return ""


def to_absorbance(spectrum: Spectrum) -> Spectrum:
    """Convert a spectrum to absorbance (or an absorbance-like coefficient) from its y units.

    Units are taken from ``metadata["yunits"]`` (as the JCAMP reader records them), else
    ``metadata["intensity_units"]``.
    """
    units = str(spectrum.metadata.get("yunits") or spectrum.metadata.get("intensity_units") or "")
    kind = y_kind(units)
    if kind == "transmittance":
        t = spectrum.intensity
        percent = float(np.max(t)) > PERCENT_THRESHOLD
        if percent:
            t = t / 100.0
        absorbance = -np.log10(np.clip(t, TRANSMITTANCE_FLOOR, None))
        out = Spectrum(spectrum.wavenumber, absorbance, None, spectrum.metadata)
        return out.with_metadata(intensity_units="absorbance", transmittance_percent=percent)
    if kind == "absorbance":
        return spectrum.with_metadata(intensity_units="absorbance")
    if kind == "coefficient":
        return spectrum.with_metadata(intensity_units=" ".join(units.split()))
    raise SpectrumFormatError(
        f"{spectrum.metadata.get('source', spectrum.label)}: unknown y units {units or '(missing)'!r}; "
        "expected transmittance, absorbance or an absorption coefficient"
    )
