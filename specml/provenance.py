"""Provenance of computed results: the specml commit and the versions of the programs behind them."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The programs whose versions change reference results.
REFERENCE_PROGRAMS = ("tblite", "pyscf", "geometric", "pyscf-dispersion", "rdkit")


def specml_commit() -> str:
    """The checkout's commit, ``+dirty`` when ``specml/`` has uncommitted changes; "unknown" outside git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        return (commit + ("+dirty" if git("status", "--porcelain", "--", "specml") else "")) or "unknown"
    except OSError:
        return "unknown"


def program_versions(packages=REFERENCE_PROGRAMS) -> dict:
    """``{"specml": commit, package: version or None}``."""
    versions = {"specml": specml_commit()}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions
