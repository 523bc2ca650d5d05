"""What every step command shares: dash/underscore options, one-line errors, logging."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..io.errors import InputError
from ..io.params import PARAMS, Param, Use, as_text, coerce, uses_of

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _underscore(decl: str) -> str:
    if not decl.startswith("--"):
        return decl
    return "--" + decl[2:].replace("-", "_")


def option(*decls: str, **kwargs: Any) -> Callable:
    """``click.option`` that also accepts IsoNet's underscore spelling (``--cube_size``).

    Boolean flag pairs are written ``"--use-deconv-tomo/--no-use-deconv-tomo"``; their underscore
    twins are added the same way. ``show_default`` is on unless given.
    """
    names = [d for d in decls if not d.startswith("-")]
    flags = [d for d in decls if d.startswith("-")]
    extra = []
    for decl in flags:
        if "/" in decl:
            on, off = decl.split("/", 1)
            # " /--no_x" adds a secondary-only alias when the primary has no dash to replace
            twin = f"{_underscore(on)}/{_underscore(off)}" if _underscore(on) != on else f" /{_underscore(off)}"
            if _underscore(off) == off:
                continue
        else:
            twin = _underscore(decl)
        if twin != decl and twin not in flags and twin not in extra:
            extra.append(twin)
    kwargs.setdefault("show_default", True)
    return click.option(*flags, *extra, *names, **kwargs)


def _number_list(param: Param, flag: str) -> Callable:
    """Click callback: "0.05,0.1" -> (0.05, 0.1), read by the parameter table's own rule (``coerce``)."""

    def parse(ctx, option, value):
        try:
            return coerce(param, value, flag)
        except InputError:
            words = "numbers" if param.kind == "floats" else "whole numbers"
            raise click.BadParameter(f"{value!r} is not a comma-separated list of {words}, e.g. "
                                     f"{as_text(param.default)}") from None

    return parse


def _click_type(param: Param, use: Use | None) -> Any:
    if param.choices:
        return click.Choice(list(param.choices))
    if param.file:
        return click.Path(dir_okay=False, path_type=str)
    if use is not None and use.minimum is not None:
        return click.IntRange(min=use.minimum)
    return {"float": float, "int": int}.get(param.kind, str)


def _spec_option(param: Param, use: Use | None, default: Any, help: str, show_default: bool) -> Callable:
    """The option of ``param`` for one command (``use``), or for ``isonet run`` (``use`` None: lists stay text)."""
    name = use.option_name(param) if use else param.name
    flag = "--" + name.replace("_", "-")
    if param.kind == "bool":
        return option(f"{flag}/--no-{flag[2:]}", name, default=default, show_default=show_default, help=help)
    extra: dict[str, Any] = {"metavar": param.metavar} if param.metavar else {}
    if param.kind in ("floats", "ints"):
        extra["callback"] = _number_list(param, flag) if use else None
        default = as_text(default)
    else:
        extra["type"] = _click_type(param, use)
    aliases = ["--" + alias.replace("_", "-") for alias in param.aliases]
    return option(flag, *aliases, name, default=default, show_default=show_default, help=help, **extra)


def param_options(command: str) -> Callable:
    """The options of every pipeline parameter ``command`` takes (``io.params``: name, type, default, help)."""

    def decorate(func: Callable) -> Callable:
        for param, use in reversed(uses_of(command)):
            func = _spec_option(param, use, use.default_for(param), use.help or param.help, show_default=True)(func)
        return func

    return decorate


def pipeline_options(func: Callable) -> Callable:
    """``isonet run``'s option per parameter: unset (None) unless given, so a params file's value holds."""
    for param in reversed(PARAMS):
        shown = ("on" if param.default else "off") if param.kind == "bool" else as_text(param.default)
        help = param.help if param.default is None else f"{param.help} [default: {shown}]"  # None: help says
        func = _spec_option(param, None, None, help, show_default=False)(func)
    return func


def log_level_option() -> Callable:
    return option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info",
                  help="How much to log.")


class _UsageLine(click.ClickException):
    """A usage error shown as one line, with click's usage-error status (2) rather than 1."""

    exit_code = 2


class StepCommand(click.Command):
    """A step command whose usage errors (unknown option, bad value) are one line, like the rest."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else info_name
            raise _UsageLine(f"{' '.join(exc.format_message().split())} (see '{path} --help')") from None


def _bug_line(name: str, exc: Exception) -> str:
    """One line for an unexpected exception (a bug): what failed, where, and where its traceback went."""
    import traceback

    from ..io.log import write_traceback

    where = write_traceback(name, exc)
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    message = " ".join(str(exc).split())[:300]
    return (f"Error: isonet-{name} failed unexpectedly ({type(exc).__name__}{': ' + message if message else ''}{at}); "
            f"the full traceback is in {where}: please report it with that file.")


def step(name: str, **command_kwargs: Any) -> Callable:
    """Make a step command: help options, ``--version``, logging, and one-line errors.

    An :class:`InputError` anywhere below becomes ``Error: <message>`` on stderr and exit status 2,
    with no traceback. Ctrl-C exits 130. Any other exception is a bug: one line naming it and the
    file its traceback was written to, exit status 1.
    """

    def decorate(func: Callable) -> click.Command:
        import inspect

        takes_log_level = "log_level" in inspect.signature(func).parameters

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any):
            from ..io.log import setup_logging

            setup_logging(kwargs.get("log_level") or "info")
            if not takes_log_level:
                kwargs.pop("log_level", None)
            try:
                return func(*args, **kwargs)
            except InputError as exc:
                click.echo(f"Error: {exc}", err=True)
                sys.exit(2)
            except KeyboardInterrupt:
                click.echo("Interrupted.", err=True)
                sys.exit(130)
            except click.ClickException:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback to a file
                click.echo(_bug_line(name, exc), err=True)
                sys.exit(1)

        command_kwargs.setdefault("cls", StepCommand)
        if not takes_log_level:  # every step takes --log-level, so callers can pass it uniformly
            wrapper = log_level_option()(wrapper)
        command = click.command(name, context_settings=CONTEXT_SETTINGS, **command_kwargs)(wrapper)
        return click.version_option(__version__, "-V", "--version", prog_name=f"isonet-{name}")(command)

    return decorate
