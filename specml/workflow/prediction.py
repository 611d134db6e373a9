"""Spectra of new molecules from a trained model directory, without retraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.optimize import BFGS

from specml.errors import InputError, ModelError
from specml.executor import Executor, make_executor
from specml.molecules.inputs import Molecule, bare_copy, load_molecules
from specml.spectra.spectrum import Spectrum
from specml.workflow.config import WorkflowConfig
from specml.workflow.production import production_settings, production_spectra
from specml.workflow.state import RunDirectory, atomic_write_json, atomic_write_npz, safe_name

#: Relative force uncertainty above which a prediction is flagged as outside the
#: committee's knowledge (the sanity stop is at 0.5).
OUT_OF_DOMAIN_UNCERTAINTY = 0.2

#: The file in a prediction directory naming the committee and MD settings it belongs to.
PREDICTION_IDENTITY = "prediction.json"


def resolve_models_dir(path: str | Path) -> Path:
    """Accept a run directory (uses its ``models/final``), a committee directory, or the name of
    a shipped model set (:mod:`specml.models.model_sets`) where no such directory exists."""
    from specml.models.model_sets import available_model_sets, model_set_dir

    path = Path(path)
    for candidate in (path, path / "models" / "final"):
        if (candidate / "committee.json").exists():
            return candidate
    if not path.exists():
        shipped = available_model_sets()
        if len(path.parts) == 1 and str(path) in shipped:
            return model_set_dir(str(path))
        known = ", ".join(shipped) or "none"
        raise ModelError(
            f"{path}: no such directory and no shipped model set of that name (shipped: {known}; "
            "`specml models` lists them)"
        )
    raise ModelError(f"{path}: no trained committee found (expected committee.json or models/final/)")


def ml_minimum(committee, atoms: Atoms, fmax: float = 1e-2) -> Atoms:
    """Structure relaxed with the committee mean potential."""
    work = bare_copy(atoms)
    work.calc = committee.calculator()
    BFGS(work, logfile=None).run(fmax=fmax, steps=500)
    return bare_copy(work)  # isotope masses go on to the production MD


def load_predicting_committee(models_dir: str | Path):
    """The committee of a trained model directory; it must have a dipole model."""
    from specml.models import Committee

    models_dir = resolve_models_dir(models_dir)
    committee = Committee.load(models_dir)
    if committee.dipole_model is None:
        raise ModelError(f"{models_dir}: the committee has no dipole model, so it cannot give IR spectra")
    return committee


def check_known_elements(committee, molecules: list[Molecule]) -> None:
    """Raise :class:`~specml.errors.UnsupportedElementError`, naming the element, when a molecule
    has one the committee never saw."""
    for mol in molecules:
        committee.check_elements(mol.atoms)


def prediction_structures(
    committee, molecules: list[Molecule], store: Path | None = None
) -> tuple[list[tuple[str, Atoms]], dict]:
    """The molecules' committee minima, where their production MD starts, and a domain report
    with the relative force uncertainty at each minimum; an element the committee never saw
    raises first.

    With ``store`` each minimum is kept there (``<name>.npz``, exact positions) and reused: a
    relaxation repeated under other threading can end a few ulps away, and the MD snapshots
    of an interrupted run are named by their start structures. A stored name whose input
    structure has changed is refused, since its trajectories would be stale too.
    """
    check_known_elements(committee, molecules)
    structures, report = [], {}
    for mol in molecules:
        path = Path(store) / f"{safe_name(mol.name)}.npz" if store is not None else None
        if path is not None and path.exists():
            minimum, uncertainty = _stored_minimum(path, mol)
        else:
            minimum = ml_minimum(committee, mol.atoms)
            uncertainty = float(committee.predict([minimum])["relative_force_uncertainty"][0])
            if path is not None:
                atomic_write_npz(
                    path,
                    numbers=minimum.numbers,
                    positions=minimum.positions,
                    uncertainty_at_minimum=np.array(uncertainty),
                    start_numbers=mol.atoms.numbers,
                    start_positions=mol.atoms.positions,
                )
        structures.append((mol.name, minimum))
        report[mol.name] = {"uncertainty_at_minimum": uncertainty}
    return structures, report


def _stored_minimum(path: Path, mol: Molecule) -> tuple[Atoms, float]:
    """The minimum :func:`prediction_structures` stored for ``mol``."""
    with np.load(path) as data:
        same_start = np.array_equal(data["start_numbers"], mol.atoms.numbers) and np.array_equal(
            data["start_positions"], mol.atoms.positions
        )
        if not same_start:
            raise InputError(
                f"{path}: {mol.name!r} was predicted here from another structure; rename the "
                "molecule, use another --run-dir or delete it to start over"
            )
        # Same start, so same elements; masses (isotopes) from the input, as a minimum does not depend on them.
        return bare_copy(mol.atoms, data["positions"]), float(data["uncertainty_at_minimum"])


def claim_prediction_dir(out_dir: str | Path, models_dir: Path, config: WorkflowConfig) -> None:
    """Tie ``out_dir`` to one committee and one set of production settings. Stored
    trajectories are reused by molecule name, so a rerun with another committee or other MD
    settings would mix stale spectra in; it is refused, as is a training run's directory."""
    from specml.models.committee import committee_digest

    out_dir = Path(out_dir)
    if RunDirectory(out_dir).config.exists():
        raise InputError(f"{out_dir} holds a training run; give predictions their own --run-dir")
    identity = {"committee": committee_digest(models_dir), "production": production_settings(config)}
    path = out_dir / PREDICTION_IDENTITY
    if not path.exists():
        atomic_write_json(path, identity)
        return
    stored = json.loads(path.read_text())
    changed = [
        what
        for key, what in (("committee", "another committee"), ("production", "other MD settings"))
        if stored.get(key) != identity[key]
    ]
    if changed:
        raise InputError(
            f"{out_dir} holds predictions made with {' and '.join(changed)}; "
            "use another --run-dir or delete it to start over"
        )


