#!/usr/bin/env python3
"""`airpods start --pre-fetch` of every default image vs the slowest single `podman pull` of
one of them (pulls run concurrently, so the whole should cost about the slowest one; target
<= 1.2x), and vs the same pulls started at once by a shell (airpods' own overhead; target
<= 1.2x). On the loopback rig a pull is bound by local CPU and podman's storage lock, not by the
network, so concurrency cannot hide it there: the shell line shows that floor. Prints JSON."""

from __future__ import annotations

import json
import subprocess

from common import AIRPODS, RUNS, entry, remove_pods, stats, timed_ms


def images() -> list[str]:
    """The images of the enabled services, as `config show --resolved` renders them."""
    shown = json.loads(subprocess.run([AIRPODS, "config", "show", "--resolved", "--json"], check=True,
                                      capture_output=True, text=True).stdout)
    return sorted({shown["rendered"][name]["image"] for name, svc in shown["services"].items()
                   if svc.get("enabled", True)})


def drop(names: list[str]) -> None:
    subprocess.run(["podman", "rmi", "--force", *names], capture_output=True)


def run() -> list[dict]:
    remove_pods()
    names = images()
    together = "for i in " + " ".join(names) + "; do podman pull --quiet $i >/dev/null & done; wait"
    whole, slowest, shell = [], [], []
    for _ in range(RUNS):
        singles = []
        for name in names:
            drop([name])
            singles.append(timed_ms(["podman", "pull", "--quiet", name]))
        slowest.append(max(singles))
        drop(names)
        shell.append(timed_ms(["bash", "-c", together]))
        drop(names)
        whole.append(timed_ms([AIRPODS, "start", "--pre-fetch"]))
    a, b, c = stats(whole), stats(slowest), stats(shell)
    note = f"{len(names)} images from the loopback registry mirror"
    return [entry("start --pre-fetch of all default images vs the slowest single pull", "ms", a, b, "<= 1.2x",
                  a["median"] <= 1.2 * b["median"], note=note),
            entry("start --pre-fetch vs the same pulls started at once by a shell", "ms", a, c, "<= 1.2x",
                  a["median"] <= 1.2 * c["median"], note=note)]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
