"""`airpods autostart on|off|status`: the stack comes back after a reboot (airpods/autostart.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from airpods.cli.context import options_of, stack


class Action(StrEnum):
    on = "on"
    off = "off"
    status = "status"


def autostart(
    ctx: typer.Context,
    action: Annotated[
        Action, typer.Argument(help="on: install and enable the unit; off: remove it; status: show it.")
    ] = Action.status,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """Start this stack's containers at boot through a systemd unit of its own (system unit when
    rootful, user unit with linger when rootless). Only what exists at shutdown comes back:
    `airpods stop` removes pods, so a stopped service stays stopped."""
    from airpods import autostart as use_case
    from airpods.cli.context import engine_name
    from airpods.cli.output import print_json
    from airpods.engine.choose import docker_start_hint
    from airpods.engine.podman import Podman
    from airpods.errors import UsageError
    from airpods.host.engines import DockerService

    if engine_name(options_of(ctx)) == "docker":
        raise UsageError(
            "autostart is for Podman: with Docker, the stack's containers come back when the Docker daemon "
            "starts (restart policy runtime.restart_policy, unless-stopped by default)",
            hint=f"{docker_start_hint(DockerService.observe(), at_boot=True)}; `airpods doctor` checks it",
        )
    project = stack(options_of(ctx), None).project
    engine = Podman()
    notes: list[str] = []
    if action is Action.on:
        current, notes = use_case.turn_on(engine, project)
    elif action is Action.off:
        current, notes = use_case.turn_off(engine, project)
    else:
        current = use_case.state(engine, project)
    if as_json:
        print_json({**current.to_json(), "notes": notes})
        return
    print(
        f"autostart: {'on' if current.installed and current.enabled else 'off'} "
        f"({current.unit}, {'user' if current.rootless else 'system'} unit at {current.path})"
    )
    if current.installed:
        print(f"at boot it runs: {' '.join(current.exec_start)}")
        print(f"containers it would start now: {current.containers}")
    if current.rootless:
        print(f"linger: {'on' if current.linger else 'off' if current.linger is False else 'unknown'}")
    if current.unlabelled:
        print(
            f"{current.unlabelled} container(s) predate project labels: `airpods start` recreates them with the label"
        )
    if current.survives_reboot and not current.containers:
        print(
            "on, but no container of this stack exists yet: `airpods start` first (only what exists at "
            "shutdown comes back)"
        )
    else:
        print(
            "the stack survives a reboot"
            if current.survives_reboot
            else "after a reboot, run `airpods start`" + ("" if current.installed else " (or `airpods autostart on`)")
        )
    for note in notes:
        print(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.command()(autostart)
