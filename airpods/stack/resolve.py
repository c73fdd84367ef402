"""Config file → Stack for this host, through the stack cache (see stack/cache.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from airpods.gpu import HostGpu
from airpods.stack.model import Stack


def resolve_stack(
    config_option: Path | None,
    names: Sequence[str],
    *,
    every_service: bool = False,
    gpu: HostGpu | None = None,
    present: Sequence[str] = (),
    ensure_key: bool = False,
) -> Stack:
    """The services named (or every enabled one plus the `present` ones, whose pods exist; or
    all configured with `every_service`), for this host's GPU unless `gpu` says otherwise (an
    export for another machine).

    Resolving has no side effects: the stack's API key is read if it exists. Only with
    `ensure_key` (the commands that hand the key to something: start, restart, env, export,
    chat) is it created, and only when the config asks for one (`runtime.api_key`)."""
    from airpods.config.files import locate_config
    from airpods.gpu import detect_host_gpu
    from airpods.secrets import api_key, existing_api_key, key_id
    from airpods.stack.cache import cache_key, cached_stack
    from airpods.state import state_dir

    path = locate_config(config_option)
    gpu = gpu or detect_host_gpu()
    secret = existing_api_key()
    if secret is None and ensure_key:
        from airpods.config.loader import load_config

        if load_config(path).config.runtime.api_key:
            secret = api_key()
    key = key_id(secret) if secret else None

    def build() -> Stack:
        from airpods.config.loader import load_config
        from airpods.stack.build import build_stack

        config = load_config(path).config
        return build_stack(config, gpu, list(config.services) if every_service else names, key, present)

    cache = cache_key(path, gpu, ["*"] if every_service else names, key or "", present)
    return cached_stack(state_dir() / "stack-cache.json", cache, build)
