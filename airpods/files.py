"""Publishing a file whole or not at all: a temporary file beside it, written, flushed to disk
(fsync), renamed over the target, and the folder synced, so a crash or a full disk never leaves
a half-written file under the real name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

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


def open_private(path: Path, mode: str) -> BinaryIO:
    """`path` opened in binary `mode` ("rb", "wb", "ab") without following a symbolic link at
    its last component (O_NOFOLLOW; ELOOP when one is there): for files in folders a container
    can write into (the model store), where a link planted between a check and the open could
    otherwise redirect a write of airpods (root, often) anywhere on the host. A file created
    here is 0644. Reading does not wait on a FIFO (O_NONBLOCK, cleared once open)."""
    flags = {"rb": os.O_RDONLY | os.O_NONBLOCK, "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}.get(mode)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND if mode == "ab" else flags
    if flags is None:
        raise ValueError(f"mode {mode!r}: rb, wb or ab")
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    if mode == "rb":
        os.set_blocking(fd, True)
    return os.fdopen(fd, mode)  # type: ignore[return-value]  # binary modes only: a BinaryIO
