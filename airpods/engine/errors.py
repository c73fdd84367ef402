"""Typed engine failures carrying podman's own words."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from airpods.errors import RuntimeFailure


class EngineMissing(RuntimeFailure):
    """podman is not installed or not on PATH."""


class EngineError(RuntimeFailure):
    """A podman command failed: argv, exit code and the tail of its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, hint: str | None = None) -> None:
        self.argv, self.returncode = list(argv), returncode
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        self.stderr_tail = "\n".join(lines[-5:])
        command = shlex.join(["podman", *self.argv[1:]])
        message = f"`{command}` failed (exit {returncode})" + (f": {self.stderr_tail}" if lines else "")
        super().__init__(message, hint)


class EngineTimeout(EngineError):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(
            argv,
            -1,
            f"timed out after {timeout:g} s",
            hint="podman did not answer; `podman info` shows whether it is healthy",
        )
