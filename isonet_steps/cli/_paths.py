"""Output-location checks the step commands run before doing any work."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.errors import InputError


def check_writable_target(path: str | os.PathLike) -> None:
    """Fail at once (one line) if the folder that will hold ``path`` cannot be created or written.

    Nothing is created: the nearest existing ancestor must be a writable folder.
    """
    from ..io.atomic import folder_problem

    problem = folder_problem(Path(path).parent, create=False)
    if problem:
        raise InputError(f"{Path(path).parent}: cannot create or write this output folder ({problem}); "
                         "choose a writable location.")


def make_output_folder(path: str | os.PathLike) -> Path:
    """Create an output folder (with parents); one-line error when impossible."""
    from ..io.atomic import ensure_writable_folder

    path = Path(path)
    ensure_writable_folder(path / "probe")  # creates ``path`` itself and checks it is writable
    return path
