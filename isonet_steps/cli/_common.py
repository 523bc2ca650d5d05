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


def tomo_idx_option() -> Callable:
    return option("--tomo-idx", default=None, metavar="LIST",
                  help="Only these rlnIndex values, e.g. 1,2,4 or 5-10,15 (default: all rows).")


def precision_option() -> Callable:
    from ..network.devices import PRECISIONS  # stdlib only: --help stays fast

    return option("--precision", type=click.Choice(list(PRECISIONS)), default="auto",
                  help="Network arithmetic: mixed = bfloat16 compute with float32 weights and output; auto = mixed "
                       "where the hardware has bfloat16 units (GPUs of compute capability >= 8.0, CPUs with AMX or "
                       "AVX512-BF16), else float32.")


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
