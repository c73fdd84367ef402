"""Typed engine failures carrying the engine's own words (podman's or docker's)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from airpods.errors import RuntimeFailure
from airpods.redact import redact, redact_argv


class EngineMissing(RuntimeFailure):
    """The engine's CLI (podman, docker) is not installed or not on PATH."""


class EngineError(RuntimeFailure):
    """An engine command failed: argv, exit code and the tail of its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, hint: str | None = None) -> None:
        self.argv, self.returncode = list(argv), returncode
        lines = [line for line in redact(stderr).strip().splitlines() if line.strip()]
        self.stderr_tail = "\n".join(lines[-5:])
        command = shlex.join(redact_argv([_tool(self.argv), *self.argv[1:]]))
        message = f"`{command}` failed (exit {returncode})" + (f": {self.stderr_tail}" if lines else "")
        super().__init__(message, hint)


class EngineTimeout(EngineError):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(
            argv,
            -1,
            f"timed out after {timeout:g} s",
            hint=f"{_tool(argv)} did not answer; `{_tool(argv)} info` shows whether it is healthy",
        )


def _tool(argv: Sequence[str]) -> str:
    """The engine CLI's name as the user types it ("podman", "docker"), not its full path."""
    return os.path.basename(argv[0]) if argv else "podman"
