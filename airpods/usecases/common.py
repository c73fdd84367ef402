"""What the use cases share: the stack a command acts on, one snapshot of what exists, the
lifecycle lock, concurrent pulls, rollback.

Which services a command acts on: the ones named, else every enabled service plus every service
of this project whose pod exists (a disabled service started by name is seen, stopped and
restarted like the others). Pods of this project whose service the config no longer defines are
orphans: listed by status, removed only with --remove-orphans. Objects of other projects are
never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from airpods.engine.base import Engine
from airpods.engine.errors import EngineError
from airpods.plan import Observed, ObservedPod, Step
from airpods.secrets import read_key
from airpods.stack.model import Stack
from airpods.state import LifecycleLock

# The stack for a set of services found running (`present`): the CLI resolves the config with
# them; a caller with a fixed stack ignores them.
StackFor = Callable[[Sequence[str]], Stack]


class Reporter(Protocol):
    def step(self, step: Step) -> None: ...
    def pulled(self, image: str, seconds: float, size: int | None) -> None: ...
    def waiting(self, service: str, elapsed: float, last: str) -> None: ...
    def line(self, text: str) -> None: ...
    def download(self, name: str, total: int | None) -> Callable[[int], None]: ...


def stack_key(stack: Stack) -> str | None:
    """The key a stack hands over (made if it is the generated one), None when it hands none."""
    return read_key(stack.key_source, create=True) if stack.secrets else None


def locked(stack: Stack) -> LifecycleLock:
    """The lifecycle lock of the stack's project (start, stop, restart and clean take it)."""
    return LifecycleLock(stack.settings.lock_timeout_s, stack.project)


def present_services(stack: Stack, pods: Mapping[str, ObservedPod]) -> list[str]:
    """Configured services of this project whose pods exist, in config order."""
    found = {pod.service for pod in pods.values() if pod.project == stack.project}
    return [name for name in stack.configured if name in found]


def stack_in_use(stack_for: StackFor, pods: Mapping[str, ObservedPod]) -> Stack:
    """The stack a command acts on, given the pods that exist (see the module docstring)."""
    stack = stack_for(())
    present = present_services(stack, pods)
    known = {*stack.enabled, *(s.name for s in stack.services)}
    return stack_for(present) if set(present) - known else stack


def observe_stack(stack_for: StackFor, engine: Engine) -> tuple[Stack, Observed]:
    """The stack in use and one snapshot of what exists for it (a second snapshot only when
    pods of services outside the first guess exist)."""
    stack = stack_for(())
    observed = engine.observe(stack.network, stack.volumes, stack.images)
    chosen = stack_in_use(stack_for, observed.pods)
    if chosen is not stack:
        observed = engine.observe(chosen.network, chosen.volumes, chosen.images)
    return chosen, observed


@dataclass
class Pulls:
    """What a batch of pulls did: (seconds, bytes or None) per image pulled, and podman's words
    per image that failed."""

    done: dict[str, tuple[float, int | None]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def failure_text(self) -> str:
        return "; ".join(f"{image}: {why}" for image, why in self.failed.items())


def run_pulls(engine: Engine, steps: Sequence[Step], reporter: Reporter, workers: int) -> Pulls:
    """Pull concurrently, every image whatever happens to the others (one bad image must not
    hide the rest); sizes come from one `podman images` call at the end."""
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}

    def pull(step: Step) -> None:
        reporter.step(step)
        began = time.monotonic()
        try:
            engine.execute(step)
        except EngineError as exc:  # podman's last line says why (one line: it goes into tables)
            failed[step.target] = (exc.stderr_tail or exc.message).strip().splitlines()[-1]
            return
        seconds[step.target] = time.monotonic() - began

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
        for future in [pool.submit(pull, step) for step in steps]:
            future.result()
    sizes = engine.image_sizes(seconds) if seconds else {}
    for image, took in seconds.items():
        reporter.pulled(image, took, sizes.get(image))
    return Pulls({image: (took, sizes.get(image)) for image, took in seconds.items()}, failed)


def rollback(engine: Engine, pods: Sequence[str]) -> list[str]:
    """Remove pods (and their containers) a run created; volumes are never touched. Returns the
    pods podman really removed."""
    return [pod for pod in reversed(pods) if engine.remove_pod(pod)]


def stack_subset(stack: Stack, names: Sequence[str]) -> Stack:
    """The same stack restricted to some services (e.g. the ones a backup pauses), with only
    the secrets those services use."""
    services = tuple(s for s in stack.services if s.name in names)
    used = {use.name for s in services for use in s.secrets}
    return replace(stack, services=services, secrets=tuple(d for d in stack.secrets if d.name in used))
