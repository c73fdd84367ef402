"""`airpods doctor` for the Docker engine: the CLI, the daemon's socket and who may use it, the
daemon's version and mode. Facts: the socket is $DOCKER_HOST (unix://PATH) else
/var/run/docker.sock, owned by root and the `docker` group, mode 0660 (dockerd(8) `--group`);
group membership reaches a session only after a new login or `newgrp docker` (usermod(8))."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.doctor.check import Check, version_check
from airpods.errors import AirpodsError

if TYPE_CHECKING:
    from airpods.engine.docker import Docker
    from airpods.host.engines import DockerService

MIN_DOCKER = (20, 10)


@dataclass(frozen=True)
class Who:
    """The user running doctor: name, uid, the groups this process has, and a group's members."""

    user: str
    uid: int
    groups: frozenset[int]
    members: Callable[[int], frozenset[str]]

    @classmethod
    def current(cls) -> Who:
        uid = os.getuid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)

        def members(gid: int) -> frozenset[str]:
            try:
                return frozenset(grp.getgrgid(gid).gr_mem)
            except KeyError:
                return frozenset()

        return cls(user, uid, frozenset([os.getgid(), *os.getgroups()]), members)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def socket_check(path: Path, who: Who, service: DockerService | None = None) -> Check:
    """Whether this user may talk to the daemon through its socket, with the exact fix if not
    (how to start a daemon follows what this machine has: `service`, observed when None)."""
    from airpods.engine.choose import docker_start_hint
    from airpods.host.engines import DEFAULT_SOCKET, DockerService

    try:
        st = path.stat()
    except FileNotFoundError:
        return Check(
            "docker socket",
            "FAIL",
            f"{path} does not exist: the Docker daemon is not running",
            docker_start_hint(service or DockerService.observe())
            + ("" if path == DEFAULT_SOCKET else f" (or start the daemon on {path})"),
        )
    except OSError as exc:
        return Check("docker socket", "FAIL", f"{path}: {exc.strerror}", "check the folder's permissions")
    if not stat.S_ISSOCK(st.st_mode):
        return Check(
            "docker socket",
            "FAIL",
            f"{path} is not a socket: no Docker daemon listens there",
            "point DOCKER_HOST at the daemon's socket (unix:///var/run/docker.sock by default), or unset it",
        )
    group = group_name(st.st_gid)
    mode = f"{st.st_mode & 0o777:04o}"
    detail = f"{path} (owner uid {st.st_uid}, group {group}, mode {mode})"
    usable = who.uid in (0, st.st_uid) or (st.st_gid in who.groups and st.st_mode & 0o060 == 0o060)
    if usable:
        note = "; members of its group are root-equivalent on this machine" if who.uid != 0 else ""
        return Check("docker socket", "OK", detail + note)
    if who.user in who.members(st.st_gid):
        return Check(
            "docker socket",
            "FAIL",
            f"{detail}: {who.user} is in group {group}, but this login session is not yet",
            f"log out and in again (or run `newgrp {group}`)",
        )
    return Check(
        "docker socket",
        "FAIL",
        f"{detail}: {who.user} may not use it",
        f"sudo usermod -aG {group} {who.user}, then log out and in again "
        f"(membership of {group} is root-equivalent; rootless Docker is the alternative)",
    )


def docker_checks(who: Who | None = None) -> tuple[list[Check], Docker | None]:
    """The Docker checks and the engine when the daemon answers (else None)."""
    from airpods.engine.docker import Docker, rootless_daemon
    from airpods.engine.errors import EngineMissing
    from airpods.host.engines import docker_socket

    try:
        engine = Docker()
    except EngineMissing as exc:
        return [Check("docker", "FAIL", exc.message, exc.hint or "")], None
    checks = []
    path = docker_socket()
    if path is not None:
        checks.append(socket_check(path, who or Who.current()))
    try:
        info = engine.info()  # one call: the daemon's version is in it too
        version = str(info.get("ServerVersion") or engine.version())
    except AirpodsError as exc:
        if not any(c.level == "FAIL" for c in checks):
            checks.append(Check("docker daemon", "FAIL", exc.message, "`docker info` shows what is wrong"))
        return checks, None
    checks.append(
        version_check(
            "docker",
            f"{engine.binary} (daemon {version})",
            version,
            MIN_DOCKER,
            "airpods needs Docker Engine 20.10 or newer: upgrade docker",
        )
    )
    checks.append(Check("mode", "OK", "rootless" if rootless_daemon(info) else "rootful"))
    runtime = info.get("DefaultRuntime") or "?"
    checks.append(Check("runtime", "OK", f"{runtime} (storage {info.get('Driver', '?')})"))
    return checks, engine


def reboot_check(restart_policy: str) -> Check:
    """Docker brings containers back itself when its daemon starts at boot (with a restart
    policy other than "no"); `airpods autostart` is Podman's way."""
    import shutil

    if restart_policy == "no":
        return Check(
            "reboot",
            "WARN",
            'runtime.restart_policy = "no": after a reboot the stack stays down',
            'set runtime.restart_policy = "unless-stopped" and run `airpods start`',
        )
    from airpods.engine.choose import docker_start_hint
    from airpods.host.engines import DockerService

    service = DockerService.observe()
    if not shutil.which("systemctl") or not (service.systemd and service.unit):
        return Check(
            "reboot",
            "OK" if not service.systemd else "WARN",
            f"containers restart with the Docker daemon (policy {restart_policy})"
            + ("" if not service.systemd else "; systemd has no docker.service to start it at boot"),
            "" if not service.systemd else docker_start_hint(service, at_boot=True),
        )
    from airpods.host.systemd import systemctl

    done = systemctl(False, "is-enabled", "docker.service", timeout_s=10)
    enabled = done.stdout.strip() == "enabled"
    return Check(
        "reboot",
        "OK" if enabled else "WARN",
        f"containers restart with the Docker daemon (policy {restart_policy}); docker.service is "
        f"{done.stdout.strip() or 'unknown to systemd'}",
        "" if enabled else "sudo systemctl enable docker",
    )