def training_domain_reasons(
    models_dir: Path, molecules: list[Molecule], temperatures_k
) -> dict[str, list[str]]:
    """Per molecule, why it lies outside the training domain of a model set (size, temperature;
    :func:`specml.models.model_sets.domain_reasons`); empty lists for an ordinary committee."""
    from specml.models.model_sets import domain_reasons, read_model_set

    info = read_model_set(models_dir)
    if info is None:
        return {mol.name: [] for mol in molecules}
    return {mol.name: domain_reasons(info, mol.atoms, max(temperatures_k)) for mol in molecules}


def domain_report(
    report: dict,
    spectra: dict[float, dict[str, Spectrum]],
    say=print,
    outside_training: dict[str, list[str]] | None = None,
) -> dict:
    """Complete :func:`prediction_structures`' report with the uncertainty along the trajectories
    at each temperature ({T: {name: spectrum}}) and an out-of-domain flag (warned about) per
    molecule; the flag and ``mean_uncertainty_md`` take the worst temperature. A model set's
    ``outside_training`` reasons ({name: [reason]}) are kept as ``outside_training_domain`` and
    raise the flag too."""
    outside_training = outside_training or {}
    for name, entry in report.items():
        reasons = outside_training.get(name, [])
        entry["outside_training_domain"] = reasons
        if reasons:
            say(
                f"[yellow]warning: {name} lies outside the model set's training domain: "
                f"{'; '.join(reasons)}; treat its spectrum with caution[/]"
            )
        by_temperature = {
            t: per_molecule[name].metadata["mean_relative_force_uncertainty"]
            if name in per_molecule
            else np.inf
            for t, per_molecule in spectra.items()
        }
        worst_t = max(by_temperature, key=lambda t: by_temperature[t])
        entry["mean_uncertainty_md"] = by_temperature[worst_t]
        entry["mean_uncertainty_md_by_temperature_k"] = {f"{t:.0f}": u for t, u in by_temperature.items()}
        worst = max(entry["uncertainty_at_minimum"], entry["mean_uncertainty_md"])
        uncertain = bool(worst > OUT_OF_DOMAIN_UNCERTAINTY)
        entry["out_of_domain"] = uncertain or bool(reasons)
        if uncertain:
            where = (
                f" (MD at {worst_t:.0f} K)" if worst == entry["mean_uncertainty_md"] else " (at its minimum)"
            )
            say(
                f"[yellow]warning: {name} looks outside what the committee knows (relative force uncertainty "
                f"{worst:.2f}{where} > {OUT_OF_DOMAIN_UNCERTAINTY}); "
                f"treat its spectrum with caution or add it to the training set[/]"
            )
    return report


def predict_spectra(
    models_dir: str | Path,
    molecules: list[Molecule],
    out_dir: str | Path,
    temperatures_k=(300.0,),
    config: WorkflowConfig | None = None,
    executor: Executor | None = None,
    say=print,
) -> tuple[dict[float, dict[str, Spectrum]], dict]:
    """ML-MD spectra of ``molecules`` at each temperature with a trained committee, all in one
    set of MD batches; returns {T: {name: spectrum}} and a per-molecule domain report
    (uncertainty at the minimum and along the trajectories)."""
    config = config or WorkflowConfig()
    models_dir = resolve_models_dir(models_dir)
    committee = load_predicting_committee(models_dir)
    check_known_elements(committee, molecules)  # before the claim: a refused molecule leaves no trace
    outside_training = training_domain_reasons(models_dir, molecules, temperatures_k)
    with RunDirectory(out_dir).in_use():
        claim_prediction_dir(out_dir, models_dir, config)
        structures, report = prediction_structures(committee, molecules, Path(out_dir) / "minima")
        spectra = production_spectra(
            structures,
            models_dir,
            temperatures_k,
            config,
            Path(out_dir) / "production",
            executor or make_executor(),
            say,
        )
    return spectra, domain_report(report, spectra, say, outside_training)


def predict_spectrum(
    models_dir: str | Path,
    smiles: str,
    out_dir: str | Path = "specml-output",
    temperature_k: float = 300.0,
    config: WorkflowConfig | None = None,
) -> Spectrum:
    """One molecule from SMILES: the ML-MD spectrum (used by identification)."""
    produced, _ = predict_spectra(
        models_dir, load_molecules(smiles), out_dir, (temperature_k,), config, say=lambda *_: None
    )
    spectra = produced[float(temperature_k)]
    if not spectra:
        raise ModelError(f"{smiles}: every trajectory hit the sanity stop; no spectrum")
    return next(iter(spectra.values()))
