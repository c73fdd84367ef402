"""The use cases behind start / stop / restart / status / pull: config → stack → observe → plan →
engine → health.

Which services a command acts on: the ones named, else every enabled service plus every service
of this project whose pod exists (a disabled service started by name is seen, stopped and
restarted like the others). Pods of this project whose service the config no longer defines are
orphans: listed by status, removed only with --remove-orphans. Objects of other projects are
never touched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from airpods.engine.base import ContainerState, Engine
from airpods.engine.errors import EngineError
from airpods.errors import AirpodsError, Interrupted, RuntimeFailure
from airpods.health import NOT_LISTENING, ContainerWatch, Probe, Readiness, probe_all, wait_one
from airpods.plan import (
    Observed,
    ObservedPod,
    Plan,
    PullPolicy,
    Step,
    build_start_plan,
    build_stop_plan,
    orphans,
    pending_changes,
    pull_plan,
    pull_steps,
)
from airpods.preflight import observe_host, preflight
from airpods.secrets import forget_values, read_key, stack_secret_values
from airpods.server_flags import checked_images, learn_tables
from airpods.stack.model import ServiceSpec, Stack
from airpods.state import state_lock

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


def _locked(stack: Stack) -> AbstractContextManager[None]:
    """The lifecycle lock of the stack's project (start, stop, restart and clean take it)."""
    return state_lock(stack.settings.lock_timeout_s, stack.project)


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
class StartResult:
    stack: Stack
    plan: Plan
    readiness: list[Readiness] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    kept_failed: bool = False
    notes: list[str] = field(default_factory=list)  # what the user should know once it is up

    @property
    def ok(self) -> bool:
        return all(r.ready for r in self.readiness)


def plan_start(
    stack_for: StackFor,
    engine: Engine | None,
    *,
    pull: PullPolicy = "missing",
    pull_only: bool = False,
    remove_orphans: bool = False,
) -> tuple[Stack, Plan]:
    """The plan `start` would run (observing podman when there is one): `--dry-run`."""
    if engine is None:
        stack, observed = stack_for(()), Observed()
    elif pull_only:
        stack = stack_for(())
        observed = engine.observe_images(stack.images)
    else:
        stack, observed = observe_stack(stack_for, engine)
    if pull_only:
        return stack, pull_plan(stack, observed, pull)
    plan = build_start_plan(stack, observed, pull=pull, remove_orphans=remove_orphans)
    if engine is None:
        return stack, plan
    # every refusal `start` would make, and the fit check's warnings, said instead of refused
    said = [
        f"start would refuse: {problem.message}; {problem.hint}"
        for problem in preflight(stack, plan, observed.pods, observe_host(stack, plan, engine, observed.pods))
    ]
    try:
        check_fit(stack, plan, engine, said.append)
    except RuntimeFailure as refused:
        said.append(f"start would refuse: {refused.message}; {refused.hint}")
    return stack, replace(plan, notes=plan.notes + tuple(said))


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


def check_fit(stack: Stack, plan: Plan, engine: Engine, say: Callable[[str], None]) -> None:
    """Before anything is created: the models the llama.cpp instances this start creates load,
    against their memory limit and the host's free memory (models/fit_check.py): a warning
    through `say`, or for fit = "strict" a refusal (RuntimeFailure)."""
    from airpods.models.fit_check import check_start, start_loads

    creating = {step.service for step in plan.steps if step.kind == "container"}
    check_start([load for load in start_loads(stack, engine) if load[0].name in creating], say, stack.gpu)


def start(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    *,
    keep_failed: bool = False,
    pull: PullPolicy = "missing",
    remove_orphans: bool = False,
) -> StartResult:
    """Start the stack in use; see `_start` for the order of work."""
    with _locked(stack_for(())):
        return _start(stack_for, engine, reporter, keep_failed=keep_failed, pull=pull, remove_orphans=remove_orphans)


