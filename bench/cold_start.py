#!/usr/bin/env python3
"""Cold start of the CLI: `airpods --help` and `airpods status` against `python -c pass`.
Targets: --help median <= 150 ms; peak RSS <= 40 MiB. Prints JSON entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from common import AIRPODS, RUNS, entry, stats


def measure(argv: list[str]) -> tuple[dict, float]:
    """Wall time of each run, and the peak RSS (MiB) the process reached, from wait4."""
    times, peak = [], 0.0
    for _ in range(max(RUNS, 10)):
        began = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        _, _, usage = os.wait4(child.pid, 0)
        times.append((time.perf_counter() - began) * 1000)
        peak = max(peak, usage.ru_maxrss / 1024)
    return stats(times), round(peak, 1)


def run() -> list[dict]:
    floor, floor_rss = measure([sys.executable, "-c", "pass"])
    results = []
    for name, args, target_ms in (("airpods --help", ["--help"], 150), ("airpods status", ["status"], None)):
        timing, rss = measure([AIRPODS, *args])
        passed = rss <= 40 and (target_ms is None or timing["median"] <= target_ms)
        target = (f"median <= {target_ms} ms, " if target_ms else "") + "peak RSS <= 40 MiB"
        results.append(
            entry(
                f"cold start: {name}",
                "ms",
                timing,
                floor,
                target,
                passed,
                note=f"peak RSS {rss} MiB; baseline is python -c pass ({floor_rss} MiB)",
            )
        )
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
