"""Stage artifacts: a compact, committable copy of a run directory's finished stages.

A run directory marks a finished stage by its output file (:mod:`specml.workflow.state`), but
it is too large to keep in a repository (label database, every model of every iteration, dipole
series of every trajectory, snapshots). :func:`export_artifacts` writes what a rerun needs to
skip every finished stage, and nothing else, into one folder:

- ``labels.db`` -> ``labels/iter_NNN.extxyz.gz`` per active-learning iteration and
  ``labels/test.extxyz.gz`` (every row, failures too, with provenance; :mod:`specml.dataset.label_files`);
- ``models/final`` of each workflow, or while the loop runs the latest ``models/iter_NNN``;
- dipole files (production MD, one-trajectory reference MD) -> their autocorrelations, over the
  whole trajectory and its first ``windows_ps`` (:mod:`specml.workflow.compact_md`);
- JSON and extxyz files gzip-compressed, other files (MD continuation states) as they are;
- never snapshots, logs, temporary files or the models of earlier iterations.

Run directories may nest (a multi-fidelity run keeps its cheap-reference run in ``pretrain/``,
a benchmark keeps several runs under one root): every ``labels.db`` becomes a ``labels/`` folder
beside it, every ``models`` folder keeps its own final or latest models, and every committee folder
(one with a ``committee.json``, such as a multi-fidelity run's ``adaptation/METHOD/``) is restored
as a whole.

A stage that runs longer than a machine lives (a committee fit of hours, a long production MD)
keeps its progress in snapshot files (:mod:`specml.checkpoint`: ``*checkpoints/`` folders,
``*_checkpoint.pt``). ``export_artifacts(..., snapshots=True)`` adds the current ones, gzip-
compressed (a few MB: ask for it once before a machine goes away, not after every stage); an
ordinary export keeps the snapshot artifacts whose files still exist and drops them once their
stage has finished and removed them. Restored, they let the stage resume mid-way: labels restore
bit for bit (:data:`~specml.dataset.database.LABEL_DECIMALS`), so a fit's data fingerprint matches.

``MANIFEST.json`` lists every artifact with the file it restores, its size and SHA-256.
Exports are deterministic: an unchanged stage rewrites identical bytes (a commit shows only what
changed) and artifacts of files that no longer count (the models of an iteration once a later
one lands) are removed. :func:`restore_artifacts` writes every missing file back into a run
directory (an existing file is never overwritten, a label database only gains missing rows), so
a rerun on a fresh clone resumes after the last finished stage.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from filelock import FileLock

from specml.atomic import atomic_write
from specml.dataset.database import LabelDatabase
from specml.dataset.label_files import read_label_file, write_label_file
from specml.errors import InputError
from specml.provenance import require_format
from specml.workflow.compact_md import compact_dipole_arrays, dipole_file_kind, npz_bytes
from specml.workflow.state import atomic_save_directory

MANIFEST = "MANIFEST.json"
FORMAT = 1
#: Folder-name and file-name endings of mid-stage snapshots, exported only on request: folders
#: ``md_checkpoints``, ``training_checkpoints``, a multi-fidelity run's ``adaptation/METHOD_checkpoints``.
_SNAPSHOT_PART_ENDING = "checkpoints"
_SNAPSHOT_ENDING = "_checkpoint.pt"
#: Name endings of scratch files, never exported.
_SCRATCH_ENDINGS = (".log", ".db-journal", ".lock")
#: The file that makes a folder a committee (:meth:`specml.models.Committee.save`).
_COMMITTEE_FILE = "committee.json"
_GZIP_SUFFIXES = (".json", ".extxyz")


def _is_scratch(rel: Path) -> bool:
    """Logs, locks, and files being written (``specml.atomic`` writes ``.NAME.PID.suffix``)."""
    return (
        any(".tmp" in part or part.startswith(".") for part in rel.parts[:-1])
        or ".tmp" in rel.name
        or rel.name.startswith(".")
        or rel.name.endswith(_SCRATCH_ENDINGS)
        or rel.name == MANIFEST
    )


def _is_snapshot(rel: Path) -> bool:
    """A mid-stage snapshot (:mod:`specml.checkpoint`) of a fit or an MD run."""
    return any(part.endswith(_SNAPSHOT_PART_ENDING) for part in rel.parts[:-1]) or rel.name.endswith(
        _SNAPSHOT_ENDING
    )


def _exported_models(run_dir: Path) -> set[Path]:
    """The model folders worth keeping: per workflow, ``final``, else the latest iteration's."""
    keep = set()
    for models in run_dir.rglob("models"):
        if not models.is_dir():
            continue
        final = models / "final"
        iterations = sorted(p for p in models.glob("iter_*") if (p / _COMMITTEE_FILE).exists())
        if (final / _COMMITTEE_FILE).exists():
            keep.add(final)
        elif iterations:
            keep.add(iterations[-1])
    return keep


