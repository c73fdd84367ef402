"""The fit check: a stored model's memory estimate (models/fit.py) for the instance that serves
it, against its container's limit and the host's free memory — `models fit`, the FITS column
of `models list`, and the check `start` makes before a model loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from airpods.config.syntax import memory_bytes
from airpods.engine.base import Engine
from airpods.errors import RuntimeFailure
from airpods.gpu import HostGpu
from airpods.models.fit import Estimate, Settings, Shape, estimate, largest_context, meminfo, read_shape
from airpods.models.store import StoredModel
from airpods.stack.model import ServiceSpec, Stack

FIT_TARGET = 1024 << 20  # llama-server's --fit-target default: the margin it leaves per device


def size_text(value: int) -> str:
    """Binary units, as memory limits are read ("8m" is 8 MiB) and llama-server logs its buffers."""
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


@dataclass(frozen=True)
class FitReport:
    """One model on one instance: the estimate, what there is, and the verdict."""

    model: str
    service: str
    settings: Settings
    estimate: Estimate
    limit: int | None  # the service's resources.memory, bytes
    available: int | None  # the host's MemAvailable now, bytes
    largest_ctx: int | None  # the largest --ctx-size whose host memory fits the tighter of the two
    n_ctx_train: int | None  # the model's training context (beyond it, llama-server caps each slot)

    @property
    def budget(self) -> int | None:
        known = [v for v in (self.limit, self.available) if v is not None]
        return min(known) if known else None

    @property
    def fits(self) -> bool | None:
        return None if self.budget is None else self.estimate.host <= self.budget

    @property
    def problem(self) -> str | None:
        """Why it does not fit, naming the setting to change; None when it fits."""
        need = f"{self.model} needs about {size_text(self.estimate.host)} at --ctx-size {self.estimate.ctx}"
        if self.limit is not None and self.estimate.host > self.limit:
            return f"{need}, more than {self.service}'s resources.memory ({size_text(self.limit)})"
        if self.available is not None and self.estimate.host > self.available:
            return f"{need}, more than this host has free ({size_text(self.available)})"
        return None

    @property
    def hint(self) -> str:
        where = f"services.{self.service}"
        fits = f"at most {self.largest_ctx} fits" if self.largest_ctx else "not even 256 cells fit"
        if self.largest_ctx and self.n_ctx_train and self.largest_ctx > self.n_ctx_train:
            fits += f"; the model was trained for {self.n_ctx_train}"
        raise_limit = f"raise {where}.resources.memory, or " if self.limit is not None else "free memory, or "
        return f"{raise_limit}lower {where}.command_args.ctx_size ({fits})"

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "service": self.service,
            "ctx": self.estimate.ctx,
            "estimate": self.estimate.to_json(),
            "limit": self.limit,
            "available": self.available,
            "gpu_layers": self.settings.gpu_layers if self.estimate.gpu else 0,
            "largest_ctx": self.largest_ctx,
            "n_ctx_train": self.n_ctx_train,
            "fits": self.fits,
            "problem": self.problem,
        }


def instance_settings(spec: ServiceSpec, model: str | None = None, ctx: int | None = None) -> Settings:
    """The estimate's settings for `model` on `spec`: its command line, a router's shared
    preset section and the model's own over it, `ctx` over all."""
    from airpods.models.fit import settings_from_args

    settings = settings_from_args(list(spec.model_args(model or "*")), gpu=spec.gpu_request is not None)
    return settings if ctx is None else replace(settings, ctx=ctx)


def gpu_memory(gpu: HostGpu, spec: ServiceSpec) -> int | None:
    """Bytes of VRAM the instance's GPU has, where sysfs says (AMD: mem_info_vram_total of the
    card it is handed, the discrete one first); None otherwise (NVIDIA's driver files do not)."""
    if spec.gpu_request is None:
        return None
    handed = set(spec.gpu_request.devices)
    cards = [c for c in gpu.cards if c.vram and (c.render in handed or "/dev/dri" in handed)]
    return cards[0].vram if cards else None


