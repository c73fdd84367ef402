"""HTTP health probes and the readiness wait.

A probe answers "is this service healthy now". `wait_one` polls one service until it is
healthy, its `health.timeout_s` passes, or its container exits or restarts (which fails it at
once, with the container's last log lines); start runs one wait per service, all at once.
Connection refused and 503 (llama-server loading a model) are progress, not failure.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airpods.engine.base import ContainerState, Engine
from airpods.stack.model import ServiceSpec

if TYPE_CHECKING:
    from airpods.models.router import ModelState

PROBE_INTERVAL_S = 0.2
# Answers that mean "nothing listens yet": refused, or (rootless Podman's port forwarder accepts
# first, then finds nothing behind it) reset or closed before any HTTP answer.
NOT_LISTENING = ("connection refused", "connection reset", "connection closed without an answer")
WATCH_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 2.0
NEVER_READY = (400, 404, 405, 501)  # bad request (a router asked for /slots), not found, not allowed, not implemented
AUTH_REFUSED = (401, 403)


@dataclass(frozen=True)
class Probe:
    ok: bool
    status: int | None = None
    error: str | None = None

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else (self.error or "no answer")


def probe_url(spec: ServiceSpec) -> tuple[str, int] | None:
    """(host, port) the host reaches the service's health path on, None when not published."""
    return spec.publish[0].reach() if spec.publish else None


def http_status(host: str, port: int, path: str, timeout: float, key: str | None = None) -> int:
    """GET `path` and return the status code, with `Authorization: Bearer KEY` when a key is
    given. A raw socket on purpose: http.client pulls in the email package (~25 ms), which every
    `airpods status` would pay. An IPv6 `host` goes in brackets in the Host header (RFC 9110
    §7.2 / RFC 3986 §3.2.2). The address goes to the socket as bytes: a str is encoded with the
    idna codec, whose import costs ~6 ms (hosts here are addresses or ASCII names)."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    with socket.create_connection((host.encode(), port), timeout=timeout) as sock:  # type: ignore[arg-type]
        # llama.cpp's Web UI answers 415 to clients that do not accept gzip.
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: airpods\r\n"
            f"Accept-Encoding: gzip\r\n{auth}Connection: close\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n" not in head and len(head) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    if not head:
        raise ConnectionError(NOT_LISTENING[2])
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ConnectionError("not an HTTP answer")
    return int(parts[1])


def uses_key(spec: ServiceSpec) -> bool:
    """Whether the service checks the stack's API key (the key goes to no other service)."""
    return any(use.purpose == "api-key" for use in spec.secrets)


def probe(spec: ServiceSpec, timeout: float = PROBE_TIMEOUT_S, key: str | None = None) -> Probe | None:
    """GET the health path once, authenticated with `key` where the service checks it (a path
    like /slots needs it; /health does not); None when the service has no health path or
    published port."""
    target = probe_url(spec)
    if spec.health.path is None or target is None:
        return None
    try:
        status = http_status(target[0], target[1], spec.health.path, timeout, key if uses_key(spec) else None)
    except ConnectionRefusedError:
        return Probe(False, error=NOT_LISTENING[0])
    except ConnectionResetError:
        return Probe(False, error=NOT_LISTENING[1])
    except TimeoutError:
        return Probe(False, error="timed out")
    except OSError as exc:
        return Probe(False, error=str(exc) or type(exc).__name__)
    return Probe(spec.health.accepts(status), status=status)


@dataclass
class Readiness:
    service: str
    ready: bool
    seconds: float
    detail: str
    exit_code: int | None = None
    logs: list[str] = field(default_factory=list)


class ContainerWatch:
    """One `podman ps` per interval, shared by every waiting service."""

    def __init__(self, engine: Engine, project: str | None = None, interval: float = WATCH_INTERVAL_S) -> None:
        self.engine, self.project, self.interval = engine, project, interval
        self.lock = threading.Lock()
        self.when = 0.0
        self.states: dict[str, ContainerState] = {}

    def get(self, container: str, not_before: float = 0.0) -> ContainerState | None:
        """The container's state from a snapshot at most `interval` old and taken after
        `not_before` (a snapshot older than the container cannot know it)."""
        with self.lock:
            if self.when < not_before or time.monotonic() - self.when >= self.interval:
                # A snapshot is as old as the moment `podman ps` began, not when it returned: a
                # container created while it ran may be missing from it.
                began = time.monotonic()
                self.states = {c.name: c for c in self.engine.containers(self.project)}
                self.when = began
            return self.states.get(container)


Progress = Callable[[str, float, str], None]


def _crashed(engine: Engine, spec: ServiceSpec, state: ContainerState | None, elapsed: float) -> Readiness:
    if state is None:
        return Readiness(spec.name, False, elapsed, "container disappeared")
    code, restarts = engine.last_exit(state.id)
    detail = f"container exited with exit code {code}" if code is not None else f"container {state.state}"
    if code == 137 and spec.memory:  # SIGKILL: what the kernel sends a cgroup over its limit
        detail += f" (killed; its memory limit is {spec.memory}: services.{spec.name}.resources.memory)"
    if restarts:
        detail += f" and was restarted {restarts} time{'s' if restarts > 1 else ''} by its restart policy"
    return Readiness(spec.name, False, elapsed, detail, code, engine.logs_tail(spec.container, 20))


