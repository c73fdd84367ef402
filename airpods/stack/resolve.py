"""Config file → Stack for this host, through the stack cache (see stack/cache.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.gpu import HostGpu
from airpods.stack.model import UNSET, Stack

if TYPE_CHECKING:
    from airpods.config.schema import Config


# The key id a dry run shows for the generated key `start` would make (its id is not known before).
PREVIEW_KEY_ID = "new-key"


def resolve_stack(
    config_option: Path | None,
    names: Sequence[str],
    *,
    every_service: bool = False,
    gpu: HostGpu | None = None,
    present: Sequence[str] = (),
    ensure_key: bool = False,
    check_flags: bool = True,
    preview: bool = False,
) -> Stack:
    """The services named (or every enabled one plus the `present` ones, whose pods exist; or
    all configured with `every_service`), for this host's GPU unless `gpu` says otherwise (an
    export for another machine). llama-server command_args are checked against the flag table
    of each image as this machine last read it (server_flags.py), else the built-in table.

    Resolving has no side effects: the stack's API key is read if it exists. Only with
    `ensure_key` (the commands that hand the key to something: start, restart, env, export,
    chat) is a generated key created, and a user key (`runtime.api_key = "env:…"`) that cannot
    be read an error. Without `check_flags` (commands that only pull images) command_args are
    not checked. `preview` (`start --dry-run`): the stack `start` would derive, with the same
    errors, and nothing written — not a key (one still to be made is named PREVIEW_KEY_ID),
    not the stack cache, not the state folder. Raises ConfigError (exit 2) for the config and
    its command_args."""
    from airpods.config.files import locate_config
    from airpods.errors import ConfigError
    from airpods.gpu import detect_host_gpu
    from airpods.secrets import key_id, read_key, read_secret
    from airpods.server_flags import store_stamp
    from airpods.stack.cache import cache_key, cached_stack
    from airpods.state import state_dir, state_path

    path = locate_config(config_option)
    gpu = gpu or detect_host_gpu()

    def key_of(source: str) -> str:
        if preview and source == "generated":
            secret = read_key(source, create=False)
            return key_id(secret, create=False) if secret else PREVIEW_KEY_ID
        secret = read_key(source, create=ensure_key or preview)  # a user key: read (errors), never written
        return key_id(secret, create=ensure_key) if secret else ""

    def secret_id(source: str) -> str:
        """Names the value a user secret's source gives now (UNSET: none, start says why)."""
        value = read_secret(source, key="", create=False)
        return key_id(value, create=ensure_key) if value else UNSET

    def build() -> Stack:
        from airpods.config.loader import load_config
        from airpods.secrets import key_source
        from airpods.server_flags import known_tables
        from airpods.stack.build import build_stack
        from airpods.stack.wiring import gateway_sources

        loaded = load_config(path)
        config = loaded.config
        try:
            kid = key_of(key_source(config.runtime.api_key)) or None
            stack = build_stack(
                config,
                gpu,
                list(config.services) if every_service else names,
                kid,
                present,
                known_tables(),
                check_flags,
                loaded.user_wrote,
                {s: secret_id(s) for service in config.services.values() for s in service.secrets.values()}
                | {s: secret_id(s) for s in gateway_sources(config)},
            )
            if ensure_key or preview:  # the commands that hand secrets over: one with no value is an error now
                mine = user_keys(config)
                for secret in stack.secrets:
                    if secret.config_key in mine and not (preview and secret.source.startswith("generated:")):
                        read_secret(secret.source, key=secret.config_key, create=True)
            return stack
        except ConfigError as exc:
            raise exc.located(loaded.source_of(exc.key)) from None

    def still_holds(stack: Stack) -> bool:
        """A cached stack was derived for one key (and user secret values): it holds while their
        sources give them."""
        try:
            return key_of(stack.key_source) == stack.key_id and all(
                secret_id(source) == sid and not ((ensure_key or preview) and sid == UNSET)
                for source, sid in stack.secret_ids
            )
        except ConfigError:
            return False  # rebuilt, so the error is reported with its file

    tables = store_stamp() if check_flags else "unchecked"
    cache = cache_key(path, gpu, ["*"] if every_service else names, tables, present)
    folder = state_path() if preview else state_dir()
    stack = cached_stack(folder / "stack-cache.json", cache, build, still_holds, save=not preview)
    if ensure_key and not preview and any(spec.kind == "gateway" for spec in stack.services):
        from airpods.gateway.prepare import prepare

        try:
            changed, notes = prepare(stack)
        except ConfigError as error:  # the user's own certificate (services.NAME.tls)
            raise error.located(str(path)) if path else error from None
        if changed:  # a new certificate or hash: its secret is a new one
            stack = cached_stack(folder / "stack-cache.json", cache, build, still_holds)
        if notes:
            from dataclasses import replace

            stack = replace(stack, warnings=(*stack.warnings, *notes))
    return stack


def user_keys(config: Config) -> set[str]:
    """The key paths of the user's [services.X.secrets] entries."""
    return {f"services.{name}.secrets.{var}" for name, svc in config.services.items() for var in svc.secrets}


def configured_server_images(
    config_option: Path | None, gpu: HostGpu | None = None
) -> dict[str, tuple[str, ...] | None]:
    """The llama-server images of every configured service (see stack.build.server_images),
    from the config alone: what to learn flag tables from when the stack cannot be resolved
    yet. Raises ConfigError for a config that does not load."""
    from airpods.config.files import locate_config
    from airpods.config.loader import load_config
    from airpods.gpu import detect_host_gpu
    from airpods.stack.build import server_images

    return server_images(load_config(locate_config(config_option)).config, gpu or detect_host_gpu())
