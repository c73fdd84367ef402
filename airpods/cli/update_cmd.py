"""`airpods update`: pull, snapshot, recreate, verify, roll back (the README's way to update)."""

from __future__ import annotations

import typer

from airpods.cli.context import engine as engine_of
from airpods.cli.context import options_of, stack_source
from airpods.cli.lifecycle_cmd import Json, NoRollback, NoSnapshot, Services


def update(
    ctx: typer.Context,
    services: Services = None,
    no_snapshot: NoSnapshot = False,
    no_rollback: NoRollback = False,
    as_json: Json = False,
) -> None:
    """Pull the stack's images; recreate the services whose image changed, each snapshotted first
    and rolled back to its image and data if it fails on the new one (exit 1 then, the stack
    running). A new image that failed before is tried again."""
    from airpods.cli.progress import ConsoleReporter
    from airpods.cli.render import render_start
    from airpods.snapshots import forget_failed
    from airpods.usecases.common import stack_in_use
    from airpods.usecases.pull import pull as pull_images
    from airpods.usecases.start import start as start_stack

    options = options_of(ctx)
    engine = engine_of(options)
    stack_for = stack_source(options, services, ensure_key=True, engine=engine)
    wanted = stack_in_use(stack_for, engine.pods())
    forget_failed(wanted.project, [s.name for s in wanted.services])
    with ConsoleReporter(quiet=as_json) as reporter:
        pulled = pull_images(wanted, engine, reporter)
        for image in (r for r in pulled if r.error):
            reporter.line(f"pull of {image.image} failed, its services keep the local image: {image.error}")
        result = start_stack(
            stack_for, engine, reporter, pull="missing", snapshot=not no_snapshot, rollback=not no_rollback
        )
        for r in result.readiness:
            reporter.finished(r.service, r.ready, r.detail)
    render_start(result, as_json)


def register(app: typer.Typer) -> None:
    app.command()(update)
