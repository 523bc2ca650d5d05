"""Run another step's command in this process, exactly as its executable would run it."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ..io.log import get_logger


def call_step(name: str, args: Sequence[object]) -> None:
    """``isonet <name> <args>`` in-process; an error exits like the step itself (SystemExit)."""
    from .main import STEPS

    module = importlib.import_module(f"{__package__}.{STEPS[name]}")
    argv = [str(a) for a in args]
    get_logger().debug("isonet %s %s", name, " ".join(argv))
    module.command.main(args=argv, prog_name=f"isonet {name}", standalone_mode=False)
