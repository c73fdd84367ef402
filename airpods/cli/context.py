"""Options given before the command (`airpods --config F start`), passed through typer's ctx.obj."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Options:
    config: Path | None = None
    debug: bool = False
    engine: str | None = None  # --engine: podman | docker | auto


def options_of(ctx: object) -> Options:
    obj = getattr(ctx, "obj", None)
    return obj if isinstance(obj, Options) else Options()


def load(options: Options, path: Path | None = None):  # -> LoadedConfig (lazy import keeps --help fast)
    from airpods.config.loader import load_config

    return load_config(path or options.config)


def stack(options: Options, names: list[str] | None, *, every_service: bool = False, ensure_key: bool = False):
    """-> Stack (lazy import keeps --help fast); `ensure_key`: see stack.resolve.resolve_stack."""
    from airpods.stack.resolve import resolve_stack

    return resolve_stack(
        options.config, names or (), every_service=every_service, ensure_key=ensure_key, gpu=host_gpu(options)
    )


def stack_source(
    options: Options,
    names: list[str] | None,
    *,
    ensure_key: bool = False,
    engine=None,
    check_flags: bool = True,
    preview: bool = False,
):  # -> usecases.common.StackFor
    """The stack of the named services (or the default selection), as a function of the
    services found running (usecases.common.stack_in_use decides which). Resolved once right away, so
    a config or usage error is reported before any pod is touched; with `engine`, against the
    flag tables of the llama-server images present (server_flags.resolve_checked). Resolved
    again whenever a flag table is learned (start reads the tables of images it pulls).
    `check_flags` and `preview`: see resolve_stack."""
    from airpods.server_flags import resolve_checked, store_stamp
    from airpods.stack.resolve import configured_server_images, resolve_stack

    resolved: dict[tuple[object, ...], object] = {}
    gpu = host_gpu(options)

    def stack_for(present):
        key = (*present, store_stamp())
        if key not in resolved:
            resolved[key] = resolve_stack(
                options.config,
                names or (),
                present=present,
                ensure_key=ensure_key,
                check_flags=check_flags,
                gpu=gpu,
                preview=preview,
            )
        return resolved[key]

    resolve_checked(lambda: stack_for(()), lambda: configured_server_images(options.config, gpu), engine)
    return stack_for


@cache  # one read of the config file per command
def engine_name(options: Options) -> str:
    """ "podman" or "docker": --engine, else the config's [runtime] engine (see engine.choose)."""
    from airpods.engine.choose import configured_engine
    from airpods.engine.choose import engine_name as name_of

    return name_of(options.engine or configured_engine(options.config))


def host_gpu(options: Options):  # -> HostGpu
    """This host's GPU as the chosen engine hands it over (gpu.detect_host_gpu)."""
    from airpods.gpu import detect_host_gpu

    return detect_host_gpu(engine_name(options))


def engine(options: Options):  # -> Engine (lazy import keeps --help fast)
    """The chosen engine; EngineMissing (exit 1, with the install hint, and what chose it) when
    it is not installed."""
    from airpods.engine.choose import configured_engine, make_engine, no_engine
    from airpods.engine.errors import EngineMissing

    try:
        return make_engine(engine_name(options))
    except EngineMissing as exc:
        if options.engine:
            exc.message += f" (chosen by --engine {options.engine})"
        elif (chosen := configured_engine(options.config)) != "auto":
            exc.message += f' (chosen by [runtime] engine = "{chosen}" in the config file)'
        elif found := no_engine():
            raise EngineMissing(*found) from None
        raise


def engine_if_present(options: Options):  # -> Engine | None
    """The chosen engine when it is installed (for the commands that also work without it)."""
    from airpods.engine.errors import EngineMissing

    try:
        return engine(options)
    except EngineMissing:
        return None


def step_renderer(options: Options):  # -> Callable[[Step], tuple[str, ...]]
    """How the chosen engine's commands are shown (dry runs), whether or not it is installed."""
    if engine_name(options) == "docker":
        from functools import partial

        from airpods.engine.docker_argv import secrets_folder, step_argv

        return partial(step_argv, secrets=secrets_folder())
    from airpods.engine.podman_argv import step_argv as podman_step_argv

    return podman_step_argv
