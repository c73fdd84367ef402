"""`airpods status`: each service's state, health and URL, from one listing and one round of
concurrent probes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from airpods.engine.base import ContainerState, Engine
from airpods.health import NOT_LISTENING, Probe, probe_all
from airpods.plan import Observed, ObservedPod, orphans, pending_changes
from airpods.secrets import read_key
from airpods.stack.exposure import gateway_urls
from airpods.stack.model import ServiceSpec
from airpods.usecases.common import StackFor, stack_in_use

if TYPE_CHECKING:
    from airpods.usecases.placement import Verdict

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
    changes: tuple[str, ...] = ()  # what `start` would apply: "config", "image", "presets"
    variant: str = ""  # the image variant for this host's GPU: cpu | cuda | rocm | vulkan
    gpu: str = ""  # why that variant (see gpu.choose_gpu)
    snapshot: int | None = None  # bytes `start` snapshots before applying a new image (-1: unknown)
    digest: str = ""  # the registry digest of the local image (with `digests`): what pins it
    models: tuple[ModelRow, ...] = ()  # a healthy llama.cpp router's models, as it says
    remote_url: str | None = None  # through the stack's gateway, for other machines
    placements: tuple[Verdict, ...] = ()  # where a running llama.cpp service's models run (with `placements`)

    def to_json(self) -> dict[str, object]:
        return {
            **self.__dict__,
            "changes": list(self.changes),
            "models": [m.__dict__ for m in self.models],
            "placements": [v.to_json() for v in self.placements],
        }


@dataclass(frozen=True)
class ModelRow:
    """One model of a router, from its GET /models (and GET /slots for a loaded one)."""

    name: str
    state: str  # loaded | loading | sleeping | unloaded | downloading | failed
    exit_code: int | None = None  # a failed model's
    slots: int | None = None  # a loaded model's parallel slots
    busy: int | None = None  # of those, the ones running a request

    def describe(self) -> str:
        if self.state == "failed":
            return f"{self.name} failed (exit {self.exit_code})"
        slots = f" ({self.slots} slots, {self.busy} busy)" if self.slots is not None else ""
        return f"{self.name} {self.state}{slots}"


def status(
    stack_for: StackFor, engine: Engine, *, digests: bool = False, placements: bool = False
) -> list[ServiceStatus]:
    """One `podman ps`, one `podman images` of the stack's images and, at the same time, one
    health probe per service (a probe of a service that turns out not to run is not shown).
    Rows for the stack in use, then one per orphan container; with `digests` (status --json),
    each row's image digest too (one more engine call), and with `placements` where each running
    llama.cpp service's models run, from its log (one more engine call per such service)."""
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
    updating = [row.name for row in rows if "image" in row.changes]
    if updating:  # said before it happens: what start snapshots first, and how big
        from airpods.snapshots import snapshot_sizes

        sizes = snapshot_sizes(engine, chosen, updating)
        rows = [
            replace(r, snapshot=-1 if sizes[r.name] is None else sizes[r.name]) if r.name in sizes else r for r in rows
        ]
    routers = {s.name: s for s in chosen.services if s.kind == "llamacpp" and s.server.model is None}
    healthy = [r.name for r in rows if r.name in routers and r.health == "healthy"]
    if healthy:
        with ThreadPoolExecutor(max_workers=min(8, len(healthy))) as pool:
            found_models = dict(zip(healthy, pool.map(lambda n: router_models(routers[n], key), healthy), strict=True))
        rows = [replace(r, models=found_models[r.name]) if r.name in found_models else r for r in rows]
    if digests:
        found = engine.image_digests(chosen.images)
        rows = [replace(r, digest=found.get(r.image, "")) for r in rows]
    remote = gateway_urls(chosen)
    rows = [replace(r, remote_url=remote.get(r.name)) for r in rows]
    if placements:
        from airpods.usecases.placement import observe_placements

        running = {r.name for r in rows if r.state == "running"}
        said = observe_placements(engine, [s for s in chosen.services if s.name in running])
        rows = [replace(r, placements=tuple(v for v in said if v.service == r.name)) for r in rows]
    orphan_pods = {p.name for p in orphans(chosen, Observed(pods=pods))}
    rows += [_orphan_status(c, now) for c in listed if c.pod in orphan_pods]
    return rows


def router_models(spec: ServiceSpec, key: str | None) -> tuple[ModelRow, ...]:
    """A running router's models and their state, with the slots of each loaded one; () when
    it does not answer as a router."""
    from airpods.models.router import Router, RouterError

    try:
        router = Router(spec, key, timeout=2.0)
        states = router.models()
    except RouterError:
        return ()
    rows = []
    for name, state in sorted(states.items()):
        slots = busy = None
        if state.value == "loaded":
            try:
                busy, slots = router.slots(name)
            except RouterError:
                pass
        rows.append(ModelRow(name, "failed" if state.failed else state.value, state.exit_code, slots, busy))
    return tuple(rows)


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
    if state.running and not changes and spec.presets and presets_waiting(spec):
        changes = ["presets"]
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


def presets_waiting(spec: ServiceSpec) -> bool:
    """A running router whose preset file was written for other declared presets than the
    config's now (one line read: stack/presets.py presets_pending)."""
    from pathlib import Path

    from airpods.stack.model import PRESET_FILE, PRESETS_DIR
    from airpods.stack.presets import presets_pending

    folder = next((m.source for m in spec.mounts if m.target == PRESETS_DIR), None)
    return folder is not None and presets_pending(spec.presets, Path(folder) / PRESET_FILE)


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
