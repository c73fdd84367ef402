"""`airpods update`: pull, snapshot, recreate, verify, roll back (the README's way to update)."""

from __future__ import annotations

from typing import Annotated

import typer

from airpods.cli.context import engine as engine_of
from airpods.cli.context import options_of, stack_source
from airpods.cli.lifecycle_cmd import Drain, Json, NoRollback, NoSnapshot, Services


def update(
    ctx: typer.Context,
    services: Services = None,
    no_snapshot: NoSnapshot = False,
    no_rollback: NoRollback = False,
    drain: Drain = 60.0,
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
            stack_for,
            engine,
            reporter,
            pull="missing",
            snapshot=not no_snapshot,
            rollback=not no_rollback,
            drain_s=drain,
        )
        for r in result.readiness:
            reporter.finished(r.service, r.ready, r.detail)
    render_start(result, as_json)


def rollback(
    ctx: typer.Context,
    services: Services = None,
    data: Annotated[
        bool, typer.Option("--data", help="Also put back their volumes from the newest snapshot (replaces them).")
    ] = False,
) -> None:
    """Put services back on the image they ran before their last update (and, with --data, their
    data from the snapshot taken then); `airpods update` goes forward again."""
    from airpods.cli.progress import ConsoleReporter
    from airpods.errors import RuntimeFailure
    from airpods.usecases.rollback import rollback as roll_back

    options = options_of(ctx)
    engine = engine_of(options)
    with ConsoleReporter() as reporter:
        plan, results = roll_back(stack_source(options, services, engine=engine), engine, reporter, data=data)
        for note in plan.notes:
            reporter.line(f"note: {note}")
        for r in results:
            reporter.finished(r.service, r.ready, r.detail)
    failed = [r for r in results if not r.ready]
    if failed:
        raise RuntimeFailure(
            "could not roll back " + "; ".join(f"{r.service}: {r.detail}" for r in failed),
            hint="`airpods logs` shows why; `airpods update` goes forward again",
        )
    if not results:
        raise RuntimeFailure("nothing to roll back", hint="a service has a previous image once `start` updated it")


def register(app: typer.Typer) -> None:
    app.command()(update)
    app.command()(rollback)
