"""The ``mailslot`` command line (typer + rich). Each module registers its commands on
:data:`mailslot.cli.app.app`; importing them here wires them in."""

from __future__ import annotations

from . import broker  # noqa: F401  (registers up/down/status)
from .app import app, main

__all__ = ["app", "main"]
