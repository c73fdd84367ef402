"""Options given before the command (`airpods --config F start`), passed through typer's ctx.obj."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Options:
    config: Path | None = None
    debug: bool = False


def options_of(ctx: object) -> Options:
    obj = getattr(ctx, "obj", None)
    return obj if isinstance(obj, Options) else Options()


def load(options: Options, path: Path | None = None):  # -> LoadedConfig (lazy import keeps --help fast)
    from airpods.config.loader import load_config

    return load_config(path or options.config)


def stack(options: Options, names: list[str] | None, *, every_service: bool = False):  # -> Stack
    from airpods.stack.resolve import resolve_stack

    return resolve_stack(options.config, names or (), every_service=every_service)
