#!/usr/bin/env python3
"""Lifecycle timings on the offline rig (run after `eval "$(scripts/rig up)"`):

1. `airpods status` with the default stack up vs one bare `podman ps --format json`
   (target: airpods <= bare + 150 ms);
2. `airpods start` with images present vs a plain shell script running the same podman commands
   (taken from `start --dry-run`) and polling health the same way (target: <= 1.15x).

Prints JSON; median/min/max over BENCH_RUNS runs (default 5), the two sides alternated.
Never asserted in tests.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
# The console script users run (python -m would add runpy's import).
AIRPODS = [str(Path(sys.executable).with_name("airpods"))]


def run(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return (time.perf_counter() - began) * 1000


def stats(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 1), "min_ms": round(min(values), 1),
            "max_ms": round(max(values), 1), "runs": len(values)}


def remove_pods() -> None:
    pods = subprocess.run(["podman", "pod", "ps", "-q", "--filter", "label=io.airpods.managed=true"],
                          capture_output=True, text=True).stdout.split()
    if pods:
        subprocess.run(["podman", "pod", "rm", "--force", "--time", "0", *pods], capture_output=True)


HEALTH_POLL = r'''
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
'''


def shell_script() -> str:
    """The same podman commands as `start --dry-run`, then the same health polling."""
    plan = json.loads(subprocess.run([*AIRPODS, "start", "--dry-run", "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    lines = ["#!/bin/bash", "set -e", HEALTH_POLL]
    lines += [shlex.join(step["argv"]) + " >/dev/null" for step in plan["steps"]]
    status = json.loads(subprocess.run([*AIRPODS, "status", "--json"], capture_output=True, text=True).stdout)
    from airpods.config.loader import load_config

    config = load_config().config
    for row in status["services"]:
        svc = config.services[row["name"]]
        host = svc.ports[0].host
        lines.append(f"poll 127.0.0.1 {host} {shlex.quote(svc.health.path or '/')} &")
    lines.append("wait")
    return "\n".join(lines) + "\n"


def main() -> None:
    subprocess.run([*AIRPODS, "start"], check=True, capture_output=True)     # images pulled, volumes made
    status_a, status_b = [], []
    for _ in range(RUNS):
        status_b.append(run(["podman", "ps", "--format", "json"]))
        status_a.append(run([*AIRPODS, "status"]))
    remove_pods()
    script = Path(tempfile.mkdtemp()) / "start.sh"
    script.write_text(shell_script())
    script.chmod(0o755)
    start_a, start_b = [], []
    for _ in range(RUNS):
        remove_pods()
        start_b.append(run([str(script)]))
        remove_pods()
        start_a.append(run([*AIRPODS, "start"]))
    remove_pods()
    sa, sb, ta, tb = stats(status_a), stats(status_b), stats(start_a), stats(start_b)
    print(json.dumps([
        {"measure": "status vs bare podman ps", "airpods": sa, "baseline": sb,
         "over_baseline_ms": round(sa["median_ms"] - sb["median_ms"], 1), "target": "<= baseline + 150 ms",
         "pass": sa["median_ms"] <= sb["median_ms"] + 150},
        {"measure": "start (images present) vs shell script", "airpods": ta, "baseline": tb,
         "ratio": round(ta["median_ms"] / tb["median_ms"], 3), "target": "<= 1.15x",
         "pass": ta["median_ms"] <= 1.15 * tb["median_ms"]},
    ], indent=2))


if __name__ == "__main__":
    main()
