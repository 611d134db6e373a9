"""Reference (QM) methods behind one interface: energy, forces and dipole of an Atoms."""

from __future__ import annotations

import json

from specml.errors import InputError
from specml.reference.ase_calculator import ASECalculatorReference
from specml.reference.base import Label, ReferenceMethod
from specml.reference.pyscf_dft import PySCFCalculator, PySCFReference
from specml.reference.xtb import XTBReference

__all__ = [
    "ASECalculatorReference",
    "Label",
    "PySCFCalculator",
    "PySCFReference",
    "ReferenceMethod",
    "XTBReference",
    "make_reference",
]


def make_reference(spec: str | ReferenceMethod = "xtb", **options) -> ReferenceMethod:
    """Build a reference method from a short specification.

    - ``"xtb"`` / ``"gfn2-xtb"`` / ``"gfn1-xtb"`` / ``"ipea1-xtb"``: tblite (default GFN2-xTB);
    - ``"pyscf"`` or ``"pyscf:FUNCTIONAL/BASIS"``, e.g. ``"pyscf:pbe0/def2-svp"``; a dispersion
      correction as a suffix of the functional, e.g. ``"pyscf:b3lyp-d3bj/def2-svp"`` (D3(BJ), D4: ``-d4``);
    - ``"ase:package.module:ClassName"`` plus keyword arguments for the calculator
      (or a JSON object after ``@``: ``"ase:pkg.mod:Calc@{\\"xc\\": \\"PBE\\"}"``).
    """
    if isinstance(spec, ReferenceMethod):
        return spec
    text = spec.strip()
    lower = text.lower()
    if lower in ("xtb", "gfn2-xtb", "gfn2"):
        return XTBReference("GFN2-xTB", **options)
    if lower in ("gfn1-xtb", "gfn1"):
        return XTBReference("GFN1-xTB", **options)
    if lower in ("ipea1-xtb", "ipea1"):
        return XTBReference("IPEA1-xTB", **options)
    if lower == "pyscf" or lower.startswith("pyscf:"):
        _, _, level = text.partition(":")
        if level:
            functional, slash, basis = level.partition("/")
            if not slash or not functional or not basis:
                raise InputError(f"reference {spec!r}: expected 'pyscf:FUNCTIONAL/BASIS'")
            options = {"functional": functional, "basis": basis, **options}
        return PySCFReference(**options)
    if lower.startswith("ase:"):
        path, _, kwargs_json = text[4:].partition("@")
        kwargs = dict(options)
        if kwargs_json:
            try:
                kwargs.update(json.loads(kwargs_json))
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"reference {spec!r}: calculator arguments are not valid JSON ({exc})"
                ) from exc
        return ASECalculatorReference(path, **kwargs)
    raise InputError(
        f"unknown reference method {spec!r}; use 'xtb', 'pyscf[:FUNC/BASIS]' or 'ase:module:Class'"
    )
