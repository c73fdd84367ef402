"""airpods' own state directory (private, 0700) and the lock that serialises start/stop."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airpods.errors import RuntimeFailure
from airpods.labels import DEFAULT_PROJECT


def home() -> Path:
    """The user's home folder: $HOME, else its passwd entry's. Raises RuntimeFailure when
    neither says (a user with no passwd entry, e.g. `--user 1234` in a container, and no HOME)."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        raise RuntimeFailure(
            f"cannot tell the home folder of user {os.getuid()}: HOME is not set and it has no passwd entry",
            hint="set HOME (or XDG_STATE_HOME and XDG_CONFIG_HOME) to a folder this user owns",
        ) from None


def state_path() -> Path:
    """$XDG_STATE_HOME/airpods (default ~/.local/state/airpods), as the XDG spec says: the path
    alone (`state_dir` makes it). Raises RuntimeFailure when there is no home to default to."""
    return Path(os.environ.get("XDG_STATE_HOME") or home() / ".local" / "state") / "airpods"


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


def try_flock(path: Path, timeout_s: float) -> int | None:
    """An exclusive `flock(2)` on `path` (made 0600 if missing), tried every 50 ms for up to
    `timeout_s` seconds: the open descriptor that holds it (closing it lets go), or None.

    Hand-rolled on purpose: the `filelock` package imports asyncio and its own typing layers,
    about 24 ms of every `start` (measured with -X importtime and cProfile, filelock 4.3), for
    a dozen lines on the one platform airpods runs on. flock locks belong to the open file
    description, so two descriptors in one process exclude each other as two processes do."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


class LifecycleLock:
    """Only one start/stop of a project changes its engine objects at a time: a second one
    waits up to `timeout_s`, then fails clearly (RuntimeFailure). Projects do not wait for each
    other. `start` lets go of it around downloads and readiness waits (`released`), so a long
    pull or a model that loads for minutes does not hold up a `stop` in another terminal.
    The lock is a `flock` on a file in the state folder (`try_flock`)."""

    def __init__(self, timeout_s: float, project: str = DEFAULT_PROJECT) -> None:
        self.timeout_s = timeout_s
        self.path = state_dir() / ("lifecycle.lock" if project == DEFAULT_PROJECT else f"lifecycle-{project}.lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self._fd = try_flock(self.path, self.timeout_s)
        if self._fd is None:
            raise RuntimeFailure(
                f"another airpods start or stop is running (waited {self.timeout_s:g} s for {self.path})",
                hint="wait for it to finish, or raise cli.lock_timeout_s",
            )

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

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
