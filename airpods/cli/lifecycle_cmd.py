"""`airpods start | stop | status | logs | doctor`: parse options, call one use case, render."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from airpods.cli.context import load, options_of

Services = Annotated[Optional[list[str]], typer.Argument(help="Services (default: every enabled one).", show_default=False)]


def start(
    ctx: typer.Context,
    services: Services = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the podman commands; run nothing.")] = False,
    pre_fetch: Annotated[bool, typer.Option("--pre-fetch", help="Only pull the images.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create the network, volumes and pods, pull images, and wait until every service is healthy."""
    from airpods.cli.output import print_json, warn
    from airpods.gpu import detect_host_gpu
    from airpods.plan import Observed, build_start_plan
    from airpods.stack.build import build_stack

    loaded = load(options_of(ctx))
    stack = build_stack(loaded.config, detect_host_gpu(), services or ())
    if dry_run:
        plan = build_start_plan(stack, Observed(), pull_only=pre_fetch)
        if as_json:
            print_json(plan.to_json())
        else:
            print(f"# {stack.gpu.describe()}")
            print(plan.render())
        return
    for message in stack.warnings:
        warn(message)
    from airpods.errors import RuntimeFailure

    raise RuntimeFailure("running the stack is not available yet", hint="use `airpods start --dry-run`")


def register(app: typer.Typer) -> None:
    app.command()(start)
