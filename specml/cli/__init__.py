"""The ``specml`` command line. Each sub-module registers its commands on :data:`app`;
the CLI only wraps the Python API."""

from specml.cli.app import app, main

# Importing the command modules registers their commands.
# isort: split
from specml.cli import (  # noqa: F401
    commands_compare,
    commands_core,
    commands_identify,
    commands_ir,
    commands_models,
    commands_raman,
    commands_xanes,
)

__all__ = ["app", "main"]
