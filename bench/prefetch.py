#!/usr/bin/env python3
"""`airpods start --pre-fetch` of every default image vs the slowest single `podman pull` of
one of them (pulls run concurrently, so the whole should cost about the slowest one).
Target: <= 1.2x. Prints JSON entries."""

from __future__ import annotations

import json
import subprocess

from common import AIRPODS, RUNS, entry, remove_pods, stats, timed_ms


def images() -> list[str]:
    plan = json.loads(subprocess.run([AIRPODS, "start", "--dry-run", "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    argvs = [s["argv"] for s in plan["steps"] if s["kind"] in ("pull", "container")]
    return sorted({a[-1] if a[1] == "pull" else next(x for x in a if x.count("/") >= 2 and ":" in x) for a in argvs})


def drop(names: list[str]) -> None:
    subprocess.run(["podman", "rmi", "--force", *names], capture_output=True)


def run() -> list[dict]:
    remove_pods()
    names = images()
    whole, slowest = [], []
    for _ in range(RUNS):
        singles = []
        for name in names:
            drop([name])
            singles.append(timed_ms(["podman", "pull", "--quiet", name]))
        slowest.append(max(singles))
        drop(names)
        whole.append(timed_ms([AIRPODS, "start", "--pre-fetch"]))
    a, b = stats(whole), stats(slowest)
    return [entry("start --pre-fetch of all default images vs the slowest single pull", "ms", a, b, "<= 1.2x",
                  a["median"] <= 1.2 * b["median"], note=f"{len(names)} images from the loopback registry mirror")]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
