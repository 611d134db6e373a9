"""Chemical features of an absorbing Cu site: bond-valence sum, first shell, element-resolved RDF.

SOAP and wACSF as used here weight every neighbour by its atomic number Z, so an O at 2 Å and a
Li at ~2.7 Å enter through one density. The K-edge position and the first resonance follow the
Cu oxidation state, the ligands and the first-shell geometry, which this block states directly:

* **bond-valence sum** (Brown's bond-valence model): ``BVS = sum_j exp((R0 - r_j) / b)`` over
  the anion neighbours j within :data:`BVS_CUTOFF_A`, ``b`` = 0.37 Å. It is computed with the
  Cu(I) and the Cu(II) parameters (:data:`R0_CU_O_A`); the state whose sum lies nearer its own
  valence is the oxidation-state estimate (Brown's usual rule), and that sum is reported too;
* **first shell**: the neighbours within ``SHELL_TOLERANCE`` (1.15) of the nearest distance
  (:func:`specml.xanes.analysis.first_shell`'s rule): their count per element group, the
  :data:`N_SORTED` nearest distances (Å) and a smeared histogram of the cosines of the angles
  between first-shell bonds (linear, square-planar and tetrahedral sites differ there);
* **element-resolved RDF**: per element group (:data:`GROUPS`), Gaussians of width
  :data:`RDF_SIGMA_A` centred on each neighbour distance, read on :data:`RDF_CENTRES_A`
  (1-6 Å, whatever the SOAP cutoff): the radial part of wACSF/SOAP without collapsing the
  elements into Z weights.

Every feature is a function of interatomic distances and angles only, so invariant to rotation,
translation and the order of the atoms.
"""

from __future__ import annotations

import numpy as np

from specml.errors import InputError

#: Bond-valence parameter b (Å), the usual constant (Brown & Altermatt, Acta Cryst. B41, 244 (1985)).
BVS_B_A = 0.37
#: R0 (Å) of Cu(I)-O and Cu(II)-O bonds: Brese & O'Keeffe, Acta Cryst. B47, 192 (1991)
#: (Cu(I)-O 1.610) and Brown & Altermatt (1985) (Cu(II)-O 1.679).
R0_CU_O_A = {1: 1.610, 2: 1.679}
#: Anions counted in the bond-valence sum. P, As, Sb, C, B and Si are left out: in this oxide set
#: they are the centres of oxyanions (phosphate, carbonate...), second neighbours of Cu, not ligands.
BVS_ANIONS = ("H", "N", "O", "F", "S", "Cl", "Se", "Br", "Te", "I")
#: Anions other than O get R0(Cu-O) shifted by their covalent radius minus O's (ASE's Cordero
#: radii): an approximation of the tabulated values, enough here (every structure of the FEFF set
#: holds O, the other ligands are rare). Anions farther than BVS_CUTOFF_A (Å) add nothing.
BVS_CUTOFF_A = 3.5
#: Element groups of the resolved features, by atomic number.
GROUPS = {
    "O": (8,),
    "other_anion": (1, 7, 9, 16, 17, 34, 35, 52, 53),
    "Cu": (29,),
    "s_block": (3, 4, 11, 12, 19, 20, 37, 38, 55, 56),
    "d_block": tuple(z for z in [*range(21, 31), *range(39, 49), *range(72, 81)] if z != 29),
    "f_block": (*range(57, 72), *range(89, 104)),
    "p_block_cation": (5, 6, 13, 14, 15, 31, 32, 33, 49, 50, 51, 81, 82, 83, 84),
}
#: Centres (Å) and Gaussian width (Å) of the element-resolved RDF; each Gaussian is cut to zero
#: beyond RDF_TRUNCATE widths, so that a bin no neighbour of a group reaches is exactly zero
#: rather than a far tail of 1e-6 (such near-constant columns blow up under standardisation).
RDF_CENTRES_A = np.linspace(1.0, 6.0, 21)
RDF_SIGMA_A = 0.25
RDF_TRUNCATE = 3.0
#: Nearest first-shell distances kept (padded with the shell cutoff when the shell is smaller).
N_SORTED = 6
#: Centres and width of the smeared histogram of first-shell bond-angle cosines.
COS_CENTRES = np.linspace(-1.0, 1.0, 5)
COS_SIGMA = 0.25
#: Neighbours beyond this distance (Å) are not looked at.
SEARCH_A = 6.5

