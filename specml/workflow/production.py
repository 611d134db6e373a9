"""Production ML-MD and its IR spectra: thermalise, record dipoles, average over trajectories.

A :class:`ProductionJob` is a set of molecules at one temperature whose trajectories are
stored in one folder (one ``<name>.npz`` per molecule). :func:`run_production` runs every
trajectory that several jobs still miss in one set of batched MD tasks: a batch of many
replicas costs far less per replica than several small ones (130 against 1,145
replica-steps/s at 3 and 72 replicas, ``docs/results/md_throughput.json``), so a
temperature series or a list of new molecules should never run one small batch each.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from specml.errors import InputError
from specml.executor import Executor
from specml.spectra.autocorrelation import dipole_acf, ir_from_trajectories
from specml.spectra.spectrum import Spectrum
from specml.workflow.config import WorkflowConfig
from specml.workflow.md_tasks import Replica, production_task, replica_seed, run_md_tasks
from specml.workflow.state import atomic_write_npz, safe_name, temperature_folder


@dataclass
class ProductionJob:
    """Production MD of ``structures`` (name, start) at ``temperature_k``, stored in ``folder``."""

    structures: list[tuple[str, Atoms]]
    temperature_k: float
    folder: Path

    def file(self, name: str) -> Path:
        return Path(self.folder) / f"{safe_name(name)}.npz"

    def missing(self) -> list[tuple[str, Atoms]]:
        return [(n, a) for n, a in self.structures if not self.file(n).exists()]


def production_settings(config: WorkflowConfig) -> dict:
    """The settings of a production task (they name its snapshots, so keep them stable)."""
    settings = {
        "thermalization_steps": config.thermalization_steps,
        "production_steps": config.production_steps,
        "timestep_fs": config.timestep_fs,
        "friction_per_fs": config.production_friction_per_fs,
        "record_interval": config.dipole_record_interval,
        "uncertainty_stop": config.uncertainty_stop,
        "precision": config.md_precision,
    }
    if config.raman:  # only then: the settings of runs without Raman keep their snapshot names
        settings["raman"] = True
    if config.production_beads > 1:  # likewise: classical runs keep their snapshot names
        settings["beads"] = config.production_beads
    return settings


def run_production(
    jobs: list[ProductionJob], models_dir: Path, config: WorkflowConfig, executor: Executor, snapshots: Path
) -> None:
    """Run the trajectories the ``jobs`` still miss, all together, and write each molecule's file.

    Batches snapshot themselves in ``snapshots``, so a killed run resumes; the folder is
    removed once every file is written.
    """
    replicas, files = [], []
    for job in jobs:
        for name, atoms in job.missing():
            for k in range(config.n_trajectories):
                replicas.append(
                    Replica(
                        name,
                        atoms,
                        job.temperature_k,
                        seed=replica_seed(config.seed, "production", name, job.temperature_k, k),
                    )
                )
                files.append(job.file(name))
    if not replicas:
        return
    temperatures = sorted({r.temperature_k for r in replicas})
    description = f"production MD at {', '.join(f'{t:.0f}' for t in temperatures)} K"
    runs_per_file: dict[Path, list[dict]] = {}
    for file, run in zip(
        files,
        run_md_tasks(
            executor,
            models_dir,
            production_task,
            replicas,
            production_settings(config),
            description,
            snapshots,
        ),
        strict=True,
    ):
        runs_per_file.setdefault(file, []).append(run)
    for file, runs in runs_per_file.items():
        write_production_file(file, runs)
    shutil.rmtree(snapshots, ignore_errors=True)


def write_production_file(path: Path, runs: list[dict]) -> None:
    """One molecule's trajectories (outputs of :func:`production_task`) as read by :func:`read_production_file`."""
    arrays = {}
    for k, r in enumerate(runs):
        arrays[f"dipoles_{k}"] = np.asarray(r["dipoles"], dtype=float)
        arrays[f"uncertainty_{k}"] = np.asarray(r["uncertainty"], dtype=float)
        arrays[f"stopped_{k}"] = np.array(bool(r["stopped"]))
        if r.get("polarizabilities") is not None:  # Raman (Å^3, (T, 3, 3))
            arrays[f"polarizabilities_{k}"] = np.asarray(r["polarizabilities"], dtype=float)
        arrays[f"mean_temperature_{k}"] = np.array(
            float(np.mean(r["temperatures"])) if len(r["temperatures"]) else np.nan
        )
    arrays["record_interval_fs"] = np.array(runs[0]["record_interval_fs"])
    atomic_write_npz(path, **arrays)


