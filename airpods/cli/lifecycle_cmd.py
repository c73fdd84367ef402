"""`airpods start | stop | restart | status | logs | pull`: parse options, call one use case,
render the result."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from airpods.cli.context import engine as engine_of
from airpods.cli.context import engine_if_present, engine_name, options_of, stack_source, step_renderer

Services = Annotated[
    list[str] | None,
    typer.Argument(
        help="Services (default: every enabled one, plus any of this stack whose pod exists).", show_default=False
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
RemoveOrphans = Annotated[
    bool,
    typer.Option("--remove-orphans", help="Also remove pods of this project whose service is no longer in the config."),
]
NoSnapshot = Annotated[
    bool,
    typer.Option("--no-snapshot", help="Recreate a service for a new image without snapshotting its data first."),
]
NoRollback = Annotated[
    bool,
    typer.Option("--no-rollback", help="Leave a service that fails on its new image failed (to debug it)."),
]


def _seconds(value: float) -> float:
    """A number of seconds: NaN is none (click's range lets it through)."""
    if value != value:
        raise typer.BadParameter("not a number of seconds")
    return value


Drain = Annotated[
    float,
    typer.Option(
        "--drain",
        min=0,
        callback=_seconds,
        help="Seconds a llama.cpp router's running requests get to finish before it is recreated or rereads "
        "changed flags of their model (0: do not wait).",
    ),
]
Timeout = Annotated[
    int | None,
    typer.Option("--timeout", "-t", min=0, help="Seconds before a container is killed (default: cli.stop_timeout_s)."),
]


class PullPolicy(StrEnum):
    missing = "missing"
    always = "always"
    never = "never"


def start(
    ctx: typer.Context,
    services: Services = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the podman commands; run nothing.")] = False,
    pre_fetch: Annotated[bool, typer.Option("--pre-fetch", help="Only pull the images.")] = False,
    pull: Annotated[
        PullPolicy,
        typer.Option(
            "--pull",
            help="missing: pull absent images; always: pull every image first (a new one recreates its "
            "services); never: fail if one is absent.",
        ),
    ] = PullPolicy.missing,
    remove_orphans: RemoveOrphans = False,
    keep_failed: Annotated[
        bool, typer.Option("--keep-failed", help="Keep the pods of failed services for debugging.")
    ] = False,
    no_snapshot: NoSnapshot = False,
    no_rollback: NoRollback = False,
    drain: Drain = 60.0,
    as_json: Json = False,
) -> None:
    """Create the network, volumes and pods, pull images, and wait until every service is healthy.
    A service recreated for a new image is snapshotted first and rolled back if it fails."""
    from airpods.cli.output import print_json, warn
    from airpods.cli.progress import ConsoleReporter
    from airpods.cli.render import render_start
    from airpods.errors import ConfigError
    from airpods.stack.exposure import exposed
    from airpods.stack.presets import preset_ini
    from airpods.usecases.pull import pre_fetch as fetch_ahead
    from airpods.usecases.start import plan_start
    from airpods.usecases.start import start as start_stack

    present = engine_if_present(options_of(ctx))
    # Pulling only: command_args are not checked (the image's own flag table comes with it). A dry
    # run only looks: no key is made, no flag table learned (no container), nothing written.
    try:
        stack_for = stack_source(
            options_of(ctx),
            services,
            ensure_key=not dry_run,
            engine=None if dry_run else present,
            check_flags=not pre_fetch,
            preview=dry_run,
        )
    except ConfigError as refused:
        flags = any(part in (refused.key or "") for part in (".command_args", ".models."))
        if dry_run and flags and (unknown := unlearned_images(options_of(ctx))):  # a dry run reads no table
            refused.hint = (f"{refused.hint}; " if refused.hint else "") + (
                f"checked against airpods' built-in table: the flag table of {', '.join(unknown)} is not known "
                "yet (`airpods config validate` reads it from the image, then checks again)"
            )
        raise
    if dry_run:
        wanted, plan = plan_start(
            stack_for,
            present,
            pull=pull.value,
            pull_only=pre_fetch,
            remove_orphans=remove_orphans,
            snapshot=not no_snapshot,
            rollback=not no_rollback,
        )
        checked = {s.name: s.flag_table for s in wanted.services if s.flag_table}
        unknown = unlearned_tables(wanted)
        if as_json:
            print_json(
                {
                    **plan.to_json(step_renderer(options_of(ctx))),
                    "flag_tables": checked,
                    "flag_tables_unknown": unknown,
                }
            )
        else:
            print(f"# {wanted.gpu.describe()}")
            for source in dict.fromkeys(checked.values()):
                names = ", ".join(name for name, s in checked.items() if s == source)
                print(f"# command_args of {names} checked against {source}")
            if unknown:
                print(
                    f"# the flag table of {', '.join(unknown)} is not known yet: start reads it from the image "
                    "(its --help) and checks command_args again"
                )
            for spec in wanted.services:
                if gpu_said(spec):
                    print(f"# gpu: {spec.name}: {spec.gpu_reason}")
            for spec in (s for s in wanted.services if s.presets):
                shown = preset_ini(spec.presets).rstrip("\n").replace("\n", "\n#   ")
                print(f"# {spec.name}'s preset file (plus sections for models found in the volume):\n#   {shown}")
            print(plan.render(step_renderer(options_of(ctx))))
        return
    engine = present or engine_of(options_of(ctx))  # not installed: this says so
    with ConsoleReporter(quiet=as_json) as reporter:
        if pre_fetch:
            plan = fetch_ahead(stack_for(()), engine, reporter, pull.value)
            for note in plan.notes:
                reporter.line(note)
            if as_json:
                print_json({"pulled": [s.target for s in plan.steps], "present": list(plan.notes)})
            return
        for message in stack_for(()).warnings:
            warn(message)
        for opening in exposed(stack_for(())):
            warn(opening.describe())
        for spec in stack_for(()).services:
            if gpu_said(spec):
                reporter.line(f"gpu: {spec.name}: {spec.gpu_reason}")
        result = start_stack(
            stack_for,
            engine,
            reporter,
            keep_failed=keep_failed,
            pull=pull.value,
            remove_orphans=remove_orphans,
            snapshot=not no_snapshot,
            rollback=not no_rollback,
            drain_s=drain,
        )
        for note in result.plan.notes:
            if note.startswith("orphan") or "was rolled back" in note:
                reporter.line(f"note: {note}")
        for r in result.readiness:
            reporter.finished(r.service, r.ready, r.detail)
    render_start(result, as_json)


def unlearned_images(options) -> list[str]:
    """The configured llama-server images whose own flag table this machine has not read."""
    from airpods.cli.context import host_gpu
    from airpods.server_flags import unlearned
    from airpods.stack.resolve import configured_server_images

    return unlearned(configured_server_images(options.config, host_gpu(options)))


def unlearned_tables(stack) -> list[str]:
    """The llama-server images of `stack` whose own flag table this machine has not read."""
    from airpods.server_flags import checked_images, unlearned

    return unlearned(checked_images(stack))


def stop(
    ctx: typer.Context, services: Services = None, timeout: Timeout = None, remove_orphans: RemoveOrphans = False
) -> None:
    """Stop and remove the pods. Volumes and their data are always kept."""
    from airpods.cli.progress import ConsoleReporter
    from airpods.usecases.stop import stop as stop_stack

    with ConsoleReporter() as reporter:
        plan = stop_stack(
            stack_source(options_of(ctx), services),
            engine_of(options_of(ctx)),
            reporter,
            timeout,
            remove_orphans=remove_orphans,
        )
    for note in plan.notes:
        print(note)
    stopped = sorted({s.target for s in plan.steps if s.kind == "remove"})
    print(f"stopped: {', '.join(stopped)} (volumes kept)" if stopped else "nothing to stop")


def restart(
    ctx: typer.Context,
    services: Annotated[
        list[str] | None,
        typer.Argument(help="Services (default: every service of this stack whose pod exists).", show_default=False),
    ] = None,
    timeout: Timeout = None,
    keep_failed: Annotated[bool, typer.Option("--keep-failed", help="Keep the pods of failed services.")] = False,
    as_json: Json = False,
) -> None:
    """Stop the services, then start them again with the current config and images, waiting until
    healthy. Without names: every service of this stack whose pod exists."""
    from airpods.cli.progress import ConsoleReporter
    from airpods.cli.render import render_start
    from airpods.usecases.restart import restart as restart_stack

    engine = engine_of(options_of(ctx))
    with ConsoleReporter(quiet=as_json) as reporter:
        _, result = restart_stack(
            stack_source(options_of(ctx), services, ensure_key=True, engine=engine),
            engine,
            reporter,
            timeout,
            keep_failed=keep_failed,
            only_existing=not services,
        )
        for r in result.readiness:
            reporter.finished(r.service, r.ready, r.detail)
    if not result.readiness:
        print("nothing to restart: no service of this stack has a pod (`airpods start` starts them)")
        return
    render_start(result, as_json)


def status(ctx: typer.Context, services: Services = None, as_json: Json = False) -> None:
    """State, health, URL, image and uptime of each service (exit 0 even when some are down)."""
    from airpods.engine.early import start_listing

    start_listing(engine_name(options_of(ctx)))  # runs while the rest loads
    from airpods.cli.render import render_status
    from airpods.usecases.status import status as stack_status

    render_status(
        stack_status(
            stack_source(options_of(ctx), services), engine_of(options_of(ctx)), digests=as_json, placements=as_json
        ),
        as_json,
    )


def logs(
    ctx: typer.Context,
    services: Services = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int | None, typer.Option("--lines", "-n", min=0, help="Only the last N lines of each.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only lines since T (e.g. 10m, or a timestamp).")] = None,
) -> None:
    """Print container logs: one service as is, several interleaved with a service prefix."""
    from airpods.engine.logs import stream_logs
    from airpods.errors import RuntimeFailure
    from airpods.secrets import register_stack_secrets
    from airpods.usecases.common import stack_in_use

    if since is not None:
        _check_since(since)
    stack_for = stack_source(options_of(ctx), services)
    engine = engine_of(options_of(ctx))
    wanted = stack_in_use(stack_for, engine.pods())
    register_stack_secrets(wanted)
    existing = {c.name for c in engine.containers(wanted.project)}
    chosen = {s.name: s.container for s in wanted.services if s.container in existing}
    absent = [s.name for s in wanted.services if s.container not in existing]
    if services and absent:
        raise RuntimeFailure(
            f"no container for {', '.join(absent)}: not started, or stopped (stop removes them)",
            hint=f"`airpods start {' '.join(absent)}` starts {'it' if len(absent) == 1 else 'them'}",
        )
    if not chosen:
        raise RuntimeFailure("no service of this stack has a container", hint="`airpods start` starts the stack")
    raise typer.Exit(stream_logs(engine, chosen, follow=follow, lines=lines, since=since))


