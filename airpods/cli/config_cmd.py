"""`airpods config …`: show, validate, init, path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airpods.cli.context import engine_if_present, engine_name, host_gpu, load, options_of

app = typer.Typer(help="Show, check and create the configuration file.", no_args_is_help=True)


@app.command()
def show(
    ctx: typer.Context,
    resolved: Annotated[
        bool, typer.Option("--resolved", help="After extends and templates, with each service's rendered command.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of TOML.")] = False,
) -> None:
    """Print the configuration in effect (defaults merged with your file)."""
    from airpods.cli.config_view import show_config
    from airpods.cli.output import print_json

    loaded = load(options_of(ctx))
    data = show_config(loaded, resolved=resolved, engine=engine_name(options_of(ctx)))
    if as_json:
        print_json(data)
        return
    import tomli_w

    rendered = data.pop("rendered", {})
    print(tomli_w.dumps(data).rstrip())
    for name, command in rendered.items():
        print(f"\n# {name} runs: {command['display']}")
        if "preset_file" in command:
            print(f"# {name}'s preset file (plus sections for models found in the volume):")
            print("\n".join("#   " + line for line in command["preset_file"].splitlines()))


@app.command()
def validate(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="File to check (default: the one in effect).")] = None,
) -> None:
    """Check a configuration file; exit 2 with the key path of the first problem. llama-server
    command_args are checked against the flags of the image that will run (read from it when
    it is present), else against airpods' built-in table; the output says which."""
    from dataclasses import replace

    from airpods.errors import ConfigError
    from airpods.secrets import key_source, read_key
    from airpods.server_flags import resolve_checked
    from airpods.stack.resolve import configured_server_images, resolve_stack

    loaded = load(options_of(ctx), path)
    chosen = path or options_of(ctx).config
    options = replace(options_of(ctx), config=chosen)
    gpu = host_gpu(options)
    stack = resolve_checked(
        lambda: resolve_stack(chosen, (), every_service=True, gpu=gpu),
        lambda: configured_server_images(chosen, gpu),
        engine_if_present(options),
    )
    source = key_source(loaded.config.runtime.api_key)
    if source not in ("generated", "none"):  # your own key: readable and usable, as start needs it
        try:
            read_key(source, create=True)
        except ConfigError as exc:
            raise exc.located(loaded.source_of(exc.key)) from None
    where = str(loaded.path) if loaded.path else "built-in defaults"
    enabled = ", ".join(loaded.config.enabled_services())
    print(f"ok: {where}: {len(loaded.config.services)} services, enabled: {enabled}")
    checked = {s.name: s.flag_table for s in stack.services if s.flag_table}
    for source in dict.fromkeys(checked.values()):
        print(f"command_args of {', '.join(n for n, s in checked.items() if s == source)} checked against {source}")


@app.command()
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the commented defaults as your starting config file."""
    from airpods.config.files import default_toml_text, user_config_path
    from airpods.errors import RuntimeFailure

    target = options_of(ctx).config or user_config_path()
    if target.exists() and not force:
        raise RuntimeFailure(
            f"{target} already exists; it was left as it is", hint="`airpods config init --force` overwrites it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    from airpods.files import write_atomic

    write_atomic(target, default_toml_text().encode(), mode=0o644)
    print(f"wrote {target}")


@app.command()
def path(ctx: typer.Context) -> None:
    """Print the config file in effect (or where `config init` would write one)."""
    from airpods.config.files import locate_config, user_config_path

    found = locate_config(options_of(ctx).config)
    if found:
        print(found)
    else:
        print(f"none: using the built-in defaults (`airpods config init` writes {user_config_path()})")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config")
