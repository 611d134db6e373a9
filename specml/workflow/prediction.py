"""Spectra of new molecules from a trained model directory, without retraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.optimize import BFGS

from specml.errors import ModelError
from specml.executor import Executor, make_executor
from specml.molecules.inputs import Molecule, load_molecules
from specml.spectra.spectrum import Spectrum
from specml.workflow.config import WorkflowConfig
from specml.workflow.production import ProductionJob, production_spectra

#: Relative force uncertainty above which a prediction is flagged as outside the
#: committee's knowledge (the sanity stop is at 0.5).
OUT_OF_DOMAIN_UNCERTAINTY = 0.2


def resolve_models_dir(path: str | Path) -> Path:
    """Accept a run directory (uses its ``models/final``) or a committee directory."""
    path = Path(path)
    for candidate in (path, path / "models" / "final"):
        if (candidate / "committee.json").exists():
            return candidate
    raise ModelError(f"{path}: no trained committee found (expected committee.json or models/final/)")


def ml_minimum(committee, atoms: Atoms, fmax: float = 1e-2) -> Atoms:
    """Structure relaxed with the committee mean potential."""
    work = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
    work.calc = committee.calculator()
    BFGS(work, logfile=None).run(fmax=fmax, steps=500)
    return Atoms(work.get_chemical_symbols(), positions=work.get_positions())


def load_predicting_committee(models_dir: str | Path):
    """The committee of a trained model directory; it must have a dipole model."""
    from specml.models import Committee

    models_dir = resolve_models_dir(models_dir)
    committee = Committee.load(models_dir)
    if committee.dipole_model is None:
        raise ModelError(f"{models_dir}: the committee has no dipole model, so it cannot give IR spectra")
    return committee


def prediction_job(committee, molecules: list[Molecule], out_dir: str | Path,
                   temperature_k: float) -> tuple[ProductionJob, dict]:
    """Production MD of new molecules from their committee minima, with the relative force
    uncertainty at each minimum; an element the committee never saw raises first."""
    for mol in molecules:
        committee.check_elements(mol.atoms)  # raises UnsupportedElementError naming the element
    structures, report = [], {}
    for mol in molecules:
        minimum = ml_minimum(committee, mol.atoms)
        structures.append((mol.name, minimum))
        report[mol.name] = {"uncertainty_at_minimum": float(committee.predict([minimum])["relative_force_uncertainty"][0])}
    return ProductionJob(structures, temperature_k, Path(out_dir) / "production" / f"{temperature_k:.0f}K"), report


def domain_report(report: dict, spectra: dict[str, Spectrum], say=print) -> dict:
    """Complete :func:`prediction_job`'s report with the uncertainty along the trajectories and
    an out-of-domain flag (warned about) per molecule."""
    for name, entry in report.items():
        md_uncertainty = spectra[name].metadata["mean_relative_force_uncertainty"] if name in spectra else np.inf
        entry["mean_uncertainty_md"] = md_uncertainty
        entry["out_of_domain"] = bool(max(entry["uncertainty_at_minimum"], md_uncertainty) > OUT_OF_DOMAIN_UNCERTAINTY)
        if entry["out_of_domain"]:
            say(f"[yellow]warning: {name} looks outside what the committee knows (relative force uncertainty "
                f"{max(entry['uncertainty_at_minimum'], md_uncertainty):.2f} > {OUT_OF_DOMAIN_UNCERTAINTY}); "
                f"treat its spectrum with caution or add it to the training set[/]")
    return report


def predict_spectra(models_dir: str | Path, molecules: list[Molecule], out_dir: str | Path,
                    temperature_k: float = 300.0, config: WorkflowConfig | None = None,
                    executor: Executor | None = None, say=print) -> tuple[dict[str, Spectrum], dict]:
    """ML-MD spectra of ``molecules`` with a trained committee; returns spectra and a
    per-molecule domain report (uncertainty at the minimum and along the trajectories)."""
    config = config or WorkflowConfig()
    models_dir = resolve_models_dir(models_dir)
    job, report = prediction_job(load_predicting_committee(models_dir), molecules, out_dir, temperature_k)
    spectra = production_spectra(job.structures, models_dir, temperature_k, config, job.folder,
                                 executor or make_executor(), say)
    return spectra, domain_report(report, spectra, say)


def predict_spectrum(models_dir: str | Path, smiles: str, out_dir: str | Path = "specml-output",
                     temperature_k: float = 300.0, config: WorkflowConfig | None = None) -> Spectrum:
    """One molecule from SMILES: the ML-MD spectrum (used by identification)."""
    spectra, _ = predict_spectra(models_dir, load_molecules(smiles), out_dir, temperature_k, config,
                                 say=lambda *_: None)
    if not spectra:
        raise ModelError(f"{smiles}: every trajectory hit the sanity stop; no spectrum")
    return next(iter(spectra.values()))
