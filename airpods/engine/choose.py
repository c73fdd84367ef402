"""Which engine runs the stack: `--engine`, else `[runtime] engine` of the config file, else
"auto": Podman when it is installed (it has no daemon: installed is usable, and its own errors
speak), else Docker when its daemon answers, else Podman again, whose absence is then reported
with what was found (`no_engine`). A docker client alone, with no daemon behind it (some machine
images ship one), is no engine. Reads the TOML itself, without the full config load, so that
commands like `status` stay fast; the daemon probe is one unix-socket connect (host/engines.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from airpods.errors import ConfigError

if TYPE_CHECKING:
    from airpods.engine.base import Engine
    from airpods.host.engines import DockerService

ENGINES = ("podman", "docker")
CHOICES = ("auto", *ENGINES)
EXPECTED = 'expected "podman", "docker" or "auto" (Podman when it is installed, else a Docker daemon that answers)'


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


def engine_name(
    choice: str,
    which: Callable[[str], str | None] = shutil.which,
    docker_answers: Callable[[], bool] | None = None,
) -> str:
    """ "podman" or "docker" for a choice of CHOICES (see the module's docstring for auto).
    `docker_answers` is asked only when podman is missing and a docker CLI is on PATH."""
    if choice != "auto":
        return choice
    if which("podman") or not which("docker"):
        return "podman"
    from airpods.host.engines import docker_answers as probe

    return "docker" if (docker_answers or probe)() else "podman"


def docker_start_hint(service: DockerService, *, at_boot: bool = False) -> str:
    """How to get a Docker daemon running on this machine, for what it has installed: systemd's
    docker.service when there is one, else dockerd by hand, else the Engine itself (or Podman)."""
    if service.systemd and service.unit:
        return (
            "sudo systemctl enable docker" if at_boot else "start the Docker daemon: sudo systemctl enable --now docker"
        )
    if service.dockerd:
        where = "no systemd docker.service" if service.systemd else "no systemd"
        return (
            f"this machine has dockerd but {where}: start it at boot with your init system"
            if at_boot
            else f"this machine has dockerd but {where}: start it yourself (sudo dockerd, which stays in "
            "the foreground) or under your init system"
        )
    return (
        "this machine has the docker client but no Docker Engine (no dockerd): install it "
        "(Debian/Ubuntu: sudo apt-get install docker.io) or use Podman (sudo apt-get install podman)"
    )


def no_engine(
    which: Callable[[str], str | None] = shutil.which, service: DockerService | None = None
) -> tuple[str, str] | None:
    """Under auto with podman missing: what was found instead and the next step, as (message,
    hint); None when there is no docker client either (podman's own install hint says it all)."""
    docker = which("docker")
    if docker is None:
        return None
    from airpods.host.engines import DockerService, docker_socket

    service = service or DockerService.observe(which)
    where = docker_socket()
    message = (
        f"no container engine answers: podman is not installed, and the docker client ({docker}) has no "
        f"Docker daemon answering" + (f" at unix://{where}" if where else "")
    )
    podman = "install podman (sudo apt-get install podman, or ./scripts/install in airpods' clone)"
    if os.environ.get("DOCKER_HOST"):
        return message, f"{podman}, or start the daemon DOCKER_HOST names (or unset DOCKER_HOST)"
    if service.dockerd:
        return message, f"{podman}, or {docker_start_hint(service)}"
    return message, f"{podman}, or Docker Engine (Debian/Ubuntu: sudo apt-get install docker.io)"


def make_engine(name: str) -> Engine:
    """The engine of that name. Raises EngineMissing when its CLI is not installed."""
    if name == "docker":
        from airpods.engine.docker import Docker

        return Docker()
    from airpods.engine.podman import Podman

    return Podman()
