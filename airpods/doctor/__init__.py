"""`airpods doctor`: what this machine has for running the stack, each with a fix. The checks
of Podman and the host are here, Docker's in docker.py; both build on check.py (no circle)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from airpods.doctor.check import Check, version_check
from airpods.errors import AirpodsError

if TYPE_CHECKING:
    from airpods.config.schema import Config
    from airpods.engine.base import Engine
    from airpods.gpu import HostGpu
    from airpods.stack.model import ServiceSpec, Stack

MIN_PODMAN = (4, 3)


def _has_range(path: str, user: str, uid: int) -> bool:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return False
    return any(line.split(":")[0] in (user, str(uid)) for line in lines if line.count(":") == 2)


def rootless_checks(host: dict, root: str = "/") -> list[Check]:
    """What rootless Podman needs that no error message explains well."""
    import getpass
    import os
    import shutil

    user, uid, checks = getpass.getuser(), os.getuid(), []
    for kind in ("subuid", "subgid"):
        ok = _has_range(os.path.join(root, f"etc/{kind}"), user, uid)
        checks.append(
            Check(
                kind,
                "OK" if ok else "FAIL",
                f"/etc/{kind} {'has' if ok else 'lacks'} a range for {user}",
                "" if ok else f"sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}",
            )
        )
    mapper = shutil.which("newuidmap")
    checks.append(
        Check(
            "newuidmap",
            "OK" if mapper else "FAIL",
            mapper or "not found",
            "" if mapper else "sudo apt-get install uidmap",
        )
    )
    controllers = set(host.get("cgroupControllers") or [])
    if host.get("cgroupVersion") != "v2" or not {"memory", "cpu"} <= controllers:
        checks.append(
            Check(
                "resource limits",
                "WARN",
                f"cgroup {host.get('cgroupVersion', '?')}, delegated: "
                f"{', '.join(sorted(controllers)) or 'none'}: services with `resources` will be refused",
                "cgroup v2 with memory and cpu delegated to your user (systemd: Delegate= in user@.service)",
            )
        )
    else:
        checks.append(Check("resource limits", "OK", "cgroup v2 with memory and cpu delegated"))
    linger = os.path.exists(os.path.join(root, "var/lib/systemd/linger", user))
    checks.append(
        Check(
            "linger",
            "OK" if linger else "WARN",
            "services outlive your login" if linger else "services (Quadlet units) stop when you log out",
            "" if linger else f"loginctl enable-linger {user}",
        )
    )
    return checks


def unprivileged_port_check(ports: list[int], root: str = "/") -> Check | None:
    """Rootless podman cannot publish ports below net.ipv4.ip_unprivileged_port_start."""
    try:
        start = int(Path(root, "proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return None
    low = sorted(p for p in ports if p < start)
    if not low:
        return None
    return Check(
        "low ports",
        "FAIL",
        f"ports {', '.join(map(str, low))} are below {start}: rootless cannot publish them",
        f"use ports >= {start}, or sudo sysctl net.ipv4.ip_unprivileged_port_start={min(low)}",
    )


def podman_checks(auto: bool = False) -> tuple[list[Check], Engine | None]:
    """Podman's version, mode, OCI runtime and network backend, and the engine when it answers.
    `auto`: Podman was chosen as the default, so a missing podman also says what was found
    instead (a docker client without a daemon: engine.choose.no_engine)."""
    from airpods.engine.errors import EngineMissing
    from airpods.engine.podman import Podman

    checks: list[Check] = []
    engine: Engine | None = None
    try:
        engine = Podman()
        version = engine.version()
        checks.append(
            version_check(
                "podman",
                f"{engine.binary} {version}",
                version,
                MIN_PODMAN,
                "airpods needs Podman 4.3 or newer: upgrade podman",
            )
        )
    except EngineMissing as exc:
        from airpods.engine.choose import no_engine

        found = no_engine() if auto else None
        checks.append(Check("podman", "FAIL", *(found or (exc.message, exc.hint or ""))))
    except AirpodsError as exc:
        checks.append(Check("podman", "FAIL", exc.message, "`podman info` shows what is wrong"))
        engine = None

    if engine is not None:
        try:
            info = engine.info()
            host = info.get("host", {})
            rootless = bool(host.get("security", {}).get("rootless"))
            checks.append(Check("mode", "OK", "rootless" if rootless else "rootful"))
            if rootless:
                checks += rootless_checks(host)
            runtime = host.get("ociRuntime", {})
            checks.append(
                Check(
                    "runtime",
                    "OK",
                    f"{runtime.get('name', '?')} {(runtime.get('version') or '').partition(chr(10))[0]}".strip(),
                )
            )
            backend = host.get("networkBackend", "?")
            checks.append(
                Check(
                    "network backend",
                    "OK" if backend == "netavark" else "WARN",
                    backend,
                    ""
                    if backend == "netavark"
                    else "pods find each other by name with netavark + aardvark-dns; "
                    "CNI may lack DNS for network aliases",
                )
            )
        except AirpodsError as exc:
            checks.append(Check("podman info", "FAIL", exc.message, "`podman info` shows what is wrong"))

    return checks, engine


def run_checks(config_path: object = None, engine_choice: str | None = None) -> list[Check]:
    """Every check, for the engine chosen by `engine_choice` (--engine) or the config."""
    from airpods.config.loader import load_config
    from airpods.engine.choose import configured_engine, engine_name
    from airpods.gpu import detect_host_gpu
    from airpods.ports import port_holder, port_is_free

    try:
        choice = engine_choice or configured_engine(config_path)  # type: ignore[arg-type]
    except AirpodsError:
        choice = "auto"  # the config check below reports it
    engine: Engine | None
    name = engine_name(choice)  # one probe of Docker's socket at most
    if name == "docker":
        from airpods.doctor.docker import docker_checks

        checks, engine = docker_checks()
    else:
        checks, engine = podman_checks(auto=choice == "auto")

    gpu = detect_host_gpu(name)
    checks.append(Check("gpu", "WARN" if gpu.problem else "OK", gpu.describe(), gpu.problem or ""))

    try:
        loaded = load_config(config_path)  # type: ignore[arg-type]
    except AirpodsError as exc:
        checks.append(Check("config", "FAIL", exc.message, exc.hint or "`airpods config validate` explains it"))
        return checks
    checks.append(Check("config", "OK", str(loaded.path or "built-in defaults")))
    checks += gpu_decisions(loaded.config, gpu)
    checks += exposure_checks(config_path, gpu)
    if engine is not None and name == "docker":
        from airpods.doctor.docker import reboot_check

        checks.append(reboot_check(loaded.config.runtime.restart_policy))
    elif engine is not None:
        checks.append(autostart_check(engine, loaded.config.runtime.project))

    owners = engine.published_ports() if engine is not None else {}
    config = loaded.config
    if engine is not None and rootless_mode(checks):
        low = unprivileged_port_check(
            [p.host for n in config.enabled_services() for p in config.services[n].ports if p.host]
        )
        if low:
            checks.append(low)
    from airpods.errors import ConfigError

    try:
        port_is_free(config.runtime.bind_address, 0)  # the address itself: one of this host's?
    except ConfigError as elsewhere:
        checks.append(Check("port", "FAIL", f"runtime.bind_address: {elsewhere.message}", elsewhere.hint or ""))
        return checks
    from airpods.stack.model import bracketed
    from airpods.stack.wiring import GATEWAY, gateway_enabled, kind_of

    behind_gateway = gateway_enabled(config)
    for name in config.enabled_services():
        # With a gateway, it alone is on bind_address; the others on loopback (stack/build).
        address = "127.0.0.1" if behind_gateway and kind_of(config, name) != GATEWAY else config.runtime.bind_address
        for port in config.services[name].ports:
            if not port.host:
                continue
            where = f"{bracketed(address)}:{port.host} ({name})"
            owner = owners.get(port.host)
            if owner == f"airpods service {name}":
                checks.append(Check("port", "OK", f"{where}: in use by {name} itself"))
            elif owner or not port_is_free(address, port.host):
                holder = owner or port_holder(port.host) or "another program"
                checks.append(
                    Check("port", "FAIL", f"{where}: in use by {holder}", f"stop it, or change services.{name}.ports")
                )
            else:
                checks.append(Check("port", "OK", f"{where}: free"))
    return checks


def exposure_checks(config_path: object, gpu: HostGpu) -> list[Check]:
    """What the stack publishes beyond this machine (runtime.expose), one line a service."""
    from airpods.stack.exposure import exposed
    from airpods.stack.resolve import resolve_stack

    try:
        stack = resolve_stack(config_path, (), gpu=gpu)  # type: ignore[arg-type]
    except AirpodsError:
        return []  # the config check says why
    return [
        Check(
            "exposed", "WARN" if e.open else "OK", e.describe(), "" if not e.open else "keep it off untrusted networks"
        )
        for e in exposed(stack)
    ] + gateway_checks(stack)


def gateway_checks(stack: Stack) -> list[Check]:
    """The URLs other machines use through the stack's gateway, and its certificate."""
    from airpods.stack.exposure import gateway_urls

    gateways = [spec for spec in stack.services if spec.kind == "gateway"]
    if not gateways:
        return []
    spec = gateways[0]
    shown = ", ".join(f"{name} {url}" for name, url in gateway_urls(stack).items() if name != spec.name)
    return [Check("gateway", "OK", f"{spec.name}: {shown or 'no service behind it'}"), certificate_check(stack, spec)]


