"""`airpods top`: what the stack is doing now. Per service its state, CPU and memory (one
`podman stats` / `docker stats` call per refresh, for every running container); per llama.cpp
instance — per loaded model of a router — the requests processing and waiting, generation and
prompt tokens/s and KV cache use, from llama-server's Prometheus /metrics (airpods passes
--metrics) and /slots (live per-slot progress), both behind the stack's API key.

Rates are differences between two samples: llama-server's counters (tokens_predicted_total,
prompt_tokens_total) move when a request ends, so the tokens a running request has decoded so
far (/slots: next_token.n_decoded, n_prompt_tokens_processed) are added to them, and a long
stream shows its speed while it runs."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

from airpods.engine.base import Engine, Usage
from airpods.errors import AirpodsError
from airpods.models.fit import meminfo
from airpods.stack.model import ServiceSpec, Stack

TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ServerSample:
    """One llama-server (or one model of a router) at one moment."""

    service: str
    model: str | None  # a router's model; None for a single-model instance
    at: float  # time.monotonic()
    processing: int
    deferred: int
    decoded: float  # generation tokens so far: finished requests' and running ones'
    prompted: float  # prompt tokens so far, the same way
    kv_used: int  # cells the busy slots hold
    kv_cells: int  # cells of the (unified) cache one slot may use
    generation_s: float  # seconds llama-server spent generating, finished requests
    finished: float  # tokens of finished requests
    slots: int = 0  # parallel slots (a loaded model's)
    state: str = "loaded"  # a router's model: loaded | loading | sleeping | unloaded | downloading | failed


@dataclass(frozen=True)
class ServerRow:
    service: str
    model: str | None
    state: str  # loaded (a single-model instance too), or a router's model's other states
    slots: int
    processing: int
    deferred: int
    generation_tps: float  # throughput since the previous sample, running requests included
    prompt_tps: float
    request_tps: float | None  # one request's speed: requests finished since the previous sample
    kv_used: int
    kv_cells: int
    where: str = ""  # where its model runs, as its log says: CUDA0, CUDA0,CUDA1, CPU ("" not said)


@dataclass(frozen=True)
class ServiceRow:
    name: str
    state: str
    cpu_percent: float | None  # of one CPU, since the previous refresh where the engine allows
    memory: int | None
    memory_limit: int | None  # None: no limit (the engine reports the host's memory)


@dataclass(frozen=True)
class View:
    services: list[ServiceRow]
    servers: list[ServerRow]
    problems: list[str]  # instances whose /metrics did not answer, and why

    def to_json(self) -> dict[str, object]:
        return {
            "services": [asdict(s) for s in self.services],
            "llamacpp": [asdict(s) for s in self.servers],
            "problems": self.problems,
        }


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition → {sample name: value} (prometheus_client's own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


def _get(url: str, key: str | None) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as answer:
        return answer.read().decode()


def sample_server(service: str, url: str, key: str | None, model: str | None = None) -> ServerSample:
    """One sample of the server at `url` (of `model`, on a router). Raises OSError (URLError,
    HTTPError, a timeout) or ValueError for an answer that is not what llama-server sends."""
    query = f"?model={urllib.parse.quote(model)}" if model else ""
    metrics = parse_metrics(_get(f"{url}/metrics{query}", key))
    slots = json.loads(_get(f"{url}/slots{query}", key))
    busy = [s for s in slots if isinstance(s, dict) and s.get("is_processing")]
    decoded = [int((s.get("next_token") or [{}])[0].get("n_decoded", 0)) for s in busy]
    prompting = sum(int(s.get("n_prompt_tokens_processed", 0)) for s in busy)
    return ServerSample(
        service=service,
        model=model,
        at=time.monotonic(),
        processing=int(metrics.get("llamacpp:requests_processing", 0)),
        deferred=int(metrics.get("llamacpp:requests_deferred", 0)),
        decoded=metrics.get("llamacpp:tokens_predicted_total", 0.0) + sum(decoded),
        prompted=metrics.get("llamacpp:prompt_tokens_total", 0.0) + prompting,
        kv_used=sum(int(s.get("n_prompt_tokens", 0)) for s in busy) + sum(decoded),
        # One unified cache (llama-server's default): each slot may use all of it, so the
        # cells are one slot's n_ctx, not their sum.
        kv_cells=max((int(s.get("n_ctx", 0)) for s in slots if isinstance(s, dict)), default=0),
        generation_s=metrics.get("llamacpp:tokens_predicted_seconds_total", 0.0),
        finished=metrics.get("llamacpp:tokens_predicted_total", 0.0),
        slots=sum(1 for s in slots if isinstance(s, dict)),
    )


def sample_servers(specs: Sequence[ServiceSpec], key: str | None) -> tuple[list[ServerSample], list[str]]:
    """Every running llama.cpp instance (every loaded model of a router: its /metrics and /slots
    answer per model): samples, and a line for each one that did not answer."""
    from airpods.models.manage import configured_model

    samples, problems = [], []
    for spec in specs:
        if not spec.url:
            problems.append(f"{spec.name}: not published on this host (no port), not sampled")
            continue
        try:
            states: dict[str | None, str] = {None: "loaded"}
            if not configured_model(spec):
                from airpods.models.router import Router

                found = Router(spec, key, TIMEOUT_S).models()  # RouterError is an OSError
                states = {name: "failed" if s.failed else s.value for name, s in found.items()}
            for model, state in states.items():
                if state == "loaded":
                    samples.append(sample_server(spec.name, spec.url, key, model))
                else:  # its state alone: asking its /metrics would load it
                    samples.append(ServerSample(spec.name, model, time.monotonic(), 0, 0, 0, 0, 0, 0, 0, 0, 0, state))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{spec.name}: /metrics did not answer: {exc}")
    return samples, problems


def rates(before: Mapping[tuple[str, str | None], ServerSample], now: Sequence[ServerSample]) -> list[ServerRow]:
    """Rows from the newest samples, with tokens/s since the matching earlier sample (0 for a
    model that was not there before)."""
    rows = []
    for sample in now:
        earlier = before.get((sample.service, sample.model))
        span = sample.at - earlier.at if earlier else 0.0
        rows.append(
            ServerRow(
                service=sample.service,
                model=sample.model,
                state=sample.state,
                slots=sample.slots,
                processing=sample.processing,
                deferred=sample.deferred,
                generation_tps=max(sample.decoded - earlier.decoded, 0) / span if earlier and span > 0 else 0.0,
                prompt_tps=max(sample.prompted - earlier.prompted, 0) / span if earlier and span > 0 else 0.0,
                request_tps=(
                    (sample.finished - earlier.finished) / (sample.generation_s - earlier.generation_s)
                    if earlier and sample.generation_s > earlier.generation_s
                    else None
                ),
                kv_used=sample.kv_used,
                kv_cells=sample.kv_cells,
            )
        )
    return rows


class Top:
    """Refreshes of one stack: each `refresh()` is one stats call and one /metrics and /slots
    per llama.cpp instance (and loaded router model)."""

    def __init__(self, stack: Stack, engine: Engine, key: str | None) -> None:
        self.stack, self.engine, self.key = stack, engine, key
        self.previous: dict[tuple[str, str | None], ServerSample] = {}
        self.cpu: dict[str, tuple[float, int]] = {}  # container → (when, CPU ns) of the previous refresh
        self.host_memory = meminfo("MemTotal")
        self.placed: dict[str, tuple[int, dict[str | None, str]]] = {}  # service → (started at, model → where)

    def refresh(self) -> View:
        states = {c.service: c for c in self.engine.containers(self.stack.project) if c.service}
        running = [s for s in self.stack.services if s.name in states and states[s.name].running]
        problems: list[str] = []
        try:
            usage = {u.name: u for u in self.engine.stats([s.container for s in running])}
        except AirpodsError as exc:
            usage = {}
            problems.append(f"CPU and memory: {exc.message}")
        now = time.monotonic()
        services = []
        for spec in self.stack.services:
            state = states.get(spec.name)
            used = usage.get(spec.container)
            services.append(
                ServiceRow(
                    name=spec.name,
                    state=state.state if state else "absent",
                    cpu_percent=None if used is None else round(self._cpu(used, now), 1),
                    memory=used.memory if used else None,
                    memory_limit=used.memory_limit
                    if used and not (self.host_memory and used.memory_limit >= self.host_memory)
                    else None,
                )
            )
        llamas = [s for s in running if s.kind == "llamacpp"]
        samples, unanswered = sample_servers(llamas, self.key)
        rows = [replace(r, where=self._where(r, states[r.service].started_at)) for r in rates(self.previous, samples)]
        view = View(services, rows, problems + unanswered)
        self.previous = {(s.service, s.model): s for s in samples}
        return view

    def _where(self, row: ServerRow, started_at: int) -> str:
        """Where `row`'s model runs, from its service's log: read again only when the container
        restarted or a model it has not placed yet shows up (a router loads them later)."""
        from airpods.usecases.placement import observe_placements

        known = self.placed.get(row.service)
        if known is None or known[0] != started_at or (row.model not in known[1] and row.state == "loaded"):
            said = observe_placements(self.engine, [self.stack.service(row.service)])
            found: dict[str | None, str] = {v.placement.model: v.placement.where for v in said}
            if len(said) == 1 and row.model is None:
                found[None] = said[0].placement.where  # a single-model server: its one model
            self.placed[row.service] = known = (started_at, found)
        return known[1].get(row.model, "")

    def _cpu(self, used: Usage, now: float) -> float:
        """CPU % since the previous refresh from the CPU time the engine counts (Podman's own
        figure averages over the container's whole life); the engine's figure otherwise
        (Docker's is already over its own short sample)."""
        if used.cpu_ns is None:
            return used.cpu_percent
        before = self.cpu.get(used.name)
        self.cpu[used.name] = (now, used.cpu_ns)
        if before is None or now <= before[0]:
            return used.cpu_percent
        return max(used.cpu_ns - before[1], 0) / 1e9 / (now - before[0]) * 100
