"""The typer application and the error boundary shared by every command."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from specml.errors import SpecmlError

app = typer.Typer(
    name="specml",
    help="Machine-learned IR spectroscopy: structure to spectrum and spectrum to structure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def root(
    threads: int = typer.Option(
        1, "--threads", envvar="SPECML_THREADS", min=1,
        help="CPU threads per process for torch. Molecular graphs are small, so extra threads gain little "
        "and, on shared cores, cost a lot; run work in parallel with --scheduler local:N instead."),
) -> None:
    """Machine-learned IR spectroscopy: structure to spectrum and spectrum to structure."""
    # An explicit callback keeps typer in multi-command mode whatever is registered.
    set_threads(threads)


def set_threads(n: int) -> None:
    """Limit torch's intra-op threads (and OpenMP's, for libraries loaded later) to ``n``.

    Measured on the 2-core machine while other jobs ran (load average ~8): a training epoch took
    31-32 s with 2 threads against 2.1-2.6 s with 1 (12-15x), as OpenMP threads wait on each other
    while the other core is taken.
    """
    os.environ["OMP_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def main() -> None:
    """Entry point: run the app, turning specml errors into one-line messages."""
    # Import here so every command module has registered itself.
    import specml.cli  # noqa: F401

    try:
        app()
    except SpecmlError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except FileNotFoundError as exc:
        fail(f"{exc.filename or exc}: no such file")
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume", code=130)
    sys.exit(0)
