"""The fit check: a stored model's memory estimate (models/fit.py) for the instance that serves
it, against its container's limit and the host's free memory — `models fit`, the FITS column
of `models list`, and the check `start` makes before a model loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from airpods.engine.base import Engine
from airpods.errors import RuntimeFailure
from airpods.models.fit import Estimate, Settings, estimate, largest_context, mem_available, memory_bytes, read_shape
from airpods.models.store import StoredModel
from airpods.stack.model import ServiceSpec, Stack


def _size(value: int) -> str:
    """Decimal units, as every size airpods prints (cli/progress.py human_size)."""
    return f"{value / 1e9:.2f} GB" if value >= 1e9 else f"{value / 1e6:.1f} MB"


@dataclass(frozen=True)
class FitReport:
    """One model on one instance: the estimate, what there is, and the verdict."""

    model: str
    service: str
    settings: Settings
    estimate: Estimate
    limit: int | None  # the service's resources.memory, bytes
    available: int | None  # the host's MemAvailable now, bytes
    largest_ctx: int  # the largest --ctx-size whose host memory fits the tighter of the two

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
        need = f"{self.model} needs about {_size(self.estimate.host)} at --ctx-size {self.estimate.ctx}"
        if self.limit is not None and self.estimate.host > self.limit:
            return f"{need}, more than {self.service}'s resources.memory ({_size(self.limit)})"
        if self.available is not None and self.estimate.host > self.available:
            return f"{need}, more than this host has free ({_size(self.available)})"
        return None

    @property
    def hint(self) -> str:
        where = f"services.{self.service}"
        fits = f"at most {self.largest_ctx} fits" if self.largest_ctx else "not even 256 cells fit"
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
            "largest_ctx": self.largest_ctx,
            "fits": self.fits,
            "problem": self.problem,
        }


def instance_settings(spec: ServiceSpec, model: str | None = None, ctx: int | None = None) -> Settings:
    """The estimate's settings for `model` on `spec`: its command line, a router's shared
    preset section and the model's own over it, `ctx` over all."""
    from airpods.models.fit import settings_from_args

    args = list(spec.args)
    for preset in sorted(spec.presets, key=lambda p: p.name != "*"):  # the shared section, then the model's
        if preset.name in ("*", model):
            for spelling, value in preset.flags:
                if value is not None:
                    args += [f"--{spelling.lstrip('-')}", value]
    settings = settings_from_args(args, gpu=spec.gpu_request is not None)
    return settings if ctx is None else replace(settings, ctx=ctx)


def fit_report(spec: ServiceSpec, stored: StoredModel, ctx: int | None = None, extra: int = 0) -> FitReport:
    """The fit of `stored` on `spec` (with `extra` bytes already taken by other models the same
    instance loads at once). Raises NotGguf for a model whose header cannot be read."""
    settings = instance_settings(spec, stored.name, ctx)
    shape = read_shape(stored.weights)
    found = estimate(shape, settings)
    if extra:
        found = replace(found, weights_host=found.weights_host + extra)
    limit = memory_bytes(spec.memory) if spec.memory else None
    available = mem_available()
    known = [v for v in (limit, available) if v is not None]
    largest = largest_context(shape, settings, min(known) - extra) if known else 0
    return FitReport(stored.name, spec.name, settings, found, limit, available, largest)


def check_start(loads: list[tuple[ServiceSpec, list[StoredModel]]], say: Callable[[str], None]) -> list[FitReport]:
    """Before `start` creates anything: each instance's models that load at once (a
    single-model instance's model, a router's load_on_startup ones), summed per instance.
    Warns through `say`; raises RuntimeFailure for an instance with fit = "strict". Returns the
    reports that do not fit."""
    from airpods.models.gguf_meta import NotGguf

    failed = []
    for spec, models in loads:
        if spec.fit == "off" or not models:
            continue
        taken = 0
        for stored in models:
            try:
                report = fit_report(spec, stored, extra=taken)
            except NotGguf:
                continue  # said by `models list`; llama-server refuses it with its own words
            taken = report.estimate.host
            if report.problem:
                failed.append(report)
                if spec.fit == "strict":
                    raise RuntimeFailure(
                        f'{report.problem}; nothing was started (services.{spec.name}.fit = "strict")',
                        hint=report.hint,
                    )
                say(f"warning: {report.problem}: it may fail to load or be killed; {report.hint}")
    return failed


def start_loads(stack: Stack, engine: Engine) -> list[tuple[ServiceSpec, list[StoredModel]]]:
    """What each llama.cpp instance of `stack` loads as it starts: a single-model instance's
    model, a router's load_on_startup models (those in the volume; one still to be fetched is
    checked by the next start). Nothing is created: a model volume that does not exist yet, or
    one this host cannot read, gives nothing to check."""
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
    loads = []
    for spec in instances:
        single = configured_model(spec)
        names = [single] if single else [p.name for p in spec.presets if p.load_on_startup]
        loads.append((spec, [stored[n] for n in names if n in stored]))
    return loads
