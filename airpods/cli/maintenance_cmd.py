"""`airpods doctor` and `airpods clean`."""

from __future__ import annotations

from typing import Annotated

import typer

from airpods.cli.context import engine as engine_of
from airpods.cli.context import options_of, stack


def doctor(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False
) -> None:
    """Check the engine (Podman or Docker: its daemon, mode, runtime and network), the GPU, the config
    and the ports."""
    from airpods.cli.output import print_json
    from airpods.doctor import run_checks

    checks = run_checks(options_of(ctx).config, options_of(ctx).engine)
    if as_json:
        print_json({"checks": [c.__dict__ for c in checks]})
    else:
        for check in checks:
            print(f"{check.level:<4}  {check.name:<16} {check.detail}")
            if check.fix:
                print(f"{'':<6}{'':<16} fix: {check.fix}")
    if any(c.level == "FAIL" for c in checks):
        raise typer.Exit(1)


def clean(
    ctx: typer.Context,
    pods: Annotated[bool, typer.Option("--pods", help="Remove every airpods pod (stops them).")] = False,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes",
            help="Delete this project's volumes (only those airpods created) and ALL their data "
            "(removes the project's pods first).",
        ),
    ] = False,
    images: Annotated[bool, typer.Option("--images", help="Remove the configured services' images.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting volumes.")] = False,
) -> None:
    """Remove what airpods created for this project: only what the flags name."""
    from airpods.errors import UsageError
    from airpods.usecases.clean import clean, named_volumes

    if not (pods or volumes or images):
        raise UsageError("say what to clean: --pods, --volumes and/or --images")
    everything = stack(options_of(ctx), None, every_service=True)
    engine = engine_of(options_of(ctx))
    if volumes and not yes:
        owners = engine.volume_projects()
        doomed = [v for v in named_volumes(everything, owners) if owners[v] == everything.project]  # what goes
        if doomed and not typer.confirm(f"Delete volumes {', '.join(doomed)} and all their data?", default=False):
            raise UsageError("nothing deleted", hint="`--yes` confirms without asking")
    for line in clean(everything, engine, pods=pods, volumes=volumes, images=images):
        print(line)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.command()(clean)
