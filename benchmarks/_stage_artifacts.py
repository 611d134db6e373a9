"""The benchmark's stage artifacts: restore them into a run directory, keep them current after
each stage, and optionally commit them (``git commit`` of the artifact folder only).

The format and the restore logic are :mod:`specml.workflow.artifacts`; used by ``palirs.py`` and
``multifidelity.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

#: Help of the benchmarks' ``--snapshot`` option (:meth:`StageArtifacts.snapshot`).
SNAPSHOT_HELP = (
    "only write the running stage's snapshots (mid-fit, mid-MD) and the finished stages to the "
    "artifact folder, committed with --commit-artifacts, so a fresh clone resumes mid-stage; safe "
    "beside the running benchmark (a few MB: once before the machine goes away)"
)


class StageArtifacts:
    """Stage artifacts of one run directory in ``folder`` (see :mod:`specml.workflow.artifacts`)."""

    def __init__(
        self,
        folder: Path,
        run_dir: Path,
        depth_fs: float,
        windows_ps: Sequence[float],
        commit: bool = False,
        say: Callable[[str], None] = print,
        benchmark: str = "palirs",
    ):
        self.folder, self.run_dir = Path(folder), Path(run_dir)
        self.depth_fs, self.windows_ps = depth_fs, tuple(windows_ps)
        self.commit, self.say, self.benchmark = commit, say, benchmark

    def restore(self) -> list[str]:
        """Write the finished stages the run directory lacks; returns the files restored."""
        from specml.workflow.artifacts import restore_artifacts

        restored = restore_artifacts(self.folder, self.run_dir)
        if restored:
            self.say(f"restored {len(restored)} file(s) of finished stages from {self.folder}")
        return restored

    def save(self, stage: str) -> None:
        """Export the run directory's finished stages (after ``stage`` landed) and commit them if asked."""
        self._export(stage, snapshots=False)

    def snapshot(self) -> None:
        """Export the finished stages and the running stage's snapshots (a few MB: once before the
        machine goes away), so a fresh clone resumes mid-stage; commit them if asked."""
        self._export("in-progress snapshot", snapshots=True)

    def _export(self, stage: str, snapshots: bool) -> None:
        from specml.workflow.artifacts import export_artifacts

        if not self.run_dir.exists():
            return
        manifest = export_artifacts(self.run_dir, self.folder, self.depth_fs, self.windows_ps, snapshots)
        if self.commit:
            try:
                committed = commit_folder(self.folder, f"{self.benchmark} stage artifacts: {stage}")
            except RuntimeError as exc:  # e.g. another git command holds the index: not worth the run
                self.say(
                    f"stage artifacts ({stage}) not committed ({exc}); the next stage's commit takes them"
                )
                return
            if committed:
                self.say(f"committed stage artifacts ({stage}, {manifest['total_bytes'] / 1e6:.1f} MB)")


def commit_folder(folder: Path, message: str) -> bool:
    """``git add`` and ``git commit`` only ``folder`` in its repository; False when nothing changed."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True)

    if git("add", "-A", "--", ".").returncode != 0:
        raise RuntimeError(f"git add failed in {folder}: is it inside a git repository?")
    if git("diff", "--cached", "--quiet", "--", ".").returncode == 0:
        return False
    done = git("commit", "-q", "-m", message, "--", ".")
    if done.returncode != 0:
        raise RuntimeError(f"git commit failed in {folder}: {done.stderr.strip()}")
    return True
