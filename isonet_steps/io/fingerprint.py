"""Content fingerprints of files: what the pipeline's step records and a model's training record compare."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_fingerprint", "files_digest"]


def file_fingerprint(path: Path) -> str:
    """Content fingerprint: the whole file up to 8 MiB, else its size and 32 sampled 64 KiB blocks."""
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= 8 << 20:
            h.update(fh.read())
        else:
            block = 64 << 10
            for k in range(32):
                fh.seek((size - block) * k // 31)
                h.update(fh.read(block))
    return h.hexdigest()


def files_digest(paths: list[Path]) -> str:
    """One digest of a set of files, from their names and contents (in name order, so neither the folder
    they lie in nor the order they are listed in changes it): what a model's record says it trained on.
    """
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(paths, key=lambda p: (p.name, str(p))):
        h.update(f"{path.name}\0{file_fingerprint(path)}\n".encode())
    return h.hexdigest()