def _start(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    *,
    keep_failed: bool,
    pull: PullPolicy,
    remove_orphans: bool,
) -> StartResult:
    """Shared steps (network, volumes, secrets, pulls) first; then, after a fresh look at the
    image IDs, every service at once: its pod and container, then its readiness wait.

    A service that fails (podman refuses it, its container exits, it is not healthy in time,
    or anything else goes wrong in its worker) has the pods this run created for it removed
    (`keep_failed` keeps them); every other service goes on. Ctrl-C removes, after every worker
    has stopped (so no half-created pod survives), the pods and secrets this run created; the
    network, volumes (they may already hold what the run fetched), preset files and volume
    folders (derived from the config, rewritten alike by the next start) and pulled images stay."""
    from airpods.models.manage import reload_routers
    from airpods.models.presets import fetch_declared, write_presets

    stack, observed = observe_stack(stack_for, engine)
    plan = build_start_plan(
        stack,
        observed,
        api_key=stack_key(stack) or "",
        values=stack_secret_values(stack),
        pull=pull,
        remove_orphans=remove_orphans,
    )
    problems = preflight(stack, plan, observed.pods, observe_host(stack, plan, engine, observed.pods))
    if problems:
        raise problems[0]
    check_fit(stack, plan, engine, reporter.line)
    presets_changed = set(write_presets(stack, engine))
    result = StartResult(stack, plan, kept_failed=keep_failed)
    created: dict[str, list[str]] = {}
    created_secrets: list[str] = []
    cancel = threading.Event()
    watch = ContainerWatch(engine, stack.project)
    key = stack_key(stack)

    def bring_up(spec: ServiceSpec) -> Readiness:
        """The service's own steps, then its readiness wait; whatever fails here fails this
        service alone (an unexpected error too: it is said as the service's failure)."""
        doing = "wait for it"
        try:
            for step in (s for s in plan.steps if s.service == spec.name):
                if cancel.is_set():
                    return Readiness(spec.name, False, 0.0, "interrupted")
                doing = f"create its {step.kind}"
                reporter.step(step)
                if step.kind == "pod":
                    created.setdefault(spec.name, []).append(step.target)  # before: a half-made pod is removed too
                engine.execute(step)
            doing = "wait for it"
            return wait_one(engine, watch, spec, reporter.waiting, cancel, key)
        except EngineError as exc:  # podman's own words, without the whole command line
            why = exc.stderr_tail or f"exit {exc.returncode}"
            return Readiness(spec.name, False, 0.0, f"{engine.name} could not {doing}: {why}")
        except Exception as exc:  # noqa: BLE001 - a failure of any kind stays in its service
            why = exc.message if isinstance(exc, AirpodsError) else f"{type(exc).__name__}: {exc}"
            return Readiness(spec.name, False, 0.0, f"could not {doing}: {why}")

    pool = ThreadPoolExecutor(max_workers=max(1, len(stack.services)), thread_name_prefix="service")
    try:
        for step in plan.steps:
            if step.kind in ("network", "volume", "secret") or (step.kind == "remove" and step.service is None):
                reporter.step(step)
                engine.execute(step)
                if step.kind == "secret":
                    created_secrets.append(step.target)
        result.notes += make_volume_folders(stack, engine, reporter)
        pulls = run_pulls(
            engine, [s for s in plan.steps if s.kind == "pull"], reporter, stack.settings.max_concurrent_pulls
        )
        if fetch_declared(stack, engine, reporter.download, reporter.line):  # models `source =` names
            presets_changed |= set(write_presets(stack, engine))
        unpulled: list[Readiness] = []
        if pulls.done or pulls.failed:  # new images may change which services are recreated: plan them again
            observed = replace(observed, images=engine.image_ids(stack.images))
            if learn_tables(engine, checked_images(stack)):  # a pulled llama-server: check against its flags
                stack = result.stack = stack_in_use(stack_for, observed.pods)
            absent = [s for s in stack.services if s.image not in observed.images]
            unpulled = [
                Readiness(
                    s.name,
                    False,
                    0.0,
                    f"its image {s.image} could not be pulled: {pulls.failed.get(s.image, 'absent')}",
                )
                for s in absent
            ]
            ready = stack_subset(stack, [s.name for s in stack.services if s not in absent])
            plan = build_start_plan(ready, observed, pull="never")
            result.plan = replace(
                plan,
                steps=tuple(s for s in result.plan.steps if s.service is None)
                + tuple(s for s in plan.steps if s.service is not None),
                notes=result.plan.notes
                + tuple(
                    f"pull of {image} failed, kept the local image: {why}"
                    for image, why in pulls.failed.items()
                    if image in observed.images
                ),
            )
            stack = ready
        futures = [pool.submit(bring_up, spec) for spec in stack.services]
        result.readiness = unpulled + [f.result() for f in futures]
    except BaseException as exc:
        cancel.set()
        pool.shutdown(wait=True)
        every = [pod for pods in created.values() for pod in pods]
        if isinstance(exc, KeyboardInterrupt):
            removed = rollback(engine, every)
            if created_secrets:
                engine.remove_secrets(created_secrets)
                forget_values(created_secrets)
            undone = [*(f"pod {pod}" for pod in removed), *(f"secret {name}" for name in created_secrets)]
            raise Interrupted(
                "interrupted"
                + (f"; removed what this start created: {', '.join(undone)}" if undone else "; no pod had been created")
            ) from None
        if not keep_failed:
            removed = rollback(engine, every)
            if removed and isinstance(exc, AirpodsError):
                exc.message += f" (removed the pods this start created: {', '.join(removed)})"
        raise
    finally:
        pool.shutdown(wait=True)
    if not keep_failed:
        failed = [r.service for r in result.readiness if not r.ready]
        result.rolled_back = rollback(engine, [pod for name in failed for pod in created.get(name, [])])
    up = [r.service for r in result.readiness if r.ready]
    # A router that kept running rereads a changed preset file on request (a new one read it).
    kept = [n for n in up if n in presets_changed and n not in created]
    reload_routers(stack_subset(stack, kept), set(ready_containers(stack, kept)), key)
    result.notes += model_notes(stack, engine, up)
    prune_user_secrets(engine, stack, up)
    return result


