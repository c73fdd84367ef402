#!/usr/bin/env python3
"""Lifecycle timings on the offline rig (run after `eval "$(scripts/rig up)"`):

1. `airpods status` with the default stack up vs one bare `podman ps --format json`
   (target: airpods <= bare + 150 ms);
2. `airpods start` with images present vs a plain shell script running the same podman commands
   (taken from `start --dry-run`) and polling health the same way (target: <= 1.08x).
Both on Podman and, where the rig runs its Docker daemon (as root), on Docker with `docker ps`
and docker commands as the baselines.

Prints JSON entries; median/min/max over BENCH_RUNS runs (default 5), the two sides alternated.
Never asserted in tests.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from common import AIRPODS, RUNS, entry, remove_pods, stats, timed_ms

HEALTH_POLL = r"""
poll() {  # poll HOST PORT PATH: GET until HTTP 2xx/3xx, every 0.2 s (what airpods does)
  while :; do
    if exec 3<>"/dev/tcp/$1/$2" 2>/dev/null; then
      printf 'GET %s HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n' "$3" >&3
      read -r _ code _ <&3; exec 3<&-
      case "$code" in 2*|3*) return 0 ;; esac
    fi
    sleep 0.2
  done
}
"""


def shell_script(airpods: list[str]) -> str:
    """The same engine commands as `start --dry-run`, then the same health polling."""
    plan = json.loads(
        subprocess.run([*airpods, "start", "--dry-run", "--json"], check=True, capture_output=True, text=True).stdout
    )
    lines = ["#!/bin/bash", "set -e", HEALTH_POLL]
    lines += [
        shlex.join(step["argv"]) + " >/dev/null" for step in plan["steps"] if step["argv"] and step["kind"] != "secret"
    ]
    status = json.loads(subprocess.run([*airpods, "status", "--json"], capture_output=True, text=True).stdout)
    from airpods.config.loader import load_config

    config = load_config().config
    for row in status["services"]:
        svc = config.services[row["name"]]
        host = svc.ports[0].host
        lines.append(f"poll 127.0.0.1 {host} {shlex.quote(svc.health.path or '/')} &")
    lines.append("wait")
    return "\n".join(lines) + "\n"


def run() -> list[dict]:
    entries = on_engine("podman")
    if "docker" in os.environ.get("AIRPODS_TEST_ENGINES", "").split():
        entries += on_engine("docker")
    return entries


def on_engine(engine: str) -> list[dict]:
    airpods = [AIRPODS, "--engine", engine]
    subprocess.run([*airpods, "start"], check=True, capture_output=True)  # images, volumes, secrets made
    status_a, status_b = [], []
    for _ in range(RUNS):
        status_b.append(timed_ms([engine, "ps", "--format", "json" if engine == "podman" else "{{json .}}"]))
        status_a.append(timed_ms([*airpods, "status"]))
    remove_pods(engine)
    script = Path(tempfile.mkdtemp()) / "start.sh"
    script.write_text(shell_script(airpods))
    script.chmod(0o755)
    start_a, start_b = [], []
    for _ in range(RUNS):
        remove_pods(engine)
        start_b.append(timed_ms([str(script)]))
        remove_pods(engine)
        start_a.append(timed_ms([*airpods, "start"]))
    remove_pods(engine)
    sa, sb, ta, tb = stats(status_a), stats(status_b), stats(start_a), stats(start_b)
    return [
        entry(
            f"status (default stack up) vs bare {engine} ps",
            "ms",
            sa,
            sb,
            "<= baseline + 150 ms",
            sa["median"] <= sb["median"] + 150,
            note=f"{sa['median'] - sb['median']:.1f} ms over {engine} ps",
        ),
        entry(
            f"start (images present) vs a shell script of the same {engine} commands",
            "ms",
            ta,
            tb,
            "<= 1.08x",
            ta["median"] <= 1.08 * tb["median"],
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
