"""Descriptors of an absorbing site: wACSF (XANESNET's) and a Z-weighted SOAP.

Both describe the neighbourhood of one atom within ``r_cut`` (Å) with every neighbour weighted
by its atomic number Z, so that one fixed-length vector serves any mix of elements:

* ``"wacsf"``: weighted atom-centred symmetry functions (Gastegger et al., J. Chem. Phys. 148,
  241709 (2018)), as XANESNET uses. dscribe's ACSF gives the radial G2 and angular G4 functions
  per element and per element pair; here they are summed with weights Z_j (radial) and Z_j Z_k
  (angular), which is the weighted function by definition.
* ``"soap"``: dscribe's SOAP power spectrum of one density in which each neighbour carries the
  weight Z (compression ``mu2`` with species weights), a richer angular description.
* ``"wacsf+soap"``: the two side by side (wACSF first).
* ``"soap+chem"``: SOAP followed by the chemical block of :mod:`specml.xanes.chemistry`
  (bond-valence sum, first shell by element group and angle, element-resolved RDF), which
  keeps apart what the Z weighting mixes: the ligand and cation neighbours and the Cu valence.
* ``"soap+chem+ion"``: ``soap+chem`` followed by the ionic block of
  :mod:`specml.xanes.electrostatics` (Madelung potential at the site and its ligands from a
  charge-balanced oxidation-state assignment; electronegativity, valence electrons, period,
  group and formal charge of the first- and second-shell neighbours).

Periodic structures (any ``pbc`` set) are treated periodically; molecules are not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from specml.errors import InputError

KINDS = ("wacsf", "soap", "wacsf+soap", "soap+chem", "soap+chem+ion")


def _g2_default() -> list[list[float]]:
    # 16 Gaussian shells from 1 to 6 Å whose widths equal their spacing.
    shifts = np.linspace(1.0, 6.0, 16)
    eta = 1.0 / (2.0 * (shifts[1] - shifts[0]) ** 2)
    return [[float(eta), float(r)] for r in shifts]


def _g4_default() -> list[list[float]]:
    return [[eta, zeta, lam] for eta in (0.005, 0.05) for zeta in (1.0, 2.0, 4.0, 8.0) for lam in (-1.0, 1.0)]


@dataclass(frozen=True)
class DescriptorSettings:
    """How the absorbing site is described.

    Attributes:
        kind: ``"wacsf"``, ``"soap"``, ``"wacsf+soap"``, ``"soap+chem"`` or ``"soap+chem+ion"``.
        r_cut: cutoff radius in Å.
        g2: wACSF radial parameters ``[eta (Å^-2), R_s (Å)]``.
        g4: wACSF angular parameters ``[eta (Å^-2), zeta, lambda]``.
        n_max, l_max, sigma: SOAP radial basis size, angular degree and Gaussian width (Å).
    """

    kind: str = "wacsf"
    r_cut: float = 6.0
    g2: list[list[float]] = field(default_factory=_g2_default)
    g4: list[list[float]] = field(default_factory=_g4_default)
    n_max: int = 6
    l_max: int = 4
    sigma: float = 0.5

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"descriptor {self.kind!r} is not known; choose one of {', '.join(KINDS)}")
        if not 1.0 <= self.r_cut <= 20.0:
            raise InputError(f"descriptor cutoff must be 1-20 Å, got {self.r_cut:g} Å")

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def size(self) -> int:
        """Length of the descriptor vector."""
        from specml.xanes.chemistry import chemistry_size
        from specml.xanes.electrostatics import IONIC_COLUMNS

        wacsf = 1 + len(self.g2) + len(self.g4)
        soap = self.n_max * (self.n_max + 1) // 2 * (self.l_max + 1)
        return {
            "wacsf": wacsf,
            "soap": soap,
            "wacsf+soap": wacsf + soap,
            "soap+chem": soap + chemistry_size(),
            "soap+chem+ion": soap + chemistry_size() + len(IONIC_COLUMNS),
        }[self.kind]


def site_descriptors(atoms, centers, settings: DescriptorSettings | None = None) -> np.ndarray:
    """Descriptor rows, shape (len(centers), settings.size), of the atoms at ``centers``."""
    settings = settings or DescriptorSettings()
    centers = [int(c) for c in np.atleast_1d(centers)]
    if not centers:
        raise InputError("no absorbing site given")
    bad = [c for c in centers if not 0 <= c < len(atoms)]
    if bad:
        raise InputError(f"site {bad[0]} is out of range for a structure of {len(atoms)} atoms")
    if settings.kind == "wacsf":
        return _wacsf(atoms, centers, settings)
    if settings.kind == "soap":
        return _soap(atoms, centers, settings)
    if settings.kind == "soap+chem":
        from specml.xanes.chemistry import site_chemistry

        return np.concatenate([_soap(atoms, centers, settings), site_chemistry(atoms, centers)], axis=1)
    if settings.kind == "soap+chem+ion":
        from specml.xanes.chemistry import site_chemistry
        from specml.xanes.electrostatics import site_ionic

        blocks = [_soap(atoms, centers, settings), site_chemistry(atoms, centers), site_ionic(atoms, centers)]
        return np.concatenate(blocks, axis=1)
    return np.concatenate([_wacsf(atoms, centers, settings), _soap(atoms, centers, settings)], axis=1)


def _wacsf(atoms, centers: list[int], settings: DescriptorSettings) -> np.ndarray:
    from dscribe.descriptors import ACSF

    numbers = sorted(set(atoms.get_atomic_numbers().tolist()))
    acsf = ACSF(
        species=numbers,
        r_cut=settings.r_cut,
        g2_params=settings.g2,
        g4_params=settings.g4,
        periodic=bool(atoms.pbc.any()),
    )
    raw = np.atleast_2d(acsf.create(atoms, centers=centers))
    n_radial, n_angular = 1 + len(settings.g2), len(settings.g4)
    z = np.array(numbers, dtype=float)
    # dscribe's layout: per element (ascending Z) [G1, G2...], then per element pair
    # (j over elements, i <= j) [G4...]. tests/test_xanes_descriptors.py checks it against
    # the functions written out directly.
    radial = raw[:, : len(z) * n_radial].reshape(len(centers), len(z), n_radial)
    pair_weights = np.array([z[i] * z[j] for j in range(len(z)) for i in range(j + 1)])
    angular = raw[:, len(z) * n_radial :].reshape(len(centers), len(pair_weights), n_angular)
    return np.concatenate(
        [np.einsum("csf,s->cf", radial, z), np.einsum("cpf,p->cf", angular, pair_weights)], axis=1
    )


def _soap(atoms, centers: list[int], settings: DescriptorSettings) -> np.ndarray:
    from ase.data import chemical_symbols
    from dscribe.descriptors import SOAP

    numbers = sorted(set(atoms.get_atomic_numbers().tolist()))
    soap = SOAP(
        species=[chemical_symbols[z] for z in numbers],
        r_cut=settings.r_cut,
        n_max=settings.n_max,
        l_max=settings.l_max,
        sigma=settings.sigma,
        periodic=bool(atoms.pbc.any()),
        compression={"mode": "mu2", "species_weighting": {chemical_symbols[z]: float(z) for z in numbers}},
    )
    return np.atleast_2d(soap.create(atoms, centers=centers))
