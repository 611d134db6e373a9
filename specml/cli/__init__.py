"""The ``specml`` command line. Each sub-module registers its commands on :data:`app`;
the CLI only wraps the Python API."""

from specml.cli.app import app, main

# Importing the command modules registers their commands.
from specml.cli import commands_core  # noqa: E402,F401
from specml.cli import commands_compare  # noqa
from specml.cli import commands_ir  # noqa
from specml.cli import commands_identify  # noqa

__all__ = ["app", "main"]
