"""Killing a run part-way, as a crash or an out-of-memory kill would (SIGKILL: nothing is cleaned up)."""

import signal
import sqlite3
import subprocess
import time
from pathlib import Path


def sigkill_when_rows(proc: subprocess.Popen, db_path: Path, n_rows: int, timeout_s: float = 300.0) -> int:
    """SIGKILL ``proc`` once the SQLite label database ``db_path`` holds ``n_rows`` rows (or the
    process has ended, or ``timeout_s`` has passed); returns the number of rows seen last."""
    deadline, seen = time.time() + timeout_s, 0
    while time.time() < deadline and proc.poll() is None:
        if db_path.exists():
            try:
                with sqlite3.connect(db_path) as con:
                    seen = con.execute("select count(*) from systems").fetchone()[0]
            except sqlite3.Error:
                seen = 0
            if seen >= n_rows:
                break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return seen
