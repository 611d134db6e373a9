"""A run directory is worked on by one process at a time: a second one is refused with a clear
error, never interleaved, and a killed process's hold goes with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from specml.cli import app
from specml.errors import RunDirectoryInUseError
from specml.workflow.state import RunDirectory

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from specml.workflow.state import RunDirectory

    root = Path(sys.argv[1])
    with RunDirectory(root).in_use():
        (root / "labels.db.tmp.123").write_text("being written")
        print("held", flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def held(tmp_path):
    """A run directory held by another process (which is writing a temporary file in it)."""
    root = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield root, holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_process_is_refused_until_the_first_is_killed(held):
    root, holder = held
    RunDirectory(root)  # opening it is fine, and leaves the other process's file being written alone
    assert (root / "labels.db.tmp.123").exists()
    with pytest.raises(RunDirectoryInUseError, match="in use by another specml process"):
        with RunDirectory(root).in_use():
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    RunDirectory(root)  # now the file is a leftover of a killed write
    assert not (root / "labels.db.tmp.123").exists()
    with RunDirectory(root).in_use(), RunDirectory(root).in_use():  # reentrant in one process
        pass


def test_ir_on_a_run_directory_in_use_is_one_line_error(held):
    root, _ = held
    result = CliRunner().invoke(app, ["ir", "C", "--preset", "quick", "--run-dir", str(root)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "in use by another specml process" in lines[-1]
    assert "Traceback" not in result.stderr
