"""Harmonic IR: Hessian and dipole derivatives from any reference, analytic where it has them.

A reference with analytic second derivatives (PySCF DFT: the Hessian and the dipole
derivatives from one nuclear CPKS response) gives them in one call. Every other reference
goes through central finite differences, written here rather than with
``ase.vibrations.Infrared`` because one reference call gives forces and dipole together,
the 6N displaced calculations fan out through specml's executor (Dask when configured), and
translations/rotations are projected out (Eckart) so low-frequency modes are clean. The
result agrees with ASE's ``Vibrations`` (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from specml.errors import InputError, ReferenceCalculationError
from specml.spectra.broadening import broaden_sticks
from specml.spectra.spectrum import Spectrum
from specml.units import E_ANGSTROM_IN_DEBYE, HESSIAN_EIGENVALUE_TO_CM1, IR_INTENSITY_D2_A2_AMU_TO_KM_PER_MOL


@dataclass
class HarmonicResult:
    """Normal modes of one structure. Only vibrational modes are kept (3N-6, or 3N-5 if linear).

    Attributes:
        atoms: the (optimised) structure analysed.
        frequencies_cm1: vibrational wavenumbers, ascending; imaginary ones negative.
        intensities_km_mol: IR intensities |dmu/dQ|^2 in km/mol.
        modes: Cartesian displacement patterns, shape (n_modes, N, 3), each of unit norm.
        mass_weighted_modes: orthonormal eigenvectors of the mass-weighted Hessian, (n_modes, 3N).
        hessian: Cartesian Hessian in eV/Å^2, (3N, 3N).
        dipole_derivatives: d mu / d x in e (e·Å per Å), (3N, 3).
        derivatives: how they were obtained, "analytic" or "finite differences".
    """

    atoms: Atoms
    frequencies_cm1: np.ndarray
    intensities_km_mol: np.ndarray
    modes: np.ndarray
    mass_weighted_modes: np.ndarray
    hessian: np.ndarray
    dipole_derivatives: np.ndarray
    method: str = ""
    derivatives: str = "finite differences"

    @property
    def transition_dipoles(self) -> np.ndarray:
        """d mu / d Q of every mode in e / sqrt(amu), (n_modes, 3), in the frame of ``atoms``."""
        return transition_dipoles(self.atoms, self.mass_weighted_modes, self.dipole_derivatives)

    def spectrum(
        self,
        fwhm: float = 10.0,
        shape: str = "lorentzian",
        lo: float = 400.0,
        hi: float = 4000.0,
        step: float = 1.0,
        frequency_scale: float = 1.0,
        rotational_temperature_k: float | None = None,
    ) -> Spectrum:
        """Broadened stick spectrum on ``lo..hi`` cm-1 (area of each line = its km/mol).

        With ``rotational_temperature_k``, every band is spread over its gas-phase rotational
        contour at that temperature (:mod:`specml.spectra.rotational_contour`, from the
        transition dipole's direction in the principal-axis frame), and ``fwhm`` is a Gaussian
        resolution on top of it.
        """
        axis_weights = None
        if rotational_temperature_k is not None:
            from specml.spectra.rotational_contour import band_axis_weights

            axis_weights = band_axis_weights(self.atoms, self.transition_dipoles)
        return stick_spectrum(
            self.frequencies_cm1,
            self.intensities_km_mol,
            self.atoms,
            self.method,
            fwhm,
            shape,
            lo,
            hi,
            step,
            frequency_scale,
            axis_weights,
            rotational_temperature_k,
        )


def stick_spectrum(
    frequencies_cm1,
    intensities_km_mol,
    atoms: Atoms,
    method: str,
    fwhm: float,
    shape: str,
    lo: float,
    hi: float,
    step: float,
    frequency_scale: float,
    axis_weights=None,
    rotational_temperature_k: float | None = None,
) -> Spectrum:
    """Real sticks broadened on ``lo..hi`` cm-1 (area of each line = its km/mol); imaginary ones are left out.

    With ``rotational_temperature_k`` (and the bands' ``axis_weights``), each band has the
    rotational contour of ``atoms`` convolved with a Gaussian of ``fwhm``; ``shape`` must then be gaussian.
    """
    grid = np.arange(lo, hi + 0.5 * step, step)
    real = frequencies_cm1 > 0
    positions = frequencies_cm1[real] * frequency_scale
    if rotational_temperature_k is None:
        intensity = broaden_sticks(positions, intensities_km_mol[real], grid, fwhm, shape)
    else:
        from specml.spectra.rotational_contour import contour_broadened_sticks, principal_axes

        if shape != "gaussian":
            raise InputError(
                f"a rotational contour is combined with a Gaussian resolution; got line shape {shape!r}"
            )
        moments, _ = principal_axes(atoms)
        intensity = contour_broadened_sticks(
            positions,
            intensities_km_mol[real],
            np.asarray(axis_weights)[real],
            moments,
            grid,
            fwhm,
            rotational_temperature_k,
        )
    return Spectrum(
        grid,
        intensity,
        metadata={
            "source": "harmonic",
            "method": method,
            "label": f"harmonic {method}".strip(),
            "formula": atoms.get_chemical_formula(),
            "intensity_units": "km/mol per cm-1",
            "resolution_cm1": fwhm,
            "line_shape": shape,
            "frequency_scale": frequency_scale,
            "rotational_temperature_k": rotational_temperature_k,
        },
    )


def _displaced_label(args):
    reference, atoms = args
    label = reference.label(atoms)
    return label.forces, label.dipole


def displaced_structures(atoms: Atoms, delta: float = 0.01) -> list[Atoms]:
    """The 6N structures of central differences: each coordinate +delta then -delta (Å)."""
    structures = []
    for index in range(3 * len(atoms)):
        for sign in (+1, -1):
            displaced = atoms.copy()
            displaced.positions[index // 3, index % 3] += sign * delta
            structures.append(displaced)
    return structures


def derivatives_from_displacements(forces, dipoles, delta: float = 0.01):
    """Hessian (eV/Å^2) and dipole derivatives (e) from the forces (6N, N, 3) and dipoles (6N, 3)
    of :func:`displaced_structures`, in that order."""
    forces = np.asarray(forces, dtype=float)
    n3 = forces.shape[0] // 2
    forces = forces.reshape(n3, 2, n3)
    dipoles = np.asarray(dipoles, dtype=float).reshape(n3, 2, 3)
    hessian = -(forces[:, 0] - forces[:, 1]) / (2 * delta)
    hessian = 0.5 * (hessian + hessian.T)
    return hessian, (dipoles[:, 0] - dipoles[:, 1]) / (2 * delta)


def map_displaced(fn: Callable, tasks: list, description: str, executor=None) -> list:
    """``fn`` of every (reference, displaced structure) task through ``executor``, in order; the
    first failure raised as a :class:`ReferenceCalculationError`."""
    from specml.executor import make_executor

    executor = executor or make_executor(show_progress=False)
    results = executor.map(fn, tasks, description=description)
    for result in results:
        if not result.ok:
            if isinstance(result.error, ReferenceCalculationError):
                raise result.error
            raise ReferenceCalculationError(f"displaced calculation failed: {result.error}") from result.error
    return [result.value for result in results]


def finite_differences(atoms: Atoms, reference, delta: float = 0.01, executor=None):
    """Hessian (eV/Å^2) and dipole derivatives (e) by central differences of step ``delta`` Å."""
    from specml.reference import make_reference

    reference = make_reference(reference)
    reference.check_elements(atoms, atoms.get_chemical_formula())
    tasks = [(reference, displaced) for displaced in displaced_structures(atoms, delta)]
    values = map_displaced(_displaced_label, tasks, f"Hessian {atoms.get_chemical_formula()}", executor)
    return derivatives_from_displacements([v[0] for v in values], [v[1] for v in values], delta)


def rigid_body_basis(atoms: Atoms) -> np.ndarray:
    """Orthonormal mass-weighted translation and rotation vectors, shape (k, 3N), k = 5 or 6."""
    masses = atoms.get_masses()
    sqrt_m = np.sqrt(masses)
    centred = atoms.positions - atoms.get_center_of_mass()
    vectors = []
    for axis in range(3):
        t = np.zeros((len(atoms), 3))
        t[:, axis] = sqrt_m
        vectors.append(t.ravel())
    for unit in np.eye(3):
        vectors.append((np.cross(unit, centred) * sqrt_m[:, None]).ravel())
    # Gram-Schmidt via SVD; a linear molecule has one null rotation, dropped by rank. The rank
    # tolerance is loose: an optimised "linear" molecule is straight only to ~1e-4 Å (HC≡CCl with
    # B3LYP: singular value ratio 2e-5), and keeping that rotation removed half of a degenerate bend.
    # A bent molecule's ratio is far above it (propyne: 0.23).
    u, s, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    return u[:, s > 1e-3 * s.max()].T


def normal_modes(atoms: Atoms, hessian: np.ndarray, project: bool = True):
    """Eigen-analysis of the mass-weighted Hessian. Returns (wavenumbers_cm1, mass-weighted vectors),
    vibrational modes only, ascending."""
    masses = np.repeat(atoms.get_masses(), 3)
    inv_sqrt_m = 1.0 / np.sqrt(masses)
    mw = hessian * inv_sqrt_m[:, None] * inv_sqrt_m[None, :]
    rigid = rigid_body_basis(atoms)
    if project:
        projector = np.eye(len(masses)) - rigid.T @ rigid
        mw = projector @ mw @ projector
    eigenvalues, eigenvectors = np.linalg.eigh(mw)
    # Drop the modes that overlap most with rigid-body motion (k of them).
    overlap = np.linalg.norm(rigid @ eigenvectors, axis=0)
    vibrational = np.sort(np.argsort(overlap)[: len(masses) - len(rigid)])
    eigenvalues = eigenvalues[vibrational]
    vectors = eigenvectors[:, vibrational].T
    wavenumbers = np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * HESSIAN_EIGENVALUE_TO_CM1
    order = np.argsort(wavenumbers)
    return wavenumbers[order], vectors[order]


def harmonic_analysis(
    atoms: Atoms, reference="xtb", delta: float = 0.01, project: bool = True, executor=None
) -> HarmonicResult:
    """Harmonic frequencies and IR intensities of ``atoms`` (which should be optimised).

    Analytic second derivatives when the reference has them, else central differences of
    step ``delta`` Å through ``executor``.
    """
    from specml.reference import make_reference

    reference = make_reference(reference)
    hessian, dmu_dx, analytic = reference_derivatives(atoms, reference, delta, executor)
    result = harmonic_from_derivatives(atoms, hessian, dmu_dx, project, reference.describe())
    if analytic:
        result.derivatives = "analytic"
    return result


def reference_derivatives(
    atoms: Atoms, reference, delta: float = 0.01, executor=None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Hessian (eV/Å^2), dipole derivatives (e) and whether they are analytic.

    Analytic when the reference has second derivatives (PySCF closed-shell DFT), else central
    differences of step ``delta`` Å, 6N reference calls through ``executor``.
    """
    analytic = reference.second_derivatives(atoms)
    if analytic is not None:
        return analytic[0], analytic[1], True
    hessian, dmu_dx = finite_differences(atoms, reference, delta, executor)
    return hessian, dmu_dx, False


def harmonic_from_derivatives(
    atoms: Atoms, hessian: np.ndarray, dipole_derivatives: np.ndarray, project: bool = True, method: str = ""
) -> HarmonicResult:
    """Normal modes and IR intensities from a Hessian and dipole derivatives (any source, e.g. ML)."""
    wavenumbers, mw_vectors = normal_modes(atoms, hessian, project)
    intensities = (
        transition_dipoles(atoms, mw_vectors, dipole_derivatives) * E_ANGSTROM_IN_DEBYE
    ) ** 2  # (D/Å)^2/amu
    intensities = intensities.sum(axis=1) * IR_INTENSITY_D2_A2_AMU_TO_KM_PER_MOL
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    cartesian = (mw_vectors * inv_sqrt_m[None, :]).reshape(len(wavenumbers), len(atoms), 3)
    cartesian /= np.linalg.norm(cartesian.reshape(len(wavenumbers), -1), axis=1)[:, None, None]
    return HarmonicResult(
        atoms.copy(), wavenumbers, intensities, cartesian, mw_vectors, hessian, dipole_derivatives, method
    )


def transition_dipoles(
    atoms: Atoms, mass_weighted_modes: np.ndarray, dipole_derivatives: np.ndarray
) -> np.ndarray:
    """d mu / d Q_k = sum_i (d mu / d x_i) e_ki / sqrt(m_i), in e / sqrt(amu), (n_modes, 3)."""
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    return (mass_weighted_modes * inv_sqrt_m[None, :]) @ dipole_derivatives


#: A minimum's lowest mode may be slightly imaginary from numerical noise or a nearly free rotor
#: (2-butyne's methyl torsion: -22 cm-1 with GFN2-xTB); below this (cm-1) the optimiser has stopped
#: on a saddle point (acetone from RDKit's conformer: a methyl torsion at -63 cm-1).
ESCAPE_SADDLE_BELOW_CM1 = -30.0
#: Length (Å, over all atoms) of the step along the imaginary mode that leaves a saddle point.
SADDLE_ESCAPE_STEP_A = 0.3


#: What :func:`optimized_harmonic_analysis` reports to ``on_stage``, in order (for progress bars).
HARMONIC_STAGES = ("pre-relaxation", "optimisation", "second derivatives")


def optimized_harmonic_analysis(
    atoms: Atoms,
    reference="xtb",
    fmax: float = 1e-4,
    executor=None,
    max_saddle_escapes: int = 2,
    on_stage: Callable[[str], None] | None = None,
) -> HarmonicResult:
    """Optimise ``atoms`` tightly with the reference (:func:`specml.molecules.optimize_geometry`:
    internal coordinates from the xTB minimum for DFT), then run :func:`harmonic_analysis`.

    When the optimiser stops on a saddle point (a mode below ``ESCAPE_SADDLE_BELOW_CM1``), the
    structure is displaced along that mode and optimised again, up to ``max_saddle_escapes``
    times; the number of escapes is recorded in ``result.atoms.info["saddle_escapes"]``.
    ``on_stage`` is told when each stage of :data:`HARMONIC_STAGES` starts.
    """
    from specml.molecules.optimize import optimize_geometry
    from specml.reference import make_reference

    reference = make_reference(reference)
    report = on_stage or (lambda stage: None)

    def optimised_and_analysed(start: Atoms, note: str = "") -> HarmonicResult:
        relaxed = optimize_geometry(start, reference, fmax=fmax, on_stage=lambda stage: report(stage + note))
        report("second derivatives" + note)
        return harmonic_analysis(relaxed, reference, executor=executor)

    result = optimised_and_analysed(atoms)
    escapes = 0
    while result.frequencies_cm1[0] < ESCAPE_SADDLE_BELOW_CM1 and escapes < max_saddle_escapes:
        escapes += 1
        displaced = result.atoms.copy()
        displaced.positions += SADDLE_ESCAPE_STEP_A * result.modes[0]
        result = optimised_and_analysed(displaced, f", leaving a saddle point ({escapes})")
    result.atoms.info["saddle_escapes"] = escapes
    return result


#: A conformer whose lowest mode is more imaginary than this (cm-1) is a saddle point, not a
#: minimum: a torsion the force field has as a minimum and the reference has not.
SADDLE_POINT_CM1 = -50.0


@dataclass
class ConformerHarmonic:
    """Harmonic analyses of a molecule's distinct conformers (lowest energy first) and their
    Boltzmann populations at ``temperature_k`` (from the reference's electronic energies).
    ``degeneracies`` counts each conformer's mirror images (2 for ethanol's gauche form; they
    share its energy and spectrum) and is already part of ``weights``."""

    results: list[HarmonicResult]
    energies_eV: np.ndarray
    weights: np.ndarray
    temperature_k: float
    n_dropped: dict
    degeneracies: np.ndarray = None  # type: ignore[assignment]  # default: 1 each

    def __post_init__(self) -> None:
        if self.degeneracies is None:
            self.degeneracies = np.ones(len(self.results))

    def sticks(self) -> tuple[np.ndarray, np.ndarray]:
        """All conformers' bands (cm-1) with intensities (km/mol) times their populations."""
        frequencies = np.concatenate([r.frequencies_cm1 for r in self.results])
        intensities = np.concatenate(
            [w * r.intensities_km_mol for w, r in zip(self.weights, self.results, strict=True)]
        )
        return frequencies, intensities

    def spectrum(
        self,
        fwhm: float = 10.0,
        shape: str = "lorentzian",
        lo: float = 400.0,
        hi: float = 4000.0,
        step: float = 1.0,
        frequency_scale: float = 1.0,
        rotational_temperature_k: float | None = None,
    ) -> Spectrum:
        """The population-weighted sum of the conformers' broadened spectra (see :meth:`HarmonicResult.spectrum`)."""
        if rotational_temperature_k is not None:  # each conformer rotates with its own moments of inertia
            parts = [
                r.spectrum(fwhm, shape, lo, hi, step, frequency_scale, rotational_temperature_k)
                for r in self.results
            ]
            spectrum = Spectrum(
                parts[0].wavenumber,
                sum(w * p.intensity for w, p in zip(self.weights, parts, strict=True)),
                metadata=parts[0].metadata,
            )
        else:
            frequencies, intensities = self.sticks()
            first = self.results[0]
            spectrum = stick_spectrum(
                frequencies,
                intensities,
                first.atoms,
                first.method,
                fwhm,
                shape,
                lo,
                hi,
                step,
                frequency_scale,
            )
        return spectrum.with_metadata(conformers=len(self.results), temperature_k=self.temperature_k)


#: Window (eV) of the cheap screen that precedes an expensive reference: wider than the final
#: one, since GFN2-xTB conformer energies are off by a few kJ/mol (0.15 eV = 14.5 kJ/mol).
SCREEN_WINDOW_EV = 0.15


def conformer_averaged_harmonic(
    ensemble,
    reference="xtb",
    temperature_k: float = 298.15,
    fmax: float = 1e-4,
    energy_window_eV: float = 0.2,
    executor=None,
    checkpoint=None,
) -> ConformerHarmonic:
    """Optimise every conformer of ``ensemble`` (:class:`specml.molecules.conformers.ConformerEnsemble`)
    with the reference, merge those that reach the same minimum, count mirror images as one
    conformer of degeneracy 2, and analyse those within ``energy_window_eV`` of the lowest
    (0.2 eV: a population below 5e-4 at 298 K).

    An expensive reference (one with ``prerelax``, e.g. DFT) optimises only the survivors of a
    screen with the cheap one (distinct minima within :data:`SCREEN_WINDOW_EV`, one of each mirror
    pair): 1-propanol's nine force-field conformers become five DFT optimisations. A conformer
    whose optimisation fails is dropped as long as another one succeeds; saddle points (lowest
    mode below ``SADDLE_POINT_CM1``) are dropped unless nothing else is left.

    ``checkpoint`` (a directory, or a :class:`~specml.spectra.conformer_checkpoint.ConformerCheckpoint`)
    keeps each optimisation and analysis with the reference as it finishes, and a rerun takes
    them from there: an interrupted DFT average loses at most the conformer in flight.
    """
    from specml.molecules.conformers import boltzmann_weights
    from specml.reference import make_reference
    from specml.spectra.conformer_checkpoint import ConformerCheckpoint

    if temperature_k <= 0:  # before the optimisations, not after them
        raise InputError(f"temperature must be positive, got {temperature_k} K")
    reference = make_reference(reference)
    reference.check_elements(ensemble.structures[0], ensemble.smiles)  # conformers share their elements
    structures, screened = list(ensemble.structures), {}
    if reference.prerelax:
        structures, _, screened = screened_conformers(ensemble, reference.prerelax)
    store = checkpoint
    if store is not None and not isinstance(store, ConformerCheckpoint):
        store = ConformerCheckpoint(store)
    minima, energies, counts = _conformer_minima(
        ensemble, structures, reference, fmax, energy_window_eV, store
    )
    dropped = {k: v + screened.get(k, 0) for k, v in counts.items()}
    results = [
        _stored_harmonic_analysis(i, atoms, reference, executor, store) for i, atoms in enumerate(minima)
    ]
    true_minima = [j for j, r in enumerate(results) if r.frequencies_cm1.min() > SADDLE_POINT_CM1] or [0]
    kept_energies = energies[true_minima]
    kept_degeneracies = np.array([ensemble.degeneracy(minima[j]) for j in true_minima], dtype=float)
    return ConformerHarmonic(
        results=[results[j] for j in true_minima],
        energies_eV=kept_energies,
        weights=boltzmann_weights(kept_energies, temperature_k, kept_degeneracies),
        temperature_k=temperature_k,
        n_dropped={**dropped, "saddle_points": len(results) - len(true_minima)},
        degeneracies=kept_degeneracies,
    )


def screened_conformers(ensemble, cheap_reference="xtb", window_eV: float = SCREEN_WINDOW_EV):
    """The cheap screen of :func:`conformer_averaged_harmonic`: (minima, energies in eV, dropped
    counts) of ``ensemble`` optimised with ``cheap_reference`` to the pre-relaxation threshold,
    distinct, one of each mirror pair, within ``window_eV`` of the lowest."""
    from specml.molecules.optimize import PRERELAX_FMAX
    from specml.reference import make_reference

    return _conformer_minima(
        ensemble, list(ensemble.structures), make_reference(cheap_reference), PRERELAX_FMAX, window_eV
    )


def _stored_harmonic_analysis(index: int, atoms: Atoms, reference, executor, store) -> HarmonicResult:
    """:func:`harmonic_analysis` of conformer ``index``, taken from ``store`` when it holds it, and
    kept there when it did not."""
    stored = None if store is None else store.analysed(index, atoms)
    if stored is not None:
        return harmonic_from_derivatives(
            atoms, stored.hessian, stored.dipole_derivatives, True, reference.describe()
        )
    result = harmonic_analysis(atoms, reference, executor=executor)
    if store is not None:
        from specml.spectra.second_derivatives import SecondDerivatives

        store.save_analysed(index, atoms, SecondDerivatives(result.hessian, result.dipole_derivatives))
    return result


def _conformer_minima(ensemble, structures, reference, fmax, window_eV, store=None):
    """Optimise ``structures`` with ``reference``: (minima, energies in eV, dropped counts) of the
    distinct minima within ``window_eV`` of the lowest, one of each mirror-image pair, lowest first.
    With ``store`` (a :class:`~specml.spectra.conformer_checkpoint.ConformerCheckpoint`), each
    optimisation is kept as it finishes and taken from there when it was done before."""
    from specml.molecules.optimize import optimize_geometry

    optimised: list[Atoms] = []
    energies: list[float] = []
    first_error: ReferenceCalculationError | None = None
    for i, atoms in enumerate(structures):
        stored = None if store is None else store.optimised(i, atoms)
        if stored is not None:
            optimised.append(stored[0])
            energies.append(stored[1])
            continue
        try:
            relaxed = optimize_geometry(atoms, reference, fmax=fmax)
        except ReferenceCalculationError as error:
            first_error = first_error or error
            continue
        optimised.append(relaxed)
        energies.append(reference.label(relaxed).energy)
        if store is not None:
            store.save_optimised(i, atoms, relaxed, energies[-1])
    if not optimised:
        assert first_error is not None  # every optimisation failed (there is at least one structure)
        raise first_error
    energy = np.asarray(energies)
    distinct = ensemble.distinct(optimised, energy)
    groups = ensemble.mirror_image_groups(optimised, distinct)
    kept = [g for g in groups if energy[g[0]] - energy[distinct[0]] <= window_eV]
    return (
        [optimised[g[0]] for g in kept],
        energy[[g[0] for g in kept]],
        {
            "failed": len(structures) - len(optimised),
            "same_minimum": len(optimised) - len(distinct),
            "above_window": len(groups) - len(kept),
        },
    )
