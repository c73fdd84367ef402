"""Which engine runs the stack: `--engine`, else `[runtime] engine` of the config file, else
"auto" (Podman when it is installed, else Docker). Reads the TOML itself, without the full
config load, so that commands like `status` stay fast."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from airpods.errors import ConfigError

if TYPE_CHECKING:
    from airpods.engine.base import Engine

ENGINES = ("podman", "docker")
CHOICES = ("auto", *ENGINES)
EXPECTED = 'expected "podman", "docker" or "auto" (Podman when it is installed, else Docker)'


def configured_engine(config: str | os.PathLike[str] | None) -> str:
    """The config file's `[runtime] engine` ("auto" when unset or no file).
    Raises ConfigError (file, key runtime.engine) for any other value than CHOICES."""
    from airpods.config.files import locate_config, read_toml

    path = locate_config(config)
    if path is None:
        return "auto"
    runtime = read_toml(path).get("runtime")
    value = runtime.get("engine", "auto") if isinstance(runtime, dict) else "auto"
    if value not in CHOICES:
        import json

        shown = json.dumps(value) if isinstance(value, str | bool | int | float) else type(value).__name__
        raise ConfigError(f"{EXPECTED}, got {shown}", file=str(path), key="runtime.engine")
    return str(value)


def engine_name(choice: str, which: Callable[[str], str | None] = shutil.which) -> str:
    """ "podman" or "docker" for a choice of CHOICES: auto is Podman when `podman` is on PATH,
    else Docker when `docker` is, else Podman (whose constructor then says it is missing)."""
    if choice != "auto":
        return choice
    return "docker" if not which("podman") and which("docker") else "podman"


def make_engine(name: str) -> Engine:
    """The engine of that name. Raises EngineMissing when its CLI is not installed."""
    if name == "docker":
        from airpods.engine.docker import Docker

        return Docker()
    from airpods.engine.podman import Podman

    return Podman()
