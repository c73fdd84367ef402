"""The model side of a llama.cpp router's presets (stack/presets.py renders them): which models
in the volume airpods recognises (an embedding model gets `embeddings` and its pooling, from
its GGUF metadata, so the default router answers /v1/embeddings with nothing configured), the
preset files written for the routers, and the declared models (`source = …`) fetched into the
volume when it lacks them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.engine.base import Engine
from airpods.errors import AirpodsError, RuntimeFailure, UsageError
from airpods.files import write_atomic
from airpods.models.gguf_meta import NotGguf, is_embedding, recognise
from airpods.models.manage import import_model, llama_instances, model_mount, model_store
from airpods.models.sources import UrlRef, parse_source
from airpods.models.store import ModelStore
from airpods.stack.args import FlagArg
from airpods.stack.model import PRESET_FILE, PRESETS_DIR, Preset, ServiceSpec, Stack
from airpods.stack.presets import preset_ini

if TYPE_CHECKING:
    from airpods.models.download import Progress


def detected_flags(store: ModelStore) -> dict[str, list[FlagArg]]:
    """Model name → the flags airpods gives it from its own metadata: an embedding model (an
    encoder architecture, or a declared pooling type) gets --embeddings and its pooling (mean
    when it declares none). Chat models, unreadable files and incomplete sets get nothing."""
    flags: dict[str, list[FlagArg]] = {}
    for model in store.models():
        if model.problem:
            continue
        try:
            architecture, pooling = recognise(model.weights[0])
        except NotGguf:
            continue
        if is_embedding(architecture, pooling):
            flags[model.name] = [
                ("--embeddings", None),
                ("--pooling", pooling if pooling not in (None, "none") else "mean"),
            ]
    return flags


def routers(stack: Stack) -> list[ServiceSpec]:
    """The llama.cpp services that read a preset file airpods writes."""
    from airpods.plan import routers as preset_readers

    return preset_readers(llama_instances(stack))


def existing_store(stack: Stack, engine: Engine) -> ModelStore | None:
    """The stack's model store if it has one and it exists (nothing is created)."""
    try:
        mount = model_mount(stack)
    except UsageError:
        return None
    if mount.named and not engine.volume_exists(mount.source):
        return None
    if not mount.named and not Path(mount.source).is_dir():
        return None
    return model_store(stack, engine)


def write_presets(
    stack: Stack, engine: Engine, running: Mapping[str, str | None] | None = None
) -> dict[str, tuple[str, str]]:
    """Write each router's preset file (declared presets, and the sections detected from the
    volume's models) into its folder. Returns, for each router whose file changed, (the text it
    had, "" for none; the text written): a running one rereads it (models/router.py:
    apply_presets). `running` (container → its config hash): a router running with another
    config (started with another file) is left alone, its presets kept. Raises RuntimeFailure
    when a file cannot be written."""
    specs = [s for s in routers(stack) if running is None or running.get(s.container, s.config_hash) == s.config_hash]
    if not specs:
        return {}
    store = existing_store(stack, engine)
    try:
        detected = detected_flags(store) if store else {}
    except RuntimeFailure:  # a store this host cannot read (rootless tmpfs): declared presets only
        detected = {}
    changed = {}
    for spec in specs:
        folder = Path(next(m.source for m in spec.mounts if m.target == PRESETS_DIR))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / PRESET_FILE
        text = preset_ini(spec.presets, detected)
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        if old == text:
            continue
        write_atomic(path, text.encode(), mode=0o644)
        changed[spec.name] = (old, text)
    return changed


def declared_models(stack: Stack) -> list[tuple[str, Preset]]:
    """(router, preset) of every declared model with a source, each name once."""
    from airpods.plan import declared_models as declared

    return declared(llama_instances(stack))


def fetch_declared(stack: Stack, engine: Engine, progress: Progress, announce: Callable[[str], None]) -> list[str]:
    """Fetch every declared model the volume lacks (see `fetch_model`). Returns the names
    fetched."""
    wanted = declared_models(stack)
    if not wanted:
        return []
    store = model_store(stack, engine)  # creates the volume if needed
    present = {m.name for m in store.models()}
    missing = [(service, preset) for service, preset in wanted if preset.name not in present and preset.source]
    for service, preset in missing:
        fetch_model(store, service, preset, progress, announce)
    return [preset.name for _, preset in missing]


def fetch_model(
    store: ModelStore, service: str, preset: Preset, progress: Progress, announce: Callable[[str], None]
) -> None:
    """Fetch one declared model into `store` under its declared name: a Hugging Face
    reference, a URL, or a local file, as `models pull` / `models import` would. Errors keep
    their type and say which model and key they come from."""
    assert preset.source is not None
    announce(f"fetching model {preset.name} from {preset.source} (declared in services.{service}.models)")
    try:
        if preset.source.startswith("/"):
            import_model(store, Path(preset.source), preset.name, False, progress)
        elif isinstance(ref := parse_source(preset.source), UrlRef):
            from airpods.models.download import pull_url  # lazy: http.client, for a start that fetches

            pull_url(store, ref, preset.name, progress, announce)
        else:
            from airpods.models.download import pull_hf

            pull_hf(store, ref, preset.name, progress, announce)
    except AirpodsError as exc:
        exc.message = f"model {preset.name} (services.{service}.models.{preset.name}.source): {exc.message}"
        raise
