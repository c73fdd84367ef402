"""`airpods autostart`: bring the stack back after a reboot, through a systemd unit of its own.

The unit (`airpods.service`, or `airpods-PROJECT.service` for another project) is a oneshot
that runs `podman start --all --filter label=io.airpods.project=PROJECT` at boot: every
container of this project that existed at shutdown starts again, in the same pods, with the
same labels, so `airpods status`, `stop` and `logs` keep working. A system unit when Podman
runs as root, a user unit (plus linger, so it runs without a login) when rootless.

Why not the alternatives (see the README):
- podman-restart.service starts containers whose restart policy is exactly `always`, machine
  wide; Debian enables it on install. Using it would couple autostart to the restart policy
  (changing it recreates every container) and `autostart off` could not turn it off without
  touching other people's containers.
- Quadlet units need Podman 4.4+ (Debian 12 ships 4.3) and make systemd own the containers:
  `airpods stop` and `start` would then fight systemd over them.

Facts used: systemd.service(5) (Type=oneshot, RemainAfterExit), systemd.unit(5) ([Install]
WantedBy, specifier `%` and `$` escaping), systemd.special(7) (multi-user.target for system
units, default.target for user units), loginctl(1) (enable-linger), podman-start(1) (--all,
--filter label=).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.errors import RuntimeFailure
from airpods.host.systemd import loginctl, systemctl
from airpods.labels import DEFAULT_PROJECT, PROJECT

if TYPE_CHECKING:
    from airpods.engine.base import Engine

# Podman's own configuration variables: a unit must see the same store as the airpods that
# wrote it (a custom CONTAINERS_CONF or storage.conf), so they are carried into it.
PODMAN_ENV = ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


def unit_name(project: str) -> str:
    return "airpods.service" if project == DEFAULT_PROJECT else f"airpods-{project}.service"


def unit_dir(rootless: bool) -> Path:
    """Where a unit the administrator (root) or the user (rootless) owns goes: systemd.unit(5)."""
    if not rootless:
        return SYSTEM_UNIT_DIR
    from airpods.state import home

    config = os.environ.get("XDG_CONFIG_HOME") or str(home() / ".config")
    return Path(config) / "systemd" / "user"


def _escape(value: str) -> str:
    """A value safe in a unit file: `%` starts a specifier and `$` a variable (systemd.unit(5),
    systemd.service(5)); both are doubled."""
    return value.replace("%", "%%").replace("$", "$$")


def start_command(project: str, podman: str) -> list[str]:
    """What the unit runs at boot."""
    return [podman, "start", "--all", "--filter", f"label={PROJECT}={project}"]


def stop_command(project: str, podman: str) -> list[str]:
    return [podman, "stop", "--all", "--filter", f"label={PROJECT}={project}"]


def render_unit(project: str, podman: str, rootless: bool, env: dict[str, str]) -> str:
    """The unit file's text. `env` holds podman's configuration variables to carry over."""
    target = "default.target" if rootless else "multi-user.target"
    lines = [
        "# Written by `airpods autostart on`; `airpods autostart off` removes it.",
        "[Unit]",
        f"Description=airpods stack '{project}': start its containers at boot",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        *(f'Environment="{_escape(key)}={_escape(value)}"' for key, value in sorted(env.items())),
        "ExecStart=" + " ".join(_escape(arg) for arg in start_command(project, podman)),
        "ExecStop=" + " ".join(_escape(arg) for arg in stop_command(project, podman)),
        "TimeoutStartSec=600",
        "",
        "[Install]",
        f"WantedBy={target}",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class AutostartState:
    unit: str
    path: str
    installed: bool
    enabled: bool
    rootless: bool
    linger: bool | None  # rootless only: the user's units run without a login
    containers: int  # containers of this project the unit would start
    unlabelled: int  # airpods containers from before projects: recreated by the next `start`
    exec_start: list[str]
    systemd_running: bool  # False in a container or chroot: the unit takes effect at the next real boot

    @property
    def survives_reboot(self) -> bool:
        return self.installed and self.enabled and (not self.rootless or bool(self.linger))

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "survives_reboot": self.survives_reboot}


def _manager_running(rootless: bool) -> bool:
    """Whether a systemd manager answers (a container or chroot has none: files are still
    written and enabled, they take effect on the next boot)."""
    done = systemctl(rootless, "is-system-running")
    return done.stdout.strip() not in ("", "offline", "unknown")


def _linger(user: str) -> bool | None:
    """True/False from logind; None when logind cannot be asked. /var/lib/systemd/linger holds
    a file per lingering user (logind's own record) as a fallback."""
    done = loginctl("show-user", user, "--property=Linger", "--value")
    if done is not None and done.returncode == 0 and done.stdout.strip() in ("yes", "no"):
        return done.stdout.strip() == "yes"
    return True if Path("/var/lib/systemd/linger", user).exists() else None


def _enabled(path: Path, rootless: bool) -> bool:
    """Enabled = linked from its target's .wants folder (what `systemctl enable` makes)."""
    target = "default.target" if rootless else "multi-user.target"
    link = path.parent / f"{target}.wants" / path.name
    return link.is_symlink() or link.exists()


def state(engine: Engine, project: str) -> AutostartState:
    """What autostart looks like now for `project`."""
    rootless = engine.rootless()
    path = unit_dir(rootless) / unit_name(project)
    installed = path.is_file()
    mine = engine.containers(project)
    unlabelled = sum(1 for c in mine if c.legacy)
    import getpass

    return AutostartState(
        unit_name(project),
        str(path),
        installed,
        installed and _enabled(path, rootless),
        rootless,
        _linger(getpass.getuser()) if rootless else None,
        len(mine) - unlabelled,
        unlabelled,
        start_command(project, engine.binary),
        _manager_running(rootless),
    )


def turn_on(engine: Engine, project: str) -> tuple[AutostartState, list[str]]:
    """Write the unit (atomically, 0644), enable it, and for a rootless user ask logind for
    linger. Returns the new state and notes for the user."""
    rootless = engine.rootless()
    folder = unit_dir(rootless)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / unit_name(project)
    env = {key: os.environ[key] for key in PODMAN_ENV if os.environ.get(key)}
    text = render_unit(project, engine.binary, rootless, env)
    from airpods.files import write_atomic

    write_atomic(path, text.encode(), mode=0o644)
    notes: list[str] = []
    running = _manager_running(rootless)
    if running:
        systemctl(rootless, "daemon-reload")
    done = systemctl(rootless, "enable", path.name)
    if done.returncode != 0 and not _enabled(path, rootless):
        raise RuntimeFailure(
            f"`systemctl{' --user' if rootless else ''} enable {path.name}` failed: "
            f"{(done.stderr or done.stdout).strip()}",
            hint=f"the unit is written at {path}",
        )
    if not running:
        notes.append("systemd is not running here: the unit is enabled and takes effect at the next boot")
    if rootless:
        import getpass

        user = getpass.getuser()
        if not _linger(user):
            linger = loginctl("enable-linger", user)
            if linger is None or linger.returncode != 0:
                notes.append(
                    f"linger is off for {user}: your user's units start only when you log in; "
                    f"`sudo loginctl enable-linger {user}` makes them start at boot"
                )
    return state(engine, project), notes


def turn_off(engine: Engine, project: str) -> tuple[AutostartState, list[str]]:
    """Disable and remove the unit; containers are left as they are."""
    rootless = engine.rootless()
    path = unit_dir(rootless) / unit_name(project)
    notes: list[str] = []
    if path.exists():
        done = systemctl(rootless, "disable", path.name)
        link = path.parent / f"{'default' if rootless else 'multi-user'}.target.wants" / path.name
        if done.returncode != 0 and link.is_symlink():
            link.unlink()  # what `disable` removes, when no manager can be asked
        path.unlink()
        if _manager_running(rootless):
            systemctl(rootless, "daemon-reload")
    else:
        notes.append("autostart was already off")
    return state(engine, project), notes
