"""The Stack's facts and the Plan's steps as Docker Engine argv (the second engine).

Docker has no pods: a service's container joins the stack network itself with the service's
aliases and publishes its own ports; a pod step renders to nothing, and stop/remove act on the
containers labelled with the pod's name. Docker has no secrets outside Swarm: a secret is a 0400 file in
airpods' state folder bind-mounted read-only at its target (never env or argv); one the service
wants as an env variable is such a file read into the environment by env_handover's wrapper, so
`docker inspect` never shows it, and a multi-line value (a PEM key, JSON credentials) arrives
whole."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from airpods.engine.env_handover import ImageConfig, handed_over
from airpods.engine.run_options import env_volume_limit_args, least_privilege_args, option_args, publish_option
from airpods.gpu import GpuRequest
from airpods.labels import DEFAULT_PROJECT, PROJECT, label_args
from airpods.labels import POD as POD_LABEL
from airpods.plan import Step
from airpods.stack.model import Mount, SecretUse, ServiceSpec


def secrets_folder() -> Path:
    """Where the Docker engine keeps the stacks' secrets as files (in airpods' private state
    folder, 0700), a folder per project (project_secrets)."""
    from airpods.state import state_path

    return state_path() / "docker-secrets"


def project_secrets(secrets: Path, labels: Mapping[str, str]) -> Path:
    """The folder of the secrets of the project these labels name (io.airpods.project)."""
    return secrets / labels.get(PROJECT, DEFAULT_PROJECT)


def volume_option(mount: Mount) -> str:
    """docker's --volume value; a host folder is relabelled shared (`z`) for SELinux hosts."""
    return f"{mount.source}:{mount.target}:{mount.mode}" + ("" if mount.named else ",z")


def secret_options(use: SecretUse, secrets: Path) -> list[str]:
    """A secret as Docker can carry it: a read-only bind of its file (env secrets are files too
    by then: env_handover.handed_over)."""
    return ["--volume", f"{secrets / use.name}:{use.target}:ro"]


def gpu_options(request: GpuRequest | None) -> list[str]:
    """NVIDIA through Docker's device requests (`--gpus`; CDI names map to them), other GPUs as
    device nodes; the nodes' groups by ID (Docker has no keep-groups)."""
    if request is None:
        return []
    flags: list[str] = []
    cdi = [d.split("=", 1)[1] for d in request.devices if d.startswith("nvidia.com/gpu=")]
    if cdi:
        flags += ["--gpus", "all" if "all" in cdi else f'"device={",".join(cdi)}"']
    flags += [arg for d in request.devices if not d.startswith("nvidia.com/") for arg in ("--device", d)]
    return flags + [arg for gid in request.groups for arg in ("--group-add", str(gid))]


def container_run_argv(spec: ServiceSpec, secrets: Path, image: ImageConfig | None = None) -> tuple[str, ...]:
    """`docker run` of a service; its env secrets as files read by a wrapper (env_handover),
    around what `image` (its inspected config; None in a dry run) runs."""
    labels = spec.labels  # the declared spec's config hash, as status compares it
    spec = handed_over(spec, image)
    argv = ["docker", "run", "--detach", "--name", spec.container, "--network", spec.network]
    argv += [arg for alias in spec.aliases for arg in ("--network-alias", alias)]
    argv += [arg for p in spec.publish for arg in ("--publish", publish_option(p))]
    argv += ["--restart", spec.restart_policy, "--pull", "never"]
    argv += label_args({**labels, POD_LABEL: spec.pod})
    folder = project_secrets(secrets, labels)
    argv += env_volume_limit_args(
        spec, volume_option, [arg for use in spec.secrets for arg in secret_options(use, folder)]
    )
    argv += least_privilege_args(spec)
    argv += gpu_options(spec.gpu_request)
    if spec.entrypoint:
        argv += ["--entrypoint", spec.entrypoint[0]]
    argv += [spec.run_image or spec.image, *(spec.entrypoint or ())[1:], *spec.args, *spec.key_args]
    return tuple(argv)


def step_argv(step: Step, secrets: Path) -> tuple[str, ...]:
    """The docker command a step runs ("docker" first); () for a step Docker has no command for
    (a pod; a secret, which the engine writes as a file; a step airpods does on the host)."""
    if step.on_host:
        return ()
    labels = label_args(dict(step.labels))
    if step.kind == "network":
        return ("docker", "network", "create", *labels, step.target)
    if step.kind == "volume":
        return ("docker", "volume", "create", *labels, *option_args(step), step.target)
    if step.kind == "pull":
        return ("docker", "pull", step.target)
    if step.kind == "tag":
        return ("docker", "tag", step.target, step.names[0])
    if step.kind in ("pod", "secret"):
        return ()
    if step.kind == "container" and step.spec is not None:
        return container_run_argv(step.spec, secrets)
    if step.kind == "stop":
        return ("docker", "stop", "--time", str(step.grace_s or 0), *_pod_containers(step.target))
    if step.kind == "remove":
        return ("docker", "rm", "--force", *_pod_containers(step.target))
    raise ValueError(f"docker cannot render a {step.kind} step without its service")


def _pod_containers(pod: str) -> tuple[str, ...]:
    """The containers standing for a pod, as the dry-run shows them (the engine lists them)."""
    return (f"$(docker ps -aq --filter label={POD_LABEL}={json.dumps(pod)[1:-1]})",)
