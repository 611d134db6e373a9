"""Gas-phase band shapes: the rotational contour of a vibrational band, classical rigid rotor.

A gas-phase IR band is not a line: the molecule rotates while it vibrates, and the band is
spread over its rotational P, Q and R branches. The shape depends on how the transition
dipole of the mode lies in the molecule's principal-axis frame (a-, b- or c-type band) and on
the moments of inertia. A band whose transition dipole lies along the axis of a linear
molecule has P and R branches and no Q branch; a dipole perpendicular to it adds a sharp Q
branch; an asymmetric top mixes these.

At room temperature the populated rotational levels are dense enough (B << kT for every
molecule heavier than H2) that the classical limit gives the band envelope: the spectrum
of a body-fixed unit vector carried by a freely rotating rigid body,

    S_alpha(dnu) = FT[ <e_alpha(0) . e_alpha(t)> ](dnu),

averaged over Boltzmann-distributed angular momenta, for the principal axes a, b, c in
order of ascending moment. The free-rotor dynamics of an asymmetric top has no closed form,
so the correlation is computed here by integrating the rigid-body rotation of a set of
rotors (numpy, vectorised over rotors; no library offers classical rotational contours).
Resolved rotational lines (water, ammonia, methane) are beyond this limit; their envelope
is still given.

The contour is combined with a Gaussian line shape of a chosen FWHM in the time domain
(a product there is the convolution of the two shapes), which also sets how long the
correlation must be followed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from ase import Atoms
from ase import units as ase_units

from specml import checks
from specml.errors import InputError
from specml.units import KB_EV_PER_K, SPEED_OF_LIGHT_CM_PER_FS

N_ROTORS = 400  # directions of the angular momentum sampled (speeds are integrated, not sampled)
CHI_MAX = 4.5  # speeds up to 4.5x the reference: the chi(3) tail beyond holds 1.5e-4 of the rotors
CHI_NODES = 400
ROTOR_SEED = 20261122  # fixed: a contour is a property of the molecule, not of the draw
STEPS_PER_PERIOD = 60  # integration steps per rotation of the fastest reference rotor
MAX_TIMESTEP_FS = 10.0
GAUSSIAN_TAIL = 1e-6  # the correlation is followed until the Gaussian's time envelope drops below this
LINEAR_TOLERANCE = 1e-3  # a moment below this x the largest is the axis of a linear molecule
# The classical contour is an envelope: finer resolutions would show rotational lines it does not
# have, and the rotors would have to be followed for ever longer (time ~ 1 / FWHM).
MIN_FWHM_CM1 = 1.0


def principal_axes(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Principal moments of inertia (amu Å^2, ascending) and the axes as rows, (3,) and (3, 3)."""
    moments, axes = atoms.get_moments_of_inertia(vectors=True)
    order = np.argsort(moments)
    return np.asarray(moments)[order], np.asarray(axes)[order]


def band_axis_weights(atoms: Atoms, transition_dipoles: np.ndarray) -> np.ndarray:
    """Share of each mode's intensity along the principal axes a, b, c: (n_modes, 3), rows sum to 1.

    ``transition_dipoles`` are d mu / d Q per mode in the Cartesian frame of ``atoms``, (n_modes, 3).
    A mode without intensity gets equal shares (its band has no weight anyway).
    """
    _, axes = principal_axes(atoms)
    projected = np.asarray(transition_dipoles, dtype=float) @ axes.T
    squared = projected**2
    total = squared.sum(axis=1, keepdims=True)
    return np.where(total > 0, squared / np.where(total > 0, total, 1.0), 1.0 / 3.0)


def _rotation_matrices(rotation_vectors: np.ndarray) -> np.ndarray:
    """exp([v]x) for each row of ``rotation_vectors`` (Rodrigues' formula), (n, 3, 3)."""
    angle = np.linalg.norm(rotation_vectors, axis=1)
    safe = np.where(angle > 0, angle, 1.0)
    k = rotation_vectors / safe[:, None]
    cross = np.zeros((len(k), 3, 3))
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    cross[:, 1, 0], cross[:, 2, 0], cross[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    sin, cos = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3)[None] + sin * cross + (1.0 - cos) * cross @ cross


