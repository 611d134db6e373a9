"""Was the query measured in the gas phase? The predictions and the scorer assume it was.

Harmonic and ML-MD predictions are spectra of free molecules, and the scorer was fitted on
gas-phase spectra. A liquid, solution or solid spectrum differs in ways the scorer does not
model: hydrogen bonding moves the O-H stretch from about 3650 cm-1 to 3200-3550 cm-1 and
spreads it over a few hundred cm-1, and the rotational contours are gone. On the NIST files,
both condensed-phase spectra rank their compound second, behind 1-propanol
(docs/identify.md). So the user is told when a query looks condensed:

1. from the file's own ``##STATE`` header when it has one (the JCAMP reader records it);
2. else from band evidence: a band maximum at 3150-3500 cm-1 at least 150 cm-1 wide
   (FWHM) and 10 % of the strongest band. Free O-H bands of gas-phase alcohols sit at
   3650-3700 cm-1 and are at most about 80 cm-1 wide at 16 cm-1 resolution (NIST methanol,
   ethanol, isopropyl alcohol); hydrogen-bonded ones are 200-400 cm-1 wide.
"""

from __future__ import annotations

import numpy as np

from specml.spectra.spectrum import Spectrum

GAS_STATES = ("gas", "vapo")  # ##STATE values that mean a gas-phase sample (vapor, vapour)
HBONDED_OH_WINDOW_CM1 = (3150.0, 3500.0)
HBONDED_OH_MIN_FWHM_CM1 = 150.0
HBONDED_OH_MIN_HEIGHT = 0.10  # of the normalised spectrum's peak


def hydrogen_bonded_oh_band(spectrum: Spectrum) -> tuple[float, float] | None:
    """(centre, FWHM) in cm-1 of the strongest broad band in the hydrogen-bonded O-H window, or None.

    ``spectrum`` should be smoothed to a resolution well below 150 cm-1 (the scorer uses 16 cm-1).
    """
    from scipy.signal import find_peaks, peak_widths

    x = spectrum.wavenumber
    y = np.clip(spectrum.intensity, 0.0, None)
    if y.size < 3 or y.max() <= 0:
        return None
    y = y / y.max()
    maxima, _ = find_peaks(y, height=HBONDED_OH_MIN_HEIGHT)
    lo, hi = HBONDED_OH_WINDOW_CM1
    maxima = maxima[(x[maxima] >= lo) & (x[maxima] <= hi)]
    if maxima.size == 0:
        return None
    widths = peak_widths(y, maxima, rel_height=0.5)[0] * float(np.mean(np.diff(x)))
    broad = widths >= HBONDED_OH_MIN_FWHM_CM1
    if not broad.any():
        return None
    best = int(np.argmax(np.where(broad, y[maxima], -1.0)))
    return float(x[maxima[best]]), float(widths[best])


def condensed_phase_caution(spectrum: Spectrum, smoothed: Spectrum) -> str | None:
    """Why ``spectrum`` looks like a condensed-phase measurement, or None when it looks gaseous.

    ``smoothed`` is the same spectrum at the band-evidence resolution, on an even grid.
    """
    state = str(spectrum.metadata.get("state") or "").strip()
    consequence = (
        "the predictions and the scorer are for gas-phase spectra, so expect the true compound to rank "
        "lower (docs/identify.md)"
    )
    if state:
        if any(word in state.lower() for word in GAS_STATES):
            return None
        return f"the file declares the sample state {state!r}: {consequence}"
    band = hydrogen_bonded_oh_band(smoothed)
    if band is None:
        return None
    centre, width = band
    return (
        f"a broad band at {centre:.0f} cm-1 ({width:.0f} cm-1 wide) looks like hydrogen-bonded O-H of a liquid "
        f"or solid sample: {consequence}"
    )
