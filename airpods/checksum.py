"""sha256 of files and streams, read in chunks (models are many GB)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

CHUNK = 1 << 22


def sha256_stream(handle: IO[bytes]) -> tuple[str, int]:
    """(hex digest, bytes read) of everything left in `handle`."""
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return sha256_stream(handle)[0]