_GROUP_OF = {z: k for k, zs in enumerate(GROUPS.values()) for z in zs}


def chemistry_size() -> int:
    """Length of :func:`site_chemistry`'s rows."""
    n_groups = len(GROUPS)
    return 4 + 1 + n_groups + N_SORTED + COS_CENTRES.size + n_groups * RDF_CENTRES_A.size


def site_chemistry(atoms, centers) -> np.ndarray:
    """Rows of chemical features (see the module docstring), one per index in ``centers``."""
    from ase.neighborlist import neighbor_list

    centers = [int(c) for c in np.atleast_1d(centers)]
    bad = [c for c in centers if not 0 <= c < len(atoms)]
    if bad:
        raise InputError(f"site {bad[0]} is out of range for a structure of {len(atoms)} atoms")
    numbers = atoms.get_atomic_numbers()
    unknown = sorted({int(z) for z in numbers} - set(_GROUP_OF))
    if unknown:
        raise InputError(f"atomic number(s) {unknown} have no element group in the chemistry descriptor")
    i, j, d, vectors = neighbor_list("ijdD", atoms, SEARCH_A)
    rows = []
    for center in centers:
        mine = i == center
        if not mine.any():
            raise InputError(f"site {center} has no neighbour within {SEARCH_A:g} Å")
        rows.append(_row(numbers[j[mine]], d[mine], vectors[mine]))
    return np.array(rows)


def _row(neighbour_z: np.ndarray, distances: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    groups = np.array([_GROUP_OF[int(z)] for z in neighbour_z])
    return np.concatenate(
        [
            bond_valence(neighbour_z, distances),
            _first_shell(groups, distances, vectors),
            _resolved_rdf(groups, distances),
        ]
    )


def bond_valence(neighbour_z: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """``[BVS with Cu(I) R0, BVS with Cu(II) R0, BVS of the nearer state, that state (1 or 2)]``."""
    from ase.data import atomic_numbers, covalent_radii

    anion_z = [atomic_numbers[s] for s in BVS_ANIONS]
    keep = np.isin(neighbour_z, anion_z) & (distances <= BVS_CUTOFF_A)
    shift = covalent_radii[neighbour_z[keep]] - covalent_radii[8]
    sums = {
        state: float(np.exp((r0 + shift - distances[keep]) / BVS_B_A).sum())
        for state, r0 in R0_CU_O_A.items()
    }
    state = min(sums, key=lambda s: abs(sums[s] - s))
    return np.array([sums[1], sums[2], sums[state], float(state)])


def _first_shell(groups: np.ndarray, distances: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    from specml.xanes.analysis import SHELL_TOLERANCE, in_first_shell

    cutoff = SHELL_TOLERANCE * distances.min()
    shell = in_first_shell(distances)
    counts = np.bincount(groups[shell], minlength=len(GROUPS)).astype(float)
    nearest = np.full(N_SORTED, cutoff)
    ordered = np.sort(distances[shell])[:N_SORTED]
    nearest[: ordered.size] = ordered
    return np.concatenate([[float(shell.sum())], counts, nearest, _angle_histogram(vectors[shell])])


def _angle_histogram(bonds: np.ndarray) -> np.ndarray:
    """Smeared histogram of cos(angle) over the pairs of first-shell bonds, normalised per pair
    (zeros for a single neighbour)."""
    if len(bonds) < 2:
        return np.zeros(COS_CENTRES.size)
    unit = bonds / np.linalg.norm(bonds, axis=1, keepdims=True)
    cosines = (unit @ unit.T)[np.triu_indices(len(bonds), k=1)]
    weights = np.exp(-0.5 * ((cosines[:, None] - COS_CENTRES) / COS_SIGMA) ** 2)
    return weights.mean(axis=0)


def _resolved_rdf(groups: np.ndarray, distances: np.ndarray) -> np.ndarray:
    offsets = (distances[:, None] - RDF_CENTRES_A) / RDF_SIGMA_A
    gaussians = np.where(np.abs(offsets) <= RDF_TRUNCATE, np.exp(-0.5 * offsets**2), 0.0)
    rdf = np.zeros((len(GROUPS), RDF_CENTRES_A.size))
    np.add.at(rdf, groups, gaussians)
    return rdf.ravel()
