"""The use cases behind start / stop / status: config → stack → observe → plan → engine → health."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from airpods.config.loader import LoadedConfig
from airpods.engine.podman import ContainerState, Podman
from airpods.errors import AirpodsError, Interrupted, RuntimeFailure
from airpods.gpu import detect_host_gpu
from airpods.health import Readiness, probe_all, wait_until_ready
from airpods.plan import Observed, Plan, Step, build_start_plan, build_stop_plan
from airpods.ports import port_holder, port_is_free
from airpods.stack.build import build_stack
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


def stack_for(loaded: LoadedConfig, names: Sequence[str]) -> Stack:
    return build_stack(loaded.config, detect_host_gpu(), names)


def plan_start(loaded: LoadedConfig, names: Sequence[str], engine: Podman | None, *, pull_only: bool = False) -> Plan:
    """The plan `start` would run (observing podman when there is one)."""
    stack = stack_for(loaded, names)
    observed = engine.observe(stack.network, stack.volumes, stack.images) if engine else Observed()
    return build_start_plan(stack, observed, pull_only=pull_only)


def run_pulls(engine: Podman, steps: Sequence[Step], reporter: Reporter, workers: int) -> None:
    """Pull concurrently; after the first failure nothing new starts, and the error is raised."""
    failed = threading.Event()

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
        reporter.pulled(step.target, time.monotonic() - began, engine.image_size(step.target))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
        for future in [pool.submit(pull, step) for step in steps]:
            future.result()


def check_ports(stack: Stack, plan: Plan, engine: Podman, observed_pods: set[str]) -> None:
    """Every host port a new pod publishes must be free; say who holds it otherwise."""
    creating = {s.target for s in plan.steps if s.kind == "pod"}
    owners = engine.published_ports()
    for spec in stack.services:
        if spec.pod not in creating or spec.pod in observed_pods:
            continue
        for publish in spec.publish:
            if port_is_free(publish.host_ip, publish.host):
                continue
            holder = owners.get(publish.host) or port_holder(publish.host) or "another program"
            raise RuntimeFailure(
                f"{spec.name} cannot publish {publish.host_ip}:{publish.host}: the port is in use by {holder}; "
                "nothing was created",
                hint=f"stop that program, or give services.{spec.name}.ports another host port")


def start(loaded: LoadedConfig, names: Sequence[str], engine: Podman, reporter: Reporter,
          *, keep_failed: bool = False) -> StartResult:
    stack = stack_for(loaded, names)
    with state_lock(loaded.config.cli.lock_timeout_s):
        observed = engine.observe(stack.network, stack.volumes, stack.images)
        plan = build_start_plan(stack, observed)
        check_ports(stack, plan, engine, set(observed.pods))
        result = StartResult(stack, plan)
        created: list[str] = []
        cancel = threading.Event()
        try:
            pulls = [s for s in plan.steps if s.kind == "pull"]
            run_pulls(engine, pulls, reporter, loaded.config.cli.max_concurrent_pulls)
            for step in plan.steps:
                if step.kind == "pull":
                    continue
                reporter.step(step)
                engine.execute(step)
                if step.kind == "pod":
                    created.append(step.target)
            result.readiness = wait_until_ready(engine, stack.services, reporter.waiting, cancel)
        except KeyboardInterrupt:
            cancel.set()
            removed = rollback(engine, created)
            raise Interrupted("interrupted" + (f"; removed the pods this start created: {', '.join(removed)}"
                                               if removed else "; nothing had been created")) from None
        except AirpodsError as exc:
            if not keep_failed:
                removed = rollback(engine, created)
                if removed:
                    exc.message += f" (removed the pods this start created: {', '.join(removed)})"
            raise
        if not result.ok and not keep_failed:
            result.rolled_back = rollback(engine, created)
        return result


def rollback(engine: Podman, pods: Sequence[str]) -> list[str]:
    """Remove pods (and their containers) this run created; volumes are never touched."""
    for pod in reversed(pods):
        engine.remove_pod(pod)
    return list(pods)


def pre_fetch(loaded: LoadedConfig, names: Sequence[str], engine: Podman, reporter: Reporter) -> Plan:
    stack = stack_for(loaded, names)
    plan = build_start_plan(stack, engine.observe(stack.network, (), stack.images), pull_only=True)
    run_pulls(engine, plan.steps, reporter, loaded.config.cli.max_concurrent_pulls)
    return plan


def stop(loaded: LoadedConfig, names: Sequence[str], engine: Podman, reporter: Reporter,
         timeout_s: int | None = None) -> Plan:
    stack = stack_for(loaded, names)
    with state_lock(loaded.config.cli.lock_timeout_s):
        plan = build_stop_plan(stack, Observed(pods=engine.pods()),
                               loaded.config.cli.stop_timeout_s if timeout_s is None else timeout_s)
        for step in plan.steps:
            reporter.step(step)
            engine.execute(step)
    return plan


@dataclass(frozen=True)
class ServiceStatus:
    name: str
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


def status(loaded: LoadedConfig, names: Sequence[str], engine: Podman) -> list[ServiceStatus]:
    """One `podman ps` plus one concurrent health probe per running service."""
    stack = stack_for(loaded, names)
    containers: dict[str, ContainerState] = {c.name: c for c in engine.containers()}
    running = [s for s in stack.services if s.container in containers and containers[s.container].running]
    probes = probe_all(running)
    now = int(time.time())
    return [_service_status(spec, containers.get(spec.container), probes.get(spec.name), now)
            for spec in stack.services]


def _service_status(spec: ServiceSpec, state: ContainerState | None, probe, now: int) -> ServiceStatus:
    if state is None:
        return ServiceStatus(spec.name, "absent", "down", None, "not started", spec.url, spec.image,
                             spec.pod, spec.container, None, None)
    if not state.running:
        return ServiceStatus(spec.name, state.state, "down", None, f"exit code {state.exit_code}", spec.url,
                             state.image, spec.pod, spec.container, None, state.config_hash == spec.config_hash)
    if probe is None:
        health, code, detail = "unknown", None, "no health check"
    else:
        health = "healthy" if probe.ok else "unhealthy"
        code, detail = probe.status, probe.describe()
    return ServiceStatus(spec.name, "running", health, code, detail, spec.url, state.image, spec.pod,
                         spec.container, max(0, now - state.started_at) if state.started_at else None,
                         state.config_hash == spec.config_hash)


def configured_volumes(loaded: LoadedConfig) -> list[str]:
    """Named volumes of every configured service (enabled or not)."""
    return list(dict.fromkeys(v.source for s in loaded.config.services.values() for v in s.volumes if v.named))


def clean(loaded: LoadedConfig, engine: Podman, *, pods: bool, volumes: bool, images: bool) -> list[str]:
    """Remove exactly what was asked for. Volumes go only when `volumes` is set."""
    done: list[str] = []
    with state_lock(loaded.config.cli.lock_timeout_s):
        if pods or volumes:   # a volume in use cannot be removed: its pod goes first
            for pod in engine.pods():
                engine.remove_pod(pod)
                done.append(f"removed pod {pod}")
        if volumes:
            for volume in configured_volumes(loaded):
                if engine.run(["volume", "rm", "--force", volume], check=False).returncode == 0:
                    done.append(f"deleted volume {volume}")
        if images:
            stack = stack_for(loaded, list(loaded.config.services))
            for image in stack.images:
                if engine.run(["rmi", image], check=False).returncode == 0:
                    done.append(f"removed image {image}")
    return done or ["nothing to clean"]
