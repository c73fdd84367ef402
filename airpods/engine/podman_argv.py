"""Podman's rendering of the plan's steps and of the stack's facts: the exact argv (podman-run(1),
podman-pod-create(1), podman-volume-create(1), podman-secret-create(1), podman-pod-stop(1)).
Pure: `start --dry-run` renders with it whether or not podman is installed."""

from __future__ import annotations

import json

from airpods.engine import run_options
from airpods.engine.base import OneOff
from airpods.engine.env_handover import ImageConfig, handed_over
from airpods.engine.run_options import env_volume_limit_args, least_privilege_args, option_args, publish_option
from airpods.gpu import GpuRequest
from airpods.labels import label_args
from airpods.plan import Step
from airpods.stack.model import Mount, SecretUse, ServiceSpec


def volume_option(mount: Mount) -> str:
    """podman's --volume value; a host folder is relabelled shared (`z`), so SELinux lets every
    container read it (podman ignores it where SELinux is off)."""
    return f"{mount.source}:{mount.target}:{mount.mode}" + ("" if mount.named else ",z")


def secret_option(use: SecretUse, owner: tuple[int, int] | None = (0, 0)) -> str:
    """podman's --secret value: a file, 0400 and owned by the container's user `owner` (uid, gid)
    (0444 when that user is known by name only: env_handover.ImageConfig.owner), or an env
    variable."""
    option = f"{use.name},type={use.type},target={use.target}"
    if use.type != "mount":
        return option
    if owner is None:
        return option + ",mode=0444"
    return option + ("" if owner == (0, 0) else f",uid={owner[0]},gid={owner[1]}") + ",mode=0400"


def gpu_options(request: GpuRequest | None) -> list[str]:
    """podman run flags that hand a GPU over: --device per CDI name or node (podman-run(1))."""
    if request is None:
        return []
    flags = [arg for device in request.devices for arg in ("--device", device)]
    groups = ["keep-groups"] if request.keep_groups else [str(gid) for gid in request.groups]
    return flags + [arg for group in groups for arg in ("--group-add", group)]


def pod_create_argv(spec: ServiceSpec) -> tuple[str, ...]:
    argv = ["podman", "pod", "create", "--name", spec.pod, "--network", spec.network]
    argv += [arg for alias in spec.aliases for arg in ("--network-alias", alias)]
    argv += label_args(spec.labels)
    argv += [arg for p in spec.publish for arg in ("--publish", publish_option(p))]
    return tuple(argv)


def container_run_argv(spec: ServiceSpec, image: ImageConfig | None = None) -> tuple[str, ...]:
    """`podman run` of a service; its env secrets as files read by a wrapper (env_handover),
    around what `image` (its inspected config; None in a dry run) runs."""
    labels = spec.labels  # the declared spec's config hash, as status compares it
    spec = handed_over(spec, image)
    owner = image.owner if image else (0, 0)
    argv = [
        "podman",
        "run",
        "--detach",
        "--name",
        spec.container,
        "--pod",
        spec.pod,
        "--restart",
        spec.restart_policy,
        "--pull",
        "never",
    ]
    argv += label_args(labels)
    argv += env_volume_limit_args(
        spec, volume_option, [arg for secret in spec.secrets for arg in ("--secret", secret_option(secret, owner))]
    )
    argv += least_privilege_args(spec)
    argv += gpu_options(spec.gpu_request)
    if spec.entrypoint:
        argv += ["--entrypoint", json.dumps(list(spec.entrypoint))]
    argv += [spec.run_image or spec.image, *spec.args, *spec.key_args]
    return tuple(argv)


def one_off_args(job: OneOff, *, interactive: bool = False) -> list[str]:
    """`podman run --rm` arguments (without the binary) for a throwaway tool container."""
    return run_options.one_off_args(job, volume_option, gpu_options, interactive=interactive)


def step_argv(step: Step) -> tuple[str, ...]:
    """The podman command a step runs ("podman" first; the engine puts its binary there); none
    for a step airpods itself does on the host."""
    if step.on_host:
        return ()
    labels = label_args(dict(step.labels))
    if step.kind == "network":
        return ("podman", "network", "create", *labels, step.target)
    if step.kind == "volume":
        return ("podman", "volume", "create", *labels, *option_args(step), step.target)
    if step.kind == "secret":
        return ("podman", "secret", "create", *labels, step.target, "-")
    if step.kind == "pull":
        return ("podman", "pull", step.target)
    if step.kind == "tag":
        return ("podman", "tag", step.target, step.names[0])
    if step.kind == "pod" and step.spec is not None:
        return pod_create_argv(step.spec)
    if step.kind == "container" and step.spec is not None:
        return container_run_argv(step.spec)
    if step.kind == "stop":
        return ("podman", "pod", "stop", "--time", str(step.grace_s or 0), step.target)
    if step.kind == "remove":
        return ("podman", "pod", "rm", "--force", step.target)
    raise ValueError(f"podman cannot render a {step.kind} step without its service")
