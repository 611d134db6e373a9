"""Harmonic Raman: polarizability derivatives along the normal modes, activities, depolarisation
ratios and cross sections.

The modes come from :mod:`specml.spectra.harmonic`; the polarizability (Å^3) from the reference's
:meth:`~specml.reference.base.ReferenceMethod.polarizability`. Each derivative d alpha / d Q_k is
a central difference of two structures displaced along mode k, so a molecule costs 2(3N-6)
polarizabilities rather than the 6N of Cartesian displacements; they fan out through specml's
executor like the Hessian's finite differences.

Conventions (those of Gaussian, ORCA and ASE's ``Raman``): Q is the mass-weighted normal
coordinate (amu^1/2 Å), so d alpha / d Q is in Å^2 amu^-1/2 and the activity

    S_k = 45 a'^2 + 7 gamma'^2                        (Å^4/amu)

with the mean polarizability derivative a' = tr(alpha') / 3 and the anisotropy

    gamma'^2 = ((a'xx - a'yy)^2 + (a'yy - a'zz)^2 + (a'zz - a'xx)^2) / 2
               + 3 (a'xy^2 + a'yz^2 + a'zx^2).

The depolarisation ratio for plane-polarised light is rho_k = 3 gamma'^2 / (45 a'^2 + 4 gamma'^2):
0.75 for a mode that is not totally symmetric (a' = 0), below it for a totally symmetric one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from specml.spectra.broadening import broaden_sticks
from specml.spectra.harmonic import HarmonicResult, map_displaced
from specml.spectra.spectrum import Spectrum

#: Largest atomic displacement (Å) of a normal-mode step: the size of a Cartesian finite-difference
#: step of the Hessian, where the polarizability's anharmonicity (~step^2) stays below 1e-4 relative.
MODE_STEP_A = 0.01

# SI constants for the cross section (CODATA 2018).
_PLANCK_J_S = 6.62607015e-34
_SPEED_OF_LIGHT_CM_S = 2.99792458e10
_BOLTZMANN_J_K = 1.380649e-23
_AMU_KG = 1.66053906660e-27


@dataclass
class RamanResult:
    """Harmonic Raman of one structure, mode by mode as in ``harmonic``.

    Attributes:
        harmonic: the normal modes (frequencies, IR intensities, modes).
        polarizability: the equilibrium polarizability, Å^3, (3, 3).
        polarizability_derivatives: d alpha / d Q_k in Å^2 amu^-1/2, (n_modes, 3, 3).
    """

    harmonic: HarmonicResult
    polarizability: np.ndarray
    polarizability_derivatives: np.ndarray

    @property
    def frequencies_cm1(self) -> np.ndarray:
        return self.harmonic.frequencies_cm1

    @property
    def activities(self) -> np.ndarray:
        """Raman activities 45 a'^2 + 7 gamma'^2 in Å^4/amu, (n_modes,)."""
        return raman_activities(self.polarizability_derivatives)

    @property
    def depolarization_ratios(self) -> np.ndarray:
        """Depolarisation ratios for plane-polarised light (0 to 0.75), (n_modes,); NaN for a mode
        with no Raman activity, whose ratio is undefined."""
        return depolarization_ratios(self.polarizability_derivatives)

    def cross_sections(self, laser_nm: float = 532.0, temperature_k: float = 298.15) -> np.ndarray:
        """Differential Raman cross sections in cm^2/sr, (n_modes,); zero for imaginary modes."""
        return raman_cross_sections(self.frequencies_cm1, self.activities, laser_nm, temperature_k)

    def spectrum(
        self,
        fwhm: float = 10.0,
        shape: str = "lorentzian",
        lo: float = 100.0,
        hi: float = 4000.0,
        step: float = 1.0,
        frequency_scale: float = 1.0,
        laser_nm: float | None = None,
        temperature_k: float = 298.15,
    ) -> Spectrum:
        """Broadened Raman spectrum on ``lo..hi`` cm-1 (Raman shift). The area of each line is its
        activity (Å^4/amu), or with ``laser_nm`` its cross section in 1e-30 cm^2/sr at
        ``temperature_k``. Imaginary modes are left out."""
        frequencies = self.frequencies_cm1
        real = frequencies > 0
        if laser_nm is None:
            heights, units = self.activities, "A^4/amu per cm-1"
        else:
            heights, units = self.cross_sections(laser_nm, temperature_k) * 1e30, "1e-30 cm^2/sr per cm-1"
        grid = np.arange(lo, hi + 0.5 * step, step)
        intensity = broaden_sticks(frequencies[real] * frequency_scale, heights[real], grid, fwhm, shape)
        method = self.harmonic.method
        return Spectrum(
            grid,
            intensity,
            metadata={
                "source": "harmonic raman",
                "technique": "raman",
                "method": method,
                "label": f"harmonic Raman {method}".strip(),
                "formula": self.harmonic.atoms.get_chemical_formula(),
                "intensity_units": units,
                "resolution_cm1": fwhm,
                "line_shape": shape,
                "frequency_scale": frequency_scale,
                "laser_nm": laser_nm,
                "temperature_k": temperature_k if laser_nm is not None else None,
            },
        )


def raman_invariants(dalpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean a'^2 and anisotropy gamma'^2 of polarizability derivatives (..., 3, 3), in their units squared."""
    d = np.asarray(dalpha, dtype=float)
    d = 0.5 * (d + np.swapaxes(d, -1, -2))  # the antisymmetric part is finite-difference noise
    mean = np.trace(d, axis1=-2, axis2=-1) / 3.0
    xx, yy, zz = d[..., 0, 0], d[..., 1, 1], d[..., 2, 2]
    off = d[..., 0, 1] ** 2 + d[..., 1, 2] ** 2 + d[..., 0, 2] ** 2
    gamma2 = 0.5 * ((xx - yy) ** 2 + (yy - zz) ** 2 + (zz - xx) ** 2) + 3.0 * off
    return mean**2, gamma2


