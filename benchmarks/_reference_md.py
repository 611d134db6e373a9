"""Reference-MD ("AIMD") spectra for the benchmarks.

The reference method (xTB) drives exactly the workflow's production MD protocol
(thermalisation + production, timestep, friction, dipole record interval). Each
trajectory is one task, cached as ``.npz`` so a killed benchmark resumes. Tasks run
on a Dask ``LocalCluster`` of single-threaded worker processes, in parallel with the
ML work in the main process, or in the main process when ``workers=0``.

Used by ``benchmarks/methanol_xtb.py`` and ``benchmarks/palirs.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def reference_trajectory(args) -> str:
    """One reference Langevin trajectory; dipoles saved to ``path``.

    ``args`` = ``(path, atoms, config_dict, seed, temperature_k)``; a ``temperature_k``
    of None means the workflow's production temperature. Returns ``path``.
    """
    path, atoms, config_dict, seed, temperature_k = args
    from specml.dynamics import run_reference_md
    from specml.workflow.config import WorkflowConfig
    from specml.workflow.state import atomic_write_npz

    path = Path(path)
    if path.exists():
        return str(path)
    config = WorkflowConfig.from_dict(config_dict)
    temperature_k = config.production_temperature_k if temperature_k is None else float(temperature_k)
    snapshot = path.with_name(path.stem + "_checkpoint.pt")  # a killed trajectory continues mid-way
    traj = run_reference_md(
        atoms,
        config.reference,
        temperature_k,
        config.production_steps,
        config.thermalization_steps,
        config.timestep_fs,
        config.production_friction_per_fs,
        record_interval=config.dipole_record_interval,
        seed=seed,
        checkpoint_path=snapshot,
    )
    atomic_write_npz(
        path,
        dipoles=traj.dipoles,
        temperatures=traj.temperatures_k,
        temperature_k=temperature_k,
        record_interval_fs=config.dipole_record_interval * config.timestep_fs,
        wall_time_s=traj.info["wall_time_s"],
    )  # summed over resumed runs
    snapshot.unlink(missing_ok=True)
    return str(path)


def trajectory_tasks(
    folder: Path, atoms, config, seed: int, temperature_k: float | None = None
) -> list[tuple]:
    """The ``config.n_trajectories`` tasks of one molecule (files ``folder/traj_K.npz``)."""
    folder = Path(folder)
    return [
        (str(folder / f"traj_{k}.npz"), atoms, config.to_dict(), seed + k, temperature_k)
        for k in range(config.n_trajectories)
    ]


#: Dask priority of reference trajectories: below the workflow's tasks (priority 0), so they fill
#: the workers whenever the ML work leaves one free instead of holding the ML work up for hours.
REFERENCE_PRIORITY = -10


class ReferenceMDPool:
    """Runs :func:`reference_trajectory` tasks: on ``workers`` single-threaded Dask worker
    processes (started at construction, so they overlap with the caller's work), or, with
    ``workers=0``, in this process when the results are collected. ``executor`` is the
    specml executor of the same workers, for the workflow's own tasks, which run ahead of
    the reference trajectories."""

    def __init__(self, workers: int = 1, show_progress: bool = True):
        from specml.executor import make_executor

        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers = workers
        self.executor = make_executor(f"local:{workers}" if workers else None, show_progress=show_progress)
        self._client = self.executor.client()  # None in-process

    def submit(self, tasks: list[tuple]) -> list:
        """Start ``tasks``; returns one handle per task for :meth:`result`."""
        if self._client is None:
            return list(tasks)
        return [
            self._client.submit(reference_trajectory, task, pure=False, priority=REFERENCE_PRIORITY)
            for task in tasks
        ]

    def result(self, handle) -> str:
        """The trajectory file of one task (raises the task's error)."""
        return handle.result() if self._client is not None else reference_trajectory(handle)

    def close(self) -> None:
        self.executor.close()
        self._client = None

    def __enter__(self) -> ReferenceMDPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def correlation_runs(path: Path, config, max_ps: float | None = None) -> tuple[list[tuple], float]:
    """``(dipole_acf, n_frames)`` of the usable trajectories of an ``.npz`` (one reference trajectory,
    or the workflow's production file, stopped runs left out; either as written or in the compact
    form of the stage artifacts), over their first ``max_ps`` picoseconds, and the record interval (fs)."""
    from specml.workflow.compact_md import trajectory_correlations

    return trajectory_correlations(Path(path), config.max_correlation_fs, max_ps)


def spectrum_of_runs(runs: list[tuple], dt_fs: float, config, metadata: dict):
    """Mean ± std IR spectrum over :func:`correlation_runs`, with the workflow's spectrum settings."""
    from specml.spectra.autocorrelation import ir_from_trajectories

    return ir_from_trajectories(runs, dt_fs, config.max_correlation_fs, *config.spectrum_range_cm1, metadata)


def reference_spectrum(paths: list[str | Path], config, label: str, max_ps: float | None = None):
    """Mean ± std spectrum of reference trajectory files and their summed CPU time (s)."""
    runs, dt, cpu = [], None, 0.0
    for path in paths:
        series, dt = correlation_runs(Path(path), config, max_ps)
        runs.extend(series)
        with np.load(path) as data:
            cpu += float(data["wall_time_s"])
    return spectrum_of_runs(runs, dt, config, {"label": label, "method": "reference MD"}), cpu
