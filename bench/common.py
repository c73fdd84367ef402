"""Shared pieces of the benchmarks: timing, stats and the one entry shape `bench/run` reports.

An entry: {"measure", "unit", "airpods": stats, "baseline": stats | None, "ratio": float | None,
"target": str, "pass": bool | None, "note": str}; pass is None for an entry given as context, without a
target; stats: {"median", "min", "max", "runs"}.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AIRPODS = str(Path(sys.executable).with_name("airpods"))  # the console script users run
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def stats(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": len(values),
    }


def timed_ms(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=env
    )
    took = (time.perf_counter() - began) * 1000
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return took


def entry(
    measure: str,
    unit: str,
    airpods: dict,
    baseline: dict | None,
    target: str,
    passed: bool | None,
    ratio: float | None = None,
    note: str = "",
) -> dict[str, object]:
    if ratio is None and baseline and baseline["median"]:
        ratio = round(airpods["median"] / baseline["median"], 3)
    return {
        "measure": measure,
        "unit": unit,
        "airpods": airpods,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "pass": None if passed is None else bool(passed),
        "note": note,
    }


@cache  # the store cannot change under a running benchmark; one `podman info` is enough
def require_rig_store() -> None:
    """The benchmarks remove airpods pods and volumes: only in the test rig's own Podman store."""
    from tests.integration.conftest import foreign_store

    if why := foreign_store():
        raise SystemExit(f"bench: {why}; run bench/run")


def remove_pods(engine: str = "podman") -> None:
    """Every airpods pod (Docker: container) in the rig's own store, volumes and secrets kept."""
    require_rig_store()
    if engine == "docker":
        from tests.integration.conftest import docker_problem

        if why := docker_problem():
            raise SystemExit(f"bench: {why}")
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=io.airpods.managed=true"], capture_output=True, text=True
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "--force", *ids], capture_output=True)
        return
    pods = subprocess.run(
        ["podman", "pod", "ps", "-q", "--filter", "label=io.airpods.managed=true"], capture_output=True, text=True
    ).stdout.split()
    if pods:
        subprocess.run(["podman", "pod", "rm", "--force", "--time", "0", *pods], capture_output=True)