def raman_activities(dalpha: np.ndarray) -> np.ndarray:
    """45 a'^2 + 7 gamma'^2 (Å^4/amu for d alpha / d Q in Å^2 amu^-1/2)."""
    a2, gamma2 = raman_invariants(dalpha)
    return 45.0 * a2 + 7.0 * gamma2


def depolarization_ratios(dalpha: np.ndarray) -> np.ndarray:
    """3 gamma'^2 / (45 a'^2 + 4 gamma'^2), NaN where both invariants vanish (Raman inactive)."""
    a2, gamma2 = raman_invariants(dalpha)
    denominator = 45.0 * a2 + 4.0 * gamma2
    scale = max(float(np.max(denominator, initial=0.0)), 1e-300)
    # A mode below 1e-8 of the strongest is inactive within finite-difference noise (CO2's bends:
    # 1e-10 relative with B3LYP); its ratio would be the noise's.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-8 * scale, 3.0 * gamma2 / denominator, np.nan)


def raman_cross_sections(
    frequencies_cm1: np.ndarray, activities: np.ndarray, laser_nm: float, temperature_k: float
) -> np.ndarray:
    """Differential Raman cross sections (cm^2/sr) of Stokes lines, for 90-degree scattering summed
    over both polarisations (as the activity is):

        d sigma_k / d Omega = (2 pi)^4 / 45 * h / (8 pi^2 c nu_k) * (nu_0 - nu_k)^4 * S_k
                              / (1 - exp(-h c nu_k / (k T)))

    with wavenumbers nu (nu_0 = 1e7 / laser_nm), S_k the activity and the last factor the Bose
    (thermal population) factor (Polavarapu, J. Phys. Chem. 94, 8106 (1990)). All in CGS: S in
    cm^4/g, since the activity's polarizability is a volume. Imaginary modes and lines beyond the
    laser (nu_k >= nu_0) get zero.
    """
    nu = np.asarray(frequencies_cm1, dtype=float)
    activity_cgs = np.asarray(activities, dtype=float) * 1e-32 / (_AMU_KG * 1e3)  # Å^4/amu -> cm^4/g
    nu0 = 1e7 / laser_nm
    h_cgs = _PLANCK_J_S * 1e7  # erg s
    valid = (nu > 0) & (nu < nu0)
    safe = np.where(valid, nu, 1.0)
    bose = -np.expm1(-_PLANCK_J_S * _SPEED_OF_LIGHT_CM_S * safe / (_BOLTZMANN_J_K * temperature_k))
    sigma = (
        (2 * np.pi) ** 4
        / 45.0
        * h_cgs
        / (8 * np.pi**2 * _SPEED_OF_LIGHT_CM_S * safe)
        * (nu0 - safe) ** 4
        * activity_cgs
        / bose
    )
    return np.where(valid, sigma, 0.0)


