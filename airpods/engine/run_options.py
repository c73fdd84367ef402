"""`run` options Podman and Docker spell the same way (`--env`, `--volume`, `--memory`, `--cpus`,
`--cap-drop`, `--cap-add`, `--security-opt`, `--read-only`, `--tmpfs`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from airpods.gpu import GpuRequest
from airpods.labels import TOOL
from airpods.plan import Step
from airpods.stack.model import Mount, Publish, ServiceSpec

if TYPE_CHECKING:
    from airpods.engine.base import OneOff

# What a tool container keeps of root's capabilities: enough to read and write files of other
# owners in the volumes it mounts (a model store written by another user, a rootless mapping).
TOOL_CAPS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER")


def one_off_args(
    job: OneOff,
    volume_option: Callable[[Mount], str],
    gpu_options: Callable[[GpuRequest | None], list[str]],
    *,
    interactive: bool = False,
) -> list[str]:
    """`run --rm` arguments (no binary) for a throwaway tool container, as hardened as a
    service's: its name and tool label, no network, every capability dropped but TOOL_CAPS, no
    privilege gain; its mounts and GPU as the engine renders them."""
    argv = ["run", "--rm", *(["-it"] if interactive else []), "--pull", "missing", "--name", job.name]
    argv += ["--label", f"{TOOL}={job.tool}", "--network", "none", "--cap-drop", "all"]
    argv += [arg for cap in TOOL_CAPS for arg in ("--cap-add", cap)] + ["--security-opt", "no-new-privileges"]
    argv += [arg for m in job.mounts for arg in ("--volume", volume_option(m))]
    argv += gpu_options(job.gpu) + (["--entrypoint", job.entrypoint] if job.entrypoint else [])
    return [*argv, job.image, *job.args]


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


def option_args(step: Step) -> list[str]:
    """A volume step's driver options as `volume create --opt K=V` arguments."""
    from airpods.engine.process import option_pairs

    return option_pairs(dict(step.options))


def least_privilege_args(spec: ServiceSpec) -> list[str]:
    """No capabilities but the service's `cap_add`, no privilege gain through setuid binaries,
    and a read-only root filesystem with tmpfs scratch folders when the service keeps one."""
    argv = ["--cap-drop", "all", "--security-opt", "no-new-privileges"]
    argv += [arg for cap in spec.cap_add for arg in ("--cap-add", cap)]
    argv += ["--read-only"] if spec.read_only else []
    return argv + [arg for path in spec.scratch for arg in ("--tmpfs", path)]


def publish_option(publish: Publish) -> str:
    """The --publish value; an IPv6 address in brackets ("[::1]:8081:8080"), as podman and docker
    parse the host IP up to the last colons."""
    return f"{publish.address()}:{publish.container}"
