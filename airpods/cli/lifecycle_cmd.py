"""`airpods start | stop | status | logs`: parse options, call one use case, render the result."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from airpods.cli.context import options_of, stack

Services = Annotated[Optional[list[str]], typer.Argument(help="Services (default: every enabled one).", show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def start(
    ctx: typer.Context,
    services: Services = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the podman commands; run nothing.")] = False,
    pre_fetch: Annotated[bool, typer.Option("--pre-fetch", help="Only pull the images.")] = False,
    keep_failed: Annotated[bool, typer.Option("--keep-failed", help="Keep the pods of a failed start for debugging.")] = False,
    as_json: Json = False,
) -> None:
    """Create the network, volumes and pods, pull images, and wait until every service is healthy."""
    from airpods import lifecycle
    from airpods.cli.output import print_json, warn
    from airpods.cli.progress import ConsoleReporter
    from airpods.cli.render import render_start
    from airpods.engine.podman import Podman

    wanted = stack(options_of(ctx), services)
    if dry_run:
        plan = lifecycle.plan_start(wanted, _engine_if_present(), pull_only=pre_fetch)
        if as_json:
            print_json(plan.to_json())
        else:
            print(f"# {wanted.gpu.describe()}")
            print(plan.render())
        return
    engine = Podman()
    with ConsoleReporter(quiet=as_json) as reporter:
        if pre_fetch:
            plan = lifecycle.pre_fetch(wanted, engine, reporter)
            for note in plan.notes:
                reporter.line(note)
            if as_json:
                print_json({"pulled": [s.target for s in plan.steps], "present": list(plan.notes)})
            return
        for message in wanted.warnings:
            warn(message)
        result = lifecycle.start(wanted, engine, reporter, keep_failed=keep_failed)
        for r in result.readiness:
            reporter.finished(r.service, r.ready, r.detail)
    render_start(result, as_json)


def stop(
    ctx: typer.Context,
    services: Services = None,
    timeout: Annotated[Optional[int], typer.Option("--timeout", "-t", min=0, help="Seconds before a container is killed (default: cli.stop_timeout_s).")] = None,
) -> None:
    """Stop and remove the pods. Volumes and their data are always kept."""
    from airpods import lifecycle
    from airpods.cli.progress import ConsoleReporter
    from airpods.engine.podman import Podman

    with ConsoleReporter() as reporter:
        plan = lifecycle.stop(stack(options_of(ctx), services), Podman(), reporter, timeout)
    for note in plan.notes:
        print(note)
    stopped = sorted({s.service for s in plan.steps if s.service})
    print(f"stopped: {', '.join(stopped)} (volumes kept)" if stopped else "nothing to stop")


def status(ctx: typer.Context, services: Services = None, as_json: Json = False) -> None:
    """State, health, URL, image and uptime of each service (exit 0 even when some are down)."""
    from airpods import lifecycle
    from airpods.cli.render import render_status
    from airpods.engine.podman import Podman

    render_status(lifecycle.status(stack(options_of(ctx), services), Podman()), as_json)


def logs(
    ctx: typer.Context,
    services: Services = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[Optional[int], typer.Option("--lines", "-n", min=0, help="Only the last N lines of each.")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only lines since T (e.g. 10m, or a timestamp).")] = None,
) -> None:
    """Print container logs: one service as is, several interleaved with a service prefix."""
    from airpods.engine.logs import stream_logs
    from airpods.engine.podman import Podman

    wanted = stack(options_of(ctx), services)
    raise typer.Exit(stream_logs(Podman(), {s.name: s.container for s in wanted.services},
                                 follow=follow, lines=lines, since=since))


def _engine_if_present():
    from airpods.engine.errors import EngineMissing
    from airpods.engine.podman import Podman

    try:
        return Podman()
    except EngineMissing:
        return None


def register(app: typer.Typer) -> None:
    for command in (start, stop, status, logs):
        app.command()(command)
