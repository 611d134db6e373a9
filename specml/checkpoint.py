"""Periodic snapshots of long computations, so a killed run resumes where it stopped.

Model fits (:mod:`specml.models.training`) and batched MD tasks
(:mod:`specml.workflow.md_tasks`) run for minutes to hours inside one call. Each
saves its state every few minutes; a rerun of the same computation (same
fingerprint) continues from the last snapshot, and a snapshot of another
computation is ignored.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import torch

from specml.atomic import atomic_write

#: Seconds of work between snapshots (a snapshot costs about a second).
CHECKPOINT_INTERVAL_S = 300.0


class PeriodicCheckpoint:
    """One snapshot file for one computation, named by ``fingerprint`` (a JSON-like dict).

    ``what`` names the computation in messages ("training", "MD").
    """

    def __init__(
        self, path: str | Path, fingerprint: dict, every_s: float | None = None, what: str = "computation"
    ):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.every_s = CHECKPOINT_INTERVAL_S if every_s is None else float(every_s)
        self.what = what
        self.writable = True
        self._last_write = time.perf_counter()

    def due(self) -> bool:
        """Whether ``every_s`` seconds have passed since construction or the last write."""
        return self.writable and time.perf_counter() - self._last_write >= self.every_s

    def write(self, payload: dict) -> None:
        """Save ``payload`` (tensors, arrays, plain Python) atomically with the fingerprint."""
        self._last_write = time.perf_counter()
        if not self.writable:
            return
        try:
            atomic_write(self.path, lambda tmp: torch.save({"fingerprint": self.fingerprint, **payload}, tmp))
        except OSError as error:
            # E.g. a Dask worker on another machine without the run directory: compute on
            # without snapshots rather than lose the work.
            warnings.warn(
                f"cannot write {self.what} checkpoint {self.path} ({error}); continuing without", stacklevel=2
            )
            self.writable = False

    def read(self) -> dict | None:
        """The saved payload, or None if there is none for this computation."""
        if not self.path.exists():
            return None
        # weights_only=False: the file also holds plain-Python state, and it is this run's own output.
        payload = torch.load(self.path, map_location="cpu", weights_only=False)
        return payload if payload.get("fingerprint") == self.fingerprint else None


__all__ = ["CHECKPOINT_INTERVAL_S", "PeriodicCheckpoint"]