def make_volume_folders(stack: Stack, engine: Engine, reporter: Reporter) -> list[str]:
    """Creates the `folders` of the services' volumes that are missing (ComfyUI's checkpoints/,
    loras/ … on its first start), saying so; returns notes for the ones that could not be made
    (a volume this host cannot reach, a full disk): the service still starts."""
    from airpods.models.store import ModelStore

    problems = []
    for spec in stack.services:
        for mount in (m for m in spec.mounts if m.folders):
            store = ModelStore(engine, mount.source, stack.labels, folder=not mount.named, service=spec.name)
            try:
                made, left = store.make_folders(mount.folders)
            except (RuntimeFailure, OSError) as exc:
                problems.append(f"{spec.name}: could not create its folders in {mount.source}: {exc}")
                continue
            problems += [f"{spec.name}: folder not created in {mount.source}: {why}" for why in left]
            if made:
                reporter.line(f"{spec.name}: created {len(made)} folders in {mount.source}: {', '.join(made)}")
    return problems


def prune_user_secrets(engine: Engine, stack: Stack, up: Sequence[str]) -> None:
    """A user secret's older values (rotated: a new value made a new secret) go once its
    service runs with the new one: from the engine and from airpods' copy (secrets.py)."""
    from airpods.stack.wiring import project_suffix

    # A user secret is named PREFIX-ID[-project] (stack.build.user_secrets): its other values
    # share PREFIX.
    prefixes = tuple(
        use.name.removesuffix(project_suffix(stack.project)).rsplit("-", 1)[0] + "-"
        for spec in stack.services
        if spec.name in up
        for use in spec.secrets
        if use.purpose == "user" and use.name.startswith("airpods-secret-")
    )
    if not prefixes:
        return
    current = {d.name for d in stack.secrets}
    stale = [
        name
        for name, project in engine.secret_projects().items()
        if project == stack.project and name.startswith(prefixes) and name not in current
    ]
    if stale:
        engine.remove_secrets(stale)
        forget_values(stale)


def ready_containers(stack: Stack, names: Sequence[str]) -> list[str]:
    return [s.container for s in stack.services if s.name in names]


