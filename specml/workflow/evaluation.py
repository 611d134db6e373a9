"""How good is the committee: ML harmonic frequencies and errors on labelled test structures."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.optimize import BFGS

from specml.molecules.inputs import bare_copy
from specml.spectra.harmonic import (
    HarmonicResult,
    derivatives_from_displacements,
    displaced_structures,
    harmonic_from_derivatives,
)
from specml.units import E_ANGSTROM_IN_DEBYE


def ml_harmonic_analysis(committee, atoms: Atoms, fmax: float = 1e-3, delta: float = 0.01) -> HarmonicResult:
    """Harmonic analysis with the committee mean: relax with the ML potential, then one batched
    prediction over the 6N displaced structures."""
    work = bare_copy(atoms)
    work.calc = committee.calculator()
    BFGS(work, logfile=None).run(fmax=fmax, steps=500)
    minimum = bare_copy(work)  # isotope masses set the frequencies
    prediction = committee.predict(displaced_structures(minimum, delta))
    dipoles = prediction.get("dipole")
    if dipoles is None:
        dipoles = np.zeros((6 * len(minimum), 3))
    hessian, dmu_dx = derivatives_from_displacements(np.array(prediction["forces"]), dipoles, delta)
    return harmonic_from_derivatives(minimum, hessian, dmu_dx, method="ML committee")


def harmonic_errors(ml_frequencies: np.ndarray, reference_frequencies: np.ndarray) -> dict:
    """MAE and RMSE (cm-1) of frequencies matched in ascending order."""
    diff = np.sort(ml_frequencies) - np.sort(reference_frequencies)
    return {"mae_cm1": float(np.mean(np.abs(diff))), "rmse_cm1": float(np.sqrt(np.mean(diff**2)))}


def label_errors(committee, images: list[Atoms]) -> dict:
    """Energy (meV per structure), force (meV/Å, per component) and dipole (mD, per component)
    MAE and RMSE of the committee mean against reference labels."""
    if not images:
        return {}
    prediction = committee.predict(images)
    e_err = (np.asarray(prediction["energy"]) - np.array([a.info["energy"] for a in images])) * 1000.0
    f_err = (
        np.concatenate(
            [(p - a.arrays["forces"]).ravel() for p, a in zip(prediction["forces"], images, strict=True)]
        )
        * 1000.0
    )
    errors = {
        "n_structures": len(images),
        "energy_mae_meV": float(np.mean(np.abs(e_err))),
        "energy_rmse_meV": float(np.sqrt(np.mean(e_err**2))),
        "force_mae_meV_per_A": float(np.mean(np.abs(f_err))),
        "force_rmse_meV_per_A": float(np.sqrt(np.mean(f_err**2))),
    }
    if prediction.get("dipole") is not None:
        d_err = np.asarray(prediction["dipole"]) - np.array([a.info["dipole"] for a in images])
        d_err = d_err.ravel() * E_ANGSTROM_IN_DEBYE * 1000.0
        errors.update(
            dipole_mae_mD=float(np.mean(np.abs(d_err))), dipole_rmse_mD=float(np.sqrt(np.mean(d_err**2)))
        )
    return errors