def certificate_check(stack: Stack, spec: ServiceSpec) -> Check:
    """The gateway's certificate: the user's (`tls`) as prepare.check_own sees it, or airpods'
    (made by `start` for the hosts the config lists, renewed RENEW_BEFORE_DAYS before its end)."""
    import datetime

    from airpods.gateway.caddy import gateway_folder
    from airpods.gateway.clients import own_certificate
    from airpods.gateway.prepare import check_own
    from airpods.gateway.tls import RENEW_BEFORE_DAYS, current
    from airpods.state import state_path

    if own_certificate(stack):
        try:
            check_own(spec, stack)
        except AirpodsError as error:
            return Check("certificate", "FAIL", str(error), error.hint or "")
        return Check("certificate", "OK", f"{spec.name} serves your own certificate (services.{spec.name}.tls)")
    found = current(gateway_folder(state_path(), stack.project))
    if found is None:
        return Check("certificate", "WARN", "the gateway's certificate is not made yet", "`airpods start` makes it")
    hosts, until = found
    if set(hosts) != set(spec.hosts):
        said = f"the certificate names {', '.join(hosts)}, the config {', '.join(spec.hosts)}"
        return Check("certificate", "WARN", said, "`airpods start` makes a new one")
    left = (until - datetime.datetime.now(datetime.UTC)).days
    detail = f"for {', '.join(hosts)}, {left} days left (airpods' CA: `airpods gateway trust`)"
    if left > RENEW_BEFORE_DAYS:
        return Check("certificate", "OK", detail)
    return Check("certificate", "WARN", detail, "`airpods start` renews it")


