"""Raman in the active-learning workflow (``specml ir ... --raman``, ``WorkflowConfig.raman``).

Once the committee is final, every training structure (and every test-set structure) gets a
reference polarizability (Å^3), stored by database key in ``raman/polarizability_labels.extxyz``
so that a rerun computes only what is missing; an ``AtomicDielectricMACE``
(:mod:`specml.models.polarizability`) is trained on them and saved beside the committee as
``polarizability_model.pt``. The production MD then records positions, the task turns them into
polarizabilities with that model (:func:`polarizabilities_of_frames`), and the same trajectories
give the IR spectrum (dipoles) and the Raman spectra (:func:`job_raman_spectra`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from specml.spectra.harmonic import map_displaced
from specml.spectra.raman import _polarizability_task
from specml.spectra.raman_md import RAMAN_COMPONENTS, raman_from_trajectories
from specml.spectra.spectrum import Spectrum
from specml.workflow.state import atomic_write_json, atomic_write_structures, read_structures_file, safe_name

LABELS_FILE = "polarizability_labels.extxyz"


def label_polarizabilities(images: list[Atoms], reference, executor, folder: Path) -> list[Atoms]:
    """``images`` (each with ``info["key"]``) with ``info["polarizability"]`` (Å^3, 9 numbers) from
    ``reference``; labels already in ``folder`` are reused, the new ones added to it."""
    path = Path(folder) / LABELS_FILE
    known = (
        {a.info["key"]: a.info["polarizability"] for a in read_structures_file(path)} if path.exists() else {}
    )
    missing = [a for a in images if a.info["key"] not in known]
    if missing:
        tasks = [(reference, Atoms(a.get_chemical_symbols(), positions=a.positions)) for a in missing]
        values = map_displaced(_polarizability_task, tasks, f"polarizabilities ({len(tasks)})", executor)
        for atoms, alpha in zip(missing, values, strict=True):
            known[atoms.info["key"]] = np.asarray(alpha, dtype=float).reshape(9)
        stored = [
            Atoms(a.get_chemical_symbols(), positions=a.positions, info={"key": a.info["key"]})
            for a in images
            if a.info["key"] in known
        ]
        for atoms in stored:
            atoms.info["polarizability"] = known[atoms.info["key"]]
        atomic_write_structures(path, stored)
    out = []
    for atoms in images:
        labelled = atoms.copy()
        labelled.info["polarizability"] = np.asarray(known[atoms.info["key"]], dtype=float).reshape(9)
        out.append(labelled)
    return out


def raman_stage(workflow) -> dict:
    """Label polarizabilities, train and save the polarizability model (once), report its test-set
    errors; returns the report (also in ``raman/report.json``)."""
    import json

    from specml.models import get_preset
    from specml.models.polarizability import (
        POLARIZABILITY_MODEL_FILE,
        PolarizabilityModel,
        polarizability_errors,
        train_polarizability_model,
    )

    config, dirs = workflow.config, workflow.dirs
    folder = dirs.root / "raman"
    report_path = folder / "report.json"
    if report_path.exists() and (dirs.final_models / POLARIZABILITY_MODEL_FILE).exists():
        return json.loads(report_path.read_text())
    images = workflow.database.labelled_atoms()
    workflow.say(f"Raman: reference polarizabilities of {len(images)} training structures")
    labelled = label_polarizabilities(images, workflow.reference, workflow.executor, folder)
    epochs = {"epochs": config.model_epochs} if config.model_epochs else {}
    model, history = train_polarizability_model(
        labelled,
        get_preset(config.model_preset, **epochs),
        seed=config.seed,
        dtype=config.train_precision,
        split_seed=config.seed,
    )
    trained = PolarizabilityModel(model)
    trained.save(dirs.final_models)
    test = [a for a in workflow.database.labelled_atoms(exclude_kinds=()) if a.info.get("kind") == "test"]
    report = {
        "n_training_structures": len(labelled),
        "valid_polarizability_mae_A3": history["valid_mae"]["polarizability_A3"],
        "test_set": polarizability_errors(
            trained, label_polarizabilities(test, workflow.reference, workflow.executor, folder)
        )
        if test
        else {},
        "units": "A^3",
    }
    atomic_write_json(report_path, report)
    workflow.say(
        f"Raman: polarizability model trained on {len(labelled)} structures, validation MAE "
        f"{report['valid_polarizability_mae_A3']:.4f} Å^3 per component"
    )
    return report


def polarizabilities_of_frames(models_dir: Path, trajectories: list) -> list[np.ndarray]:
    """(T, 3, 3) polarizabilities (Å^3) of each replica's recorded positions, with the model saved
    in ``models_dir`` (batched over frames: MACE's polarizability batches, its gradients do not)."""
    from specml.models.polarizability import PolarizabilityModel

    model = PolarizabilityModel.load(models_dir, device="auto")  # where the MD runs
    out = []
    for frames in trajectories:
        images = [Atoms(numbers=frames.numbers, positions=p) for p in frames.positions]
        out.append(model.predict(images) if images else np.zeros((0, 3, 3)))
    return out


def job_raman_spectra(job, config, say=print) -> dict[str, dict[str, Spectrum]]:
    """Raman spectra ({component: mean ± std over trajectories}) of a production job's stored
    polarizabilities, per molecule, at the job's temperature with the harmonic quantum correction."""
    from specml.workflow.production import read_production_file

    lo, hi = config.spectrum_range_cm1
    out = {}
    for name, _ in job.structures:
        runs = read_production_file(job.file(name))
        usable = [
            a
            for a, stop in zip(runs.polarizabilities or [], runs.stopped, strict=False)
            if not stop and len(a) * runs.record_interval_fs >= 2 * config.max_correlation_fs
        ]
        if not usable:
            say(f"[yellow]{name}: no usable polarizability trajectory; no Raman spectrum[/]")
            continue
        out[name] = raman_from_trajectories(
            usable,
            runs.record_interval_fs,
            job.temperature_k,
            config.max_correlation_fs,
            lo,
            hi,
            quantum_correction="harmonic",
            metadata={"label": f"{name} ML-MD Raman {job.temperature_k:.0f} K", "molecule": name},
        )
    return out


def production_raman_spectra(workflow, temperatures_k) -> dict[str, dict[str, Spectrum]]:
    """{``name@<T>K``: {component: spectrum}} from the production runs of ``workflow``."""
    from specml.workflow.production import ProductionJob, spectrum_key
    from specml.workflow.state import temperature_folder

    temperatures = tuple(
        dict.fromkeys(float(t) for t in temperatures_k or (workflow.config.production_temperature_k,))
    )
    spectra = {}
    for t in temperatures:
        job = ProductionJob(
            workflow.prepared_structures(), t, temperature_folder(workflow.dirs.production_dir, t)
        )
        for name, components in job_raman_spectra(job, workflow.config, workflow.say).items():
            spectra[spectrum_key(name, t)] = components
    return spectra


def write_raman_outputs(raman_spectra: dict[str, dict[str, Spectrum]], run_dir: Path) -> dict[str, str]:
    """One CSV per spectrum and component (``raman_<key>_<component>.csv``) and one PNG per key with
    VV, VH and total; returns {key: csv of the total}."""
    from specml.plotting import plot_spectra

    files = {}
    for key, components in raman_spectra.items():
        stem = Path(run_dir) / f"raman_{safe_name(key.replace('@', '_'))}"
        for component in RAMAN_COMPONENTS:
            components[component].to_csv(f"{stem}_{component}.csv")
        shown = [components[c] for c in ("total", "vv", "vh")]
        plot_spectra(
            shown, f"{stem}.png", title=f"{key}: ML-MD Raman", normalize=False, labels=["total", "VV", "VH"]
        )
        files[key] = f"{stem}_total.csv"
    return files
