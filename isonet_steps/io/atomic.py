"""Atomic file writing: a temporary name in the destination folder, renamed into place on success.

A crash (or ``kill -9``) never leaves a half-written output under the real name, and readers see
either the old file or the new one. The file gets the usual permissions (0666 minus the umask),
not the private 0600 of a bare temporary file, so containers running as another user can read it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner_tag() -> str:
    """Host and process id in a temporary name, so a later run can tell a dead writer's leftover."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files for ``path`` left by killed writers on this host (``kill -9``, OOM).

    Only names of our pattern whose process id is no longer running here are removed; a writer on
    another host (shared file system) or still alive is left alone. Returns what was removed.
    """
    path = Path(path)
    host = _owner_tag().rsplit("-", 1)[0]
    removed: list[Path] = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(host)}-*"))
    except OSError:
        return removed
    for tmp in candidates:
        pid = tmp.name[len(f".{path.name}.{host}-"):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


#: Folders this process has swept of dead writers' leftovers (once each: a folder of thousands of
#: subtomograms would otherwise be listed again for every file written into it).
_SWEPT: set[str] = set()


def _sweep_folder_once(folder: Path) -> None:
    """On this process's first write into ``folder``, delete every leftover of a dead writer there."""
    key = os.path.realpath(folder)
    if key in _SWEPT:
        return
    _SWEPT.add(key)
    marker = f".{_owner_tag().rsplit('-', 1)[0]}-"
    try:
        names = {entry.name for entry in os.scandir(folder) if entry.name.startswith(".") and marker in entry.name}
    except OSError:
        return
    for name in {n[1:n.index(marker)] for n in names}:  # the files those leftovers were for
        remove_stale_parts(folder / name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Leftovers of killed earlier writers in the folder are removed by the process's first write
    there (they can be tomogram-sized).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_folder_once(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner_tag()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def folder_problem(folder: str | os.PathLike, *, create: bool) -> str | None:
    """Why files cannot be written in ``folder`` (None: they can): the one rule of every output check.

    ``create``: make the folder (with parents) first; otherwise nothing is made and the nearest
    existing ancestor must be a folder where it could be made (a check before any work starts).
    """
    folder = Path(folder)
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot create this folder ({exc.strerror})"
        probe = folder
    else:
        probe = folder.absolute()
        while not probe.exists():
            probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return "not writable" if probe == folder else f"{probe} is not writable"
    return None


def ensure_writable_folder(path: str | os.PathLike) -> None:
    """Create the folder that will hold ``path``; a one-line InputError when that is impossible."""
    from .errors import InputError

    parent = Path(path).parent
    problem = folder_problem(parent, create=True)
    if problem:
        raise InputError(f"{parent}: output folder {problem}; choose a writable location or fix its permissions.")


def check_writable_target(path: str | os.PathLike) -> None:
    """Fail at once (one line) if the folder that will hold ``path`` cannot be created or written.

    Nothing is created: the nearest existing ancestor must be a writable folder (a step checks
    this before any work, so it does not fail after hours).
    """
    from .errors import InputError

    problem = folder_problem(Path(path).parent, create=False)
    if problem:
        raise InputError(f"{Path(path).parent}: cannot create or write this output folder ({problem}); "
                         "choose a writable location.")


def make_output_folder(path: str | os.PathLike) -> Path:
    """Create an output folder (with parents); one-line error when impossible."""
    path = Path(path)
    ensure_writable_folder(path / "probe")  # creates ``path`` itself and checks it is writable
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Whole file or none: a reader (or a killed run) never sees a half-written file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 whatever the locale, so files read the same on every machine."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, *, default=None, indent: int = 2) -> Path:
    """JSON with sorted keys; NaN is refused (it is not JSON)."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=default, allow_nan=False) + "\n")