def offload(shape: Shape, settings: Settings, vram: int) -> Settings:
    """What --fit does with --n-gpu-layers unset: the most layers whose GPU share fits in `vram`
    less llama-server's default --fit-target margin (1024 MiB)."""
    room = vram - FIT_TARGET
    layers = shape.n_layer
    while layers > 0 and estimate(shape, replace(settings, gpu_layers=layers)).gpu > room:
        layers -= 1
    return replace(settings, gpu_layers=layers)


def fit_report(
    spec: ServiceSpec, stored: StoredModel, ctx: int | None = None, extra: int = 0, vram: int | None = None
) -> FitReport:
    """The fit of `stored` on `spec` (with `extra` bytes already taken by other models the same
    instance loads at once; `vram`: the GPU's memory where known, which places the layers as
    --fit would). Raises NotGguf for a model whose header cannot be read."""
    settings = instance_settings(spec, stored.name, ctx)
    shape = read_shape(stored.weights)
    if vram is not None and settings.gpu_layers >= shape.n_layer:
        settings = offload(shape, settings, vram)
    found = estimate(shape, settings)
    if extra:
        found = replace(found, weights_host=found.weights_host + extra)
    limit = memory_bytes(spec.memory) if spec.memory else None
    available = meminfo()
    known = [v for v in (limit, available) if v is not None]
    largest = largest_context(shape, settings, min(known) - extra) if known else None
    return FitReport(stored.name, spec.name, settings, found, limit, available, largest, shape.n_ctx_train)


Loads = list[tuple[ServiceSpec, list[StoredModel], list[StoredModel]]]


def check_start(loads: Loads, say: Callable[[str], None], gpu: HostGpu | None = None) -> list[FitReport]:
    """Before `start` creates anything, per instance: the models it loads as it starts (a
    single-model instance's model, a router's load_on_startup ones, summed) and those a router
    loads on request (each on its own). Warns through `say`; raises RuntimeFailure for a model
    loaded at start on an instance with fit = "strict" (a model loaded on request only warns:
    the router serves the others). Returns the reports that do not fit."""
    from airpods.models.gguf_meta import NotGguf

    failed = []
    for spec, at_start, on_request in loads:
        if spec.fit == "off":
            continue
        taken = 0
        for stored, starting in [(m, True) for m in at_start] + [(m, False) for m in on_request]:
            try:
                vram = gpu_memory(gpu, spec) if gpu else None
                report = fit_report(spec, stored, extra=taken if starting else 0, vram=vram)
            except NotGguf:
                continue  # said by `models list`; llama-server refuses it with its own words
            if starting:
                taken = report.estimate.host
            if not report.problem:
                continue
            failed.append(report)
            if starting and spec.fit == "strict":
                raise RuntimeFailure(
                    f'{report.problem}; nothing was started (services.{spec.name}.fit = "strict")',
                    hint=report.hint,
                )
            when = "it may fail to load or be killed" if starting else "requests for it will fail to load it"
            say(f"warning: {report.problem}: {when}; {report.hint}")
    return failed


def start_loads(stack: Stack, engine: Engine) -> Loads:
    """What each llama.cpp instance of `stack` loads: (instance, as it starts, on request) — a
    single-model instance's model; a router's load_on_startup models, and, when it has a memory
    limit, every other model in the volume on request (one still to be fetched is checked by the
    next start). Nothing is
    created: a model volume that does not exist yet, or one this host cannot read, gives nothing
    to check."""
    from airpods.errors import AirpodsError
    from airpods.models.manage import configured_model, llama_instances, model_mount
    from airpods.models.store import ModelStore

    instances = [s for s in llama_instances(stack) if s.fit != "off"]
    try:
        mount = model_mount(stack) if instances else None
        if mount is None or (mount.named and not engine.volume_exists(mount.source)):
            return []
        stored = {m.name: m for m in ModelStore(engine, mount.source, stack.labels, folder=not mount.named).models()}
    except (AirpodsError, OSError):
        return []
    loads: Loads = []
    for spec in instances:
        single = configured_model(spec)
        names = [single] if single else [p.name for p in spec.presets if p.load_on_startup]
        # On request, only against a memory limit (what llama-server's --fit cannot see): the
        # check reads each model's header, which for a volume of big models takes seconds.
        later = [] if single or not spec.memory else [m for n, m in stored.items() if n not in names and not m.problem]
        loads.append((spec, [stored[n] for n in names if n in stored], later))
    return loads