def rotational_correlations(
    moments_amu_a2, temperature_k: float, duration_fs: float, n_rotors: int = N_ROTORS, seed: int = ROTOR_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Times (fs) and <e_alpha(0) . e_alpha(t)> for the three principal axes, (n_t,) and (3, n_t).

    Free classical rigid rotors with Boltzmann angular momenta at ``temperature_k``. A free
    rotor with angular momentum rho L follows the path of the one with L, rho times faster.
    Under a Boltzmann distribution, the size rho of L along any direction is chi-distributed
    with three degrees of freedom, independently of the direction. So only the directions
    are sampled, each at a reference size, and the speeds are integrated by quadrature (chi with
    two degrees of freedom for a linear molecule):

        C(t) = int p_chi3(rho) c_ref(rho t) d rho.

    That integral removes most of the sampling noise a plain ensemble would leave in the band
    shape (measured: 1000 plain rotors left 5-10 % ripples at 4 cm-1 resolution).

    The body frame carries the angular momentum; each step rotates the body by exp(omega dt)
    and the body-frame L by its inverse, so the lab-frame L is conserved exactly. A zero
    moment (the axis of a linear molecule) gets no angular momentum.
    """
    moments = np.asarray(moments_amu_a2, dtype=float)
    rotating = moments > LINEAR_TOLERANCE * moments.max()
    kt = KB_EV_PER_K * temperature_k  # eV; amu, Å, eV make ASE's time unit
    inverse = np.where(rotating, 1.0 / np.where(rotating, moments, 1.0), 0.0)
    rng = np.random.default_rng(seed)
    momentum = rng.normal(size=(n_rotors, 3)) * np.sqrt(np.where(rotating, moments, 0.0) * kt)
    # Reference size rho = 1: L / sqrt(sum L_alpha^2 / (I_alpha kT)).
    momentum /= np.sqrt(np.sum(momentum**2 * inverse / kt, axis=1, keepdims=True))
    speed = np.linalg.norm(momentum * inverse, axis=1).max() * ase_units.fs  # rad/fs
    dt = min(MAX_TIMESTEP_FS, 2 * math.pi / speed / STEPS_PER_PERIOD)
    n_steps = math.ceil(CHI_MAX * duration_fs / dt)
    orientation = np.broadcast_to(np.eye(3), (n_rotors, 3, 3)).copy()
    reference = np.empty((3, n_steps + 1))
    for step in range(n_steps + 1):
        # e_alpha . R(t) e_alpha is the diagonal of R: lab frame = body frame at t = 0
        reference[:, step] = np.einsum("nii->i", orientation) / n_rotors
        step_rotation = _rotation_matrices(momentum * inverse * ase_units.fs * dt)
        orientation = orientation @ step_rotation
        momentum = np.einsum("nji,nj->ni", step_rotation, momentum)
    reference_times = np.arange(n_steps + 1) * dt
    rho = np.linspace(0.0, CHI_MAX, CHI_NODES)
    weights = rho ** (rotating.sum() - 1) * np.exp(-0.5 * rho**2)  # chi with one degree per rotating axis
    weights /= weights.sum()
    times = reference_times[reference_times <= duration_fs + 0.5 * dt]
    scaled = np.minimum(rho[:, None] * times[None, :], reference_times[-1])  # (n_rho, n_t)
    correlation = np.stack(
        [weights @ np.interp(scaled, reference_times, reference[axis]) for axis in range(3)]
    )
    return times, correlation


_CORRELATIONS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _correlations_for(
    moments: tuple, temperature_k: float, duration_fs: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rotational_correlations` up to ``duration_fs``, from a longer run of the same rotors if one is cached.

    The time step depends only on the moments and temperature, and the rotors are seeded, so a
    shorter run is a prefix of a longer one.
    """
    key = (moments, temperature_k)
    cached = _CORRELATIONS.get(key)
    if cached is None or cached[0][-1] < duration_fs:
        cached = _CORRELATIONS[key] = rotational_correlations(moments, temperature_k, duration_fs)
    times, correlation = cached
    keep = int(np.searchsorted(times, duration_fs)) + 1
    return times[:keep], correlation[:, :keep]


@lru_cache(maxsize=512)
def _band_profiles_cached(
    moments: tuple, temperature_k: float, fwhm_cm1: float, step_cm1: float
) -> tuple[np.ndarray, np.ndarray]:
    sigma_cm1 = fwhm_cm1 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    # Time envelope of a Gaussian line of that width: exp(-(2 pi c sigma t)^2 / 2)
    rate = 2 * math.pi * SPEED_OF_LIGHT_CM_PER_FS * sigma_cm1
    duration = math.sqrt(-2.0 * math.log(GAUSSIAN_TAIL)) / rate
    times, correlation = _correlations_for(moments, temperature_k, duration)
    envelope = np.exp(-0.5 * (rate * times) ** 2)
    inertia = np.asarray(moments)
    smallest = inertia[inertia > LINEAR_TOLERANCE * inertia.max()].min()
    rotor_cm1 = (
        math.sqrt(KB_EV_PER_K * temperature_k / smallest)
        * ase_units.fs
        / (2 * math.pi * SPEED_OF_LIGHT_CM_PER_FS)
    )
    half_width = 6.0 * rotor_cm1 + 5.0 * sigma_cm1
    offsets = np.arange(-np.ceil(half_width / step_cm1), np.ceil(half_width / step_cm1) + 1) * step_cm1
    phase = np.cos(2 * math.pi * SPEED_OF_LIGHT_CM_PER_FS * offsets[:, None] * times[None, :])
    weights = np.full(len(times), times[1] - times[0])
    weights[0] *= 0.5  # trapezoid rule on [0, duration]; C(t) is even in t
    profiles = 2.0 * (correlation * envelope * weights) @ phase.T
    profiles = np.clip(profiles, 0.0, None)  # sampling noise in the far wings
    profiles /= profiles.sum(axis=1, keepdims=True) * step_cm1  # unit area
    return offsets, profiles


def check_contour_settings(fwhm_cm1: float, temperature_k: float) -> None:
    """Raise :class:`InputError` unless a contour can be computed at this resolution and temperature."""
    if not fwhm_cm1 >= MIN_FWHM_CM1:
        raise InputError(
            f"a rotational contour needs a resolution of at least {MIN_FWHM_CM1:g} cm-1 FWHM "
            f"(got {fwhm_cm1}): it is the envelope of the rotational lines, not the lines"
        )
    checks.temperature("rotational temperature", temperature_k)


def band_profiles(
    moments_amu_a2, temperature_k: float, fwhm_cm1: float, step_cm1: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Line shapes of a-, b- and c-type bands: the rotational contour convolved with a Gaussian of ``fwhm_cm1``.

    Returns offsets from the band centre (cm-1) and the three shapes, (n,) and (3, n), each of
    unit area. Cached per molecule (moments rounded to 1e-4 amu Å^2), temperature and width.
    """
    check_contour_settings(fwhm_cm1, temperature_k)
    moments = tuple(round(float(m), 4) for m in np.sort(np.asarray(moments_amu_a2, dtype=float)))
    return _band_profiles_cached(moments, float(temperature_k), float(fwhm_cm1), float(step_cm1))


def contour_broadened_sticks(
    positions_cm1,
    intensities,
    axis_weights,
    moments_amu_a2,
    grid_cm1,
    fwhm_cm1: float,
    temperature_k: float = 298.0,
) -> np.ndarray:
    """Gas-phase spectrum on ``grid_cm1``: every stick spread over its band's rotational contour.

    The area of each band is its intensity, as with :func:`specml.spectra.broadening.broaden_sticks`.
    ``axis_weights`` (n_sticks, 3) come from :func:`band_axis_weights`.
    """
    grid = np.asarray(grid_cm1, dtype=float)
    positions = np.asarray(positions_cm1, dtype=float)
    if positions.size == 0:
        return np.zeros_like(grid)
    step = float(np.min(np.diff(grid))) if grid.size > 1 else 1.0
    offsets, profiles = band_profiles(moments_amu_a2, temperature_k, fwhm_cm1, min(step, 1.0))
    shifted = grid[:, None] - positions[None, :]  # (n_grid, n_sticks)
    shape = sum(
        np.interp(shifted, offsets, profiles[axis], left=0.0, right=0.0)
        * np.asarray(axis_weights, dtype=float)[None, :, axis]
        for axis in range(3)
    )
    return shape @ np.asarray(intensities, dtype=float)
