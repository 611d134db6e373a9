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
# Below 1 % transmittance (absorbance above 2) a band is saturated: almost no light reaches the
# detector, so the measured band top is flat or noisy and its height is not the sample's.
SATURATION_TRANSMITTANCE = 0.01
SATURATION_MERGE_CM1 = 10.0  # saturated stretches closer than this are reported as one range
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

    Units are taken from ``metadata["intensity_units"]`` (the units of the values as they are,
    set by this conversion), else ``metadata["yunits"]`` (as the JCAMP reader records the
    file's units). In that order, a converted spectrum saved with :meth:`Spectrum.to_csv`
    and read back is not converted a second time.
    """
    if spectrum.metadata.get("technique") == "raman":
        raise SpectrumFormatError(
            f"{spectrum.metadata.get('source', spectrum.label)}: a Raman spectrum has no absorbance; "
            "compare it with a Raman prediction (specml raman --compare)"
        )
    units = str(spectrum.metadata.get("intensity_units") or spectrum.metadata.get("yunits") or "")
    kind = y_kind(units)
    if kind == "transmittance":
        t = spectrum.intensity
        percent = float(np.max(t)) > PERCENT_THRESHOLD
        if percent:
            t = t / 100.0
        absorbance = -np.log10(np.clip(t, TRANSMITTANCE_FLOOR, None))
        out = Spectrum(spectrum.wavenumber, absorbance, None, spectrum.metadata)
        return out.with_metadata(
            intensity_units="absorbance",
            transmittance_percent=percent,
            saturated_cm1=saturated_ranges(spectrum.wavenumber, t),
        )
    if kind == "absorbance":
        return spectrum.with_metadata(intensity_units="absorbance")
    if kind == "coefficient":
        return spectrum.with_metadata(intensity_units=" ".join(units.split()))
    raise SpectrumFormatError(
        f"{spectrum.metadata.get('source', spectrum.label)}: unknown y units {units or '(missing)'!r}; "
        "expected transmittance, absorbance or an absorption coefficient"
    )


def saturated_ranges(wavenumber: np.ndarray, transmittance: np.ndarray) -> list[list[float]]:
    """Wavenumber ranges ``[lo, hi]`` (cm-1) where the transmittance (fraction) is below
    :data:`SATURATION_TRANSMITTANCE`, ascending; stretches closer than
    :data:`SATURATION_MERGE_CM1` are merged."""
    order = np.argsort(wavenumber)
    x, below = np.asarray(wavenumber)[order], np.asarray(transmittance)[order] < SATURATION_TRANSMITTANCE
    ranges: list[list[float]] = []
    for index in np.flatnonzero(below):
        if ranges and x[index] - ranges[-1][1] <= SATURATION_MERGE_CM1:
            ranges[-1][1] = float(x[index])
        else:
            ranges.append([float(x[index]), float(x[index])])
    return ranges


def saturation_caution(spectrum: Spectrum, lo_cm1: float, hi_cm1: float) -> str | None:
    """A sentence naming the saturated ranges of ``spectrum`` within ``lo_cm1..hi_cm1``, or None."""
    inside = [r for r in spectrum.metadata.get("saturated_cm1") or [] if r[1] >= lo_cm1 and r[0] <= hi_cm1]
    if not inside:
        return None
    shown = ", ".join(f"{a:.0f}-{b:.0f}" if b - a >= 1 else f"{a:.0f}" for a, b in inside[:3])
    more = f" and {len(inside) - 3} more" if len(inside) > 3 else ""
    return (
        f"transmittance below {SATURATION_TRANSMITTANCE:.0%} at {shown}{more} cm-1: saturated band(s), "
        "whose measured heights are too low and their tops flat or noisy"
    )
