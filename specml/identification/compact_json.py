"""Gzip-compressed JSON files tagged with a format string: the shipped library files and their
companions. Read with the tag checked, written atomically (a reader never sees half a file)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from specml.errors import InputError
from specml.provenance import require_format


def read_tagged_json(path: str | Path, fmt: str, what: str) -> dict:
    """The content of ``path``; InputError naming ``what`` if it is unreadable or not ``fmt``."""
    try:
        with gzip.open(path, "rt") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError, EOFError) as exc:
        raise InputError(f"{path}: not a readable {what} ({exc})") from exc
    return require_format(data, fmt, path, what)


def write_tagged_json(path: str | Path, data: dict) -> Path:
    """Write ``data`` (which carries its ``format``) compactly, replacing ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=9) as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)
    return path
