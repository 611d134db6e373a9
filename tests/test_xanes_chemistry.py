"""Chemical block of the XANES descriptor: bond-valence sums of known Cu sites, first-shell
geometry and element resolution."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from xanes_data import cuprite_cell

from specml.errors import InputError
from specml.xanes.chemistry import (
    COS_CENTRES,
    GROUPS,
    N_SORTED,
    RDF_CENTRES_A,
    RDF_SIGMA_A,
    bond_valence,
    chemistry_size,
    site_chemistry,
)

N_GROUPS = len(GROUPS)
#: Column offsets of the blocks in a site_chemistry row.
BVS, CN, COUNTS = slice(0, 4), 4, slice(5, 5 + N_GROUPS)
SORTED = slice(COUNTS.stop, COUNTS.stop + N_SORTED)
ANGLES = slice(SORTED.stop, SORTED.stop + COS_CENTRES.size)
RDF = slice(ANGLES.stop, None)


def _square_planar(r=1.95, ligand="O"):
    """A CuO4 square (Cu(II) in CuO: four O at 1.95-1.96 Å)."""
    return Atoms(f"Cu{ligand}4", positions=[[0, 0, 0], [r, 0, 0], [-r, 0, 0], [0, r, 0], [0, -r, 0]])


def test_bond_valence_sum_of_cuprite_is_one():
    row = site_chemistry(cuprite_cell(), [2])[0]
    assert row[3] == 1.0
    assert row[2] == pytest.approx(1.0, abs=0.3)


def test_bond_valence_sum_of_square_planar_cuo4_is_two():
    row = site_chemistry(_square_planar(), [0])[0]
    assert row[3] == 2.0
    assert row[2] == pytest.approx(2.0, abs=0.3)


def test_bond_valence_counts_anions_only_and_falls_with_distance():
    z = np.array([8, 3, 29])  # O, Li, Cu at the same distance: only the O bonds
    only_o = bond_valence(np.array([8]), np.array([1.9]))
    np.testing.assert_allclose(bond_valence(z, np.full(3, 1.9)), only_o)
    assert bond_valence(np.array([8]), np.array([2.1]))[1] < only_o[1]


def test_first_shell_counts_and_angles():
    linear = site_chemistry(cuprite_cell(), [2])[0]
    square = site_chemistry(_square_planar(), [0])[0]
    o_group = list(GROUPS).index("O")
    assert linear[CN] == 2 and linear[COUNTS][o_group] == 2
    assert square[CN] == 4 and square[COUNTS][o_group] == 4
    np.testing.assert_allclose(linear[SORTED][:2], 4.27 * np.sqrt(3) / 4)
    # a linear site has one bond pair at 180° (cos -1); a square has 2 at 180° and 4 at 90°
    assert np.argmax(linear[ANGLES]) == 0
    assert square[ANGLES][2] > square[ANGLES][0] > square[ANGLES][4]


def test_rdf_is_element_resolved():
    oxide, fluoride = (
        site_chemistry(_square_planar(), [0])[0],
        site_chemistry(_square_planar(ligand="F"), [0])[0],
    )
    rdf_o = oxide[RDF].reshape(N_GROUPS, RDF_CENTRES_A.size)
    rdf_f = fluoride[RDF].reshape(N_GROUPS, RDF_CENTRES_A.size)
    o_group, anion_group = list(GROUPS).index("O"), list(GROUPS).index("other_anion")
    np.testing.assert_allclose(rdf_o[o_group], rdf_f[anion_group])
    assert rdf_o[anion_group].max() == 0 and rdf_f[o_group].max() == 0
    # Gaussians are cut at 3 widths: bins no neighbour reaches are exactly zero, not a tail
    far = np.abs(RDF_CENTRES_A - 1.95) > 3 * RDF_SIGMA_A
    assert np.all(rdf_o[o_group][far] == 0) and np.all(rdf_o[o_group][~far] > 0)


def test_rows_have_the_stated_size_and_are_invariant_to_moves():
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True) * (1, 1, 2)
    crystal.symbols[3], crystal.symbols[5] = "O", "Li"
    crystal.rattle(0.05, seed=3)
    reference = site_chemistry(crystal, [0])[0]
    assert reference.shape == (chemistry_size(),)
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    order = rng.permutation(len(crystal))
    moved = crystal[order]
    moved.positions = moved.positions @ rotation.T + rng.normal(size=3)
    moved.cell = crystal.cell.array @ rotation.T
    np.testing.assert_allclose(
        site_chemistry(moved, [int(np.flatnonzero(order == 0)[0])])[0], reference, atol=1e-9
    )


def test_bad_input_is_an_input_error():
    with pytest.raises(InputError, match="no element group"):
        site_chemistry(Atoms("CuXe", positions=[[0, 0, 0], [2.5, 0, 0]]), [0])
    with pytest.raises(InputError, match="no neighbour"):
        site_chemistry(Atoms("CuO", positions=[[0, 0, 0], [9.0, 0, 0]]), [0])
    with pytest.raises(InputError, match="out of range"):
        site_chemistry(_square_planar(), [7])
