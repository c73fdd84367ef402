"""Preflight: every refusal `start` would make, found before its first effect.

The host's facts a start depends on are observed once, at the edge (`observe_host`: the
engine, the host's sockets and folders); `preflight` is then pure over (stack, plan, the pods
observed, those facts) and returns the problems as values: `start` refuses with the first,
`start --dry-run` lists them all. (The model fit check, models/fit_check.py, reads model files
and stays with the use case.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from airpods.engine.base import Engine
from airpods.errors import AirpodsError, ConfigError, RuntimeFailure, UsageError
from airpods.plan import Observed, ObservedPod, Plan, orphans
from airpods.ports import port_holder, port_is_free
from airpods.stack.model import PRESETS_DIR, Stack

MODELS_PREFIX = "/models/"  # where llama.cpp's containers mount the model store (stack.build)

# The processes that hold a container's published port for each engine (measured: Docker's
# userland proxy; Podman's conmon when rootful, rootlessport/pasta/slirp4netns when rootless).
PORT_HOLDERS = {"docker": ("docker-proxy",), "podman": ("conmon", "rootlessport", "pasta", "slirp4netns")}
PORT_GRACE_S = 3.0  # a pod removed a moment ago may still be releasing its ports


@dataclass(frozen=True)
class HostFacts:
    """What preflight needs to know about this host, read once: the engine's name, whether it
    is rootless (read only when a new pod publishes on IPv6), why it cannot apply resource
    limits (read only when a new container has some; None: it can), who holds each host port a
    new pod publishes that is not free, and the host folders new containers mount that do not
    exist (airpods' own preset folders are made by start itself), and the local files declared
    models are to be fetched from that are not there."""

    engine: str
    rootless: bool = False
    limits_problem: str | None = None
    taken_ports: Mapping[int, str] = field(default_factory=dict)
    missing_folders: frozenset[str] = frozenset()
    missing_sources: frozenset[str] = frozenset()
    # Each snapshot the plan takes: (service, bytes its volumes hold or None, bytes free for it)
    snapshots: tuple[tuple[str, int | None, int], ...] = ()
    store_files: frozenset[str] | None = None  # the model store's paths (Observed.store_files)
    cpus: int | None = None  # the CPUs this process may run on (read when a new container has a cpus limit)


def new_pods(plan: Plan) -> set[str]:
    return {s.target for s in plan.steps if s.kind == "pod"}


def new_containers(plan: Plan) -> set[str]:
    """The services whose containers the plan creates."""
    return {s.service for s in plan.steps if s.kind == "container" and s.service}


def _ipv6_hosts(stack: Stack, plan: Plan) -> list[str]:
    creating = new_pods(plan)
    return sorted({p.host_ip for s in stack.services if s.pod in creating for p in s.publish if ":" in p.host_ip})


def _port_frees_up(host_ip: str, port: int, grace_s: float = PORT_GRACE_S) -> bool:
    """Free now, or within a short grace (rootless Podman's port forwarder exits after its pod)."""
    deadline = time.monotonic() + grace_s
    while not port_is_free(host_ip, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def observe_host(stack: Stack, plan: Plan, engine: Engine, observed: Observed) -> HostFacts:
    """The facts `preflight` reads, each only when the plan makes it matter (the model store's
    files as `observed` has them)."""
    pods = observed.pods
    creating, containers = new_pods(plan), new_containers(plan)
    taken: dict[int, str] = {}
    published: dict[int, str] | None = None
    for spec in stack.services:
        if spec.pod not in creating or spec.pod in pods:
            continue
        for publish in spec.publish:
            if not _port_frees_up(publish.host_ip, publish.host):
                published = engine.published_ports() if published is None else published
                taken[publish.host] = published.get(publish.host) or port_holder(publish.host) or "another program"
    limited = any(s.name in containers and (s.memory or s.cpus) for s in stack.services)
    missing = {
        mount.source
        for spec in stack.services
        if spec.name in containers
        for mount in spec.mounts
        if not mount.named and mount.target != PRESETS_DIR and not os.path.isdir(mount.source)
    }
    sources = {s.names[1] for s in plan.steps if s.kind == "fetch" and s.names[1].startswith("/")}
    snapshots = [s for s in plan.steps if s.kind == "snapshot"]
    if snapshots:
        from airpods.snapshots import needs_room

        sized = tuple((s.target, *needs_room(engine, list(s.names))) for s in snapshots)
    return HostFacts(
        engine.name,
        engine.rootless() if _ipv6_hosts(stack, plan) else False,
        engine.limits_problem() if limited else None,
        taken,
        frozenset(missing),
        frozenset(source for source in sources if not os.path.exists(source)),
        sized if snapshots else (),
        observed.store_files,
        len(os.sched_getaffinity(0)) if any(s.name in containers and s.cpus for s in stack.services) else None,
    )


def preflight(
    stack: Stack,
    plan: Plan,
    pods: Mapping[str, ObservedPod],
    host: HostFacts,
    fit: AirpodsError | None = None,
) -> list[AirpodsError]:
    """Every refusal of `start` for this plan on this host, in the order start meets them;
    `fit`, the model fit check's refusal (models/fit_check.py reads model files), goes after
    the ports and before the resource limits."""
    return [*_source_problems(plan, host), *_ipv6_problems(stack, plan, host)] + [
        *_port_problems(stack, plan, pods, host),
        *([fit] if fit else []),
        *_limit_problems(stack, plan, host),
        *_folder_problems(stack, plan, host),
        *_store_problems(stack, plan, host),
        *_snapshot_problems(host),
    ]


def _store_problems(stack: Stack, plan: Plan, host: HostFacts) -> list[ConfigError]:
    """A model a new router or server is told to serve must be in the store or fetched by this
    start: a declared model with no source and no file (a router would report it "loading"
    forever), and a /models/… path of a flag (model, mmproj, model_draft, lora, chat template
    file…) the store lacks (a 500 "failed to load" at the first chat). The config's error: exit 2
    before anything is created. Nothing is said when the store could not be read here."""
    files = host.store_files
    if files is None:
        return []
    fetched = {s.target for s in plan.steps if s.kind == "fetch"}
    have = files | {f"{name}.gguf" for name in fetched} | fetched
    creating = new_containers(plan)
    problems: list[ConfigError] = []

    def missing(value: str | None) -> str | None:
        if value is None or not value.startswith(MODELS_PREFIX):
            return None
        relative = value[len(MODELS_PREFIX) :].strip("/")
        return None if relative in have or relative.split("/")[0] in fetched else relative

    for spec in (s for s in stack.services if s.kind == "llamacpp" and s.name in creating):
        volume = next((m.source for m in spec.mounts if m.target == MODELS_PREFIX.rstrip("/")), "the model store")
        for preset in spec.presets:
            key = f"services.{spec.name}.models.{preset.name}"
            named = any(spelling in ("-m", "--model") for spelling, _ in preset.flags)
            stored = bool({preset.name, f"{preset.name}.gguf"} & have)
            if preset.name != "*" and not preset.source and not named and not stored:
                problems.append(
                    ConfigError(
                        f"model {preset.name} has no source and {volume} holds no {preset.name}.gguf; "
                        "nothing was created",
                        key=key,
                        hint=f'add source = "user/repo:QUANT" (start fetches it) or `airpods models import FILE '
                        f"--name {preset.name}`",
                    )
                )
            for spelling, value in preset.flags:
                if (gone := missing(value)) is not None:
                    problems.append(_missing_file(spelling, gone, volume, key))
        for flag, value in zip(spec.args, spec.args[1:], strict=False):
            if flag.startswith("-") and (gone := missing(value)) is not None:
                problems.append(_missing_file(flag, gone, volume, f"services.{spec.name}.command_args"))
    return problems


def _missing_file(flag: str, relative: str, volume: str, key: str) -> ConfigError:
    return ConfigError(
        f"{flag} names {MODELS_PREFIX}{relative}, which {volume} does not hold; nothing was created",
        key=key,
        hint="`airpods models list` shows what it holds; `airpods models import FILE` adds one",
    )


def _snapshot_problems(host: HostFacts) -> list[RuntimeFailure]:
    """A snapshot before an update must fit in the state folder (all of them together)."""
    need = sum(size or 0 for _, size, _ in host.snapshots)
    free = min((free for _, _, free in host.snapshots), default=0)
    if not host.snapshots or need <= free:
        return []
    names = ", ".join(name for name, _, _ in host.snapshots)
    return [
        RuntimeFailure(
            f"the snapshot of {names} before the update needs {need / 1e9:.2f} GB, but the state folder has "
            f"{free / 1e9:.2f} GB free; nothing was changed",
            hint="free space there, or `airpods start --no-snapshot` (a failed update then cannot bring the data back)",
        )
    ]


def _source_problems(plan: Plan, host: HostFacts) -> list[AirpodsError]:
    """A declared model's local file that is not there is the config's error (exit 2)."""
    return [
        UsageError(
            f"model {step.target} (services.{step.names[0]}.models.{step.target}.source): "
            f"{step.names[1]} is not a file or a folder; nothing was created",
            hint=f"put the model there, or fix services.{step.names[0]}.models.{step.target}.source",
        )
        for step in plan.steps
        if step.kind == "fetch" and step.names[1] in host.missing_sources
    ]


def _ipv6_problems(stack: Stack, plan: Plan, host: HostFacts) -> list[RuntimeFailure]:
    ipv6 = _ipv6_hosts(stack, plan)
    if not ipv6 or host.rootless:
        return []
    # Measured (Podman 4.3, netavark): rootful publishing is a kernel DNAT, and Linux does not
    # route packets addressed to ::1 to another address (IPv6 has no route_localnet), nor
    # translate IPv6 to the pods' IPv4 addresses: the port accepts no connection. Rootless
    # Podman forwards ports from a host process and serves IPv6 addresses.
    return [
        RuntimeFailure(
            f"rootful Podman cannot publish on the IPv6 address {', '.join(ipv6)}: its port forwarding does not "
            "reach containers from IPv6 loopback; nothing was created",
            hint='use runtime.bind_address = "127.0.0.1" (or run airpods as a normal user: rootless Podman '
            "publishes on IPv6)",
        )
    ]


def _port_problems(stack: Stack, plan: Plan, pods: Mapping[str, ObservedPod], host: HostFacts) -> list[RuntimeFailure]:
    creating = new_pods(plan)
    left = {f"airpods service {p.service}" for p in orphans(stack, Observed(pods=pods))}
    problems = []
    for spec in stack.services:
        if spec.pod not in creating or spec.pod in pods:
            continue
        for publish in (p for p in spec.publish if p.host in host.taken_ports):
            holder = host.taken_ports[publish.host]
            orphan = holder in left
            problems.append(
                RuntimeFailure(
                    f"{spec.name} cannot publish {publish.address()}: the port is in use by {holder}"
                    + (" (an orphan of this stack)" if orphan else "")
                    + "; nothing was created",
                    hint="`airpods start --remove-orphans` removes it first"
                    if orphan
                    else other_engine_hint(holder, host.engine)
                    or f"stop that program, or give services.{spec.name}.ports another host port",
                )
            )
    return problems


def other_engine_hint(holder: str, engine: str) -> str | None:
    """When the port is held by the other engine's forwarder: the stack may run there."""
    for other, programs in PORT_HOLDERS.items():
        if other != engine and any(program in holder for program in programs):
            return (
                f"a container of {other} holds it — this stack may be running on {other}: "
                f"`airpods --engine {other} status` shows it, `airpods --engine {other} stop` stops it"
            )
    return None


def _limit_problems(stack: Stack, plan: Plan, host: HostFacts) -> list[AirpodsError]:
    """Resource limits are applied or refused, never silently dropped (rootless cgroups), and a
    cpus limit beyond this host's CPUs is the config's error (Podman and Docker refuse it at
    create time: "range of CPUs is from 0.01 to N, as there are only N CPUs available")."""
    containers = new_containers(plan)
    too_many: list[AirpodsError] = [
        ConfigError(
            f"{spec.cpus:g} CPUs, but this host has {host.cpus}; nothing was created",
            key=f"services.{spec.name}.resources.cpus",
            hint=f"at most {host.cpus}",
        )
        for spec in stack.services
        if spec.name in containers and spec.cpus and host.cpus and spec.cpus > host.cpus
    ]
    limited = [s.name for s in stack.services if s.name in containers and (s.memory or s.cpus)]
    if not limited or not host.limits_problem:
        return too_many
    return too_many + [
        RuntimeFailure(
            f"{', '.join(limited)} {'has' if len(limited) == 1 else 'have'} resources set, but {host.limits_problem}; "
            "nothing was created",
            hint="use cgroup v2 with delegation (systemd: Delegate=memory cpu for user@.service), run podman "
            "rootful, or remove services.NAME.resources; `airpods doctor` explains",
        )
    ]


def _folder_problems(stack: Stack, plan: Plan, host: HostFacts) -> list[RuntimeFailure]:
    """A host folder mounted into a new container must exist (the engine would fail mid-start)."""
    containers = new_containers(plan)
    return [
        RuntimeFailure(
            f"{spec.name} mounts the host folder {mount.source} at {mount.target}, but it does not exist; "
            "nothing was created",
            hint=f"create it (mkdir -p {mount.source}) or fix services.{spec.name}.volumes",
        )
        for spec in stack.services
        if spec.name in containers
        for mount in spec.mounts
        if mount.source in host.missing_folders and not mount.named
    ]
