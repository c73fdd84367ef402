"""The use cases behind start / stop / status: config → stack → observe → plan → engine → health."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from airpods.engine.podman import ContainerState, Podman
from airpods.errors import AirpodsError, Interrupted, RuntimeFailure
from airpods.health import ContainerWatch, Probe, Readiness, probe_all, wait_one
from airpods.plan import Observed, Plan, Step, build_start_plan, build_stop_plan
from airpods.ports import port_holder, port_is_free
from airpods.secrets import api_key
from airpods.stack.model import ServiceSpec, Stack
from airpods.state import state_lock


class Reporter(Protocol):
    def step(self, step: Step) -> None: ...
    def pulled(self, image: str, seconds: float, size: int | None) -> None: ...
    def waiting(self, service: str, elapsed: float, last: str) -> None: ...


@dataclass
class StartResult:
    stack: Stack
    plan: Plan
    readiness: list[Readiness] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ready for r in self.readiness)


def plan_start(stack: Stack, engine: Podman | None, *, pull_only: bool = False) -> Plan:
    """The plan `start` would run (observing podman when there is one)."""
    observed = engine.observe(stack.network, stack.volumes, stack.images) if engine else Observed()
    return build_start_plan(stack, observed, pull_only=pull_only)


def run_pulls(engine: Podman, steps: Sequence[Step], reporter: Reporter, workers: int) -> None:
    """Pull concurrently; after the first failure nothing new starts, and the error is raised.
    Sizes come from one `podman images` call at the end (not one inspect per image)."""
    failed = threading.Event()
    seconds: dict[str, float] = {}

    def pull(step: Step) -> None:
        if failed.is_set():
            return
        reporter.step(step)
        began = time.monotonic()
        try:
            engine.execute(step)
        except BaseException:
            failed.set()
            raise
        seconds[step.target] = time.monotonic() - began

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
        for future in [pool.submit(pull, step) for step in steps]:
            future.result()
    sizes = engine.image_sizes(seconds) if seconds else {}
    for image, took in seconds.items():
        reporter.pulled(image, took, sizes.get(image))


def check_ports(stack: Stack, plan: Plan, engine: Podman, observed_pods: set[str]) -> None:
    """Every host port a new pod publishes must be free; say who holds it otherwise."""
    creating = {s.target for s in plan.steps if s.kind == "pod"}
    for spec in stack.services:
        if spec.pod not in creating or spec.pod in observed_pods:
            continue
        for publish in spec.publish:
            if _port_frees_up(publish.host_ip, publish.host):
                continue
            holder = engine.published_ports().get(publish.host) or port_holder(publish.host) or "another program"
            raise RuntimeFailure(
                f"{spec.name} cannot publish {publish.host_ip}:{publish.host}: the port is in use by {holder}; "
                "nothing was created",
                hint=f"stop that program, or give services.{spec.name}.ports another host port")


def check_limits(stack: Stack, plan: Plan, engine: Podman) -> None:
    """Resource limits are applied or refused, never silently dropped (rootless cgroups)."""
    creating = {s.service for s in plan.steps if s.kind == "container"}
    limited = [s.name for s in stack.services if s.name in creating and (s.memory or s.cpus)]
    if not limited:
        return
    problem = engine.limits_problem()
    if problem:
        raise RuntimeFailure(
            f"{', '.join(limited)} {'has' if len(limited) == 1 else 'have'} resources set, but {problem}; "
            "nothing was created",
            hint="use cgroup v2 with delegation (systemd: Delegate=memory cpu for user@.service), run podman "
                 "rootful, or remove services.NAME.resources; `airpods doctor` explains")


def _port_frees_up(host_ip: str, port: int, grace_s: float = 3.0) -> bool:
    """Free now, or within a short grace: a pod removed a moment ago may still be releasing its
    ports (rootless Podman's port forwarder exits after the pod)."""
    deadline = time.monotonic() + grace_s
    while not port_is_free(host_ip, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def start(stack: Stack, engine: Podman, reporter: Reporter, *, keep_failed: bool = False) -> StartResult:
    """Shared steps (network, volumes, pulls) first; then every service at once: its pod and
    container, then its readiness wait. A failure or Ctrl-C removes the pods this run created,
    after every worker has stopped, so no half-created pod survives."""
    with state_lock(stack.settings.lock_timeout_s):
        observed = engine.observe(stack.network, stack.volumes, stack.images)
        plan = build_start_plan(stack, observed, api_key=api_key() if stack.secrets else "")
        check_ports(stack, plan, engine, set(observed.pods))
        check_limits(stack, plan, engine)
        result = StartResult(stack, plan)
        created: list[str] = []
        cancel = threading.Event()
        watch = ContainerWatch(engine)

        def bring_up(spec: ServiceSpec) -> Readiness:
            for step in (s for s in plan.steps if s.service == spec.name):
                if cancel.is_set():
                    return Readiness(spec.name, False, 0.0, "interrupted")
                reporter.step(step)
                if step.kind == "pod":
                    created.append(step.target)   # before: a half-made pod is removed too
                engine.execute(step)
            return wait_one(engine, watch, spec, reporter.waiting, cancel)

        pool = ThreadPoolExecutor(max_workers=max(1, len(stack.services)), thread_name_prefix="service")
        try:
            for step in plan.steps:
                if step.kind in ("network", "volume", "secret"):
                    reporter.step(step)
                    engine.execute(step)
            run_pulls(engine, [s for s in plan.steps if s.kind == "pull"], reporter,
                      stack.settings.max_concurrent_pulls)
            futures = [pool.submit(bring_up, spec) for spec in stack.services]
            result.readiness = [f.result() for f in futures]
        except BaseException as exc:
            cancel.set()
            pool.shutdown(wait=True)
            if isinstance(exc, KeyboardInterrupt):
                removed = rollback(engine, created)
                raise Interrupted("interrupted" + (f"; removed the pods this start created: {', '.join(removed)}"
                                                   if removed else "; nothing had been created")) from None
            if isinstance(exc, AirpodsError) and not keep_failed:
                removed = rollback(engine, created)
                if removed:
                    exc.message += f" (removed the pods this start created: {', '.join(removed)})"
            raise
        finally:
            pool.shutdown(wait=True)
        if not result.ok and not keep_failed:
            result.rolled_back = rollback(engine, created)
        return result


def stack_subset(stack: Stack, names: Sequence[str]) -> Stack:
    """The same stack restricted to some services (e.g. the ones a backup pauses)."""
    from dataclasses import replace

    return replace(stack, services=tuple(s for s in stack.services if s.name in names))


def rollback(engine: Podman, pods: Sequence[str]) -> list[str]:
    """Remove pods (and their containers) this run created; volumes are never touched."""
    for pod in reversed(pods):
        engine.remove_pod(pod)
    return list(pods)


def pre_fetch(stack: Stack, engine: Podman, reporter: Reporter) -> Plan:
    plan = build_start_plan(stack, engine.observe_images(stack.images), pull_only=True)
    run_pulls(engine, plan.steps, reporter, stack.settings.max_concurrent_pulls)
    return plan


def stop(stack: Stack, engine: Podman, reporter: Reporter, timeout_s: int | None = None) -> Plan:
    with state_lock(stack.settings.lock_timeout_s):
        plan = build_stop_plan(stack, Observed(pods=engine.pods()),
                               stack.settings.stop_timeout_s if timeout_s is None else timeout_s)
        for step in plan.steps:
            reporter.step(step)
            engine.execute(step)
    return plan


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    kind: str             # the built-in service it is: llamacpp for every llama.cpp instance
    state: str            # running | exited | created | absent
    health: str           # healthy | unhealthy | unknown | down
    http_status: int | None
    detail: str
    url: str | None
    image: str
    pod: str
    container: str
    uptime_s: int | None
    up_to_date: bool | None

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def status(stack: Stack, engine: Podman) -> list[ServiceStatus]:
    """One `podman ps` and, at the same time, one health probe per service (a probe of a
    service that turns out not to run is simply not shown)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(probe_all, [s for s in stack.services if s.publish])
        containers: dict[str, ContainerState] = {c.name: c for c in engine.containers()}
        probes = pending.result()
    now = int(time.time())
    return [_service_status(spec, containers.get(spec.container), probes.get(spec.name), now)
            for spec in stack.services]


def _service_status(spec: ServiceSpec, state: ContainerState | None, probe: Probe | None, now: int) -> ServiceStatus:
    if state is None:
        return ServiceStatus(spec.name, spec.kind, "absent", "down", None, "not started", spec.url, spec.image,
                             spec.pod, spec.container, None, None)
    if not state.running:
        return ServiceStatus(spec.name, spec.kind, state.state, "down", None, f"exit code {state.exit_code}", spec.url,
                             state.image, spec.pod, spec.container, None, state.config_hash == spec.config_hash)
    if probe is None:
        health, code, detail = "unknown", None, "no health check"
    else:
        health = "healthy" if probe.ok else "unhealthy"
        code, detail = probe.status, probe.describe()
    return ServiceStatus(spec.name, spec.kind, "running", health, code, detail, spec.url, state.image, spec.pod,
                         spec.container, max(0, now - state.started_at) if state.started_at else None,
                         state.config_hash == spec.config_hash)


def clean(stack: Stack, engine: Podman, *, pods: bool, volumes: bool, images: bool) -> list[str]:
    """Remove exactly what was asked for, for the services of `stack`. Volumes only with `volumes`."""
    done: list[str] = []
    with state_lock(stack.settings.lock_timeout_s):
        if pods or volumes:   # a volume in use cannot be removed: its pod goes first
            for pod in engine.pods():
                engine.remove_pod(pod)
                done.append(f"removed pod {pod}")
            # The key's podman secrets go with the pods: start makes them again from the key file.
            secrets = [n for n in engine.run(["secret", "ls", "--format", "{{.Name}}"]).stdout.split()
                       if n.startswith("airpods-")]
            if secrets:
                engine.run(["secret", "rm", *secrets], check=False)
                done.append(f"removed {len(secrets)} podman secret{'s' if len(secrets) > 1 else ''}")
        if volumes:
            for volume in stack.volumes:
                if engine.run(["volume", "rm", "--force", volume], check=False).returncode == 0:
                    done.append(f"deleted volume {volume}")
        if images:
            for image in stack.images:
                if engine.run(["rmi", image], check=False).returncode == 0:
                    done.append(f"removed image {image}")
    return done or ["nothing to clean"]