def job_spectra(
    job: ProductionJob, models_dir: Path, config: WorkflowConfig, say=print
) -> dict[str, Spectrum]:
    """IR spectra (mean and std over trajectories) of a job's stored trajectories, per molecule;
    a molecule whose trajectories all hit the sanity stop gets none, with a warning."""
    spectra = {}
    lo, hi = config.spectrum_range_cm1
    for name, _ in job.structures:
        runs = read_production_file(job.file(name))
        usable = runs.usable_correlations(config.max_correlation_fs, min_fs=2 * config.max_correlation_fs)
        if not usable:
            say(f"[yellow]{name}: every production trajectory hit the sanity stop; no spectrum[/]")
            continue
        spectra[name] = ir_from_trajectories(
            usable,
            runs.record_interval_fs,
            config.max_correlation_fs,
            lo,
            hi,
            {
                "label": f"{name} ML-MD {job.temperature_k:.0f} K",
                "molecule": name,
                "temperature_k": job.temperature_k,
                "n_trajectories_stopped": runs.n_trajectories - len(usable),
                "mean_relative_force_uncertainty": float(np.nanmean(runs.mean_uncertainties)),
                "mean_kinetic_temperature_k": float(np.nanmean(runs.mean_temperatures_k)),
                "method": "ML-MD (MACE committee)"
                if config.production_beads == 1
                else f"TRPMD, {config.production_beads} beads (MACE committee)",
                "ring_polymer_beads": config.production_beads,
                "models": str(models_dir),
            },
        )
    return spectra


def snapshot_folder(production_dir: Path, temperatures_k, beads: int = 1) -> Path:
    """Snapshots of production MD running at ``temperatures_k`` together: in the temperature's
    own folder when there is one (where runs made before temperatures shared batches keep
    theirs), else beside the temperature folders."""
    temperatures_k = list(temperatures_k)
    if len(temperatures_k) == 1:
        return temperature_folder(production_dir, temperatures_k[0], beads) / "md_checkpoints"
    return Path(production_dir) / ("md_checkpoints" + (f"_{beads}beads" if beads > 1 else ""))


def production_spectra(
    structures: list[tuple[str, Atoms]],
    models_dir: Path,
    temperatures_k,
    config: WorkflowConfig,
    production_dir: Path,
    executor: Executor,
    say=print,
) -> dict[float, dict[str, Spectrum]]:
    """Production ML-MD spectra of ``structures`` at each temperature, {T: {name: spectrum}};
    all temperatures share the MD batches, each is stored in its :func:`temperature_folder`."""
    # Each temperature once: a repeated one would run its trajectories twice into one folder.
    temperatures_k = tuple(dict.fromkeys(float(t) for t in temperatures_k))
    beads = config.production_beads
    jobs = [
        ProductionJob(structures, t, temperature_folder(production_dir, t, beads)) for t in temperatures_k
    ]
    run_production(jobs, models_dir, config, executor, snapshot_folder(production_dir, temperatures_k, beads))
    return {job.temperature_k: job_spectra(job, models_dir, config, say) for job in jobs}


def spectrum_key(name: str, temperature_k: float) -> str:
    """The key of one molecule's spectrum at one temperature in a result: ``name@<T>K``."""
    return f"{name}@{temperature_k:.0f}K"


def keyed_spectra(produced: dict[float, dict[str, Spectrum]]) -> dict[str, Spectrum]:
    """:func:`production_spectra`'s {T: {name: spectrum}} as one mapping by :func:`spectrum_key`."""
    return {
        spectrum_key(name, t): spectrum
        for t, per_molecule in produced.items()
        for name, spectrum in per_molecule.items()
    }


def acf_key(index: int | None, max_ps: float | None = None) -> str:
    """The name of a stored autocorrelation in a compact dipole file: trajectory ``index`` (None:
    a one-trajectory file), over the whole trajectory or its first ``max_ps`` picoseconds."""
    window = "all" if max_ps is None else f"first_{max_ps:g}ps"
    return f"acf_{window}" if index is None else f"acf_{index}_{window}"


