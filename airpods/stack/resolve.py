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
) -> Stack:
    """The services named (or every enabled one plus the `present` ones, whose pods exist; or
    all configured with `every_service`), for this host's GPU unless `gpu` says otherwise (an
    export for another machine)."""
    from airpods.config.files import locate_config
    from airpods.gpu import detect_host_gpu
    from airpods.secrets import api_key, key_id
    from airpods.stack.cache import cache_key, cached_stack
    from airpods.state import state_dir

    path = locate_config(config_option)
    gpu = gpu or detect_host_gpu()
    key = key_id(api_key())

    def build() -> Stack:
        from airpods.config.loader import load_config
        from airpods.stack.build import build_stack

        config = load_config(path).config
        return build_stack(config, gpu, list(config.services) if every_service else names, key, present)

    cache = cache_key(path, gpu, ["*"] if every_service else names, key, present)
    return cached_stack(state_dir() / "stack-cache.json", cache, build)
