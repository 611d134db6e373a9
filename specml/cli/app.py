"""The typer application, the error boundary shared by every command, and the output modes.

Only light modules are imported here and at the top of the command modules: ``specml --help``
answers without torch, MACE, PySCF, RDKit, SciPy or matplotlib. Each command imports what it
computes with inside its function, after its options have been checked.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from specml.errors import InputError, SpecmlError

try:  # recent typer vendors click; older releases use click itself
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[assignment]  # same API

#: Exit code of an invalid option or argument (as click uses), raised before any work.
USAGE_ERROR = 2
#: Width that piped output is laid out at, so that no table cell is cut or wrapped.
PIPED_WIDTH = 100_000


class SpecmlGroup(TyperGroup):
    """Every failure ends as one ``error:`` line on stderr: specml's own errors (exit 1, or 2
    for options rejected by their checks) and click's (a word where a number belongs: exit 2)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except NoArgsIsHelpError as exc:  # typer has printed the help already
            raise SystemExit(exc.exit_code) from None
        except ClickException as exc:
            fail(_usage_message(exc), exc.exit_code)
        except typer.Abort:
            fail("aborted", 1)
        if not standalone_mode:
            return code
        raise SystemExit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        with error_boundary():
            return super().invoke(ctx)


app = typer.Typer(
    name="specml",
    help="Machine-learned IR, Raman and X-ray absorption spectroscopy: structure to spectrum and spectrum to structure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SpecmlGroup,
)
console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from specml import __version__

        typer.echo(f"specml {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    threads: int = typer.Option(
        1,
        "--threads",
        envvar="SPECML_THREADS",
        min=1,
        help="CPU threads per process for torch. Molecular graphs are small, so extra threads gain little "
        "and, on shared cores, cost a lot; run work in parallel with --scheduler local:N instead.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Machine-learned IR, Raman and X-ray absorption spectroscopy: structure to spectrum and spectrum to structure."""
    # An explicit callback keeps typer in multi-command mode whatever is registered.
    set_threads(threads)
    set_output(machine=False)


def set_threads(n: int) -> None:
    """Limit torch's intra-op threads (and OpenMP's, for libraries loaded later) to ``n``.

    Measured on the 2-core machine while other jobs ran (load average ~8): a training epoch took
    31-32 s with 2 threads against 2.1-2.6 s with 1 (12-15x), as OpenMP threads wait on each other
    while the other core is taken. torch sizes its thread pool from OMP_NUM_THREADS when it is
    imported, so torch is only told directly if it is loaded already: importing it here would
    cost every command, ``--help`` included, several seconds.
    """
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def set_output(machine: bool) -> None:
    """Where messages for people go: stdout, or stderr when stdout carries ``--json``/``--csv``
    data (progress bars too: they use rich's global console). Piped or redirected, the output is
    laid out at full width, so tables keep every name and SMILES whole (docs/cli_output.md)."""
    import rich

    for shown in (console, rich.get_console()):
        shown.stderr = machine
    # None: the terminal's own width again (rich's setter is typed int but stores None as "detect").
    console.width = None if console.is_terminal else PIPED_WIDTH  # type: ignore[assignment]


def output_format(json_out: bool, csv_out: bool = False) -> str | None:
    """``"json"``, ``"csv"`` or None (tables for people), with messages routed by :func:`set_output`."""
    if json_out and csv_out:
        raise InputError("--json and --csv exclude each other; choose one")
    chosen = "json" if json_out else "csv" if csv_out else None
    set_output(machine=chosen is not None)
    return chosen


def emit_json(data) -> None:
    """``data`` as JSON on stdout; non-finite numbers become null, so the output stays valid JSON."""
    typer.echo(json.dumps(_finite(data), indent=2, default=str))


def emit_csv(header: list[str], rows: list[list]) -> None:
    """A CSV table with a header line on stdout (fields quoted where they hold commas)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(_finite(rows))
    typer.echo(buffer.getvalue(), nl=False)


def _finite(data):
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


def titled_table(title: str, **options):
    """A rich table with a plain-text title (no markup). Piped, the table is at least as wide as
    its title, which then stays on one line; on a terminal the title wraps as the table needs."""
    from rich.table import Table

    widest = None if console.is_terminal else len(title) + 4  # + the borders and padding
    return Table(title=escape(title), min_width=widest, **options)


def show_cautions(*spectra) -> list[str]:
    """Print the cautions recorded while reading ``spectra`` (a ##DELTAX a few percent off, say); returns them."""
    return print_cautions([note for spectrum in spectra for note in spectrum.metadata.get("cautions", [])])


def print_cautions(cautions: list[str]) -> list[str]:
    for note in cautions:
        console.print(f"[yellow]caution:[/] {escape(note)}", highlight=False)
    return cautions


@contextmanager
def checked_options(flags: dict[str, str] | None = None) -> Iterator[None]:
    """Around the checks a command runs before any work: their :class:`InputError` is a usage
    error (exit code 2). Other errors (a malformed file, say) keep their own code. ``flags`` maps
    the settings a command's options set (``production_beads``) to those options (``--beads``):
    the message names what the user typed."""
    try:
        yield
    except InputError as exc:
        message = _first_line(exc)
        for setting, flag in (flags or {}).items():
            message = re.sub(rf"(?<![\w-]){re.escape(setting)}(?![\w-])", flag, message)
        fail(message, USAGE_ERROR)


@contextmanager
def error_boundary() -> Iterator[None]:
    """specml errors, OS errors and Ctrl-C as one-line messages with a non-zero exit code."""
    try:
        yield
    except SpecmlError as exc:
        fail(_first_line(exc))
    except FileNotFoundError as exc:
        fail(f"{exc.filename or exc}: no such file")
    except BrokenPipeError:  # `specml ... | head`: typer ends quietly
        raise
    except OSError as exc:  # a full disk, a read-only folder: not a bug, so no traceback
        fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume", code=130)


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error and exit non-zero."""
    one_line = " ".join(str(message).split())
    err_console.print(f"[bold red]error:[/] {escape(one_line)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _usage_message(exc: ClickException) -> str:
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return exc.format_message() + hint


def main() -> None:
    """Entry point: run the app (its group turns every failure into a one-line message)."""
    # Import here so every command module has registered itself.
    import specml.cli  # noqa: F401

    app()
