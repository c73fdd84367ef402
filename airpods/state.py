"""airpods' own state directory (private, 0700) and the lock that serialises start/stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airpods.errors import RuntimeFailure
from airpods.labels import DEFAULT_PROJECT


def state_path() -> Path:
    """$XDG_STATE_HOME/airpods (default ~/.local/state/airpods), as the XDG spec says: the path
    alone (`state_dir` makes it)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "airpods"


def state_dir() -> Path:
    """The state folder (`state_path`), made private (0700) if it is not yet.

    Raises RuntimeFailure when it cannot be made or used."""
    path = state_path()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot use the state folder {path}: {exc.strerror or exc}",
            hint="airpods keeps its key and lock there: fix its permissions, or point "
            "XDG_STATE_HOME at a folder you own",
        ) from None
    return path


@contextmanager
def state_lock(timeout_s: float, project: str = DEFAULT_PROJECT) -> Iterator[None]:
    """Only one start/stop of a project at a time: a second one waits up to `timeout_s`, then
    fails clearly. Projects do not wait for each other."""
    from filelock import FileLock, Timeout

    path = state_dir() / ("lifecycle.lock" if project == DEFAULT_PROJECT else f"lifecycle-{project}.lock")
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise RuntimeFailure(
            f"another airpods start or stop is running (waited {timeout_s:g} s for {path})",
            hint="wait for it to finish, or raise cli.lock_timeout_s",
        ) from None
    try:
        yield
    finally:
        lock.release()
