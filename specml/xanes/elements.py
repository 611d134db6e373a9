"""Per-element properties for the XANES descriptor, from a table generated with ``mendeleev``.

The table (``specml/data/elements.json``) holds, for Z = 1-103, the Pauling electronegativity,
the number of valence electrons, the period, the group (3 for the f block, which mendeleev leaves
without one) and the main oxidation states, as mendeleev (a maintained database of element data)
gives them. It is generated rather than typed in, and shipped so that mendeleev (and its
SQLAlchemy database) is not a runtime dependency:

    pip install mendeleev && python -m specml.xanes.elements   # rewrites specml/data/elements.json

mendeleev has no Pauling electronegativity for Pm, Eu, Tb and Yb; within the f block a missing
value is interpolated linearly in Z between the nearest f-block elements that have one (Eu 1.185,
Tb 1.21, Yb 1.125 between Tm 1.25 and mendeleev's Lu 1.0), flagged
``"en_pauling_interpolated": true``. Noble gases and the heavy actinides keep none (null); the
descriptor refuses a structure that holds one.

Cu's main states in mendeleev are (2,) only; :data:`EXTRA_STATES` adds Cu(I) and Cu(III), which
are common in the set (cuprite, delafossites, cuprates).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from specml.errors import InputError

TABLE_PATH = Path(__file__).resolve().parents[1] / "data" / "elements.json"
#: Properties of :func:`properties`, in this order.
PROPERTIES = ("en_pauling", "n_valence", "period", "group")
#: Oxidation states added to mendeleev's main ones (see the module docstring).
EXTRA_STATES = {"Cu": (1, 2, 3)}
MAX_Z = 103


def build_table() -> list[dict]:
    """The table from mendeleev (needs ``pip install mendeleev``)."""
    from mendeleev import element

    rows, blocks = [], []
    for z in range(1, MAX_Z + 1):
        e = element(z)
        blocks.append(e.block)
        rows.append(
            {
                "z": z,
                "symbol": e.symbol,
                "en_pauling": e.en_pauling,
                "n_valence": int(e.nvalence()),
                "period": int(e.period),
                # mendeleev has no group for lanthanides and actinides; they sit in group 3
                "group": int(e.group_id) if e.group_id is not None else 3,
                "oxidation_states": sorted(int(s) for s in e.oxidation_states("main")),
                "oxidation_states_extended": sorted(int(s) for s in e.oxidation_states("extended")),
            }
        )
    _interpolate_f_block(rows, blocks)
    return rows


def _interpolate_f_block(rows: list[dict], blocks: list[str]) -> None:
    known = [k for k, row in enumerate(rows) if blocks[k] == "f" and row["en_pauling"] is not None]
    for k, row in enumerate(rows):
        below = [m for m in known if m < k]
        above = [m for m in known if m > k]
        if blocks[k] != "f" or row["en_pauling"] is not None or not below or not above:
            continue
        lo, hi = below[-1], above[0]
        value = np.interp(k, [lo, hi], [rows[lo]["en_pauling"], rows[hi]["en_pauling"]])
        row["en_pauling"] = round(float(value), 4)
        row["en_pauling_interpolated"] = True


@cache
def _table() -> dict[int, dict]:
    rows = json.loads(TABLE_PATH.read_text())
    return {int(row["z"]): row for row in rows}


def properties(numbers) -> np.ndarray:
    """Rows of :data:`PROPERTIES` for the atomic numbers ``numbers``; shape (n, 4)."""
    table = _table()
    numbers = [int(z) for z in np.atleast_1d(numbers)]
    missing = sorted({z for z in numbers if z not in table})
    if missing:
        raise InputError(f"atomic number(s) {missing} are not in the element table (Z 1-{MAX_Z})")
    return np.array(
        [[np.nan if table[z][p] is None else float(table[z][p]) for p in PROPERTIES] for z in numbers],
        dtype=float,
    ).reshape(len(numbers), len(PROPERTIES))


def oxidation_states(z: int, extended: bool = False) -> tuple[int, ...]:
    """Main oxidation states of element ``z`` (mendeleev's, plus :data:`EXTRA_STATES`); with
    ``extended``, also mendeleev's other positive states (Mn(III), Fe(IV)...), for compounds that
    the main states cannot balance."""
    row = _table().get(int(z))
    if row is None:
        raise InputError(f"atomic number {z} is not in the element table (Z 1-{MAX_Z})")
    states = set(row["oxidation_states"]) | set(EXTRA_STATES.get(row["symbol"], ()))
    if extended:
        states |= {s for s in row.get("oxidation_states_extended", []) if s > 0}
    return tuple(sorted(states))


if __name__ == "__main__":
    # one element per line: a diff of a regenerated table shows which elements changed
    TABLE_PATH.write_text("[\n" + ",\n".join(json.dumps(row) for row in build_table()) + "\n]\n")
    print(f"wrote {TABLE_PATH}")
