"""Exception hierarchy. Every error a user can cause is a :class:`SpecmlError`.

The CLI turns these into a one-line message and a non-zero exit code; library
users can catch them specifically.
"""

from __future__ import annotations


class SpecmlError(Exception):
    """Base class of all errors specml raises on purpose."""


class InputError(SpecmlError):
    """Bad user input: a missing or empty file, a malformed option."""


class MoleculeError(InputError):
    """A molecule cannot be built: invalid SMILES, empty structure file."""


class UnsupportedElementError(MoleculeError):
    """A structure contains an element the method (or model) cannot treat."""

    def __init__(self, message: str, elements: list[str] | None = None):
        super().__init__(message)
        self.elements = sorted(elements or [])


class ReferenceError_(SpecmlError):
    """A reference (QM) calculation failed."""

    def __init__(self, message: str, atoms=None):
        super().__init__(message)
        self.atoms = atoms


class SCFConvergenceError(ReferenceError_):
    """The SCF did not converge; carries the offending structure in ``.atoms``."""


class SpectrumFormatError(SpecmlError):
    """A spectrum file is malformed or not an IR spectrum specml can use."""


class ModelError(SpecmlError):
    """A trained model is missing, inconsistent, or asked outside its domain."""


class RunDirectoryInUseError(SpecmlError):
    """Another process is working in the same run directory."""


class DynamicsError(SpecmlError):
    """Molecular dynamics became unphysical (blow-up, sanity stop)."""


# Public name without the trailing underscore; the underscore avoids shadowing
# Python's built-in ``ReferenceError`` inside this module.
ReferenceCalculationError = ReferenceError_
