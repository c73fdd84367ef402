"""`run` options Podman and Docker spell the same way (`--env`, `--volume`, `--memory`, `--cpus`)."""

from __future__ import annotations

from collections.abc import Callable

from airpods.stack.model import Mount, ServiceSpec


def env_volume_limit_args(
    spec: ServiceSpec, volume_option: Callable[[Mount], str], secret_args: list[str]
) -> list[str]:
    """The service's env, its volumes (each rendered by the engine's `volume_option`), the
    engine's `secret_args` and the memory/CPU limits, as `run` options."""
    argv = [arg for key, value in spec.env for arg in ("--env", f"{key}={value}")]
    argv += [arg for mount in spec.mounts for arg in ("--volume", volume_option(mount))]
    argv += secret_args
    if spec.memory:
        argv += ["--memory", spec.memory]
    if spec.cpus:
        argv += ["--cpus", f"{spec.cpus:g}"]
    return argv
