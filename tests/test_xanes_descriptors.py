"""Site descriptors: the weighted functions written out directly, and invariance to rotation,
translation and atom order, for a molecule and a crystal."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from specml.errors import InputError
from specml.xanes.descriptors import DescriptorSettings, site_descriptors

WACSF = DescriptorSettings(kind="wacsf", r_cut=5.0)
SOAP = DescriptorSettings(kind="soap", r_cut=5.0, n_max=4, l_max=3)
BOTH = DescriptorSettings(kind="wacsf+soap", r_cut=5.0, n_max=4, l_max=3)
SOAP_CHEM = DescriptorSettings(kind="soap+chem", r_cut=5.0, n_max=4, l_max=3)
SOAP_CHEM_ION = DescriptorSettings(kind="soap+chem+ion", r_cut=5.0, n_max=4, l_max=3)
KINDS = [WACSF, SOAP, BOTH, SOAP_CHEM, SOAP_CHEM_ION]
IDS = ["wacsf", "soap", "both", "soap+chem", "soap+chem+ion"]


def _cutoff(r, r_cut):
    return np.where(r < r_cut, 0.5 * (np.cos(np.pi * r / r_cut) + 1.0), 0.0)


def _direct_wacsf(atoms, center, settings):
    """wACSF of ``center`` in a molecule, from the definitions (Gastegger et al. 2018)."""
    pos, z = atoms.positions, atoms.numbers.astype(float)
    others = [j for j in range(len(atoms)) if j != center]
    r = np.linalg.norm(pos[others] - pos[center], axis=1)
    fc = _cutoff(r, settings.r_cut)
    g1 = np.sum(z[others] * fc)
    g2 = [np.sum(z[others] * np.exp(-eta * (r - rs) ** 2) * fc) for eta, rs in settings.g2]
    g4 = []
    for eta, zeta, lam in settings.g4:
        total = 0.0
        for a in range(len(others)):
            for b in range(a + 1, len(others)):
                j, k = others[a], others[b]
                rij, rik = r[a], r[b]
                rjk = np.linalg.norm(pos[j] - pos[k])
                cos = np.dot(pos[j] - pos[center], pos[k] - pos[center]) / (rij * rik)
                total += (
                    z[j]
                    * z[k]
                    * (1 + lam * cos) ** zeta
                    * np.exp(-eta * (rij**2 + rik**2 + rjk**2))
                    * fc[a]
                    * fc[b]
                    * _cutoff(np.array(rjk), settings.r_cut)
                )
        g4.append(2 ** (1 - zeta) * total)
    return np.array([g1, *g2, *g4])


def _complex():
    """A distorted square-planar Cu with four different ligands (no symmetry to hide errors)."""
    return Atoms(
        "CuONSClH",
        positions=[
            [0.0, 0.0, 0.0],
            [1.95, 0.1, 0.0],
            [-0.2, 2.0, 0.3],
            [-2.3, 0.0, -0.2],
            [0.1, -2.25, 0.1],
            [2.6, 0.9, 0.2],
        ],
    )


def test_wacsf_equals_the_weighted_functions_written_out():
    atoms = _complex()
    got = site_descriptors(atoms, [0], WACSF)[0]
    np.testing.assert_allclose(got, _direct_wacsf(atoms, 0, WACSF), rtol=1e-6, atol=1e-9)


def test_wacsf_weights_neighbours_by_atomic_number():
    light = Atoms("CuH", positions=[[0, 0, 0], [2.0, 0, 0]])
    heavy = Atoms("CuCl", positions=[[0, 0, 0], [2.0, 0, 0]])
    ratio = site_descriptors(heavy, [0], WACSF)[0, :17] / site_descriptors(light, [0], WACSF)[0, :17]
    np.testing.assert_allclose(ratio[ratio == ratio], 17.0)


def _random_rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _moved(atoms, seed):
    """``atoms`` rotated, translated and with its atoms shuffled; returns it and the new index of atom 0."""
    rng = np.random.default_rng(seed)
    rotation = _random_rotation(seed)
    order = rng.permutation(len(atoms))
    moved = atoms[order]
    moved.positions = moved.positions @ rotation.T + rng.normal(size=3) * 3.0
    if atoms.pbc.any():
        moved.cell = atoms.cell.array @ rotation.T
    return moved, int(np.flatnonzero(order == 0)[0])


def _crystal():
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True) * (1, 1, 2)
    crystal.symbols[3] = "O"
    crystal.symbols[5] = "S"
    crystal.rattle(0.05, seed=3)
    return crystal


@pytest.mark.parametrize("settings", KINDS, ids=IDS)
@pytest.mark.parametrize("build", [_complex, _crystal], ids=["molecule", "crystal"])
def test_descriptors_invariant_to_rotation_translation_and_order(settings, build):
    atoms = build()
    reference = site_descriptors(atoms, [0], settings)[0]
    assert reference.shape == (settings.size,)
    assert np.abs(reference).max() > 0
    for seed in (1, 2):
        moved, center = _moved(atoms, seed)
        np.testing.assert_allclose(
            site_descriptors(moved, [center], settings)[0],
            reference,
            rtol=1e-6,
            atol=1e-8 * np.abs(reference).max(),
        )


@pytest.mark.parametrize("settings", KINDS, ids=IDS)
def test_descriptors_see_a_changed_first_shell(settings):
    atoms = _complex()
    stretched = atoms.copy()
    stretched.positions[1] *= 1.1  # Cu-O from 1.95 to 2.15 Å
    a, b = site_descriptors(atoms, [0], settings)[0], site_descriptors(stretched, [0], settings)[0]
    assert np.linalg.norm(a - b) > 1e-3 * np.linalg.norm(a)


def test_periodic_images_count():
    """In fcc Cu every atom has 12 neighbours at a/sqrt(2): the periodic G1 sees them all."""
    crystal = bulk("Cu", "fcc", a=3.6)
    settings = DescriptorSettings(kind="wacsf", r_cut=3.0)
    g1 = site_descriptors(crystal, [0], settings)[0, 0]
    d = 3.6 / np.sqrt(2)
    assert g1 == pytest.approx(12 * 29 * 0.5 * (np.cos(np.pi * d / 3.0) + 1))


def test_bad_site_and_settings_are_input_errors():
    with pytest.raises(InputError, match="out of range"):
        site_descriptors(_complex(), [6], WACSF)
    with pytest.raises(InputError, match="not known"):
        DescriptorSettings(kind="mace")


def test_combined_descriptor_is_wacsf_then_soap():
    atoms = _crystal()
    both = site_descriptors(atoms, [0, 2], BOTH)
    wacsf = site_descriptors(atoms, [0, 2], DescriptorSettings(**{**BOTH.as_dict(), "kind": "wacsf"}))
    soap = site_descriptors(atoms, [0, 2], DescriptorSettings(**{**BOTH.as_dict(), "kind": "soap"}))
    assert both.shape == (2, BOTH.size) and BOTH.size == wacsf.shape[1] + soap.shape[1]
    np.testing.assert_array_equal(both, np.hstack([wacsf, soap]))


def test_soap_chem_is_soap_then_the_chemistry_block():
    from specml.xanes.chemistry import site_chemistry

    atoms = _crystal()
    both = site_descriptors(atoms, [0, 2], SOAP_CHEM)
    soap = site_descriptors(atoms, [0, 2], DescriptorSettings(**{**SOAP_CHEM.as_dict(), "kind": "soap"}))
    assert both.shape == (2, SOAP_CHEM.size)
    np.testing.assert_array_equal(both, np.hstack([soap, site_chemistry(atoms, [0, 2])]))