def model_notes(stack: Stack, engine: Engine, ready: Sequence[str]) -> list[str]:
    """A llama.cpp server that is up with no model to serve says so, with the way to get one."""
    from airpods.models.presets import existing_store

    llama = [s.name for s in stack.services if s.kind == "llamacpp" and s.name in ready]
    store = existing_store(stack, engine) if llama else None
    try:
        if not llama or (store is not None and store.models()):
            return []
    except RuntimeFailure:
        return []  # a store this host cannot read: no claim either way
    return [
        f"{', '.join(llama)} {'has' if len(llama) == 1 else 'have'} no model yet: "
        "`airpods models pull user/repo:Q4_K_M` fetches one, or declare it in the config "
        '([services.llamacpp.models.NAME] source = "user/repo:Q4_K_M") and `airpods start` fetches it'
    ]


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


def pre_fetch(stack: Stack, engine: Engine, reporter: Reporter, pull: PullPolicy = "missing") -> Plan:
    """Only the pulls, and the declared models the volume lacks; every image is tried, then a
    RuntimeFailure names the ones that failed."""
    plan = pull_plan(stack, engine.observe_images(stack.images), pull)
    pulls = run_pulls(engine, plan.steps, reporter, stack.settings.max_concurrent_pulls)
    if pulls.failed:
        raise RuntimeFailure(
            f"could not pull {pulls.failure_text()}",
            hint="check the image names and the registry (`podman pull IMAGE` shows the same)",
        )
    from airpods.models.presets import fetch_declared

    fetched = fetch_declared(stack, engine, reporter.download, reporter.line)
    return replace(plan, notes=plan.notes + tuple(f"fetched model {name}" for name in fetched))


ImageOutcome = Literal["new", "updated", "unchanged", "failed"]


@dataclass(frozen=True)
class PulledImage:
    image: str
    outcome: ImageOutcome
    seconds: float
    size: int | None
    image_id: str
    services: tuple[str, ...]  # the stack's services that use it
    to_recreate: tuple[str, ...]  # of those, the ones running an older image: `start` recreates them
    error: str | None = None  # podman's words when the pull failed

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "services": list(self.services), "to_recreate": list(self.to_recreate)}


def pull(stack: Stack, engine: Engine, reporter: Reporter) -> list[PulledImage]:
    """Pull every image of the stack again (concurrently) and say which changed: a new image
    under the same tag is what `start` then applies, recreating exactly the services that run
    an older one."""
    before = engine.image_ids(stack.images)
    pulls = run_pulls(engine, pull_steps(stack.images), reporter, stack.settings.max_concurrent_pulls)
    after = engine.image_ids(stack.images)
    running = {c.service: c for c in engine.containers(stack.project)}
    results = []
    for image in stack.images:
        users = [s for s in stack.services if s.image == image]
        outcome: ImageOutcome = (
            "failed"
            if image in pulls.failed
            else "new"
            if image not in before
            else "updated"
            if before[image] != after.get(image)
            else "unchanged"
        )
        stale = [
            s.name
            for s in users
            if s.name in running
            and running[s.name].image_id
            and after.get(image)
            and running[s.name].image_id != after.get(image)
        ]
        seconds, size = pulls.done.get(image, (0.0, None))
        results.append(
            PulledImage(
                image,
                outcome,
                seconds,
                size,
                after.get(image, ""),
                tuple(s.name for s in users),
                tuple(stale),
                pulls.failed.get(image),
            )
        )
    return results


def stop(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    timeout_s: int | None = None,
    *,
    remove_orphans: bool = False,
) -> Plan:
    with _locked(stack_for(())):
        return _stop(stack_for, engine, reporter, timeout_s, remove_orphans=remove_orphans)[1]


def _stop(
    stack_for: StackFor, engine: Engine, reporter: Reporter, timeout_s: int | None, *, remove_orphans: bool
) -> tuple[Stack, Plan]:
    pods = engine.pods()
    stack = stack_in_use(stack_for, pods)
    plan = build_stop_plan(
        stack,
        Observed(pods=pods),
        stack.settings.stop_timeout_s if timeout_s is None else timeout_s,
        remove_orphans=remove_orphans,
    )
    failed: dict[str, str] = {}
    for step in plan.steps:  # one pod podman cannot stop does not keep the others running
        reporter.step(step)
        try:
            engine.execute(step)
        except EngineError as exc:
            failed[step.target] = exc.stderr_tail or exc.message
        else:
            if step.kind == "remove":
                failed.pop(step.target, None)  # a failed stop, then a successful removal: gone
    if failed:
        done = sorted({s.target for s in plan.steps if s.kind == "remove"} - set(failed))
        raise RuntimeFailure(
            "could not stop "
            + "; ".join(f"pod {pod}: {why}" for pod, why in failed.items())
            + (f" (stopped: {', '.join(done)})" if done else ""),
            hint="run the same command again; `podman pod ps` shows what is left",
        )
    return stack, plan


