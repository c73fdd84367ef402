"""`airpods top`: a live view of the stack (airpods/top.py), like `top`; `--once` and `--json`
for scripts."""

from __future__ import annotations

from typing import Annotated

import typer

from airpods.cli.context import engine as engine_of
from airpods.cli.context import options_of, stack_source


def top(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Two samples INTERVAL apart, printed once.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (implies --once).")] = False,
    interval: Annotated[float, typer.Option("--interval", "-i", min=0.2, help="Seconds between refreshes.")] = 2.0,
) -> None:
    """What the stack is doing: per service its state, CPU and memory; per llama.cpp instance
    (per loaded model of a router) requests running and waiting, tokens/s and KV cache use."""
    import time

    from airpods.cli.output import print_json
    from airpods.top import Top
    from airpods.usecases.common import stack_in_use, stack_key

    engine = engine_of(options_of(ctx))
    stack = stack_in_use(stack_source(options_of(ctx), None), engine.pods())
    watcher = Top(stack, engine, stack_key(stack))
    if once or as_json:
        watcher.refresh()
        time.sleep(interval)
        view = watcher.refresh()
        if as_json:
            print_json(view.to_json())
        else:
            from rich.console import Console

            Console().print(_table(view))
        return
    import sys

    from rich.console import Console
    from rich.live import Live

    try:
        if not sys.stdout.isatty():  # a pipe or a file: one table per refresh, each with its time
            console = Console()
            while True:
                console.print(f"airpods top, {time.strftime('%H:%M:%S')}")
                console.print(_table(watcher.refresh()))
                sys.stdout.flush()
                time.sleep(interval)
        with Live(_table(watcher.refresh()), auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(_table(watcher.refresh()), refresh=True)
    except (KeyboardInterrupt, BrokenPipeError):
        return


def _size(value: int | None) -> str:
    from airpods.cli.progress import human_size

    return "-" if value is None else human_size(value)


def _table(view):  # -> rich.console.Group
    from rich.console import Group
    from rich.table import Table

    services = Table(title="services", title_justify="left", expand=False)
    for column in ("SERVICE", "STATE", "CPU %", "MEMORY", "LIMIT"):
        services.add_column(column, justify="right" if column in ("CPU %", "MEMORY", "LIMIT") else "left", no_wrap=True)
    for row in view.services:
        cpu = "-" if row.cpu_percent is None else f"{row.cpu_percent:.1f}"
        services.add_row(row.name, row.state, cpu, _size(row.memory), _size(row.memory_limit))
    parts: list[Table | str] = [services]
    if view.servers:
        servers = Table(title="llama.cpp", title_justify="left", expand=False)
        # RUN is running requests / slots; a router's model that is not loaded shows its state
        columns = ("INSTANCE", "MODEL", "ON", "RUN", "WAIT", "GEN T/S", "PROMPT T/S", "REQ T/S", "KV USED")
        for column in columns:
            servers.add_column(
                column, justify="left" if column in ("INSTANCE", "MODEL", "ON") else "right", no_wrap=True
            )
        for s in view.servers:
            kv = f"{s.kv_used}/{s.kv_cells}" if s.kv_cells else "-"
            servers.add_row(
                s.service,
                (s.model or "-") + ("" if s.state == "loaded" else f" ({s.state})"),
                s.where or "-",
                f"{s.processing}/{s.slots}" if s.slots else str(s.processing),
                str(s.deferred),
                f"{s.generation_tps:.1f}",
                f"{s.prompt_tps:.1f}",
                "-" if s.request_tps is None else f"{s.request_tps:.1f}",
                kv,
            )
        parts.append(servers)
    parts += [f"[yellow]{line}[/yellow]" for line in view.problems]
    return Group(*parts)


def register(app: typer.Typer) -> None:
    app.command()(top)