def wait_one(
    engine: Engine,
    watch: ContainerWatch,
    spec: ServiceSpec,
    progress: Progress,
    cancel: threading.Event,
    key: str | None = None,
) -> Readiness:
    """Probe first (a healthy answer needs no podman call); between failed probes, the shared
    watch says whether the container exited or restarted since the wait began. An answer that
    refuses the key (401, 403), or says the path is not served (400, 404, 405, 501), fails at once:
    waiting changes neither."""
    start = time.monotonic()
    deadline = start + spec.health.timeout_s
    baseline: ContainerState | None = None
    startup = startup_models(spec)
    while not cancel.is_set():
        result = probe(spec, key=key)
        elapsed = time.monotonic() - start
        last = result.describe() if result is not None else ""
        if result is not None and result.ok:
            if not startup:
                return Readiness(spec.name, True, elapsed, f"healthy ({result.describe()})")
            states = router_states(spec, key)
            failed = [name for name in startup if name in states and states[name].failed]
            optional = {p.name for p in spec.presets if not p.required}
            if needed := [name for name in failed if name not in optional]:
                code = states[needed[0]].exit_code
                return Readiness(
                    spec.name,
                    False,
                    elapsed,
                    f"its startup model {needed[0]} failed to load (exit {code}); the log lines below say why",
                    code,
                    engine.logs_tail(spec.container, 20),
                )
            loading = [name for name in startup if name not in failed and not _loaded(states.get(name))]
            if not loading:
                said = ", ".join(name for name in startup if name not in failed)
                detail = f"healthy, startup model{'s' if len(startup) - len(failed) > 1 else ''} {said} loaded"
                if failed:
                    codes = ", ".join(f"{n} (exit {states[n].exit_code})" for n in failed)
                    detail = (
                        "healthy, " if not said else detail + "; "
                    ) + f"warning: not required, failed to load: {codes} (`airpods logs {spec.name}` says why)"
                return Readiness(spec.name, True, elapsed, detail)
            # each startup model's own state, as the router says it (its /models/sse sends the same
            # state changes, and in b11434 no finer stage of a load from disk: polling says as much)
            last = "startup models: " + ", ".join(
                f"{name} {'failed' if name in failed else states[name].value if name in states else 'not listed yet'}"
                for name in startup
            )
        if result is not None and (refused := never_ready(spec, result, key)):
            return Readiness(spec.name, False, elapsed, refused)
        state = watch.get(spec.container, not_before=start)
        baseline = baseline or state
        if state is None or not state.running or (baseline and state.started_at != baseline.started_at):
            return _crashed(engine, spec, state, elapsed)
        if result is None:
            return Readiness(spec.name, True, elapsed, "running (no health check)")
        if time.monotonic() >= deadline:
            return Readiness(
                spec.name,
                False,
                elapsed,
                f"not ready after {spec.health.timeout_s:g} s (last answer: {last})",
                None,
                engine.logs_tail(spec.container, 20),
            )
        progress(spec.name, elapsed, last)
        cancel.wait(PROBE_INTERVAL_S)
    return Readiness(spec.name, False, time.monotonic() - start, "interrupted")


def startup_models(spec: ServiceSpec) -> list[str]:
    """The models a router loads when it starts (presets with load_on_startup = true): its
    readiness waits for each to be loaded."""
    return [p.name for p in spec.presets if p.load_on_startup and p.name != "*"]


def never_ready(spec: ServiceSpec, result: Probe, key: str | None) -> str | None:
    """Why an answer means the service will never be ready, however long the wait: it refuses
    the key (401, 403), or does not serve the path (400, 404, 405, 501); None for any other."""
    if result.status in AUTH_REFUSED:
        return f"authentication failed on {spec.health.path} ({result.describe()}): the server does not " + (
            "accept the stack's API key" if uses_key(spec) and key else "answer without a key"
        )
    if result.status in NEVER_READY:
        return (
            f"GET {spec.health.path} answers {result.describe()}: the server does not serve that path, so it "
            f"would never be ready; fix services.{spec.name}.health.path"
        )
    return None


def _loaded(state: ModelState | None) -> bool:
    return state is not None and state.value == "loaded"


def router_states(spec: ServiceSpec, key: str | None, timeout: float = PROBE_TIMEOUT_S) -> dict[str, ModelState]:
    """A router's models and their state, by name, as its GET /models says (models/router.py);
    {} when it does not answer (the caller goes on waiting)."""
    from airpods.models.router import Router, RouterError

    try:
        return Router(spec, key, timeout).models()
    except RouterError:
        return {}


def probe_all(specs: Sequence[ServiceSpec], key: str | None = None) -> dict[str, Probe | None]:
    """One concurrent probe per service (status)."""
    if not specs:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(specs))) as pool:
        found = pool.map(lambda spec: probe(spec, key=key), specs)
        return dict(zip((s.name for s in specs), found, strict=True))
