"""Which container engines this machine has, read cheaply enough for every command.

Docker facts (docker(1), dockerd(8)): the CLI talks to $DOCKER_HOST, else the current context
($DOCKER_CONTEXT, or `currentContext` in ~/.docker/config.json), else /var/run/docker.sock; a
distribution's docker.io/docker-ce package installs `docker.service` for systemd, which runs
when /run/systemd/system exists (sd_booted(3)). A unix socket that refuses or is missing means
no daemon; one this user may not open (EACCES) still has a daemon behind it."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOCKET = Path("/var/run/docker.sock")
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
UNIT_FOLDERS = (Path("/etc/systemd/system"), Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def docker_socket(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path | None:
    """The unix socket the docker CLI will use; None when it uses something that cannot be
    probed locally ($DOCKER_HOST tcp://, ssh:// or an empty unix://, or a context other than
    "default")."""
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST", "")
    if host:
        path = host.removeprefix("unix://")
        return Path(path) if host.startswith("unix://") and path else None
    context = env.get("DOCKER_CONTEXT", "")
    if not context:
        try:
            folder = Path(env.get("DOCKER_CONFIG") or (home or Path.home()) / ".docker")
            context = str(json.loads((folder / "config.json").read_text()).get("currentContext") or "")
        except (OSError, ValueError, AttributeError, RuntimeError):  # RuntimeError: no home at all
            context = ""
    return DEFAULT_SOCKET if context in ("", "default") else None


def socket_answers(path: Path, timeout_s: float = 1.0) -> bool:
    """Whether something listens on the unix socket at `path` (connect only, nothing sent);
    True when this user may not open it (a daemon is there, it is a permission matter)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        try:
            probe.connect(str(path))
        except PermissionError:
            return True
        except OSError:
            return False
    return True


def docker_answers(env: Mapping[str, str] | None = None) -> bool:
    """Whether a Docker daemon answers where the CLI will look (a remote or context endpoint is
    taken as answering: docker's own error speaks for it)."""
    path = docker_socket(env)
    return True if path is None else socket_answers(path)


@dataclass(frozen=True)
class DockerService:
    """How this machine could run a Docker daemon: systemd running, a docker.service unit
    installed, `dockerd` on PATH, and whether the daemon is rootless-installed (dockerd-rootless.sh)."""

    systemd: bool
    unit: bool
    dockerd: bool
    rootless_kit: bool = False

    @classmethod
    def observe(cls, which: Callable[[str], str | None] = shutil.which) -> DockerService:
        def installed(tool: str) -> bool:  # daemons live in sbin, off a normal user's PATH
            return which(tool) is not None or shutil.which(tool, path=SBIN) is not None

        return cls(
            systemd=Path("/run/systemd/system").is_dir(),
            unit=any((folder / "docker.service").exists() for folder in UNIT_FOLDERS),
            dockerd=installed("dockerd"),
            rootless_kit=installed("dockerd-rootless.sh"),
        )
