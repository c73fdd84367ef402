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


class LifecycleLock:
    """Only one start/stop of a project changes its engine objects at a time: a second one
    waits up to `timeout_s`, then fails clearly (RuntimeFailure). Projects do not wait for each
    other. `start` lets go of it around downloads and readiness waits (`released`), so a long
    pull or a model that loads for minutes does not hold up a `stop` in another terminal.

    The lock is a `filelock.FileLock` (flock on a file in the state folder): one per thread, so
    the thread that took it lets go of it."""

    def __init__(self, timeout_s: float, project: str = DEFAULT_PROJECT) -> None:
        from filelock import FileLock

        self.timeout_s = timeout_s
        self.path = state_dir() / ("lifecycle.lock" if project == DEFAULT_PROJECT else f"lifecycle-{project}.lock")
        self._lock = FileLock(str(self.path))

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=self.timeout_s)
        except Timeout:
            raise RuntimeFailure(
                f"another airpods start or stop is running (waited {self.timeout_s:g} s for {self.path})",
                hint="wait for it to finish, or raise cli.lock_timeout_s",
            ) from None

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let go of the lock for what is inside (a download, a wait), and take it back."""
        self.release()
        try:
            yield
        finally:
            self.acquire()

    def __enter__(self) -> LifecycleLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
