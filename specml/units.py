"""Physical constants and unit conversions, all explicit.

Internal conventions (those of ASE): length Å, energy eV, time fs (via
``ase.units.fs``), mass amu, dipole e·Å. Spectra use wavenumbers in cm-1.
"""

from __future__ import annotations

import math

from ase import units as ase_units

#: Speed of light in cm/s.
SPEED_OF_LIGHT_CM_PER_S = 2.99792458e10
#: Speed of light in cm/fs, to turn a frequency in 1/fs into cm-1.
SPEED_OF_LIGHT_CM_PER_FS = SPEED_OF_LIGHT_CM_PER_S * 1e-15
#: 1 Debye in e·Å.
DEBYE_IN_E_ANGSTROM = 0.20819433622
#: 1 e·Å in Debye.
E_ANGSTROM_IN_DEBYE = 1.0 / DEBYE_IN_E_ANGSTROM
#: Boltzmann constant in eV/K.
KB_EV_PER_K = ase_units.kB
#: Boltzmann constant in cm-1/K.
KB_CM1_PER_K = 0.695034800
#: Planck constant times c in eV·cm (E[eV] = HC_EV_CM * wavenumber[cm-1]).
HC_EV_CM = 1.239841984e-4
#: Hartree in eV and Bohr in Å (used by the PySCF wrapper).
HARTREE_EV = ase_units.Hartree
BOHR_ANGSTROM = ase_units.Bohr
#: Conversion of an IR intensity |dmu/dQ|^2 in (D/Å)^2/amu to km/mol
#: (same factor as ase.vibrations.Infrared).
IR_INTENSITY_D2_A2_AMU_TO_KM_PER_MOL = 42.255
#: Wavenumber (cm-1) of a mass-weighted Hessian eigenvalue of 1 eV/(Å^2 amu):
#: sqrt(e / (1e-20 m^2 * amu)) / (2 pi c), about 521.47.
HESSIAN_EIGENVALUE_TO_CM1 = (ase_units._e / (1e-20 * ase_units._amu)) ** 0.5 / (
    2.0 * math.pi * SPEED_OF_LIGHT_CM_PER_S
)


def debye(dipole_e_angstrom):
    """Dipole in e·Å to Debye."""
    return dipole_e_angstrom * E_ANGSTROM_IN_DEBYE


def fs_to_ase_time(t_fs: float) -> float:
    """Time in fs to ASE's internal time unit."""
    return t_fs * ase_units.fs


#: Atomic unit of polarizability (e^2 a0^2 / Eh) as a polarizability volume: a0^3 = 0.14818471 Å^3.
POLARIZABILITY_AU_TO_A3 = ase_units.Bohr**3
