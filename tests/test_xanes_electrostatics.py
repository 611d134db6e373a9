"""Formal charges, the Ewald potential at a site and the ionic block of the XANES descriptor."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from xanes_data import cuprite_cell

from specml.errors import InputError
from specml.xanes.electrostatics import (
    IONIC_COLUMNS,
    coulomb_constant,
    formal_charges,
    site_ionic,
    site_potentials,
)
from specml.xanes.elements import oxidation_states, properties

#: Madelung constants referred to the nearest-neighbour distance (Kittel, Introduction to Solid
#: State Physics, 8th ed., ch. 3): rocksalt 1.7476, CsCl 1.7627.
ROCKSALT, CSCL = 1.7476, 1.7627


def test_nacl_madelung_potential():
    a = 5.64
    nacl = bulk("NaCl", "rocksalt", a=a)
    charges = formal_charges(nacl)
    assert charges.tolist() == [1.0, -1.0]
    na, cl = site_potentials(nacl, charges, [0, 1])
    expected = ROCKSALT * coulomb_constant() / (a / 2)
    assert na == pytest.approx(-expected, rel=0.01)
    assert cl == pytest.approx(expected, rel=0.01)


def test_cscl_madelung_potential():
    a = 4.12
    cscl = bulk("CsCl", "cesiumchloride", a=a)
    (cs,) = site_potentials(cscl, formal_charges(cscl), [0])
    assert cs == pytest.approx(-CSCL * coulomb_constant() / (a * np.sqrt(3) / 2), rel=0.01)


def test_potential_is_invariant_to_supercell_rotation_translation_and_order():
    cuprite = cuprite_cell()
    reference = site_potentials(cuprite, formal_charges(cuprite), [2])[0]
    moved = cuprite.repeat((2, 1, 1))
    moved.rotate(37, "z", rotate_cell=True)
    moved.translate([0.4, -1.1, 2.3])
    order = np.random.default_rng(0).permutation(len(moved))
    moved = moved[order]
    site = int(np.flatnonzero(order == 2)[0])
    assert site_potentials(moved, formal_charges(moved), [site])[0] == pytest.approx(reference, abs=1e-4)
    assert site_ionic(moved, [site])[0] == pytest.approx(site_ionic(cuprite, [2])[0], abs=1e-4)


def test_molecule_potential_is_a_coulomb_sum():
    pair = Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 2.5]])
    assert site_potentials(pair, [1.0, -1.0], [0])[0] == pytest.approx(-coulomb_constant() / 2.5)


def test_charges_are_balanced_and_follow_the_cu_valence():
    cuprite = cuprite_cell()
    charges = formal_charges(cuprite)
    assert charges.sum() == 0
    assert set(charges[cuprite.numbers == 29]) == {1.0}
    # CuFeO2 balances as Cu(I)Fe(III) or Cu(II)Fe(II): the bond-valence estimate decides
    delafossite = Atoms("CuFeO2", positions=np.eye(4, 3) * 2.0, cell=[4, 4, 4], pbc=True)
    assert formal_charges(delafossite, cu_state=1.0)[:2].tolist() == [1.0, 3.0]
    assert formal_charges(delafossite, cu_state=2.0)[:2].tolist() == [2.0, 2.0]
    # a hydroxychloride keeps Cl negative
    charges = formal_charges(Atoms("Cu2H3ClO3", cell=[5, 5, 5], pbc=True), cu_state=2.0)
    assert charges.tolist() == [2, 2, 1, 1, 1, -1, -2, -2, -2]


def test_states_beyond_the_main_ones_balance_when_needed():
    # Mn(III) is not among mendeleev's main Mn states (2, 4, 7); LaMnO3 needs it
    charges = formal_charges(Atoms("LaMnO3", cell=[4, 4, 4], pbc=True))
    assert charges.tolist() == [3.0, 3.0, -2.0, -2.0, -2.0]


def test_mixed_valence_falls_back_to_scaled_cation_charges():
    charges = formal_charges(Atoms("Cu3F7", cell=[6, 6, 6], pbc=True))
    assert charges[3:].tolist() == [-1.0] * 7
    assert charges[:3] == pytest.approx([7 / 3] * 3)


def test_ionic_block_of_cuprite():
    row = dict(zip(IONIC_COLUMNS, site_ionic(cuprite_cell(), [2])[0], strict=True))
    assert row["charge_e"] == 1.0
    assert row["potential_V"] < 0 < row["first_shell_potential_V"]
    assert row["first_shell_en_pauling"] == pytest.approx(properties([8])[0, 0])
    assert row["first_shell_charge"] == -2.0
    assert row["second_shell_charge"] == 1.0  # the Cu(I) neighbours at 3.0 Å


def test_element_table():
    en, n_valence, period, group = properties([8])[0]
    assert (n_valence, period, group) == (6, 2, 16)
    assert 3.4 < en < 3.5
    assert properties([58])[0, 3] == 3  # f block: group 3
    assert {1, 2, 3} <= set(oxidation_states(29))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: site_potentials(bulk("NaCl", "rocksalt", a=5.64), [1.0], [0]),
            "1 charges for a structure of 2",
        ),
        (lambda: site_potentials(bulk("NaCl", "rocksalt", a=5.64), [1.0, -1.0], [5]), "out of range"),
        (lambda: site_ionic(cuprite_cell(), [9]), "out of range"),
        (lambda: properties([150]), "not in the element table"),
    ],
)
def test_bad_input_is_one_line_error(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_partly_periodic_structure_is_refused():
    slab = bulk("NaCl", "rocksalt", a=5.64)
    slab.pbc = [True, True, False]
    with pytest.raises(InputError, match="periodic in all or no directions"):
        site_potentials(slab, [1.0, -1.0], [0])


def test_table_matches_mendeleev():
    pytest.importorskip("mendeleev")
    import json

    from specml.xanes.elements import TABLE_PATH, build_table

    assert build_table() == json.loads(TABLE_PATH.read_text())
