"""Provenance of computed results: the specml commit and the versions of the programs behind them."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

from specml.errors import InputError

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
    versions: dict[str, str | None] = {"specml": specml_commit()}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def require_format(data: dict, fmt, path, what: str, error: type[Exception] = InputError) -> dict:
    """``data`` (read from ``path``) if its ``format`` tag is ``fmt``; else ``error`` naming the
    file, the kind of file (``what``) and both formats: a file of another specml version is
    refused before anything reads its fields."""
    if data.get("format") != fmt:
        raise error(f"{path}: {what} format {data.get('format')!r}, this specml reads {fmt!r}")
    return data


def file_stem(name: str) -> str:
    """A file-name stem for a method or reference name, e.g. ``pyscf:b3lyp/6-31g*`` ->
    ``pyscf_b3lyp_6-31gstar``: lower case, ``*`` spelled out, other characters outside
    ``[a-z0-9.-]`` replaced by ``_``. Caches and shipped libraries are named by it."""
    import re

    return re.sub(r"[^a-z0-9.-]+", "_", name.lower().replace("*", "star")).strip("_")