def _correlation_depth(path: Path, run_dir: Path, default_fs: float) -> float:
    """The correlation depth of the workflow that owns ``path`` (its ``config.json``), else ``default_fs``."""
    for folder in path.parents:
        config = folder / "config.json"
        if config.is_file():
            return float(json.loads(config.read_text())["config"]["max_correlation_fs"])
        if folder == run_dir:
            break
    return float(default_fs)


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _label_group(pairs: dict) -> str:
    if pairs.get("kind") == "test":
        return "test"
    iteration = pairs.get("iteration")
    return f"iter_{int(iteration):03d}" if iteration is not None else "other"


def _export_labels(db_path: Path, target_dir: Path) -> dict[str, int]:
    database = LabelDatabase(db_path)
    groups = sorted({_label_group(row.key_value_pairs) for row in database.rows()})
    counts = {}
    for group in groups:
        counts[group] = write_label_file(database, target_dir / f"{group}.extxyz.gz", _in_group(group))
    return counts


def _in_group(group: str) -> Callable[[dict], bool]:
    return lambda pairs: _label_group(pairs) == group


def export_artifacts(
    run_dir: str | Path,
    artifact_dir: str | Path,
    depth_fs: float,
    windows_ps: Sequence[float] = (),
    snapshots: bool = False,
) -> dict:
    """Write the artifacts of ``run_dir``'s finished stages to ``artifact_dir`` (see the module
    text); ``depth_fs`` is the correlation depth of dipole files outside a workflow, ``windows_ps``
    the trajectory beginnings whose spectra are kept too. With ``snapshots`` the mid-stage
    snapshots are written too (else the earlier ones are kept while their files exist).
    Returns the manifest.

    A lock in the run directory keeps a second process (a snapshot asked for while the run
    exports a stage) from interleaving its writes."""
    run_dir, artifact_dir = Path(run_dir), Path(artifact_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    with _artifacts_lock(run_dir):
        return _export(run_dir, artifact_dir, float(depth_fs), tuple(windows_ps), snapshots)


def _artifacts_lock(run_dir: Path) -> FileLock:
    """The lock that export and restore take in a run directory (its file is scratch: never
    exported). Not the run's own lock (:meth:`~specml.workflow.state.RunDirectory.in_use`): a
    snapshot is exported from another process while the run works."""
    return FileLock(run_dir / ".artifacts.lock")


def _export(run_dir: Path, artifact_dir: Path, depth_fs: float, windows_ps: tuple, snapshots: bool) -> dict:
    earlier = (read_manifest(artifact_dir) or {"files": {}})["files"]
    earlier_snapshots = {
        e["restores"]: (name, e)
        for name, e in earlier.items()
        if e["form"] == "snapshot" and (artifact_dir / name).is_file()
    }
    models = _exported_models(run_dir)
    entries: dict[str, dict] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir)
        if _is_scratch(rel):
            continue
        if _is_snapshot(rel):
            if snapshots:
                target = artifact_dir / rel.with_name(rel.name + ".gz")
                _write_if_changed(target, gzip.compress(path.read_bytes(), mtime=0))
                entries[target.relative_to(artifact_dir).as_posix()] = {
                    "restores": rel.as_posix(),
                    "form": "snapshot",
                }
            elif rel.as_posix() in earlier_snapshots:
                name, entry = earlier_snapshots[rel.as_posix()]
                entries[name] = {"restores": entry["restores"], "form": "snapshot"}
            continue
        in_models = next((m for m in models if m in path.parents), None)
        if "models" in rel.parts and in_models is None:
            continue
        if path.name == "labels.db":
            counts = _export_labels(path, artifact_dir / rel.parent / "labels")
            for group, n in counts.items():
                entries[(rel.parent / "labels" / f"{group}.extxyz.gz").as_posix()] = {
                    "restores": rel.as_posix(),
                    "form": "labels",
                    "rows": n,
                }
            continue
        target, form = artifact_dir / rel, "copy"
        kind = dipole_file_kind(path) if path.suffix == ".npz" else None
        if kind in ("production", "trajectory"):
            form = "autocorrelations"
            depth = _correlation_depth(path, run_dir, depth_fs)
            _write_if_changed(target, npz_bytes(compact_dipole_arrays(path, depth, windows_ps)))
        elif kind is not None:  # already compact (a restored run): kept as it is
            form = "autocorrelations"
            _write_if_changed(target, path.read_bytes())
        elif path.suffix in _GZIP_SUFFIXES:
            target, form = target.with_name(target.name + ".gz"), "gzip"
            _write_if_changed(target, gzip.compress(path.read_bytes(), mtime=0))
        else:
            _write_if_changed(target, path.read_bytes())
        entries[target.relative_to(artifact_dir).as_posix()] = {"restores": rel.as_posix(), "form": form}
    for name, entry in entries.items():
        data = (artifact_dir / name).read_bytes()
        entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    _remove_stale(artifact_dir, set(entries))
    manifest = {
        "format": FORMAT,
        "correlation_depth_fs": float(depth_fs),
        "windows_ps": [float(w) for w in windows_ps],
        "total_bytes": sum(e["bytes"] for e in entries.values()),
        "files": entries,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    _write_if_changed(artifact_dir / MANIFEST, text.encode())
    return manifest


def _remove_stale(artifact_dir: Path, current: set[str]) -> None:
    for path in sorted(artifact_dir.rglob("*"), reverse=True):
        rel = path.relative_to(artifact_dir).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in current:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def read_manifest(artifact_dir: str | Path) -> dict | None:
    """The manifest of an artifact folder (None when it has none)."""
    path = Path(artifact_dir) / MANIFEST
    if not path.is_file():
        return None
    return require_format(json.loads(path.read_text()), FORMAT, path, "artifact")


def restore_artifacts(artifact_dir: str | Path, run_dir: str | Path) -> list[str]:
    """Write the files of ``artifact_dir`` that ``run_dir`` lacks; returns the run-directory paths
    restored (relative). A label database gains the rows it misses; nothing is overwritten."""
    artifact_dir, run_dir = Path(artifact_dir), Path(run_dir)
    manifest = read_manifest(artifact_dir)
    if manifest is None:
        return []
    run_dir.mkdir(parents=True, exist_ok=True)
    # Two benchmarks started side by side restore the same run directory: without taking turns
    # both create its label database at once (SQLite: "table systems already exists") or add
    # the same rows twice.
    with _artifacts_lock(run_dir):
        return _restore(manifest, artifact_dir, run_dir)


def _restore(manifest: dict, artifact_dir: Path, run_dir: Path) -> list[str]:
    restored: set[str] = set()
    model_dirs: dict[Path, list[tuple[bytes, Path]]] = {}
    committees = {
        Path(e["restores"]).parent
        for e in manifest["files"].values()
        if Path(e["restores"]).name == _COMMITTEE_FILE
    }
    for name, entry in sorted(manifest["files"].items()):
        source, rel = artifact_dir / name, Path(entry["restores"])
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise InputError(f"{source}: its content does not match {MANIFEST} (edited or damaged)")
        target = run_dir / rel
        if entry["form"] == "labels":
            database = LabelDatabase(target)
            before = database.count()
            read_label_file(source, database)
            if database.count() > before:
                restored.add(rel.as_posix())
            continue
        data = gzip.decompress(data) if entry["form"] in ("gzip", "snapshot") else data
        if "models" in rel.parts[:-1] or rel.parent in committees:
            model_dirs.setdefault(target.parent, []).append((data, target))
        elif not target.exists():
            _write_if_changed(target, data)
            restored.add(rel.as_posix())
    for folder, files in model_dirs.items():
        if folder.exists():
            continue

        def save(tmp: Path, files=files) -> None:
            for data, target in files:
                (tmp / target.name).write_bytes(data)

        atomic_save_directory(save, folder)
        restored.update(target.relative_to(run_dir).as_posix() for _, target in files)
    return sorted(restored)


def artifact_summary(artifact_dir: str | Path) -> dict:
    """Size of an artifact folder, in total and by top-level part (MB), for reports."""
    manifest = read_manifest(artifact_dir) or {"files": {}}
    by_part: dict[str, int] = {}
    for name, entry in manifest["files"].items():
        part = entry["form"] if entry["form"] in ("labels", "autocorrelations") else name.split("/", 1)[0]
        by_part[part] = by_part.get(part, 0) + entry["bytes"]
    total = sum(by_part.values())
    return {"total_mb": total / 1e6, "by_part_mb": {k: v / 1e6 for k, v in sorted(by_part.items())}}


__all__ = ["MANIFEST", "artifact_summary", "export_artifacts", "read_manifest", "restore_artifacts"]