def restart(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    timeout_s: int | None = None,
    *,
    keep_failed: bool = False,
    only_existing: bool = True,
) -> tuple[Plan, StartResult]:
    """Stop and remove the pods of the stack in use, then start those services again (with the
    current config and images), waiting for each to be healthy; under one lock. With
    `only_existing` (no service named) only services whose pods exist are restarted."""
    with _locked(stack_for(())):
        stack, stopped = _stop(stack_for, engine, reporter, timeout_s, remove_orphans=False)
        if only_existing:
            stack = stack_subset(stack, [s.service for s in stopped.steps if s.service])
        again = _start(
            lambda present: stack, engine, reporter, keep_failed=keep_failed, pull="missing", remove_orphans=False
        )
        return stopped, again


HealthState = Literal["healthy", "starting", "unhealthy", "unknown", "down"]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    kind: str  # the built-in service it is (llamacpp for every llama.cpp instance); "orphan"
    state: str  # running | exited | created | absent
    health: HealthState
    http_status: int | None
    detail: str
    url: str | None
    image: str
    pod: str
    container: str
    uptime_s: int | None
    up_to_date: bool | None
    changes: tuple[str, ...] = ()  # what `start` would apply: "config", "image"
    variant: str = ""  # the image variant for this host's GPU: cpu | cuda | rocm | vulkan
    gpu: str = ""  # why that variant (see gpu.choose_gpu)

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "changes": list(self.changes)}


def status(stack_for: StackFor, engine: Engine) -> list[ServiceStatus]:
    """One `podman ps`, one `podman images` of the stack's images and, at the same time, one
    health probe per service (a probe of a service that turns out not to run is not shown).
    Rows for the stack in use, then one per orphan container."""
    stack = stack_for(())
    key = read_key(stack.key_source, create=False)  # status makes no key
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = pool.submit(probe_all, [s for s in stack.services if s.publish], key)
        pending_ids = pool.submit(engine.image_ids, stack.images)
        listed = engine.containers(stack.project)
        probes, image_ids = pending.result(), pending_ids.result()
    pods = {
        c.pod: ObservedPod(c.pod, c.service, c.config_hash, c.running, stack.project, c.image_id)
        for c in listed
        if c.pod
    }
    chosen = stack_in_use(stack_for, pods)
    if chosen is not stack:
        extra = [s for s in chosen.services if s.name not in probes]
        probes = {**probes, **probe_all([s for s in extra if s.publish], key)}
        image_ids = {**image_ids, **engine.image_ids([i for i in chosen.images if i not in image_ids])}
    containers = {c.name: c for c in listed}
    # A container that crash-loops looks "running" between restarts: ask podman how often it
    # restarted, for the running ones whose probe failed (usually none, so no extra call).
    suspects = [
        containers[s.container]
        for s in chosen.services
        if s.container in containers
        and containers[s.container].running
        and (p := probes.get(s.name)) is not None
        and not p.ok
    ]
    restarts = {c.name: engine.last_exit(c.id) for c in suspects}
    now = int(time.time())
    rows = [
        _service_status(
            spec, containers.get(spec.container), probes.get(spec.name), image_ids, now, restarts.get(spec.container)
        )
        for spec in chosen.services
    ]
    orphan_pods = {p.name for p in orphans(chosen, Observed(pods=pods))}
    rows += [_orphan_status(c, now) for c in listed if c.pod in orphan_pods]
    return rows


