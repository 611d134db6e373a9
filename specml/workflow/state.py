"""The run directory: every file the workflow persists, written atomically.

A stage is done when its output file exists; a file only exists once complete
(written to a temporary name, then renamed). Rerunning the same command after
any interruption (SIGKILL included) therefore resumes at the first missing file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import cast

import numpy as np
from ase import Atoms
from ase.io import read, write
from filelock import FileLock, Timeout

from specml.atomic import atomic_write
from specml.errors import InputError, RunDirectoryInUseError

#: Seconds between rewrites of a running stage's wall time in ``timings.json``.
TIMING_HEARTBEAT_S = 60.0
#: A rerun of a stage already timed that takes less than this (it found its results on disk)
#: leaves ``timings.json`` as it is, so finished runs do not rewrite (and recommit) their timings.
MIN_RECORDED_S = 1.0


def safe_name(name: str) -> str:
    """A file-name-safe version of a molecule name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "molecule"


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def atomic_write_npz(path: Path, **arrays) -> None:
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")


def atomic_write_structures(path: Path, images: list[Atoms]) -> None:
    atomic_write(path, lambda tmp: write(str(tmp), images, format="extxyz"))


def read_structures_file(path: Path) -> list[Atoms]:
    return cast(list[Atoms], read(str(path), index=":", format="extxyz"))  # index ":": a list


def atomic_save_directory(save, target: Path) -> None:
    """Call ``save(tmpdir)`` then move the directory into place (a model checkpoint)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    save(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def temperature_folder(production_dir: Path, temperature_k: float, beads: int = 1) -> Path:
    """Where the trajectories at one temperature are stored: ``<production_dir>/<T>K``, or
    ``<T>K_<P>beads`` for ring-polymer MD with ``P`` beads (another spectrum of the same models)."""
    return Path(production_dir) / (f"{temperature_k:.0f}K" + (f"_{beads}beads" if beads > 1 else ""))


#: The lock file of a run directory in use (:meth:`RunDirectory.in_use`); a ``.lock`` file is
#: scratch, never a stage artifact.
RUN_LOCK_FILE = ".run.lock"
#: One lock object per run directory in this process, so that holding it is reentrant.
_RUN_LOCKS: dict[Path, FileLock] = {}


def _run_lock(root: Path) -> FileLock:
    key = root.resolve()
    if key not in _RUN_LOCKS:
        # not thread-local: a stage may run in another thread of the process that holds the run
        _RUN_LOCKS[key] = FileLock(key / RUN_LOCK_FILE, thread_local=False)
    return _RUN_LOCKS[key]


class RunDirectory:
    """Paths of one workflow run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Delete the temporary files of a killed write, unless a process (another, or this one
        through another handle) works in the directory: then they may be files being written."""
        lock = _run_lock(self.root)
        if lock.is_locked:
            return
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return
        try:
            for stale in self.root.rglob("*.tmp*"):
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        finally:
            lock.release()

    @contextlib.contextmanager
    def in_use(self):
        """Hold the run directory for the enclosed work. Two processes writing one run's labels,
        checkpoints and snapshots at once would corrupt it, so a second process that asks for
        the directory meanwhile gets :class:`~specml.errors.RunDirectoryInUseError` at once.
        Reentrant within a process; an operating-system file lock, so it goes with a killed
        process and the run resumes at once."""
        lock = _run_lock(self.root)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunDirectoryInUseError(
                f"{self.root} is in use by another specml process; wait for it to finish "
                "(rerunning the same command then resumes), or give this run another --run-dir"
            ) from None
        try:
            yield self
        finally:
            lock.release()

    config = property(lambda self: self.root / "config.json")
    molecules = property(lambda self: self.root / "molecules")
    database = property(lambda self: self.root / "labels.db")
    learning_curve = property(lambda self: self.root / "learning_curve.json")
    log = property(lambda self: self.root / "specml.log")
    timings = property(lambda self: self.root / "timings.json")
    test_set_structures = property(lambda self: self.root / "test_set" / "candidates.extxyz")

    @contextlib.contextmanager
    def timed(self, stage: str):
        """Add the wall time (s) of the enclosed work to ``stage`` in ``timings.json``.

        Persisted across resumed invocations, so a run's total cost survives kills.
        The running total is rewritten every ``TIMING_HEARTBEAT_S`` seconds: the work of
        a killed stage resumes from its snapshots, so its time counts too (at most one
        heartbeat of it is lost, none is counted twice). A stage already in the file that
        comes back within ``MIN_RECORDED_S`` (nothing left to do) is not rewritten.
        """
        totals = json.loads(self.timings.read_text()) if self.timings.exists() else {}
        before = totals.get(stage, 0.0)
        started = time.perf_counter()
        stop = threading.Event()

        def record() -> None:
            totals[stage] = before + time.perf_counter() - started
            atomic_write_json(self.timings, totals)

        def heartbeat() -> None:
            while not stop.wait(TIMING_HEARTBEAT_S):
                record()

        beat = threading.Thread(target=heartbeat, name=f"timing {stage}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            if stage not in totals or time.perf_counter() - started >= MIN_RECORDED_S:
                record()

    def total_time_s(self) -> float:
        return float(sum(json.loads(self.timings.read_text()).values())) if self.timings.exists() else 0.0

    def models(self, iteration: int) -> Path:
        return self.root / "models" / f"iter_{iteration:03d}"

    @property
    def final_models(self) -> Path:
        return self.root / "models" / "final"

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / "iterations" / f"iter_{iteration:03d}"

    @property
    def production_dir(self) -> Path:
        return self.root / "production"

    def production(self, temperature_k: float) -> Path:
        return temperature_folder(self.production_dir, temperature_k)

    def check_config(
        self, config_dict: dict, molecules: list[str], normalise=lambda d: d, may_change: tuple[str, ...] = ()
    ) -> None:
        """Refuse to resume a run with different settings or molecules (it would mix data).

        ``normalise`` maps a stored settings dict onto the current schema, so a setting
        added later (with its default) does not orphan existing runs. Settings named in
        ``may_change`` only decide when the run stops; a new value is recorded, not refused.
        """

        def comparable(record: dict) -> dict:
            record = json.loads(json.dumps(record, default=_json_default))
            record["config"] = {k: v for k, v in record["config"].items() if k not in may_change}
            return record

        stored = {"config": config_dict, "molecules": molecules}
        previous = json.loads(self.config.read_text()) if self.config.exists() else None
        if previous is not None:
            previous["config"] = normalise(previous.get("config", {}))
            if comparable(previous) != comparable(stored):
                raise InputError(
                    f"{self.root} holds a run with other settings or molecules; use another --run-dir "
                    "or delete it to start over"
                )
        if previous != json.loads(
            json.dumps(stored, default=_json_default)
        ):  # new, or a changed stopping setting
            atomic_write_json(self.config, stored)


def file_logger(path: Path) -> logging.Logger:
    """The run's logger, writing to ``specml.log`` in the run directory."""
    logger = logging.getLogger(f"specml.run.{path}")
    if not logger.handlers:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
