"""Logging and progress bars shared by every step."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

LOGGER_NAME = "isonet"
_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"


def get_logger(name: str | None = None) -> logging.Logger:
    """The package logger (or a child of it)."""
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


def setup_logging(level: str = "info", log_file: str | os.PathLike | None = None) -> logging.Logger:
    """Log to stderr, and also to ``log_file`` (appended) when given."""
    logger = get_logger()
    logger.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    for h in logger.handlers:  # follow a replaced sys.stderr (CliRunner, steps run in-process)
        if isinstance(h, logging.StreamHandler) and getattr(h, "_isonet_stderr", False) and h.stream is not sys.stderr:
            h.setStream(sys.stderr)
    if not any(getattr(h, "_isonet_stderr", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))
        handler._isonet_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    if log_file is not None:
        log_file = Path(log_file).resolve()
        if not any(getattr(h, "baseFilename", None) == str(log_file) for h in logger.handlers):
            log_file.parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(log_file)
            fh.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))
            logger.addHandler(fh)
    logger.propagate = False
    return logger


def write_traceback(step: str, exc: BaseException) -> Path:
    """Write ``exc``'s full traceback where the user can find it; returns the file.

    Into the step's log file while one is attached (refine's), else ``isonet-<step>-error.log`` in
    the working folder (a Nextflow task's folder), else in the temporary folder.
    """
    import tempfile
    import time
    import traceback

    from .. import __version__

    text = (f"{time.strftime(_DATEFMT)} isonet {__version__}: {' '.join(sys.argv)}\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    attached = [Path(h.baseFilename) for h in get_logger().handlers if isinstance(h, logging.FileHandler)]
    candidates = attached[:1] + [Path.cwd() / f"isonet-{step}-error.log",
                                 Path(tempfile.gettempdir()) / f"isonet-{step}-error.log"]
    for path in candidates:
        try:
            with open(path, "a") as handle:
                handle.write(text)
            return path
        except OSError:
            continue
    return candidates[-1]


def detach_file_logs() -> None:
    """Close the file handlers added by :func:`setup_logging` (tests call steps many times)."""
    logger = get_logger()
    for h in list(logger.handlers):
        if isinstance(h, logging.FileHandler):
            logger.removeHandler(h)
            h.close()


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """A tqdm progress bar on stderr; on a non-terminal (batch jobs) it updates every 30 s."""
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    disable = os.environ.get("ISONET_NO_PROGRESS", "") not in ("", "0")
    return iter(
        tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            file=sys.stderr,
            mininterval=0.5 if interactive else 30.0,
            dynamic_ncols=interactive,
            disable=disable,
            leave=interactive,
        )
    )
