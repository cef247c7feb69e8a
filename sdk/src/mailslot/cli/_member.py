"""Commands whose code lives in a workspace member the SDK does not depend on (``mailslot
mcp``, ``mailslot a2a``): the member's module is imported only when its command runs, and its
own parser reads the arguments."""

from __future__ import annotations

import importlib

import typer

from .app import app, fail


def run_member(ctx: typer.Context, *, package: str, module: str, roots: tuple[str, ...], prog: str) -> None:
    """Run ``module.main(args, prog=prog)``; if ``package`` (or a module it needs, the first
    dotted part in ``roots``) is missing, say which one and how to install it."""
    try:
        member = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in roots:
            raise
        fail(f"`{prog}` needs the package {package} (missing module {exc.name!r}): pip install {package}")
    member.main(list(ctx.args), prog=prog)


def member_command(name: str, *, doc: str, package: str, module: str, roots: tuple[str, ...]) -> None:
    """Register ``mailslot <name>``: every argument after it goes to the member's parser."""

    def command(ctx: typer.Context) -> None:
        run_member(ctx, package=package, module=module, roots=roots, prog=f"mailslot {name}")

    command.__doc__ = doc
    app.command(
        name,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(command)
