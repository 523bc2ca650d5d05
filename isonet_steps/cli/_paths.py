"""Output-location checks the step commands run before doing any work."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def check_writable_target(path: str | os.PathLike) -> None:
    """Fail at once (one line) if the folder that will hold ``path`` cannot be created or written.

    Nothing is created: the nearest existing ancestor must be a writable folder.
    """
    parent = Path(path).absolute().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{Path(path).parent}: cannot create or write this output folder ({probe} is not a writable "
                         "folder); choose a writable location.")


def make_output_folder(path: str | os.PathLike) -> Path:
    """Create an output folder (with parents); one-line error when impossible."""
    from ..atomic import ensure_writable_folder

    path = Path(path)
    ensure_writable_folder(path / "probe")  # creates ``path`` itself and checks it is writable
    return path
