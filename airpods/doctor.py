"""`airpods doctor`: what this machine has for running the stack, each with a fix."""

from __future__ import annotations

from dataclasses import dataclass

from airpods.errors import AirpodsError

MIN_PODMAN = (4, 3)


@dataclass(frozen=True)
class Check:
    name: str
    level: str        # OK | WARN | FAIL
    detail: str
    fix: str = ""


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def run_checks(config_path: object = None) -> list[Check]:
    from airpods.config.loader import load_config
    from airpods.engine.errors import EngineMissing
    from airpods.engine.podman import Podman
    from airpods.gpu import detect_host_gpu
    from airpods.ports import port_holder, port_is_free

    checks: list[Check] = []
    engine = None
    try:
        engine = Podman()
        version = engine.version()
        ok = _version_tuple(version) >= MIN_PODMAN
        checks.append(Check("podman", "OK" if ok else "WARN", f"{engine.binary} {version}",
                            "" if ok else "airpods needs Podman 4.3 or newer: upgrade podman"))
    except EngineMissing as exc:
        checks.append(Check("podman", "FAIL", exc.message, exc.hint or ""))
    except AirpodsError as exc:
        checks.append(Check("podman", "FAIL", exc.message, "`podman info` shows what is wrong"))
        engine = None

    if engine is not None:
        try:
            info = engine.info()
            host = info.get("host", {})
            rootless = bool(host.get("security", {}).get("rootless"))
            checks.append(Check("mode", "OK", "rootless" if rootless else "rootful"))
            runtime = host.get("ociRuntime", {})
            checks.append(Check("runtime", "OK", f"{runtime.get('name', '?')} {runtime.get('version', '').splitlines()[0] if runtime.get('version') else ''}".strip()))
            backend = host.get("networkBackend", "?")
            checks.append(Check("network backend", "OK" if backend == "netavark" else "WARN", backend,
                                "" if backend == "netavark" else "pods find each other by name with netavark + aardvark-dns; "
                                "CNI may lack DNS for network aliases"))
        except AirpodsError as exc:
            checks.append(Check("podman info", "FAIL", exc.message, "`podman info` shows what is wrong"))

    gpu = detect_host_gpu()
    if gpu.vendor == "nvidia" and not gpu.cdi:
        checks.append(Check("gpu", "WARN", gpu.describe(),
                            "generate a CDI spec: sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"))
    else:
        checks.append(Check("gpu", "OK", gpu.describe()))

    try:
        loaded = load_config(config_path)  # type: ignore[arg-type]
    except AirpodsError as exc:
        checks.append(Check("config", "FAIL", exc.message, exc.hint or "`airpods config validate` explains it"))
        return checks
    checks.append(Check("config", "OK", str(loaded.path or "built-in defaults")))

    owners = engine.published_ports() if engine is not None else {}
    config = loaded.config
    for name in config.enabled_services():
        for port in config.services[name].ports:
            if not port.host:
                continue
            where = f"{config.runtime.bind_address}:{port.host} ({name})"
            owner = owners.get(port.host)
            if owner == f"airpods service {name}":
                checks.append(Check("port", "OK", f"{where}: in use by {name} itself"))
            elif owner or not port_is_free(config.runtime.bind_address, port.host):
                holder = owner or port_holder(port.host) or "another program"
                checks.append(Check("port", "FAIL", f"{where}: in use by {holder}",
                                    f"stop it, or change services.{name}.ports"))
            else:
                checks.append(Check("port", "OK", f"{where}: free"))
    return checks