def autostart_check(engine: Engine, project: str) -> Check:
    """Would the stack come back after a reboot (airpods/autostart.py)?"""
    from airpods.autostart import state

    try:
        current = state(engine, project)
    except AirpodsError as exc:
        return Check("reboot", "WARN", f"cannot tell: {exc.message}", exc.hint or "")
    if current.survives_reboot:
        return Check(
            "reboot",
            "OK",
            f"the stack comes back after a reboot ({current.unit} enabled, "
            f"{current.containers} container{'s' if current.containers != 1 else ''} to start"
            + ("" if current.systemd_running else "; systemd is not running here: from the next boot")
            + ")",
        )
    if current.installed and current.enabled:
        linger = "off" if current.linger is False else "unknown (logind cannot be asked)"
        return Check(
            "reboot",
            "WARN",
            f"{current.unit} is enabled, but linger is {linger}: a user unit runs only "
            "after you log in unless linger is on",
            "sudo loginctl enable-linger $USER",
        )
    return Check(
        "reboot",
        "WARN",
        "after a reboot the stack stays down until `airpods start`",
        "`airpods autostart on` brings it back at boot",
    )


def rootless_mode(checks: list[Check]) -> bool:
    return any(c.name == "mode" and c.detail == "rootless" for c in checks)


def gpu_decisions(config: Config, gpu: HostGpu) -> list[Check]:
    """What each enabled service that asks for a GPU gets on this host, and why."""
    from airpods.engine.podman_argv import gpu_options
    from airpods.stack.build import select_image

    checks: list[Check] = []
    for name in config.enabled_services():
        service = config.services[name]
        if not service.gpu.enabled:
            continue
        try:
            image, choice = select_image(service, gpu, name)
        except AirpodsError as exc:
            checks.append(Check(f"gpu {name}", "FAIL", exc.message, exc.hint or ""))
            continue
        flags = " ".join(gpu_options(choice.request)) or "no device"
        level = "WARN" if choice.warning else "OK"
        checks.append(Check(f"gpu {name}", level, f"{image} ({flags}): {choice.reason}"))
        checks += compat_trap(name, image, choice.key, gpu)
    return checks


def compat_trap(name: str, image: str, key: str, gpu: HostGpu) -> list[Check]:
    """The CUDA compatibility-library trap (gpu_facts.COMPAT_LIB_IMAGES): an image that ships
    them, handed over by CDI, on a driver newer than the image's CUDA release's own."""
    from airpods.gpu_facts import COMPAT_LIB_FIX, COMPAT_LIB_IMAGES, driver_tuple, toolkit_driver

    cuda = key.partition("-")[2]
    own = toolkit_driver(cuda) if cuda else None
    if image not in COMPAT_LIB_IMAGES or gpu.handover != "CDI" or not gpu.driver or not own:
        return []
    if driver_tuple(gpu.driver) <= driver_tuple(own):
        return []
    return [
        Check(
            f"gpu {name} compat libraries",
            "WARN",
            f"{image} ships CUDA {cuda}'s compatibility libraries; under CDI they take the place of this host's "
            f"newer driver {gpu.driver} and CUDA fails to start (the model then runs on the CPU)",
            COMPAT_LIB_FIX,
        )
    ]
