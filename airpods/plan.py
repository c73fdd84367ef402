"""The plan: ordered podman invocations as data. Pure — (stack, observed) → Plan.

`start --dry-run` prints it; the engine runs it step by step and makes no decisions of its own.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from airpods.stack.model import ServiceSpec, Stack

MANAGED_LABEL = "io.airpods.managed=true"


@dataclass(frozen=True)
class Step:
    kind: str                  # network | volume | secret | pull | pod | container | stop | remove
    target: str
    argv: tuple[str, ...]
    why: str
    service: str | None = None
    stdin: str | None = field(default=None, repr=False)   # a secret's value: never displayed

    def display(self) -> str:
        return shlex.join(self.argv) + (" <<< '********'" if self.stdin is not None else "")


@dataclass(frozen=True)
class ObservedPod:
    name: str
    service: str | None
    config_hash: str | None
    running: bool


@dataclass(frozen=True)
class Observed:
    """What exists before the plan runs (one snapshot taken by the engine)."""
    networks: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    images: frozenset[str] = frozenset()
    pods: Mapping[str, ObservedPod] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Plan:
    action: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        lines = [f"# airpods {self.action}: {len(self.steps)} step{'s' if len(self.steps) != 1 else ''}"]
        lines += [f"# {note}" for note in self.notes]
        for step in self.steps:
            lines.append(f"# {step.why}")
            lines.append(step.display())
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {"action": self.action, "notes": list(self.notes), "steps": [
            {"kind": s.kind, "target": s.target, "service": s.service, "why": s.why, "argv": list(s.argv)}
            for s in self.steps]}


def _labels(labels: Mapping[str, str]) -> list[str]:
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def pull_steps(images: Iterable[str], observed: Observed) -> list[Step]:
    return [Step("pull", image, ("podman", "pull", image), f"pull {image}")
            for image in images if image not in observed.images]


def pod_create_argv(spec: ServiceSpec) -> tuple[str, ...]:
    argv = ["podman", "pod", "create", "--name", spec.pod, "--network", spec.network]
    argv += [arg for alias in spec.aliases for arg in ("--network-alias", alias)]
    argv += _labels({**spec.labels, "io.airpods.managed": "true"})
    argv += [arg for p in spec.publish for arg in ("--publish", p.flag())]
    return tuple(argv)


def container_run_argv(spec: ServiceSpec) -> tuple[str, ...]:
    argv = ["podman", "run", "--detach", "--name", spec.container, "--pod", spec.pod,
            "--restart", spec.restart_policy, "--pull", "never"]
    argv += _labels({**spec.labels, "io.airpods.managed": "true"})
    argv += [arg for key, value in spec.env for arg in ("--env", f"{key}={value}")]
    argv += [arg for mount in spec.mounts for arg in ("--volume", mount.flag())]
    argv += [arg for secret in spec.secrets for arg in ("--secret", secret.flag())]
    if spec.memory:
        argv += ["--memory", spec.memory]
    if spec.cpus:
        argv += ["--cpus", f"{spec.cpus:g}"]
    argv += spec.devices
    if spec.entrypoint:
        argv += ["--entrypoint", json.dumps(list(spec.entrypoint))]
    argv += [spec.image, *spec.args]
    return tuple(argv)


def build_start_plan(stack: Stack, observed: Observed, *, pull_only: bool = False, api_key: str = "") -> Plan:
    """`api_key` is the value behind stack.secrets (only read for secrets that do not exist yet)."""
    if pull_only:
        steps = pull_steps(stack.images, observed)
        notes = [f"{image}: already present" for image in stack.images if image in observed.images]
        return Plan("start --pre-fetch", tuple(steps), tuple(notes))

    steps: list[Step] = []
    notes: list[str] = list(stack.warnings)
    if stack.network not in observed.networks:
        steps.append(Step("network", stack.network,
                          ("podman", "network", "create", "--label", MANAGED_LABEL, stack.network),
                          f"network {stack.network}: pods reach each other by name and alias"))
    for volume in stack.volumes:
        if volume not in observed.volumes:
            steps.append(Step("volume", volume, ("podman", "volume", "create", "--label", MANAGED_LABEL, volume),
                              f"volume {volume}: kept by stop"))
    for secret in stack.secrets:
        if secret.name not in observed.secrets:
            steps.append(Step("secret", secret.name,
                              ("podman", "secret", "create", "--label", MANAGED_LABEL, secret.name, "-"),
                              f"secret {secret.name}: the stack's API key, kept out of argv and env",
                              stdin=secret.value(api_key)))
    steps += pull_steps(stack.images, observed)
    for spec in stack.services:
        pod = observed.pods.get(spec.pod)
        if pod and pod.running and pod.config_hash == spec.config_hash:
            notes.append(f"{spec.name}: running and unchanged, left alone")
            continue
        if pod:
            reason = "config changed" if pod.config_hash != spec.config_hash else "not running"
            steps.append(Step("remove", spec.pod, ("podman", "pod", "rm", "--force", spec.pod),
                              f"{spec.name}: {reason}, recreate its pod", spec.name))
        steps.append(Step("pod", spec.pod, pod_create_argv(spec),
                          f"{spec.name}: pod {spec.pod}" + (f", published on {', '.join(p.flag() for p in spec.publish)}"
                                                            if spec.publish else ", not published"), spec.name))
        steps.append(Step("container", spec.container, container_run_argv(spec),
                          f"{spec.name}: container {spec.container} ({spec.variant} image {spec.image})", spec.name))
    return Plan("start", tuple(steps), tuple(notes))


def build_stop_plan(stack: Stack, observed: Observed | None, timeout_s: int) -> Plan:
    """Stop and remove the pods; volumes are never touched. `observed=None` plans for all."""
    steps: list[Step] = []
    notes: list[str] = []
    for spec in stack.services:
        if observed is not None and spec.pod not in observed.pods:
            notes.append(f"{spec.name}: not running")
            continue
        steps.append(Step("stop", spec.pod, ("podman", "pod", "stop", "--time", str(timeout_s), spec.pod),
                          f"{spec.name}: stop pod {spec.pod}", spec.name))
        steps.append(Step("remove", spec.pod, ("podman", "pod", "rm", "--force", spec.pod),
                          f"{spec.name}: remove pod {spec.pod} (volumes are kept)", spec.name))
    return Plan("stop", tuple(steps), tuple(notes))
