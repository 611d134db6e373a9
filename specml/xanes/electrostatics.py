"""Formal charges and the electrostatic (Madelung) potential at a site.

Core levels, and with them K-edge positions, shift with the electrostatic potential that the
rest of the crystal puts on the absorbing atom (the Madelung term of the ionic model of core-level
shifts). Two steps:

* :func:`formal_charges`: a charge-balanced oxidation-state assignment. Every element takes one
  of its main oxidation states (:func:`specml.xanes.elements.oxidation_states`); of the
  combinations whose charges sum to zero and in which every negative element is more
  electronegative than every positive one, the one whose Cu state is nearest the bond-valence
  estimate (``cu_state``) is taken, then the one with the fewest atoms of the usual ligand
  elements (:data:`specml.xanes.chemistry.BVS_ANIONS`) off their most negative state (Cl⁻, not
  Cl⁺, in a hydroxychloride), then the one with the smallest total |charge|. When the main
  states cannot balance, mendeleev's other positive states are admitted too. Mixed valence
  within one element is not represented. When no combination balances (mixed valence, unusual
  states), every element with a negative main state takes its most negative one and the other
  elements' lowest positive main states are scaled to neutrality (Cu3F7: Cu +7/3).
* :func:`site_potentials`: the potential (V, i.e. eV per elementary charge) of those point
  charges at chosen sites, excluding the site's own charge: an Ewald sum for a periodic cell
  (written here: no Ewald code is installed, pymatgen's would pull in a large package for one
  function), a plain Coulomb sum for a molecule. Tested against NaCl's and CsCl's Madelung
  constants.
"""

from __future__ import annotations

import itertools
from math import pi, sqrt

import numpy as np

from specml.errors import InputError

#: Real-space cutoff (Å) and Ewald splitting parameter (1/Å): erfc(ALPHA * CUTOFF) = erfc(3.5)
#: ≈ 7e-7, and the reciprocal sum is cut where exp(-k²/4α²) < 1e-7.
EWALD_CUTOFF_A = 10.0
EWALD_ALPHA = 0.35
RECIPROCAL_TOLERANCE = 1e-7
#: Most combinations of oxidation states searched for one structure.
MAX_COMBINATIONS = 200_000


def coulomb_constant() -> float:
    """e²/(4πε0) in eV·Å (from ASE's CODATA units: Hartree × Bohr ≈ 14.40)."""
    from ase import units

    return float(units.Hartree * units.Bohr)


def formal_charges(atoms, cu_state: float | None = None) -> np.ndarray:
    """Charge (e) of every atom of ``atoms`` from a charge-balanced assignment (module docstring)."""
    from ase.data import atomic_numbers

    from specml.xanes.chemistry import BVS_ANIONS
    from specml.xanes.elements import oxidation_states, properties

    numbers = atoms.get_atomic_numbers()
    elements, counts = np.unique(numbers, return_counts=True)
    electronegativity = properties(elements)[:, 0]
    choices = [oxidation_states(z) or (0,) for z in elements]
    ligand = np.isin(elements, [atomic_numbers[s] for s in BVS_ANIONS])
    best = None
    # main states first; mendeleev's other positive states only when the main ones cannot balance
    for tier in (choices, [oxidation_states(z, extended=True) or (0,) for z in elements]):
        if best is None and np.prod([len(c) for c in tier]) <= MAX_COMBINATIONS:
            combos = np.array(list(itertools.product(*tier)), dtype=float)
            best = _best_balanced(combos, tier, counts, electronegativity, ligand, elements == 29, cu_state)
    if best is None:
        best = _scaled_fallback(choices, counts)
    return best[np.searchsorted(elements, numbers)]


def _best_balanced(combos, choices, counts, electronegativity, ligand, cu, cu_state) -> np.ndarray | None:
    """The preferred neutral row of ``combos`` (one state per element; module docstring), or None."""
    en = np.nan_to_num(electronegativity)
    negative_min = np.where(combos < 0, en, np.inf).min(1)
    positive_max = np.where(combos > 0, en, -np.inf).max(1)
    ok = (np.abs(combos @ counts) < 1e-9) & (negative_min > positive_max)
    if not ok.any():
        return None
    combos = combos[ok]
    no_cu = not cu.any() or cu_state is None
    cu_mismatch = np.zeros(len(combos)) if no_cu else np.abs(combos[:, np.argmax(cu)] - cu_state)
    most_negative = np.array([min(c) for c in choices], dtype=float)
    ligands_off = ((combos > most_negative) & ligand) @ counts
    total = np.abs(combos) @ counts
    # np.lexsort sorts by its last key first
    return combos[np.lexsort((total, ligands_off, cu_mismatch))[0]]


