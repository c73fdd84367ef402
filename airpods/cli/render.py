"""Tables and JSON for start and status (the same data either way)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from airpods.cli.output import print_json, warn
from airpods.cli.table import format_table
from airpods.errors import RuntimeFailure

if TYPE_CHECKING:
    from airpods.usecases.start import StartResult
    from airpods.usecases.status import ServiceStatus


def _print_remote(urls: dict[str, str]) -> None:
    """The gateway's URL of each service (stack/exposure.gateway_urls), when there is one."""
    if urls:
        print("\nfrom other machines, through the gateway (`airpods env --remote`, `airpods gateway trust`):")
        print(format_table(("SERVICE", "URL"), list(urls.items())))


def render_start(result: StartResult, as_json: bool) -> None:
    from airpods.stack.exposure import gateway_urls

    urls = {s.name: s.url for s in result.stack.services}
    remote = gateway_urls(result.stack)
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "rolled_back": result.rolled_back,
                "reverted_updates": result.reverted,
                "notes": list(result.plan.notes) + result.notes,
                "placements": [{"service": v.service, **v.to_json()} for v in result.placements],
                "services": [
                    {
                        "name": r.service,
                        "ready": r.ready,
                        "seconds": round(r.seconds, 2),
                        "detail": r.detail,
                        "url": urls.get(r.service),
                        "remote_url": remote.get(r.service),
                        "exit_code": r.exit_code,
                        "logs": r.logs,
                    }
                    for r in result.readiness
                ],
            }
        )
    else:
        print(
            format_table(
                ("SERVICE", "STATE", "URL", "READY IN", "DETAIL"),
                [
                    (
                        r.service,
                        "ready" if r.ready else "ROLLED BACK" if r.service in result.reverted else "FAILED",
                        urls.get(r.service) or "-",
                        f"{r.seconds:.1f} s" if r.ready else "-",
                        r.detail,
                    )
                    for r in result.readiness
                ],
            )
        )
        for verdict in result.placements:
            if verdict.level == "ok":
                print(verdict.message)
            elif verdict.level == "warn":
                warn(verdict.message)
        _print_remote({r.service: remote[r.service] for r in result.readiness if r.ready and r.service in remote})
        for note in result.notes:
            print(f"\nnote: {note}")
    failed = [r for r in result.readiness if not r.ready]
    if not failed:
        return
    if not as_json:
        for r in failed:
            if r.logs:
                print(f"\n--- {r.service}: last {len(r.logs)} log lines ---", file=sys.stderr)
            for line in r.logs:
                print(f"  {line}", file=sys.stderr)
    names = ", ".join(r.service for r in failed)
    if all(r.service in result.reverted for r in failed):
        raise RuntimeFailure(
            f"the update of {names} failed and was rolled back: " + "; ".join(r.detail for r in failed),
            hint=f"the stack runs on the images it ran before; `airpods update {' '.join(result.reverted)}` tries "
            "the new image again (the log lines above show why it failed)",
        )
    healthy = [r.service for r in result.readiness if r.ready]
    cleanup = f"removed the failed services' pods ({', '.join(result.rolled_back)}); " if result.rolled_back else ""
    kept = f"{', '.join(healthy)} {'is' if len(healthy) == 1 else 'are'} up and kept running; " if healthy else ""
    why = "the log lines above show why" if any(r.logs for r in failed) else "the engine's words above say why"
    keep = "" if result.kept_failed else "; `--keep-failed` keeps failed pods for `airpods logs`"
    raise RuntimeFailure(
        f"{names} did not become ready: " + "; ".join(f"{r.service}: {r.detail}" for r in failed),
        hint=kept + cleanup + why + keep,
    )


def _size(size: int) -> str:
    from airpods.cli.progress import human_size

    return human_size(None if size < 0 else size)


def _uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render_status(rows: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        print_json({"services": [row.to_json() for row in rows]})
        return
    lines = []
    from airpods.plan import CHANGE_REASONS

    for row in rows:
        health = (
            row.health if row.health in ("healthy", "down") or row.kind == "orphan" else f"{row.health} ({row.detail})"
        )
        state = row.state
        if row.changes:
            snap = "" if row.snapshot is None else f", snapshotting its data first ({_size(row.snapshot)})"
            state += f" ({' and '.join(CHANGE_REASONS[c] for c in row.changes)}: `airpods start` applies it{snap})"
        elif row.kind == "orphan":
            state += " (orphan: not in the config)"
        lines.append((row.name, state, health, row.url or "-", row.image, _uptime(row.uptime_s)))
    print(format_table(("SERVICE", "STATE", "HEALTH", "URL", "IMAGE", "UPTIME"), lines))
    for row in rows:
        if row.models:
            print(f"\n{row.name} models: {', '.join(m.describe() for m in row.models)}")
    _print_remote({row.name: row.remote_url for row in rows if row.remote_url})
    orphaned = [row.name for row in rows if row.kind == "orphan"]
    if orphaned:
        print(f"\norphans: {', '.join(orphaned)} (`airpods stop --remove-orphans` removes them)")
    if any(row.kind == "llamacpp" for row in rows):
        from airpods.secrets import api_key_path

        print(f"\nllama.cpp API key: `airpods env` prints it with the base URL (kept in {api_key_path()})")
    down = [row.name for row in rows if row.health == "down" and row.kind != "orphan"]
    sick = [row.name for row in rows if row.health == "unhealthy" and row.kind != "orphan"]
    if down:
        print(f"\nnot running: {', '.join(down)} (`airpods start` starts {'it' if len(down) == 1 else 'them'})")
    if sick:
        print(f"\nunhealthy: {', '.join(sick)} (`airpods logs NAME` shows why; `airpods restart NAME` restarts it)")
