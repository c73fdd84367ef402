"""Publishing a file whole or not at all: a temporary file beside it, written, flushed to disk
(fsync), renamed over the target, and the folder synced, so a crash or a full disk never leaves
a half-written file under the real name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from airpods.errors import RuntimeFailure


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` with permissions `mode`. Raises RuntimeFailure (with the OS's
    reason) when the folder cannot take it; the target is then unchanged."""
    publish(path, [data], mode)


def publish(path: Path, chunks: Iterable[bytes], mode: int = 0o600) -> None:
    """Write the `chunks` to `path` with permissions `mode`, whole or not at all (see the
    module). Raises RuntimeFailure (with the OS's reason) when the folder cannot take it; the
    target is then unchanged."""
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600 while written
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise RuntimeFailure(
            f"cannot write {path}: {exc.strerror or exc}", hint="check the folder's permissions and free space"
        ) from None
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename into it survives a crash."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
