"""Multi-fidelity active learning: a cheap reference teaches the committee the shape of the
potential, a few expensive labels teach it the difference (issue 23).

Stages, each persisted in the run directory and resumed after any interruption:

1. pretraining: the ordinary active-learning workflow with the cheap reference, to a converged
   committee and dipole model, in ``pretrain/`` (its own run directory and label database);
2. the first expensive labels: each molecule's expensive minimum, displacements along the
   normal modes of the expensive Hessian, and frames of a survey MD run with the pretrained
   committee: the most uncertain frames and one frame from each KMeans cluster (MBTR) of the
   rest, so the labels cover what the cheap-level MD visits (``multifidelity/survey.extxyz``);
3. adaptation of the pretrained models to the expensive labels (:data:`ADAPTATIONS`): fine-tuning,
   Δ-learning or training from scratch; ``best`` trains all three, writes their harmonic errors to
   ``adaptation.json`` and continues with the best;
4. active learning on expensive labels with that adaptation until the ML harmonic frequencies are
   within the target MAE of the expensive reference's; then the test set and production MD
   exactly as :class:`~specml.workflow.active_learning.IRWorkflow` does.

Every label's fidelity is the ``reference`` column of its database row. Expensive labels live in
the run's database; cheap ones in ``pretrain/labels.db``, together with the cheap labels of the
expensive structures that Δ-learning pairs them with (keys ``twin:<expensive key>``). All labels
go through the executor, so a Dask cluster computes them in parallel.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from specml.dataset.database import PROVENANCE_KEYS
from specml.errors import InputError
from specml.executor import Executor
from specml.molecules.inputs import Molecule, bare_copy
from specml.workflow.active_learning import IRWorkflow, WorkflowResult, holding_run_dir
from specml.workflow.config import WorkflowConfig
from specml.workflow.evaluation import harmonic_errors, ml_harmonic_analysis
from specml.workflow.fidelity_config import ADAPTATIONS, MultiFidelitySettings
from specml.workflow.labelling import Candidate, label_candidates, read_candidates, write_candidates
from specml.workflow.md_tasks import (
    Replica,
    exploration_task,
    replica_seed,
    run_md_tasks,
    select_most_uncertain,
)
from specml.workflow.state import atomic_save_directory, atomic_write_json

#: Key prefix of a cheap label computed at an expensive label's structure (for Δ-learning).
TWIN_PREFIX = "twin:"


class MultiFidelityWorkflow(IRWorkflow):
    """Cheap active learning, then the expensive ``config.reference`` with few labels.

    ``config`` holds the expensive reference and the settings both stages share (models,
    MD, stopping rule, production); ``settings`` the cheap reference and how expensive labels
    are chosen and used. ``database`` (optional) holds the expensive labels. ``stage_done(name)``
    is called as in :class:`~specml.workflow.active_learning.IRWorkflow`, for the pretraining's
    stages too (named ``pretrain: ...``) and after the survey.
    """

    def __init__(
        self,
        molecules: list[Molecule],
        run_dir: str | Path,
        config: WorkflowConfig | None = None,
        settings: MultiFidelitySettings | None = None,
        executor: Executor | None = None,
        database: str | None = None,
        show_progress: bool = True,
        console=None,
        stage_done=None,
    ):
        config = config or WorkflowConfig()
        self.settings = (settings or MultiFidelitySettings()).check(config.reference)
        # In the stored config: a run with other multi-fidelity settings, or none, is refused.
        config = config.with_overrides(extra={**config.extra, "multifidelity": self.settings.to_dict()})
        super().__init__(molecules, run_dir, config, executor, database, show_progress, console, stage_done)
        cheap = config.with_overrides(reference=self.settings.pretrain, run_test_set=False, extra={})
        self.pretrain = IRWorkflow(
            molecules,
            self.dirs.root / "pretrain",
            cheap,
            self.executor,
            None,
            show_progress,
            console,
            lambda stage: self._stage_done(f"pretrain: {stage}"),
        )

    @property
    def adaptation_file(self) -> Path:
        return self.dirs.root / "adaptation.json"

    # -- stage 1 ------------------------------------------------------------------------
    def pretrain_stage(self) -> Path:
        """Active learning with the cheap reference to its final committee (resumed where it stopped)."""
        if not self.pretrain.dirs.final_models.exists():
            self.say(f"pretraining with {self.pretrain.reference.describe()} in {self.pretrain.dirs.root}")
        with self.dirs.timed("pretrain"):
            self.pretrain.prepared()
            self.pretrain.active_learning()
        return self.pretrain.dirs.final_models

    def pretrained_models(self) -> Path:
        """The final committee of the cheap stage; InputError before :meth:`pretrain_stage` has run."""
        models = self.pretrain.dirs.final_models
        if not models.exists():
            raise InputError(f"no pretrained committee in {models} yet: run the pretraining stage first")
        return models

    # -- stage 2 ------------------------------------------------------------------------
    def initial_candidates(self, n_per_mode: int | None = None) -> list[Candidate]:
        n_per_mode = self.settings.n_per_mode if n_per_mode is None else n_per_mode
        return super().initial_candidates(n_per_mode) + self.survey()

    def survey(self) -> list[Candidate]:
        """The most uncertain and the coverage frames of ML MD with the pretrained committee,
        started from each expensive minimum at every exploration temperature."""
        path = self.dirs.root / "multifidelity" / "survey.extxyz"
        if path.exists():
            return read_candidates(path)
        replicas = [
            Replica(m.name, m.atoms, t, seed=replica_seed(self.config.seed, "survey", m.name, t, 0))
            for m in self.prepared()
            for t in self.config.temperatures_k
        ]
        snapshots = path.parent / "md_checkpoints"
        with self.dirs.timed("survey_md"):
            results = run_md_tasks(
                self.executor,
                self.pretrained_models(),
                exploration_task,
                replicas,
                self.exploration_settings(),
                "survey MD with the pretrained committee",
                snapshots,
            )
        candidates = survey_candidates(
            results, self.settings.n_uncertain, self.settings.n_coverage, self.config.seed
        )
        write_candidates(path, candidates)
        shutil.rmtree(snapshots, ignore_errors=True)
        self.say(f"survey MD: {len(candidates)} frames chosen for {self.reference.describe()} labels")
        self._stage_done("survey")
        return candidates

    # -- stage 3 ------------------------------------------------------------------------
    def fit_iteration(self, iteration: int, data: list[Atoms], checkpoints: Path):
        """The committee of ``iteration``, adapted to the expensive labels ``data``."""
        if iteration == 0 and self.settings.adaptation == "best":
            return self.compare_adaptations(data)
        method = self.adaptation_method()
        committee = self.adapt(method, data, checkpoints)
        if iteration == 0:
            atomic_write_json(self.adaptation_file, {"chosen": method, "n_labels": len(data)})
        return committee

    def adaptation_method(self) -> str:
        """The adaptation every iteration uses: the setting, or the winner of ``best``."""
        if self.settings.adaptation != "best":
            return self.settings.adaptation
        return json.loads(self.adaptation_file.read_text())["chosen"]

    def compare_adaptations(self, data: list[Atoms]):
        """Every adaptation trained on ``data`` and scored by its harmonic MAE against the expensive
        reference (``adaptation.json``); returns the best committee."""
        from specml.models import Committee

        scores = {}
        for method in ADAPTATIONS:
            folder = self.dirs.root / "adaptation" / method
            if (folder / "committee.json").exists():
                committee = Committee.load(folder)
                train_time_s = json.loads((folder / "train_time.json").read_text())["train_time_s"]
            else:
                start = time.perf_counter()
                committee = self.adapt(method, data, folder.with_name(f"{method}_checkpoints"))
                train_time_s = time.perf_counter() - start
                atomic_save_directory(_saving_with(committee, {"train_time_s": train_time_s}), folder)
                shutil.rmtree(folder.with_name(f"{method}_checkpoints"), ignore_errors=True)
            scores[method] = {**self.harmonic_scores(committee), "train_time_s": train_time_s}
            self.say(f"adaptation {method}: harmonic MAE {scores[method]['harmonic_mae_cm1']:.1f} cm-1")
        chosen = min(scores, key=lambda m: scores[m]["harmonic_mae_cm1"])
        atomic_write_json(self.adaptation_file, {"chosen": chosen, "n_labels": len(data), "scores": scores})
        return Committee.load(self.dirs.root / "adaptation" / chosen)

    def harmonic_scores(self, committee) -> dict:
        """Harmonic MAE and RMSE (cm-1) of ``committee`` against the expensive reference, mean over molecules."""
        errors = [
            harmonic_errors(
                ml_harmonic_analysis(committee, m.atoms).frequencies_cm1, m.harmonic.frequencies_cm1
            )
            for m in self.prepared()
        ]
        return {
            "harmonic_mae_cm1": float(np.mean([e["mae_cm1"] for e in errors])),
            "harmonic_rmse_cm1": float(np.sqrt(np.mean([e["rmse_cm1"] ** 2 for e in errors]))),
        }

    def adapt(self, method: str, data: list[Atoms], checkpoints: Path):
        """A committee for the expensive reference from its labels ``data`` and the pretrained one."""
        from specml.models import Committee, get_preset
        from specml.models.fidelity import delta_committee, difference_labels, refit_atomic_energies

        epochs = {"epochs": self.config.model_epochs} if self.config.model_epochs else {}
        preset = get_preset(self.config.model_preset, **epochs)
        start = time.perf_counter()
        if method == "scratch":
            committee = self.fit_committee(
                data, preset, None, checkpoints, "training on expensive labels only"
            )
        elif method == "finetune":
            pretrained = Committee.load(self.pretrained_models())
            # Fine-tuning needs fewer epochs than a fit from scratch, never more.
            tuned = get_preset(
                self.config.model_preset, epochs=min(self.config.warm_start_epochs, preset.epochs)
            )
            committee = self.fit_committee(
                data, tuned, refit_atomic_energies(pretrained, data), checkpoints, "fine-tuning"
            )
        elif method == "delta":
            pretrained = Committee.load(self.pretrained_models())
            cheap = self.cheap_twins(data)
            pairs = [(a, cheap[a.info["key"]]) for a in data if a.info["key"] in cheap]
            differences = difference_labels([hi for hi, _ in pairs], [lo for _, lo in pairs])
            correction = self.fit_committee(
                differences, preset, None, checkpoints, "training the Δ correction"
            )
            committee = delta_committee(pretrained, correction)
        else:
            raise InputError(f"adaptation {method!r} is not known; use one of {', '.join(ADAPTATIONS)}")
        self.say(f"{method}: {len(data)} expensive labels, trained in {time.perf_counter() - start:.0f} s")
        return committee

    def cheap_twins(self, data: list[Atoms]) -> dict[str, Atoms]:
        """Cheap labels of the structures of ``data`` by expensive key (computed once, kept in the
        pretraining database under ``twin:<key>``); a structure the cheap method failed on is missing."""
        candidates = [
            Candidate(
                TWIN_PREFIX + a.info["key"],
                bare_copy(a),
                {
                    **{k: a.info[k] for k in PROVENANCE_KEYS if k in a.info and k != "reference"},
                    "twin_of": a.info["key"],
                },
            )
            for a in data
        ]
        label_candidates(
            candidates,
            self.pretrain.database,
            self.pretrain.reference,
            self.executor,
            self.log,
            f"{self.pretrain.reference.name} labels of the expensive structures",
        )
        return {
            a.info["key"][len(TWIN_PREFIX) :]: a
            for a in self.pretrain.database.labelled_atoms()
            if a.info["key"].startswith(TWIN_PREFIX)
        }

    # -- the whole run -------------------------------------------------------------------
    @holding_run_dir
    def run(self, temperatures_k: tuple[float, ...] | None = None) -> WorkflowResult:
        self.pretrain_stage()
        result = super().run(temperatures_k)
        result.summary["pretrain"] = self.pretrain_summary()
        if self.adaptation_file.exists():
            result.summary["adaptation"] = json.loads(self.adaptation_file.read_text())
        return result

    def pretrain_summary(self) -> dict:
        """The cheap stage's cost and accuracy: calls (its active learning plus the Δ-learning
        twins), calls for its geometries and Hessians, iterations and harmonic MAE."""
        curve = json.loads(self.pretrain.dirs.learning_curve.read_text())
        return {
            "reference": self.pretrain.reference.describe(),
            "reference_calls": self.pretrain.reference_calls(),
            "reference_calls_delta_twins": len(
                [k for k in self.pretrain.database.keys() if k.startswith(TWIN_PREFIX)]
            ),
            "reference_calls_evaluation": sum(m.reference_calls for m in self.pretrain.prepared()),
            "iterations": len(curve) - 1,
            "final_harmonic_mae_cm1": curve[-1]["harmonic_mae_cm1"],
        }


def _saving_with(committee, train_time: dict):
    """A ``save(directory)`` writing the committee and ``train_time.json`` (one atomic directory)."""

    def save(directory: Path) -> None:
        committee.save(directory)
        atomic_write_json(directory / "train_time.json", train_time)

    return save


def survey_candidates(results: list[dict], n_uncertain: int, n_coverage: int, seed: int) -> list[Candidate]:
    """From exploration outputs (one per replica): the ``n_uncertain`` most uncertain frames over
    all replicas (at least two frames apart within a replica), then one random frame from each of
    ``n_coverage`` KMeans clusters of the MBTR of the remaining frames, per molecule."""
    from specml.dataset.test_set import select_representative

    frames: dict[str, list[tuple[dict, int]]] = {}
    for r in results:
        frames.setdefault(r["molecule"], []).extend((r, j) for j in range(len(r["uncertainty"])))
    candidates = []
    for name, pool in frames.items():
        replicas = [r for r in results if r["molecule"] == name]
        uncertain = [(r, j) for r in replicas for j in select_most_uncertain(r["uncertainty"], n_uncertain)]
        uncertain = sorted(uncertain, key=lambda rj: -float(rj[0]["uncertainty"][rj[1]]))[:n_uncertain]
        taken = {(id(r), j) for r, j in uncertain}
        rest = [(r, j) for r, j in pool if (id(r), j) not in taken]
        structures = [Atoms(r["symbols"], positions=r["positions"][j]) for r, j in rest]
        coverage = (
            [rest[i] for i in select_representative(structures, n_coverage, 1, seed)] if n_coverage else []
        )
        for kind, chosen in (("uncertain", uncertain), ("coverage", coverage)):
            for r, j in chosen:
                candidates.append(
                    Candidate(
                        f"{name}:0:{kind}:{r['temperature_k']:.0f}K:step{int(r['steps'][j])}",
                        Atoms(r["symbols"], positions=r["positions"][j]),
                        {
                            "molecule": name,
                            "iteration": 0,
                            "kind": kind,
                            "temperature": r["temperature_k"],
                            "uncertainty": float(r["uncertainty"][j]),
                        },
                    )
                )
    return candidates
