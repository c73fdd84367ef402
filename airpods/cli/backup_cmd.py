"""`airpods backup` and `airpods restore`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from airpods.cli.context import engine as engine_of
from airpods.cli.context import options_of, stack, stack_source

ServicesOption = Annotated[
    str | None, typer.Option("--services", help="Comma-separated services (default: all configured).")
]


def _names(services: str | None) -> list[str] | None:
    return [s.strip() for s in services.split(",") if s.strip()] if services else None


def backup(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Archive to write (default: ./airpods-backup-DATE.tar).")
    ] = None,
    services: ServicesOption = None,
    with_models: Annotated[bool, typer.Option("--with-models", help="Include the GGUF model volume (large).")] = False,
    include_secrets: Annotated[bool, typer.Option("--include-secrets", help="Include the API key.")] = False,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop services that need a consistent copy, restart them after.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing archive file.")] = False,
) -> None:
    """Config, volumes (through podman) and, if asked, secrets, in one verified archive."""
    from airpods.backup import CONSISTENT_COPY, backup_volumes, estimate, write_backup
    from airpods.cli.output import warn
    from airpods.cli.progress import ByteProgress, ConsoleReporter, human_size
    from airpods.config.files import locate_config
    from airpods.errors import AirpodsError
    from airpods.secrets import api_key_path
    from airpods.usecases.common import stack_in_use, stack_subset
    from airpods.usecases.start import start as start_stack
    from airpods.usecases.stop import stop as stop_stack

    options = options_of(ctx)
    names = _names(services)
    chosen = stack(options, names, every_service=not names)
    engine = engine_of(options)
    present = set(engine.volume_projects())
    volumes = [
        (v, users) for v, users in backup_volumes(chosen, with_models) if v in present
    ]  # never created: nothing to keep
    running = {c.name for c in engine.containers(chosen.project) if c.running}
    included = {v for v, _ in volumes}
    hot = [
        s
        for s in chosen.services
        if s.name in CONSISTENT_COPY and s.container in running and any(m.source in included for m in s.mounts)
    ]
    if hot and not stop:
        for spec in hot:
            warn(f"{spec.name} keeps running: {CONSISTENT_COPY[spec.name]}; `--stop` makes a consistent copy")
    out = output or Path(time.strftime("airpods-backup-%Y%m%d-%H%M%S.tar"))
    _check_output(out, force)  # before any volume is exported (or any service stopped)
    size = estimate(engine, [v for v, _ in volumes])
    print(
        f"backing up {len(volumes)} volume{'s' if len(volumes) != 1 else ''} "
        f"({human_size(size) if size is not None else 'size unknown'}) to {out}",
        flush=True,
    )
    paused = None
    if hot and stop:  # stopped and started again as the stack in use runs them: same wiring, same pods
        pods = engine.pods()
        running_stack = stack_in_use(stack_source(options, None), pods)
        paused = stack_subset(running_stack, [s.name for s in hot])
        changed = [s.name for s in paused.services if s.pod in pods and pods[s.pod].config_hash != s.config_hash]
        if changed:  # it would come back as the config says now, not as it ran
            from airpods.errors import RuntimeFailure

            raise RuntimeFailure(
                f"the config of {', '.join(changed)} changed since it started: --stop would bring it back changed",
                hint=f"`airpods start {' '.join(changed)}` first (applies the change), or back up without --stop",
            )
        with ConsoleReporter() as reporter:
            stop_stack(lambda present: paused, engine, reporter)
    back = None
    failed_restart: AirpodsError | None = None
    try:
        with ByteProgress() as progress:
            members = write_backup(
                engine,
                out,
                chosen,
                [v for v, _ in volumes],
                locate_config(options.config),
                api_key_path() if include_secrets and api_key_path().exists() else None,
                progress,
            )
    finally:
        if paused is not None:
            try:
                with ConsoleReporter() as reporter:
                    back = start_stack(lambda present: paused, engine, reporter)
            except AirpodsError as exc:
                warn(f"{', '.join(s.name for s in paused.services)} did not come back after the copy: {exc.message}")
                failed_restart = exc
    for member in members:
        print(f"  {member.name}  {human_size(member.size)}  sha256 {member.sha256[:16]}…")
    print(f"wrote {out} (mode 0600{', includes the API key' if include_secrets else ', no secrets'})")
    if paused is not None and failed_restart is not None:
        from airpods.errors import RuntimeFailure

        raise RuntimeFailure(
            f"the backup is complete, but what --stop stopped did not come back: {failed_restart.message}",
            hint=f"`airpods start {' '.join(s.name for s in paused.services)}` says more",
        )
    if back is not None and not back.ok:
        from airpods.errors import RuntimeFailure

        failed = [f"{r.service}: {r.detail}" for r in back.readiness if not r.ready]
        raise RuntimeFailure(
            f"the backup is complete, but what --stop stopped did not come back: {'; '.join(failed)}",
            hint=f"`airpods start {' '.join(r.service for r in back.readiness)}` and `airpods logs` say more",
        )


def _check_output(out: Path, force: bool) -> None:
    """The archive path names a file this command may write (UsageError, exit 2, otherwise)."""
    from airpods.errors import UsageError

    if not out.name or out.is_dir():
        raise UsageError(f"-o {out}: expected a file name for the archive, got a folder", hint="-o DIR/stack.tar")
    if not out.absolute().parent.is_dir():
        from airpods.errors import RuntimeFailure

        raise RuntimeFailure(f"cannot write {out}: {out.absolute().parent} is not a folder", hint="create it first")
    if out.exists() and not force:
        raise UsageError(f"{out} exists; nothing was written", hint="pass --force to replace it, or another -o")


def restore(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(help="A file written by `airpods backup`.")],
    services: ServicesOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace volumes (and config, key) that already hold data.")
    ] = False,
) -> None:
    """Verify the whole archive, then restore into stopped services. Never overwrites without --force."""
    from airpods.backup import restore_archive
    from airpods.config.files import locate_config, user_config_path
    from airpods.secrets import api_key_path

    options = options_of(ctx)
    everything = stack(options, None, every_service=True)
    done = restore_archive(
        engine_of(options),
        archive,
        everything,
        _names(services) or [],
        force,
        locate_config(options.config) or user_config_path(),
        api_key_path(),
    )
    for item in done:
        print(f"restored {item}")
    print("start the services with `airpods start`")


def register(root: typer.Typer) -> None:
    root.command()(backup)
    root.command()(restore)
