"""Functional groups: band evidence in a spectrum versus substructures of a candidate.

A group is *supported* by a spectrum when each of its characteristic windows contains a
band maximum (a local maximum found by ``scipy.signal.find_peaks`` with a prominence of at
least ``PEAK_PROMINENCE``) reaching ``BAND_THRESHOLD`` of the spectrum's maximum (the
spectrum is normalised to a peak of 1 first). Requiring a maximum *inside* the window, not
just absorbance, keeps the wing of a strong neighbour (aliphatic C-H at 2960 cm-1 reaching
into the aromatic 3000-3110 window) from counting. A window counts as measured when at least
half of it lies within the spectrum's range (a file starting at 575 cm-1 still reports C-Cl).
The windows are textbook group frequencies (cm-1), set for gas-phase spectra:

====================  ==========================  ==============================================
group                 window(s)                   overlaps / caveats
====================  ==========================  ==============================================
O-H stretch           3200-3700                   contains the N-H window: an N-H band also
                                                  "supports" O-H and vice versa
N-H stretch           3300-3500                   see O-H; weak for amines
C=O stretch           1650-1850                   C=C (1620-1680) and H-O-H bend (~1595-1650)
                                                  reach into its low edge
C≡N stretch           2200-2280                   often weak; the gas-phase band sits higher
                                                  than in liquids (acetonitrile 2267)
C=C stretch           1620-1680                   IR-inactive in symmetric alkenes (ethylene)
aromatic ring         1480-1620 and 3000-3110     both windows needed; starts above the CH2/CH3
                                                  bends (1450-1470); alkene C-H at 3000-3100
C-O stretch           1000-1300                   fingerprint region: C-C stretches and CH3
                                                  rocks also absorb here, weak evidence
C-Cl stretch          550-850                     aromatic C-H wags (690-850) and the CO2
                                                  bend (667) overlap
====================  ==========================  ==============================================

The scorer judges evidence on the query smoothed to 16 cm-1 FWHM
(``specml.identification.scoring.GROUP_RESOLUTION_CM1``). Conjugated C=C stretches
(1,3-butadiene, ~1600 cm-1) fall below the C=C window, so a diene can look "C=C missing".
So band evidence is suggestive, not proof. Agreement with a candidate is summarised as two
counts used by the scorer: groups the candidate *has* but whose band is absent ("missing"),
and supported groups the candidate *lacks* ("unexplained"). Their weights are fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specml.spectra.spectrum import Spectrum

# Fraction of the normalised peak absorbance a window's maximum must reach. 5 % sits above the
# noise of baseline-corrected gas-phase spectra yet keeps weak C-O and C-Cl bands.
BAND_THRESHOLD = 0.05
# Minimum prominence (fraction of the peak) of a local maximum to count as a band.
PEAK_PROMINENCE = 0.02
# Fraction of a window that must lie inside the measured range for the window to be judged.
MIN_WINDOW_COVERAGE = 0.5


@dataclass(frozen=True)
class FunctionalGroup:
    name: str
    windows_cm1: tuple[tuple[float, float], ...]
    smarts: str


FUNCTIONAL_GROUPS: tuple[FunctionalGroup, ...] = (
    FunctionalGroup("O-H", ((3200.0, 3700.0),), "[OX2][H]"),
    FunctionalGroup("N-H", ((3300.0, 3500.0),), "[#7][H]"),
    FunctionalGroup("C=O", ((1650.0, 1850.0),), "[CX3]=[OX1]"),
    FunctionalGroup("C≡N", ((2200.0, 2280.0),), "C#N"),
    FunctionalGroup("C=C", ((1620.0, 1680.0),), "[CX3]=[CX3]"),
    FunctionalGroup("aromatic ring", ((1480.0, 1620.0), (3000.0, 3110.0)), "a1aaaaa1"),
    FunctionalGroup("C-O", ((1000.0, 1300.0),), "[#6][OX2]"),
    FunctionalGroup("C-Cl", ((550.0, 850.0),), "[#6]Cl"),
)


def band_evidence(spectrum: Spectrum) -> dict[str, float | None]:
    """For every group, the weakest of its windows' strongest band maxima (fraction of the spectrum's peak).

    0 for a window without a band maximum; ``None`` when less than ``MIN_WINDOW_COVERAGE`` of a
    window lies inside the measured range: no evidence either way.
    """
    from scipy.signal import find_peaks

    x = spectrum.wavenumber
    y = np.clip(spectrum.intensity, 0.0, None)
    peak = float(y.max()) if y.size else 0.0
    y = y / peak if peak > 0 else y
    maxima, _ = find_peaks(y, prominence=PEAK_PROMINENCE) if peak > 0 else (np.zeros(0, dtype=int), None)
    evidence: dict[str, float | None] = {}
    for group in FUNCTIONAL_GROUPS:
        values: list[float] = []
        for lo, hi in group.windows_cm1:
            measured = max(0.0, min(hi, float(x[-1])) - max(lo, float(x[0]))) / (hi - lo)
            if measured < MIN_WINDOW_COVERAGE:
                evidence[group.name] = None  # a window not measured: no evidence either way
                break
            inside = maxima[(x[maxima] >= lo) & (x[maxima] <= hi)]
            values.append(float(y[inside].max()) if inside.size else 0.0)
        else:
            evidence[group.name] = min(values)
    return evidence


def supported_groups(spectrum: Spectrum, threshold: float = BAND_THRESHOLD) -> dict[str, bool | None]:
    """``{group: True/False}`` from band evidence; ``None`` where the spectrum does not cover the windows."""
    return {
        name: (None if value is None else value >= threshold)
        for name, value in band_evidence(spectrum).items()
    }


def groups_in_molecule(smiles: str) -> set[str]:
    """Names of the groups whose SMARTS match the molecule (explicit hydrogens added)."""
    from rdkit import Chem

    from specml.errors import MoleculeError

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise MoleculeError(f"invalid SMILES {smiles!r}")
    mol = Chem.AddHs(mol)
    return {g.name for g in FUNCTIONAL_GROUPS if mol.HasSubstructMatch(_pattern(g.smarts))}


_PATTERNS: dict[str, object] = {}


def _pattern(smarts: str):
    from rdkit import Chem

    if smarts not in _PATTERNS:
        _PATTERNS[smarts] = Chem.MolFromSmarts(smarts)
    return _PATTERNS[smarts]


@dataclass(frozen=True)
class GroupAgreement:
    missing: tuple[str, ...]  # candidate has the group, spectrum shows no band
    unexplained: tuple[str, ...]  # spectrum shows the band, candidate lacks the group

    def summary(self) -> str:
        parts = [f"-{g}" for g in self.missing] + [f"?{g}" for g in self.unexplained]
        return " ".join(parts) if parts else "consistent"


def group_agreement(supported: dict[str, bool | None], smiles: str) -> GroupAgreement:
    present = groups_in_molecule(smiles)
    missing = tuple(g for g in present if supported.get(g) is False)
    # O-H and N-H windows overlap: a band there is explained by either group.
    explains = {g: {g} for g in supported}
    explains["O-H"] = explains["N-H"] = {"O-H", "N-H"}
    unexplained = tuple(g for g, ok in supported.items() if ok and not (present & explains[g]))
    return GroupAgreement(missing, unexplained)
