"""Features of a XANES spectrum (edge, first maximum) and of an absorbing site (first shell).

Spectral features are read from a cubic spline through the spectrum on a 0.05 eV grid, so that
they are not tied to the data's own spacing (0.25 eV for the FEFF set):

* **edge** (:func:`half_step_energy`): where the normalised μ (0 before, 1 after the edge) first
  reaches 0.5, interpolated between the spline points. This is the benchmark's edge: a level
  crossing moves continuously when the spectrum changes a little, so it is well defined for
  every spectrum whose rise starts on the grid;
* **steepest rise** (:func:`edge_position`): the maximum of dμ/dE, the usual E0 of a measured
  spectrum (and the convention of the tabulated foil energies that calibrate XDI files). It is
  *ill defined* when two parts of the rise are about equally steep (a 1s→4p shoulder and the
  main rise): in about one FEFF Cu spectrum in eight the second-steepest rise, more than 1 eV
  away, is within 10 % of the steepest (:func:`rise_ambiguity`), and the position then jumps
  by several eV under a small change of the spectrum;
* **first maximum** (:func:`first_maximum`): the first local maximum of μ above the edge that
  rises above the edge step (normalised μ of at least :data:`PEAK_MIN_MU`, 1) and whose
  prominence is at least :data:`PEAK_PROMINENCE` of the spectrum's range (so that noise
  wiggles do not count). A bump below the edge step is a shoulder on the rise, not a
  resonance above it; counting such bumps made the first maximum flip between a shoulder and
  the first resonance under a 1 eV blur in a quarter of the FEFF spectra;
* **white line** (:func:`white_line`): the highest μ within :data:`WHITE_LINE_WINDOW_EV` above
  the edge.

:func:`spectral_features` returns all of them with the rule the benchmark uses (first maximum
and white line above the half-step edge).

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
#: Lowest normalised μ of the first maximum (the edge step): lower bumps are shoulders on the rise.
PEAK_MIN_MU = 1.0
#: Level of the normalised μ that defines the (half-step) edge.
HALF_STEP = 0.5
#: Window (eV above the edge) searched for the white line.
WHITE_LINE_WINDOW_EV = 30.0
#: Positions whose uncertainty the ensemble's members give (:func:`member_positions`).
MEMBER_POSITIONS = ("edge", "first_maximum")
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


def _vertex(grid: np.ndarray, values: np.ndarray, i: int) -> float:
    """Abscissa of the parabola through the points ``i - 1, i, i + 1`` (sub-grid maximum)."""
    if not 0 < i < grid.size - 1:
        return float(grid[i])
    left, mid, right = values[i - 1], values[i], values[i + 1]
    curvature = left - 2 * mid + right
    if curvature >= 0:
        return float(grid[i])
    return float(grid[i] + 0.5 * (left - right) / curvature * (grid[1] - grid[0]))


def edge_position(energy, mu) -> float:
    """Steepest rise (units of ``energy``, eV): where dμ/dE is largest."""
    grid, _, slope = _fine(energy, mu)
    return _vertex(grid, slope, int(np.argmax(slope)))


def _edge_or_default(energy, mu, edge: float | None) -> float:
    if edge is not None:
        return edge
    half = half_step_energy(energy, mu)
    return edge_position(energy, mu) if np.isnan(half) else half


def first_maximum(energy, mu, edge: float | None = None, min_mu: float = PEAK_MIN_MU) -> float:
    """Energy of the first maximum of μ above ``edge`` (default: the half-step edge) that reaches
    ``min_mu`` (the edge step of a normalised spectrum; ``-inf``: any height) and whose
    prominence is at least :data:`PEAK_PROMINENCE` of the range of μ; NaN when there is none."""
    from scipy.signal import find_peaks

    edge = _edge_or_default(energy, mu, edge)
    grid, values, _ = _fine(energy, mu)
    peaks, _ = find_peaks(values, prominence=PEAK_PROMINENCE * float(np.ptp(values)))
    above = peaks[(grid[peaks] > edge) & (values[peaks] >= min_mu)]
    return _vertex(grid, values, int(above[0])) if above.size else float("nan")


def half_step_energy(energy, mu, level: float = HALF_STEP) -> float:
    """Energy where a normalised μ (0 before, 1 after the edge) first reaches ``level`` (0.5),
    interpolated between the spline points; NaN when μ never reaches it or is already there
    at the first point (the crossing lies before the grid)."""
    grid, values, _ = _fine(energy, mu)
    above = np.flatnonzero(values >= level)
    if above.size == 0 or above[0] == 0:
        return float("nan")
    i = int(above[0])
    return float(np.interp(level, values[i - 1 : i + 1], grid[i - 1 : i + 1]))


def rise_ambiguity(energy, mu, separation_ev: float = 1.0) -> float:
    """Height of the second-highest local maximum of dμ/dE lying more than ``separation_ev``
    from the highest, as a fraction of the highest (0 when there is none). Near 1: the steepest
    rise (:func:`edge_position`) may jump between two places under a small change of μ."""
    from scipy.signal import find_peaks

    grid, _, slope = _fine(energy, mu)
    peaks, _ = find_peaks(slope)
    if peaks.size == 0:
        return 0.0
    top = peaks[int(np.argmax(slope[peaks]))]
    others = peaks[np.abs(grid[peaks] - grid[top]) > separation_ev]
    if others.size == 0 or slope[top] <= 0:
        return 0.0
    return float(slope[others].max() / slope[top])


def spectral_features(energy, mu) -> dict[str, float]:
    """``edge`` (half-step), ``first_maximum`` and ``white_line`` above it, and
    ``steepest_rise``, in units of ``energy`` (NaN where a feature is not on the grid)."""
    edge = half_step_energy(energy, mu)
    rise = edge_position(energy, mu)
    above = rise if np.isnan(edge) else edge
    return {
        "edge": edge,
        "first_maximum": first_maximum(energy, mu, above),
        "white_line": white_line(energy, mu, above),
        "steepest_rise": rise,
    }


def member_positions(energy, member_spectra) -> np.ndarray:
    """:data:`MEMBER_POSITIONS` (eV) of each ensemble member's spectrum, read with the rule of
    :func:`spectral_features`: shape ``(n_members, n_spectra, 2)`` for spectra of shape
    ``(n_members, n_spectra, n_energy)``; NaN where a member's spectrum lacks the feature.

    Their spread over the members is a position's own uncertainty: the std of μ says how
    uncertain the intensity is, not how far a peak may be displaced."""
    member_spectra = np.asarray(member_spectra, dtype=float)
    return np.array(
        [
            [[spectral_features(energy, mu)[name] for name in MEMBER_POSITIONS] for mu in spectra]
            for spectra in member_spectra
        ]
    )


def position_spread(positions: np.ndarray) -> np.ndarray:
    """Std over the members (axis 0) of :func:`member_positions`; NaN where fewer than two
    members have the feature."""
    import warnings

    positions = np.asarray(positions, dtype=float)
    with warnings.catch_warnings():  # an all-NaN column warns; it is NaN below anyway
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(positions, axis=0)
    return np.where(np.isfinite(positions).sum(0) >= 2, spread, np.nan)


def white_line(energy, mu, edge: float | None = None) -> float:
    """Energy of the highest μ within :data:`WHITE_LINE_WINDOW_EV` above ``edge`` (default: the
    half-step edge)."""
    edge = _edge_or_default(energy, mu, edge)
    grid, values, _ = _fine(energy, mu)
    window = np.flatnonzero((grid >= edge) & (grid <= edge + WHITE_LINE_WINDOW_EV))
    if window.size == 0:
        return float("nan")
    return _vertex(grid, values, int(window[np.argmax(values[window])]))


def first_shell(atoms, index: int, tolerance: float = SHELL_TOLERANCE) -> tuple[int, float]:
    """``(coordination number, mean first-shell distance in Å)`` of atom ``index``."""
    _, distances = first_shell_neighbours(atoms, index, tolerance)
    return int(distances.size), float(distances.mean())


def first_shell_neighbours(
    atoms, index: int, tolerance: float = SHELL_TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances (Å) of the first-shell neighbours of atom ``index`` (the module's rule)."""
    from ase.neighborlist import neighbor_list

    if not 0 <= index < len(atoms):
        raise InputError(f"site {index} is out of range for a structure of {len(atoms)} atoms")
    centers, neighbours, distances = neighbor_list("ijd", atoms, SHELL_SEARCH_A)
    mine = centers == index
    if not mine.any():
        raise InputError(f"site {index} has no neighbour within {SHELL_SEARCH_A:g} Å")
    shell = in_first_shell(distances[mine], tolerance)
    return neighbours[mine][shell], distances[mine][shell]


def in_first_shell(distances: np.ndarray, tolerance: float = SHELL_TOLERANCE) -> np.ndarray:
    """Mask of the ``distances`` (Å, one site's neighbours) within ``tolerance`` times the nearest:
    the first-shell rule, in one place for this module and the chemistry descriptor."""
    return distances <= tolerance * distances.min()
