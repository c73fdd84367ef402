"""Error types shared by every layer. The CLI maps them to exit codes (cli/errors.py)."""

from __future__ import annotations


class AirpodsError(Exception):
    """Base of every error airpods reports to the user (never a bug)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(AirpodsError):
    """A problem in the configuration: names the file, the key path and what was expected."""

    exit_code = 2

    def __init__(
        self,
        detail: str,
        *,
        key: str | None = None,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.detail, self.key, self.file, self.line = detail, key, file, line
        where = file or "configuration"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: " + (f"{key}: " if key else "") + detail, hint)

    def located(self, file: str) -> ConfigError:
        """The same error, attributed to `file` when it names none yet."""
        if self.file:
            return self
        return ConfigError(self.detail, key=self.key, file=file, line=self.line, hint=self.hint)


class UsageError(AirpodsError):
    """The command line asks for something that does not exist (unknown service, bad option)."""

    exit_code = 2


class RuntimeFailure(AirpodsError):
    """Something failed while running the stack (podman, health, ports)."""

    exit_code = 1


class Interrupted(RuntimeFailure):
    """Ctrl-C: what this run created was removed."""

    exit_code = 130