@dataclass
class ProductionRuns:
    """The production trajectories of one molecule, as :func:`run_production` stores them.

    ``dipoles`` (e·Å, one ``(T, 3)`` series per trajectory, every ``record_interval_fs``),
    ``uncertainties`` (relative force uncertainty per frame), ``stopped`` (sanity stop),
    ``mean_temperatures_k`` (mean kinetic temperature per trajectory, K). A compact file
    (:mod:`specml.workflow.compact_md`) has no dipoles: ``acfs`` holds each trajectory's
    :func:`~specml.spectra.autocorrelation.dipole_acf` by :func:`acf_key`, at depth
    ``acf_depth_fs``, ``n_frames`` the trajectory lengths and ``uncertainties`` one mean each.
    """

    dipoles: list[np.ndarray]
    uncertainties: list[np.ndarray]
    stopped: list[bool]
    mean_temperatures_k: list[float]
    record_interval_fs: float
    n_frames: list[int] = field(default_factory=list)
    acfs: dict[str, np.ndarray] = field(default_factory=dict)
    acf_depth_fs: float | None = None
    polarizabilities: list[np.ndarray] | None = None  # Å^3, (T, 3, 3) each; runs with Raman only

    def __post_init__(self):
        if not self.n_frames:
            self.n_frames = [len(d) for d in self.dipoles]

    @property
    def n_trajectories(self) -> int:
        return len(self.stopped)

    @property
    def mean_uncertainties(self) -> list[float]:
        return [float(np.nanmean(u)) if u.size else np.nan for u in self.uncertainties]

    def _usable(self, min_fs: float) -> list[int]:
        return [
            k
            for k in range(self.n_trajectories)
            if not self.stopped[k] and self.n_frames[k] * self.record_interval_fs >= min_fs
        ]

    def _window(self, max_ps: float | None) -> int | None:
        return None if max_ps is None else int(round(max_ps * 1000.0 / self.record_interval_fs))

    def usable_dipoles(self, min_fs: float = 0.0, max_ps: float | None = None) -> list[np.ndarray]:
        """Dipole series of the trajectories that were not stopped and are at least ``min_fs``
        long, cut to their first ``max_ps`` picoseconds."""
        if not self.dipoles and self.n_trajectories:
            raise InputError("a compact production file holds autocorrelations, not dipoles")
        n = self._window(max_ps)
        return [self.dipoles[k][:n] for k in self._usable(min_fs)]

    def usable_correlations(
        self, max_correlation_fs: float, min_fs: float = 0.0, max_ps: float | None = None
    ) -> list[tuple[np.ndarray, int]]:
        """``(dipole_acf, n_frames)`` of the trajectories :meth:`usable_dipoles` selects, computed
        from the dipoles or read from a compact file."""
        n = self._window(max_ps)
        if self.dipoles:
            return [
                (dipole_acf(d, self.record_interval_fs, max_correlation_fs), len(d))
                for d in self.usable_dipoles(min_fs, max_ps)
            ]
        if self.acf_depth_fs != max_correlation_fs:
            raise InputError(
                f"the stored autocorrelations reach {self.acf_depth_fs:g} fs, not {max_correlation_fs:g} fs"
            )
        out = []
        for k in self._usable(min_fs):
            key = acf_key(k, max_ps)
            if key not in self.acfs:
                stored = sorted({name.split("_", 2)[-1] for name in self.acfs})
                raise InputError(f"no stored autocorrelation {key!r} (this file has windows {stored})")
            out.append((self.acfs[key], self.n_frames[k] if n is None else min(n, self.n_frames[k])))
        return out


def read_production_file(path: Path) -> ProductionRuns:
    """Read one molecule's production file (``dipoles_K``, ``uncertainty_K``, ``stopped_K``,
    ``mean_temperature_K`` per trajectory K, and ``record_interval_fs``), or its compact form."""
    with np.load(path) as data:
        n_runs = len([k for k in data.files if k.startswith("stopped_")])
        if not n_runs:
            raise InputError(f"{path}: no production trajectories (no 'dipoles_K' arrays)")
        compact = "acf_depth_fs" in data.files
        return ProductionRuns(
            dipoles=[] if compact else [np.asarray(data[f"dipoles_{k}"], dtype=float) for k in range(n_runs)],
            uncertainties=[np.asarray(data[f"uncertainty_{k}"], dtype=float) for k in range(n_runs)],
            stopped=[bool(data[f"stopped_{k}"]) for k in range(n_runs)],
            mean_temperatures_k=[float(data[f"mean_temperature_{k}"]) for k in range(n_runs)],
            record_interval_fs=float(data["record_interval_fs"]),
            n_frames=[int(data[f"n_frames_{k}"]) for k in range(n_runs)] if compact else [],
            acfs={k: np.asarray(data[k], dtype=float) for k in data.files if k.startswith("acf_")},
            acf_depth_fs=float(data["acf_depth_fs"]) if compact else None,
            polarizabilities=[np.asarray(data[f"polarizabilities_{k}"], dtype=float) for k in range(n_runs)]
            if f"polarizabilities_{n_runs - 1}" in data.files
            else None,
        )