def _scaled_fallback(choices: list[tuple[int, ...]], counts: np.ndarray) -> np.ndarray:
    negative = np.array([min(c) if min(c) < 0 else 0.0 for c in choices], dtype=float)
    positive = np.array([next((s for s in c if s > 0), 0.0) if min(c) >= 0 else 0.0 for c in choices])
    minus, plus = -(negative * counts).sum(), (positive * counts).sum()
    if plus == 0.0:
        return negative
    return negative + positive * (minus / plus)


def site_potentials(atoms, charges, sites) -> np.ndarray:
    """Electrostatic potential (V) of the point ``charges`` (e) at the atoms ``sites``, without the
    site's own charge. Periodic in all three directions (Ewald) or in none (Coulomb sum); a net
    charge is compensated by a uniform background."""
    charges = np.asarray(charges, dtype=float)
    sites = [int(s) for s in np.atleast_1d(sites)]
    if charges.shape != (len(atoms),):
        raise InputError(f"{charges.size} charges for a structure of {len(atoms)} atoms")
    if any(not 0 <= s < len(atoms) for s in sites):
        raise InputError(f"a site is out of range for a structure of {len(atoms)} atoms")
    if atoms.pbc.all():
        potential = _ewald(atoms, charges, sites)
    elif not atoms.pbc.any():
        potential = _coulomb(atoms.get_positions(), charges, sites)
    else:
        raise InputError("the electrostatic potential needs a structure periodic in all or no directions")
    return coulomb_constant() * potential


def _coulomb(positions: np.ndarray, charges: np.ndarray, sites: list[int]) -> np.ndarray:
    out = []
    for s in sites:
        r = np.linalg.norm(positions - positions[s], axis=1)
        others = np.arange(len(positions)) != s
        out.append(float((charges[others] / r[others]).sum()))
    return np.array(out)


def _ewald(atoms, charges: np.ndarray, sites: list[int]) -> np.ndarray:
    """Ewald sum in units of e/Å: real-space erfc part, reciprocal part, self and background terms."""
    from ase.neighborlist import neighbor_list
    from scipy.special import erfc as erfc_array

    alpha, volume = EWALD_ALPHA, atoms.get_volume()
    i, j, d = neighbor_list("ijd", atoms, EWALD_CUTOFF_A)
    real = np.zeros(len(atoms))
    np.add.at(real, i, charges[j] * erfc_array(alpha * d) / d)
    k, weight = _reciprocal_vectors(atoms.cell.array, alpha)
    positions = atoms.get_positions()
    structure_factor = np.exp(1j * positions @ k.T).T @ charges  # S(k) = Σ_j q_j exp(i k·r_j)
    out = []
    for s in sites:
        phase = np.exp(-1j * k @ positions[s])
        reciprocal = 4 * pi / volume * float((weight * (structure_factor * phase).real).sum())
        self_term = 2 * alpha / sqrt(pi) * charges[s]
        background = -pi * charges.sum() / (volume * alpha**2)
        out.append(real[s] + reciprocal - self_term + background)
    return np.array(out)