def mode_displacements(
    harmonic: HarmonicResult, step_a: float = MODE_STEP_A
) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian displacements (n_modes, N, 3) in Å along each mode whose largest atomic displacement
    is ``step_a``, and the matching steps of the mass-weighted coordinate Q (amu^1/2 Å), (n_modes,)."""
    atoms = harmonic.atoms
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    # x = x0 + Q L_k / sqrt(m): Q = 1 moves atom by L_k,i / sqrt(m_i) Å.
    unit_q = (harmonic.mass_weighted_modes * inv_sqrt_m[None, :]).reshape(-1, len(atoms), 3)
    largest = np.linalg.norm(unit_q, axis=2).max(axis=1)
    q_steps = step_a / largest
    return unit_q * q_steps[:, None, None], q_steps


def _polarizability_task(args):
    reference, atoms = args
    return reference.polarizability(atoms)


def polarizability_derivatives(
    harmonic: HarmonicResult, reference, step_a: float = MODE_STEP_A, executor=None
) -> np.ndarray:
    """d alpha / d Q_k (Å^2 amu^-1/2, (n_modes, 3, 3)) by central differences along each mode,
    2 x n_modes polarizabilities through ``executor``."""
    from specml.reference import make_reference

    reference = make_reference(reference)
    atoms = harmonic.atoms
    reference.check_elements(atoms, atoms.get_chemical_formula())
    displacements, q_steps = mode_displacements(harmonic, step_a)
    tasks = []
    for displacement in displacements:
        for sign in (+1, -1):
            displaced = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions + sign * displacement)
            tasks.append((reference, displaced))
    values = map_displaced(_polarizability_task, tasks, f"Raman {atoms.get_chemical_formula()}", executor)
    alphas = np.array(values).reshape(len(q_steps), 2, 3, 3)
    return (alphas[:, 0] - alphas[:, 1]) / (2 * q_steps[:, None, None])


def raman_from_harmonic(
    harmonic: HarmonicResult, reference, step_a: float = MODE_STEP_A, executor=None
) -> RamanResult:
    """Harmonic Raman of the modes in ``harmonic`` with the polarizability of ``reference``
    (normally the reference that gave the modes)."""
    from specml.reference import make_reference

    reference = make_reference(reference)
    alpha = reference.polarizability(harmonic.atoms)
    derivatives = polarizability_derivatives(harmonic, reference, step_a, executor)
    return RamanResult(harmonic, alpha, derivatives)


def harmonic_raman(
    atoms: Atoms, reference="xtb", delta: float = 0.01, step_a: float = MODE_STEP_A, executor=None
) -> RamanResult:
    """Normal modes (:func:`~specml.spectra.harmonic.harmonic_analysis`, Cartesian step ``delta`` Å)
    and Raman of ``atoms``, which should be optimised with the same reference."""
    from specml.reference import make_reference
    from specml.spectra.harmonic import harmonic_analysis

    reference = make_reference(reference)
    harmonic = harmonic_analysis(atoms, reference, delta, executor=executor)
    return raman_from_harmonic(harmonic, reference, step_a, executor)
