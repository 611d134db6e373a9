"""Atomic file writes: a file only appears under its name once it is complete.

Every persisted result of specml (workflow stages, training checkpoints) goes
through :func:`atomic_write`, so a run killed at any moment (SIGKILL included)
leaves either the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object], suffix: str = ".tmp") -> None:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then rename it into place.

    ``suffix`` ends the temporary name, for writers that choose a format from it
    (``np.savez`` appends ``.npz`` unless the name already ends with it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["atomic_write"]