def _reciprocal_vectors(cell: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal lattice vectors k ≠ 0 (1/Å) up to the cutoff and their weights exp(-k²/4α²)/k²."""
    k_max = 2 * alpha * sqrt(-np.log(RECIPROCAL_TOLERANCE))
    reciprocal = 2 * pi * np.linalg.inv(cell).T
    # |n_i| <= k_max |a_i| / 2π bounds every k = n·b within k_max
    n_max = [int(np.ceil(k_max * np.linalg.norm(a) / (2 * pi))) for a in cell]
    grid = np.array(list(itertools.product(*(range(-n, n + 1) for n in n_max))), dtype=float)
    k = grid @ reciprocal
    k2 = (k**2).sum(1)
    keep = (k2 > 0) & (k2 <= k_max**2)
    k, k2 = k[keep], k2[keep]
    return k, np.exp(-k2 / (4 * alpha**2)) / k2


#: Cations within this distance (Å) of the site, beyond its first shell, form its second shell.
SECOND_SHELL_A = 4.0
#: Decay length (Å) of the neighbour weights exp(-(r - r_min)/b): the bond-valence b (0.37 Å).
WEIGHT_DECAY_A = 0.37
#: Columns of :func:`site_ionic`.
IONIC_COLUMNS = (
    "potential_V",
    "charge_e",
    "first_shell_potential_V",
    *(f"first_shell_{p}" for p in ("en_pauling", "n_valence", "period", "group", "charge", "en_std")),
    *(f"second_shell_{p}" for p in ("en_pauling", "n_valence", "period", "group", "charge", "en_std")),
)


def site_ionic(atoms, centers) -> np.ndarray:
    """Rows of :data:`IONIC_COLUMNS`, one per absorbing site in ``centers``: the electrostatic
    potential (V) at the site and, averaged over its first shell, at its ligands; the site's
    formal charge; and the weighted means of the neighbours' element properties
    (:mod:`specml.xanes.elements`) and formal charges over the first shell and over the cations
    of the second shell (weights exp(-(r - r_min)/0.37 Å), bond-valence-like)."""
    from ase.neighborlist import neighbor_list

    from specml.xanes.analysis import SHELL_TOLERANCE
    from specml.xanes.chemistry import SEARCH_A, bond_valence
    from specml.xanes.elements import properties

    centers = [int(c) for c in np.atleast_1d(centers)]
    if any(not 0 <= c < len(atoms) for c in centers):
        raise InputError(f"a site is out of range for a structure of {len(atoms)} atoms")
    numbers = atoms.get_atomic_numbers()
    i, j, d = neighbor_list("ijd", atoms, SEARCH_A)
    cu = np.flatnonzero(numbers == 29)
    # the Cu valence estimate that breaks ties between balanced assignments (e.g. CuFeO2)
    cu_state = (
        float(np.mean([bond_valence(numbers[j[i == c]], d[i == c])[2] for c in cu])) if cu.size else None
    )
    charges = formal_charges(atoms, cu_state)
    props = np.column_stack([properties(numbers), charges])
    if np.isnan(props).any():
        missing = sorted(set(atoms[np.isnan(props).any(1)].get_chemical_symbols()))
        raise InputError(f"element(s) {', '.join(missing)} have no electronegativity in the element table")
    shells = {}
    for c in centers:
        mine = i == c
        if not mine.any():
            raise InputError(f"site {c} has no neighbour within {SEARCH_A:g} Å")
        shells[c] = (j[mine], d[mine])
    # one Ewald call per structure: the sites and all their ligands
    ligands = {c: np.unique(n[r <= SHELL_TOLERANCE * r.min()]) for c, (n, r) in shells.items()}
    needed = sorted({*centers, *(int(k) for lig in ligands.values() for k in lig)})
    potential = dict(zip(needed, site_potentials(atoms, charges, needed), strict=True))
    rows = []
    for c in centers:
        neighbours, r = shells[c]
        shell = r <= SHELL_TOLERANCE * r.min()
        second = ~shell & (r <= SECOND_SHELL_A) & (charges[neighbours] > 0)
        rows.append(
            np.concatenate(
                [
                    [potential[c], charges[c], np.mean([potential[int(k)] for k in ligands[c]])],
                    _weighted_properties(props[neighbours[shell]], r[shell]),
                    _weighted_properties(props[neighbours[second]], r[second]),
                ]
            )
        )
    return np.array(rows)


def _weighted_properties(props: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Weighted means of the property columns and the weighted std of the first (electronegativity);
    zeros for an empty shell."""
    if r.size == 0:
        return np.zeros(props.shape[1] + 1)
    w = np.exp(-(r - r.min()) / WEIGHT_DECAY_A)
    w = w / w.sum()
    mean = w @ props
    en_std = sqrt(float(w @ (props[:, 0] - mean[0]) ** 2))
    return np.concatenate([mean, [en_std]])