def pull(ctx: typer.Context, services: Services = None, as_json: Json = False) -> None:
    """Pull the stack's images again and say which changed; `airpods start` then recreates the
    services whose image changed (and only those)."""
    from airpods.cli.output import print_json
    from airpods.cli.progress import ConsoleReporter, human_size
    from airpods.cli.table import format_table
    from airpods.usecases.common import stack_in_use
    from airpods.usecases.pull import pull as pull_images

    stack_for = stack_source(options_of(ctx), services, check_flags=False)  # see start --pre-fetch
    engine = engine_of(options_of(ctx))
    wanted = stack_in_use(stack_for, engine.pods())
    with ConsoleReporter(quiet=as_json) as reporter:
        results = pull_images(wanted, engine, reporter)
    if as_json:
        print_json({"images": [r.to_json() for r in results]})
    else:
        print(
            format_table(
                ("IMAGE", "RESULT", "SIZE", "TOOK", "SERVICES", "DIGEST"),
                [
                    (
                        r.image,
                        r.outcome,
                        "-" if r.error else human_size(r.size),
                        f"{r.seconds:.1f} s",
                        ", ".join(r.services),
                        r.digest or "-",
                    )
                    for r in results
                ],
            )
        )
        stale = sorted({name for r in results for name in r.to_recreate})
        if stale:
            from airpods.snapshots import snapshot_sizes

            sizes = snapshot_sizes(engine, wanted, stale)
            first = ", ".join(f"{name} ({human_size(size)})" for name, size in sizes.items())
            print(
                f"\nnew image pulled for {', '.join(stale)}: `airpods start` (or `airpods update`) recreates "
                f"{'it' if len(stale) == 1 else 'them'} (the others keep running)"
                + (f", snapshotting the data of {first} first" if first else "")
            )
    failed = [r for r in results if r.error]
    if failed:
        from airpods.errors import RuntimeFailure

        raise RuntimeFailure(
            "could not pull " + "; ".join(f"{r.image}: {r.error}" for r in failed),
            hint="the other images were pulled; check the name and the registry (`podman pull IMAGE` shows the same)",
        )


def _check_since(value: str) -> None:
    """What podman logs --since takes (podman-logs(1)): a Go duration (10m, 1h30m), Unix seconds,
    or an RFC 3339 date/time. Anything else is a usage error here, not podman's exit 125."""
    import re
    from datetime import datetime

    from airpods.errors import UsageError

    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+|\d+(\.\d+)?", value):
        return
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {value!r}: expected a duration (10m, 1h30m), Unix seconds, or a date/time (2026-11-30T18:00:00)"
        ) from None


def gpu_said(spec) -> bool:
    """Whether start says a service's GPU decision: when the service asked for a GPU (a reason)."""
    return bool(spec.gpu_reason)


def register(app: typer.Typer) -> None:
    for command in (start, stop, restart, status, logs, pull):
        app.command()(command)