def _service_status(
    spec: ServiceSpec,
    state: ContainerState | None,
    probe: Probe | None,
    image_ids: Mapping[str, str],
    now: int,
    last_exit: tuple[int | None, int] | None = None,
) -> ServiceStatus:
    """One row; `last_exit` is (last exit code, restart count) for a running container whose
    probe failed."""

    def row(
        state_name: str,
        health: HealthState,
        code: int | None,
        detail: str,
        image: str,
        uptime: int | None,
        changes: Sequence[str] | None,
    ) -> ServiceStatus:
        return ServiceStatus(
            spec.name,
            spec.kind,
            state_name,
            health,
            code,
            detail,
            spec.url,
            image,
            spec.pod,
            spec.container,
            uptime,
            None if changes is None else not changes,
            tuple(changes or ()),
            spec.variant,
            spec.gpu_reason,
        )

    if state is None:
        return row("absent", "down", None, "not started", spec.image, None, None)
    changes = pending_changes(
        spec,
        ObservedPod(state.pod, state.service, state.config_hash, state.running, state.project, state.image_id),
        image_ids,
    )
    if not state.running:
        return row(state.state, "down", None, f"exit code {state.exit_code}", state.image, None, changes)
    uptime = max(0, now - state.started_at) if state.started_at else None
    if probe is None:
        return row("running", "unknown", None, "no health check", state.image, uptime, changes)
    code, restarts = last_exit or (None, 0)
    if restarts:
        return row(
            "running",
            "unhealthy",
            probe.status,
            f"restarted {restarts} time{'s' if restarts > 1 else ''} by its restart policy"
            + (f" (last exit code {code})" if code is not None else ""),
            state.image,
            uptime,
            changes,
        )
    return row(
        "running",
        health_of(probe, uptime, spec.health.timeout_s),
        probe.status,
        probe.describe(),
        state.image,
        uptime,
        changes,
    )


def health_of(probe: Probe, uptime_s: int | None, timeout_s: float) -> HealthState:
    """healthy when the probe passed; starting when the answer means "not yet" (nothing listens
    yet, or 503 while llama-server loads a model) within the service's health timeout since its
    container started; else unhealthy."""
    if probe.ok:
        return "healthy"
    not_yet = probe.status == 503 or probe.error in NOT_LISTENING
    return "starting" if not_yet and uptime_s is not None and uptime_s < timeout_s else "unhealthy"


def _orphan_status(state: ContainerState, now: int) -> ServiceStatus:
    return ServiceStatus(
        state.service or state.pod,
        "orphan",
        state.state,
        "unknown",
        None,
        "its service is no longer in the config: `airpods stop --remove-orphans` removes it",
        None,
        state.image,
        state.pod,
        state.name,
        max(0, now - state.started_at) if state.running and state.started_at else None,
        None,
    )


def clean(stack: Stack, engine: Engine, *, pods: bool, volumes: bool, images: bool) -> list[str]:
    """Remove exactly what was asked for, for this project only. Volumes only with `volumes`
    (and never one labelled as another project's)."""
    done: list[str] = []
    with _locked(stack):
        if pods or volumes:  # a volume in use cannot be removed: its pod goes first
            for pod in Observed(pods=engine.pods()).project_pods(stack.project):
                if engine.remove_pod(pod):
                    done.append(f"removed pod {pod}")
            # The key's podman secrets go with the pods: start makes them again from the key file.
            secrets = [name for name, project in engine.secret_projects().items() if project == stack.project]
            if secrets:
                engine.remove_secrets(secrets)
                forget_values(secrets)
                done.append(f"removed {len(secrets)} {engine.name} secret{'s' if len(secrets) > 1 else ''}")
        if volumes:
            owners = engine.volume_projects()
            for volume in (v for v in stack.volumes if v in owners):
                owner = owners[volume]
                if owner is None:
                    done.append(f"kept volume {volume}: airpods did not create it (it has no io.airpods labels)")
                elif owner != stack.project:
                    done.append(f"kept volume {volume}: it belongs to airpods project '{owner}'")
                else:  # no --force: a volume another container still uses stays, with podman's reason
                    why = engine.remove_volume(volume)
                    done.append(f"kept volume {volume}: {why}" if why else f"deleted volume {volume}")
        if images:
            for image in stack.images:
                if engine.remove_image(image):
                    done.append(f"removed image {image}")
    return done or ["nothing to clean"]
