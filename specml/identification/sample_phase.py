"""Was the query measured in the gas phase? The predictions and the scorer assume it was.

Harmonic and ML-MD predictions are spectra of free molecules, and the scorer was fitted on
gas-phase spectra. A liquid, solution or solid spectrum differs in ways the scorer does not
model: hydrogen bonding moves the O-H stretch from about 3650 cm-1 to 3200-3550 cm-1 and
spreads it over a few hundred cm-1, and the rotational contours are gone. So the user is told
when a query looks condensed:

1. from the file's own ``##STATE`` header when it has one (the JCAMP reader records it);
2. else from band evidence: a band maximum at 3150-3500 cm-1 at least 150 cm-1 wide
   (FWHM) and 10 % of the strongest band. Free O-H bands of gas-phase alcohols sit at
   3650-3700 cm-1 and are at most about 80 cm-1 wide at 16 cm-1 resolution (NIST methanol,
   ethanol, isopropyl alcohol); hydrogen-bonded ones are 200-400 cm-1 wide.

Such a query is compared with a condensed-phase picture of each prediction
(:func:`condensed_phase_sticks`): no rotational contours, and the free O-H stretches of
molecules with an O-H group moved to the hydrogen-bonded band. Its constants are physics from
the literature, not fitted on the queries (docs/identify.md gives their sensitivity).
"""

from __future__ import annotations

import numpy as np

from specml.spectra.spectrum import Spectrum

GAS_STATES = ("gas", "vapo")  # ##STATE values that mean a gas-phase sample (vapor, vapour)
HBONDED_OH_WINDOW_CM1 = (3150.0, 3500.0)
HBONDED_OH_MIN_FWHM_CM1 = 150.0
HBONDED_OH_MIN_HEIGHT = 0.10  # of the normalised spectrum's peak

# The condensed-phase picture of a free O-H stretch. Liquid alcohols and water absorb at
# 3300-3400 cm-1 with a band 200-350 cm-1 wide (FWHM); the hydrogen bond also raises the
# stretch's integrated intensity by an order of magnitude (Iogansen, Spectrochim. Acta A 55
# (1999) 1585), about 20-fold from water vapour to liquid water.
HBONDED_OH_CENTRE_CM1 = 3340.0
HBONDED_OH_FWHM_CM1 = 250.0
HBONDED_OH_INTENSITY_GAIN = 20.0
# Above this (after frequency scaling) a stick of a molecule with an O-H group is its free O-H
# stretch: C-H stretches stay below 3350 cm-1 (alkyne C-H about 3300), free O-H at 3550-3700.
FREE_OH_STRETCH_ABOVE_CM1 = 3450.0


def condensed_phase_sticks(
    positions_cm1: np.ndarray, intensities: np.ndarray, smiles: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gas-phase sticks as a condensed-phase sample shows them: (positions, intensities, extra FWHM).

    The free O-H stretches of a molecule with an O-H group move to the
    hydrogen-bonded band (centre, intensity gain and width above); every other stick is kept,
    with no extra width. ``positions_cm1`` are already frequency-scaled. The caller draws the
    sticks without rotational contours, which molecules in a liquid or solid do not have.
    """
    positions = np.asarray(positions_cm1, dtype=float).copy()
    intensities = np.asarray(intensities, dtype=float).copy()
    extra = np.zeros_like(positions)
    from specml.identification.functional_groups import groups_in_molecule

    if "O-H" in groups_in_molecule(smiles):
        free_oh = positions >= FREE_OH_STRETCH_ABOVE_CM1
        positions[free_oh] = HBONDED_OH_CENTRE_CM1
        intensities[free_oh] *= HBONDED_OH_INTENSITY_GAIN
        extra[free_oh] = HBONDED_OH_FWHM_CM1
    return positions, intensities, extra


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
        "the predictions are gas-phase spectra; they are compared without rotational contours and with "
        "hydrogen-bonded O-H, but expect the true compound to rank lower (docs/identify.md)"
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
