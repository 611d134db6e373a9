"""The active-learning IR workflow (a reimplementation of PALIRS), resumable at any point.

Stages, each persisted in the run directory (see :mod:`specml.workflow.state`):

0. reference geometry and harmonic frequencies of every molecule;
1. initial data: normal-mode displacements, labelled;
2. committee of MACE potentials (plus a dipole model) trained on all labels;
3. active learning: ML MD at several temperatures continuing from the previous
   iteration, the most uncertain frames labelled, retraining, until the ML
   harmonic frequencies are within the target MAE of the reference;
4. the last committee (trained on all data) with its dipole model is the final model;
5. production ML MD and IR spectra with mean and standard deviation;
6. an MBTR/KMeans test set with energy, force and dipole errors.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from specml.dataset.database import LabelDatabase
from specml.dataset.sampling import sample_normal_modes
from specml.errors import InputError
from specml.executor import Executor, make_executor, progress_bar
from specml.molecules.inputs import Molecule, bare_copy, explicit_masses
from specml.reference import make_reference
from specml.spectra.harmonic import HarmonicResult, harmonic_from_derivatives
from specml.spectra.spectrum import Spectrum
from specml.workflow.config import (
    SEPARATELY_STORED_SETTINGS,
    STOPPING_SETTINGS,
    TEST_SET_SETTINGS,
    WorkflowConfig,
)
from specml.workflow.evaluation import harmonic_errors, label_errors, ml_harmonic_analysis
from specml.workflow.labelling import Candidate, label_candidates, read_candidates, write_candidates
from specml.workflow.md_tasks import (
    Replica,
    exploration_task,
    replica_seed,
    run_md_tasks,
    select_most_uncertain,
)
from specml.workflow.production import keyed_spectra, production_spectra
from specml.workflow.state import (
    RunDirectory,
    atomic_save_directory,
    atomic_write_json,
    atomic_write_npz,
    atomic_write_structures,
    file_logger,
    safe_name,
)


def stop_reason(curve: list[dict], config: WorkflowConfig) -> str | None:
    """Why active learning ends after the last entry of the learning curve ``curve``: the harmonic
    MAE reached the target, or the last ``config.stall_iterations`` iterations did not lower the
    best one before them; None to go on (``max_iterations`` is the loop's own bound)."""
    maes = [e["harmonic_mae_cm1"] for e in curve]
    if maes[-1] <= config.target_harmonic_mae_cm1:
        return f"harmonic MAE {maes[-1]:.1f} cm-1 <= {config.target_harmonic_mae_cm1:g} cm-1"
    stall = config.stall_iterations
    if stall and len(maes) > stall and min(maes[-stall:]) >= min(maes[:-stall]):
        return (
            f"stalled: {stall} iterations without a harmonic MAE below the best, "
            f"{min(maes):.1f} cm-1 at iteration {curve[maes.index(min(maes))]['iteration']}"
        )
    return None


def ended_by(curve: list[dict], config: WorkflowConfig) -> str:
    """Why a finished active-learning loop ended: :func:`stop_reason`, else ``max_iterations``."""
    return stop_reason(curve, config) or "max_iterations"


@dataclass
class PreparedMolecule:
    """A molecule at its reference minimum, with reference harmonic frequencies."""

    name: str
    atoms: Atoms
    harmonic: HarmonicResult
    reference_calls: int


@dataclass
class WorkflowResult:
    run_dir: Path
    spectra: dict[str, Spectrum]
    learning_curve: list[dict]
    summary: dict
    files: dict = field(default_factory=dict)
    raman_spectra: dict = field(default_factory=dict)  # {key: {component: Spectrum}} with config.raman


def holding_run_dir(method):
    """Run a workflow ``method`` holding its run directory (:meth:`RunDirectory.in_use`): a second
    process on the same directory is refused, not interleaved."""

    @functools.wraps(method)
    def holding(self, *args, **kwargs):
        with self.dirs.in_use():
            return method(self, *args, **kwargs)

    return holding


class IRWorkflow:
    """Molecules + reference method + settings -> trained models and ML-MD IR spectra."""

    def __init__(
        self,
        molecules: list[Molecule],
        run_dir: str | Path,
        config: WorkflowConfig | None = None,
        executor: Executor | None = None,
        database: str | None = None,
        show_progress: bool = True,
        console=None,
        stage_done=None,
    ):
        """``stage_done(name)``, when given, is called each time a stage's output lands (an
        iteration, the final models, the test set, production MD): e.g. to keep stage artifacts
        (:mod:`specml.workflow.artifacts`) current."""
        if not molecules:
            raise InputError("no molecules given")
        names = [m.name for m in molecules]
        if len(set(names)) != len(names):
            raise InputError(f"molecule names must be unique, got {names}")
        self.molecules = molecules
        self.config = config or WorkflowConfig()
        self.dirs = RunDirectory(run_dir)
        with self.dirs.in_use():  # another process working here is found before anything is written
            self.dirs.check_config(
                self.config.to_dict(),
                [f"{m.name}:{m.smiles or m.formula}" for m in molecules],
                normalise=lambda stored: WorkflowConfig.from_dict(stored).to_dict(),
                may_change=self._settings_open_to_change(),
            )
        self.reference = make_reference(self.config.reference)
        for mol in molecules:
            self.reference.check_elements(mol.atoms, mol.smiles or mol.name)
        self.executor = executor or make_executor(show_progress=show_progress)
        self.database = LabelDatabase(database or self.dirs.database)
        self.show_progress = show_progress
        self.console = console
        self.log = file_logger(self.dirs.log)
        self._prepared: list[PreparedMolecule] | None = None
        self._models_for_md: Path = self.dirs.final_models  # the checkpoint MD tasks load
        self._stage_done = stage_done or (lambda stage: None)

    def _settings_open_to_change(self) -> tuple[str, ...]:
        """Settings that only shape stages not yet run: a resumed run records new values for them."""
        open_settings: tuple[str, ...] = SEPARATELY_STORED_SETTINGS
        if not self.dirs.final_models.exists():
            open_settings += STOPPING_SETTINGS
        if not self.dirs.test_set_structures.exists():
            open_settings += TEST_SET_SETTINGS
        return open_settings

    # -- messages -------------------------------------------------------------------
    def say(self, message: str) -> None:
        self.log.info(message)
        if self.console is not None:
            self.console.print(message, highlight=False)

    # -- stage 0 --------------------------------------------------------------------
    def prepared(self) -> list[PreparedMolecule]:
        if self._prepared is None:
            with self.dirs.timed("reference_geometry_and_hessian"):
                self._prepared = [self._prepare(i, m) for i, m in enumerate(self.molecules)]
        return self._prepared

    def _prepare(self, index: int, molecule: Molecule) -> PreparedMolecule:
        from specml.molecules.optimize import optimize_geometry
        from specml.spectra.harmonic import reference_derivatives

        path = self.dirs.molecules / f"{index:02d}_{safe_name(molecule.name)}.json"
        if path.exists():
            data = json.loads(path.read_text())
            atoms = Atoms(data["symbols"], positions=data["positions"], masses=data.get("masses"))  # isotopes
            harmonic = harmonic_from_derivatives(
                atoms,
                np.array(data["hessian"]),
                np.array(data["dipole_derivatives"]),
                method=data["reference"],
            )
            return PreparedMolecule(molecule.name, atoms, harmonic, data["reference_calls"])
        self.say(f"optimising {molecule.name} and computing its reference harmonic frequencies")
        atoms = optimize_geometry(molecule.atoms, self.reference, fmax=1e-4)
        hessian, dmu, analytic = reference_derivatives(atoms, self.reference)
        harmonic = harmonic_from_derivatives(atoms, hessian, dmu, method=self.reference.describe())
        # An analytic Hessian is counted as one reference call (it costs a few SCFs, not 6N).
        calls = (1 if analytic else 6 * len(atoms)) + int(atoms.info.get("optimizer_steps", 0))
        atomic_write_json(
            path,
            {
                "name": molecule.name,
                "smiles": molecule.smiles,
                "symbols": atoms.get_chemical_symbols(),
                "positions": atoms.positions,
                "masses": explicit_masses(atoms),
                "hessian": hessian,
                "dipole_derivatives": dmu,
                "frequencies_cm1": harmonic.frequencies_cm1,
                "reference": self.reference.describe(),
                "reference_calls": calls,
            },
        )
        return PreparedMolecule(molecule.name, atoms, harmonic, calls)

    # -- stage 1 --------------------------------------------------------------------
    def initial_candidates(self, n_per_mode: int | None = None) -> list[Candidate]:
        """Each molecule's minimum and ``n_per_mode`` (default: the config's) displacements along
        each of its normal modes."""
        candidates = []
        for mol in self.prepared():
            base = {"molecule": mol.name, "iteration": 0, "kind": "normal_mode"}
            candidates.append(
                Candidate(f"{mol.name}:0:minimum", mol.atoms.copy(), {**base, "kind": "minimum"})
            )
            samples = sample_normal_modes(
                mol.harmonic,
                self.config.n_per_mode if n_per_mode is None else n_per_mode,
                self.config.sampling_temperature_k,
            )
            for j, (atoms, info) in enumerate(samples):
                candidates.append(Candidate(f"{mol.name}:0:nm{j:03d}", atoms, {**base, **info}))
        return candidates

    # -- stage 2 --------------------------------------------------------------------
    def train(self, iteration: int):
        from specml.models import Committee

        target = self.dirs.models(iteration)
        if (target / "committee.json").exists():
            return Committee.load(target)
        data = self.database.labelled_atoms()
        if len(data) < 5:
            raise InputError(f"only {len(data)} labelled structures: too few to train (see {self.dirs.log})")
        checkpoints = self.dirs.iteration_dir(iteration) / "training_checkpoints"
        start = time.perf_counter()
        committee = self.fit_iteration(iteration, data, checkpoints)
        atomic_save_directory(committee.save, target)
        shutil.rmtree(checkpoints, ignore_errors=True)
        self.say(
            f"iteration {iteration}: trained {self.config.n_committee} potentials + dipole model on "
            f"{len(data)} structures in {time.perf_counter() - start:.0f} s"
        )
        return committee

    def fit_iteration(self, iteration: int, data: list[Atoms], checkpoints: Path):
        """The committee of ``iteration`` trained on ``data``: from scratch, or with ``warm_start``
        fine-tuned from the previous iteration's."""
        from specml.models import Committee, get_preset

        epochs = {"epochs": self.config.model_epochs} if self.config.model_epochs else {}
        init = None
        if self.config.warm_start and iteration > 0:
            init = Committee.load(self.dirs.models(iteration - 1))
            epochs = {"epochs": self.config.warm_start_epochs}  # fine-tuning needs fewer epochs
        preset = get_preset(self.config.model_preset, **epochs)
        return self.fit_committee(data, preset, init, checkpoints, f"training iteration {iteration}")

    def fit_committee(self, data: list[Atoms], preset, init, checkpoints: Path, description: str):
        """A committee (config's size, seeds and precision) plus dipole model trained on ``data``,
        fine-tuned from ``init`` when given, with a progress bar; fits resume from ``checkpoints``
        (the caller removes the folder once the committee is saved)."""
        from specml.models import train_committee

        stacked = self.config.stacked_committee and self.config.n_committee > 1
        n_models = (1 if stacked else self.config.n_committee) + 1  # fits, each with its own progress
        with progress_bar(disable=not self.show_progress) as bar:
            task = bar.add_task(f"{description} ({len(data)} structures)", total=n_models * preset.epochs)
            done, planned = {}, {}

            def progress(label, epoch, n_epochs, metrics):
                # n_epochs may be below preset.epochs when the step budget binds.
                done[label], planned[label] = epoch, n_epochs
                bar.update(
                    task,
                    completed=sum(done.values()),
                    total=sum(planned.values()) + (n_models - len(planned)) * n_epochs,
                )

            return train_committee(
                data,
                preset,
                self.config.n_committee,
                self.config.committee_seeds,
                init=init,
                dtype=self.config.train_precision,
                train_dipole=True,
                split_seed=self.config.seed,
                progress=progress,
                executor=self.executor,
                checkpoint_dir=checkpoints,
                stacked=stacked,
            )

    def evaluate(self, iteration: int, committee, run_wall_time_s: float) -> dict:
        per_molecule = {}
        for mol in self.prepared():
            ml = ml_harmonic_analysis(committee, mol.atoms)
            per_molecule[mol.name] = harmonic_errors(ml.frequencies_cm1, mol.harmonic.frequencies_cm1)
        histories = committee.histories
        energy = [h["valid_mae"] for h in histories["energy"]]
        entry = {
            "iteration": iteration,
            "n_labels": self.database.count(status="ok"),
            "reference_calls": self.reference_calls(),
            "harmonic_mae_cm1": float(np.mean([v["mae_cm1"] for v in per_molecule.values()])),
            "harmonic_rmse_cm1": float(np.sqrt(np.mean([v["rmse_cm1"] ** 2 for v in per_molecule.values()]))),
            "harmonic_per_molecule": per_molecule,
            "valid_energy_mae_meV": float(np.mean([e.get("energy_meV", np.nan) for e in energy])),
            "valid_force_mae_meV_per_A": float(np.mean([e.get("forces_meV_per_A", np.nan) for e in energy])),
            "valid_dipole_mae_mD": float(
                (histories.get("dipole") or {}).get("valid_mae", {}).get("dipole_mD", np.nan)
            ),
            # Per member: the first Stage Two epoch (None: the fit had no Stage Two).
            "stage_two_from_epoch": [h.get("stage_two_from_epoch") for h in histories["energy"]],
            # Cumulative over resumed invocations (timings.json), so curves of interrupted runs compare.
            "run_wall_time_s": run_wall_time_s,
        }
        return entry

    def reference_calls(self) -> int:
        """Reference calculations used for training data (labelled or failed; test set excluded)."""
        return (
            self.database.count(status="ok")
            + self.database.count(status="failed")
            - self.database.count(kind="test")
        )

    # -- stage 3 --------------------------------------------------------------------
    def explore(self, iteration: int) -> list[Candidate]:
        """ML MD with the previous committee, continuing from the previous iteration's last states."""
        folder = self.dirs.iteration_dir(iteration)
        candidates_file = folder / "candidates.extxyz"
        if candidates_file.exists():
            return read_candidates(candidates_file)
        previous = self._continuation_states(iteration - 1)
        replicas = []
        for mol in self.prepared():
            for temperature in self.config.temperatures_k:
                start = previous.get((mol.name, temperature), mol.atoms)
                replicas.append(
                    Replica(
                        mol.name,
                        start,
                        temperature,
                        seed=replica_seed(
                            self.config.seed, f"exploration:{iteration}", mol.name, temperature, 0
                        ),
                    )
                )
        snapshots = folder / "md_checkpoints"
        results = self._run_md(
            exploration_task,
            replicas,
            self.exploration_settings(),
            f"exploration MD, iteration {iteration}",
            snapshots,
        )
        candidates, states = [], {}
        for r in results:
            n_frames = len(r["uncertainty"])
            note = f" (sanity stop at step {r['stop_step']}: {r['stop_reason']})" if r["stopped"] else ""
            self.log.info(
                "iteration %d %s %.0f K: %d frames, max uncertainty %.3f%s",
                iteration,
                r["molecule"],
                r["temperature_k"],
                n_frames,
                np.nanmax(r["uncertainty"]) if n_frames else np.nan,
                note,
            )
            for j in select_most_uncertain(r["uncertainty"], self.config.n_select_per_temperature):
                atoms = Atoms(r["symbols"], positions=r["positions"][j])
                key = f"{r['molecule']}:{iteration}:{r['temperature_k']:.0f}K:step{int(r['steps'][j])}"
                candidates.append(
                    Candidate(
                        key,
                        atoms,
                        {
                            "molecule": r["molecule"],
                            "iteration": iteration,
                            "kind": "active",
                            "temperature": r["temperature_k"],
                            "uncertainty": float(r["uncertainty"][j]),
                        },
                    )
                )
            # A stopped (blown-up) replica restarts from the minimum next time.
            if not r["stopped"]:
                states[f"{r['molecule']}|{r['temperature_k']}"] = (r["final_positions"], r["final_momenta"])
        atomic_write_npz(
            folder / "md_state.npz",
            **{f"{k}|pos": v[0] for k, v in states.items()},
            **{f"{k}|mom": v[1] for k, v in states.items()},
        )
        write_candidates(candidates_file, candidates)
        shutil.rmtree(snapshots, ignore_errors=True)
        return candidates

    def exploration_settings(self) -> dict:
        """Settings of an exploration MD task (they name its snapshots, so keep them stable)."""
        return {
            "n_steps": self.config.exploration_steps,
            "timestep_fs": self.config.timestep_fs,
            "friction_per_fs": self.config.exploration_friction_per_fs,
            "record_interval": self.config.exploration_record_interval,
            "uncertainty_stop": self.config.uncertainty_stop,
            "precision": self.config.md_precision,
        }

    def _continuation_states(self, iteration: int) -> dict:
        path = self.dirs.iteration_dir(iteration) / "md_state.npz"
        if iteration < 1 or not path.exists():
            return {}
        states = {}
        with np.load(path) as data:
            for key in data.files:
                if key.endswith("|pos"):
                    name, temperature = key[:-4].rsplit("|", 1)
                    start = next(m.atoms for m in self.prepared() if m.name == name)
                    atoms = bare_copy(start, data[key])  # its masses, which the stored momenta belong to
                    atoms.set_momenta(data[key[:-4] + "|mom"])
                    states[(name, float(temperature))] = atoms
        return states

    def _run_md(
        self, task, replicas: list[Replica], settings: dict, description: str, checkpoint_dir: Path
    ) -> list[dict]:
        return run_md_tasks(
            self.executor, self._models_for_md, task, replicas, settings, description, checkpoint_dir
        )

    # -- the loop -------------------------------------------------------------------
    @holding_run_dir
    def active_learning(self) -> tuple[object, list[dict]]:
        curve = json.loads(self.dirs.learning_curve.read_text()) if self.dirs.learning_curve.exists() else []
        done = {entry["iteration"] for entry in curve}
        committee = None
        for iteration in range(0, self.config.max_iterations + 1):
            if iteration in done:
                if stop_reason([e for e in curve if e["iteration"] <= iteration], self.config):
                    break
                continue
            if iteration == 0:
                candidates = self.initial_candidates()
            else:
                self._models_for_md = self.dirs.models(iteration - 1)
                with self.dirs.timed("exploration_md"):
                    candidates = self.explore(iteration)
            with self.dirs.timed("labelling"):
                counts = label_candidates(
                    candidates,
                    self.database,
                    self.reference,
                    self.executor,
                    self.log,
                    f"labelling iteration {iteration}",
                )
            self.say(
                f"iteration {iteration}: {counts['new']} new labels, {counts['failed']} failed, "
                f"{counts['skipped']} already present"
            )
            with self.dirs.timed("training"):
                committee = self.train(iteration)
            with self.dirs.timed("evaluation"):
                entry = self.evaluate(iteration, committee, self.dirs.total_time_s())
            curve.append(entry)
            atomic_write_json(self.dirs.learning_curve, curve)
            self._stage_done(f"iteration {iteration}")
            self.say(
                f"iteration {iteration}: harmonic MAE {entry['harmonic_mae_cm1']:.1f} cm-1, "
                f"{entry['reference_calls']} reference calculations"
            )
            reason = stop_reason(curve, self.config)
            if reason:
                self.say(f"active learning stops: {reason}")
                break
        last = max(e["iteration"] for e in curve)
        if not self.dirs.final_models.exists():
            from specml.models import Committee

            final = committee if committee is not None else Committee.load(self.dirs.models(last))
            atomic_save_directory(final.save, self.dirs.final_models)
            self._stage_done("final models")
        return self.dirs.final_models, curve

    # -- stage 6 --------------------------------------------------------------------
    @holding_run_dir
    def test_set(self) -> dict:
        from specml.dataset.test_set import select_representative
        from specml.models import Committee

        path = self.dirs.root / "test_set.json"
        if path.exists():
            return json.loads(path.read_text())
        committee = Committee.load(self.dirs.final_models)
        self._models_for_md = self.dirs.final_models
        frames_file = self.dirs.test_set_structures
        if not frames_file.exists():
            n_replicas = max(1, self.config.test_md_replicas)
            n_steps = int(round(self.config.test_md_ps * 1000 / self.config.timestep_fs / n_replicas))
            interval = max(1, n_steps * n_replicas // self.config.test_frames)
            replicas = [
                Replica(
                    m.name, m.atoms, 300.0, seed=replica_seed(self.config.seed, "test_set", m.name, 300.0, k)
                )
                for m in self.prepared()
                for k in range(n_replicas)
            ]
            settings = {
                "n_steps": n_steps,
                "timestep_fs": self.config.timestep_fs,
                "friction_per_fs": self.config.exploration_friction_per_fs,
                "record_interval": interval,
                "uncertainty_stop": np.inf,
                "precision": self.config.md_precision,
            }
            frames_by_molecule: dict[str, list[Atoms]] = {}
            snapshots = frames_file.parent / "md_checkpoints"
            for r in self._run_md(exploration_task, replicas, settings, "test-set MD (300 K)", snapshots):
                frames_by_molecule.setdefault(r["molecule"], []).extend(
                    Atoms(r["symbols"], positions=p) for p in r["positions"]
                )
            images = []
            for name, frames in frames_by_molecule.items():
                for j in select_representative(
                    frames, self.config.test_clusters, self.config.test_per_cluster, self.config.seed
                ):
                    atoms = frames[j]
                    atoms.info.update(key=f"{name}:test:{j}", molecule=name, kind="test", temperature=300.0)
                    images.append(atoms)
            atomic_write_structures(frames_file, images)
            shutil.rmtree(snapshots, ignore_errors=True)
        candidates = read_candidates(frames_file)
        label_candidates(
            candidates, self.database, self.reference, self.executor, self.log, "labelling test set"
        )
        labelled = [a for a in self.database.labelled_atoms(exclude_kinds=()) if a.info.get("kind") == "test"]
        errors = label_errors(committee, labelled)
        atomic_write_json(path, errors)
        return errors

    # -- stage 5 --------------------------------------------------------------------
    @holding_run_dir
    def production(
        self, temperatures_k: tuple[float, ...] | None = None, models_dir: Path | None = None
    ) -> dict[float, dict[str, Spectrum]]:
        """Production ML-MD spectra of every molecule at each temperature (by default the
        configured one); all temperatures share the MD batches."""
        self._models_for_md = models_dir or self.dirs.final_models
        return production_spectra(
            self.prepared_structures(),
            self._models_for_md,
            temperatures_k or (self.config.production_temperature_k,),
            self.config,
            self.dirs.production_dir,
            self.executor,
            self.say,
        )

    def prepared_structures(self) -> list[tuple[str, Atoms]]:
        return [(m.name, m.atoms) for m in self.prepared()]

    @holding_run_dir
    def run(self, temperatures_k: tuple[float, ...] | None = None) -> WorkflowResult:
        started = time.perf_counter()
        self.prepared()
        _, curve = self.active_learning()
        with self.dirs.timed("test_set"):
            test_errors = self.test_set() if self.config.run_test_set else {}
        self._stage_done("test set")
        if self.config.raman:
            from specml.workflow.raman import production_raman_spectra, raman_stage

            with self.dirs.timed("raman_model"):
                raman_report = raman_stage(self)
        with self.dirs.timed("production_md"):
            produced = self.production(temperatures_k)
        self._stage_done("production MD")
        spectra = keyed_spectra(produced)
        raman = production_raman_spectra(self, temperatures_k) if self.config.raman else {}
        summary = {
            "molecules": [m.name for m in self.molecules],
            "reference": self.reference.describe(),
            "iterations": len(curve) - 1,
            "reference_calls": self.reference_calls(),
            "reference_calls_evaluation": sum(m.reference_calls for m in self.prepared()),
            "final_harmonic_mae_cm1": curve[-1]["harmonic_mae_cm1"],
            "target_harmonic_mae_cm1": self.config.target_harmonic_mae_cm1,
            "converged": curve[-1]["harmonic_mae_cm1"] <= self.config.target_harmonic_mae_cm1,
            "stop_reason": ended_by(curve, self.config),
            "test_set": test_errors,
            "wall_time_s_this_invocation": time.perf_counter() - started,
            "wall_time_s_total": self.dirs.total_time_s(),
            "wall_time_s_by_stage": json.loads(self.dirs.timings.read_text())
            if self.dirs.timings.exists()
            else {},
        }
        if self.config.raman:
            summary["raman"] = raman_report
        return WorkflowResult(self.dirs.root, spectra, curve, summary, raman_spectra=raman)
