"""Features of a XANES spectrum (edge, first maximum) and of an absorbing site (first shell).

Spectral features are read from a cubic spline through the spectrum on a 0.05 eV grid, so that
they are not tied to the data's own spacing (0.25 eV for the FEFF set):

* **edge**: the energy of the steepest rise, the maximum of dμ/dE (the usual E0 choice);
* **first maximum**: the first local maximum of μ above the edge whose prominence is at least
  :data:`PEAK_PROMINENCE` of the spectrum's range (so that noise wiggles do not count);
* two alternatives less sensitive to a shoulder on the rise: the **half-step energy**, where a
  normalised μ first reaches 0.5, and the **white line**, the highest μ within
  :data:`WHITE_LINE_WINDOW_EV` above the edge.

First shell of a site (the rule the inverse model learns): the neighbours of every element
within :data:`SHELL_TOLERANCE` times the nearest-neighbour distance. The coordination number
(CN) is their count, the first-shell distance their mean distance in Å. The 15 % margin keeps a
slightly distorted shell together (CuO: four O at 1.95-1.96 Å) and leaves out the next one
(CuO's two apical O at 2.78 Å, Jahn-Teller elongated).
"""

from __future__ import annotations

import numpy as np

from specml.errors import InputError

#: Spacing (eV) of the spline grid that spectral features are read from.
FINE_STEP_EV = 0.05
#: Smallest prominence of the first maximum, as a fraction of the spectrum's range.
PEAK_PROMINENCE = 0.02
#: Window (eV above the edge) searched for the white line.
WHITE_LINE_WINDOW_EV = 30.0
#: Neighbours within this factor of the nearest distance form the first shell.
SHELL_TOLERANCE = 1.15
#: Farthest nearest neighbour (Å) looked for.
SHELL_SEARCH_A = 4.0


def _fine(energy, mu) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.interpolate import CubicSpline

    energy, mu = np.asarray(energy, dtype=float), np.asarray(mu, dtype=float)
    if energy.ndim != 1 or energy.shape != mu.shape or energy.size < 4:
        raise InputError("a spectrum needs matching energy and μ arrays of at least 4 points")
    spline = CubicSpline(energy, mu)
    grid = np.arange(energy[0], energy[-1], FINE_STEP_EV)
    return grid, spline(grid), spline(grid, 1)


def edge_position(energy, mu) -> float:
    """Edge energy (units of ``energy``, eV): where dμ/dE is largest."""
    grid, _, slope = _fine(energy, mu)
    return float(grid[int(np.argmax(slope))])


def first_maximum(energy, mu, edge: float | None = None) -> float:
    """Energy of the first prominent maximum of μ above the edge; NaN when there is none."""
    from scipy.signal import find_peaks

    grid, values, slope = _fine(energy, mu)
    edge = float(grid[int(np.argmax(slope))]) if edge is None else edge
    peaks, _ = find_peaks(values, prominence=PEAK_PROMINENCE * float(np.ptp(values)))
    above = peaks[grid[peaks] > edge]
    return float(grid[above[0]]) if above.size else float("nan")


def half_step_energy(energy, mu) -> float:
    """Energy where a normalised μ (0 before, 1 after the edge) first reaches 0.5; NaN if never."""
    grid, values, _ = _fine(energy, mu)
    above = np.flatnonzero(values >= 0.5)
    return float(grid[above[0]]) if above.size else float("nan")


def white_line(energy, mu, edge: float | None = None) -> float:
    """Energy of the highest μ within :data:`WHITE_LINE_WINDOW_EV` above the edge."""
    grid, values, slope = _fine(energy, mu)
    edge = float(grid[int(np.argmax(slope))]) if edge is None else edge
    window = (grid >= edge) & (grid <= edge + WHITE_LINE_WINDOW_EV)
    return float(grid[window][int(np.argmax(values[window]))])


def first_shell(atoms, index: int, tolerance: float = SHELL_TOLERANCE) -> tuple[int, float]:
    """``(coordination number, mean first-shell distance in Å)`` of atom ``index``."""
    from ase.neighborlist import neighbor_list

    if not 0 <= index < len(atoms):
        raise InputError(f"site {index} is out of range for a structure of {len(atoms)} atoms")
    centers, distances = neighbor_list("id", atoms, SHELL_SEARCH_A)
    mine = np.sort(distances[centers == index])
    if mine.size == 0:
        raise InputError(f"site {index} has no neighbour within {SHELL_SEARCH_A:g} Å")
    shell = mine[mine <= tolerance * mine[0]]
    return int(shell.size), float(shell.mean())
