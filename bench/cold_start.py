#!/usr/bin/env python3
"""Cold start of the CLI: `airpods --help` and `airpods --version` against `python -c pass`.

Prints JSON: median/min/max wall time (ms) over N runs and peak RSS (MiB). Target: --help
median <= 150 ms, RSS <= 40 MiB. Never asserted in tests; run it: `bench/cold_start.py`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
PYTHON = sys.executable


def measure(argv: list[str]) -> dict[str, float]:
    times, rss = [], []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - start) * 1000)
        rss.append(max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)
    return {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1),
            "max_ms": round(max(times), 1), "peak_rss_mib": round(max(rss), 1), "runs": RUNS}


def main() -> None:
    airpods = [str(Path(PYTHON).with_name("airpods"))]   # the console script users run
    floor = measure([PYTHON, "-c", "pass"])
    results = {"python -c pass": floor}
    for name, args in (("airpods --help", ["--help"]), ("airpods --version", ["--version"])):
        results[name] = measure(airpods + args)
    helped = results["airpods --help"]
    summary = {
        "measure": "cold start",
        "results": results,
        "target_help_median_ms": 150,
        "target_peak_rss_mib": 40,
        "pass": helped["median_ms"] <= 150 and helped["peak_rss_mib"] <= 40,
        "over_floor_ms": round(helped["median_ms"] - floor["median_ms"], 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
