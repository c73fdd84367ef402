#!/usr/bin/env python3
"""`airpods start --pre-fetch` of every default image vs the slowest single `podman pull` of
one of them (pulls run concurrently, so the whole should cost about the slowest one; target
<= 1.2x), and vs the same pulls started at once by a shell (airpods' own overhead; target
<= 1.2x). On the bare loopback rig a pull is bound by local CPU and podman's storage lock, not by
the network, so concurrency cannot hide it there (the shell line shows that floor); the third
entry pulls through a bandwidth-limited relay, as from a real registry. Prints JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from common import AIRPODS, RUNS, entry, remove_pods, stats, timed_ms
from throttle import Throttle

RATE = int(os.environ.get("BENCH_PULL_RATE", str(4 * 1024 * 1024)))   # bytes/s per connection


def images() -> list[str]:
    """The images of the enabled services, as `config show --resolved` renders them."""
    shown = json.loads(subprocess.run([AIRPODS, "config", "show", "--resolved", "--json"], check=True,
                                      capture_output=True, text=True).stdout)
    return sorted({shown["rendered"][name]["image"] for name, svc in shown["services"].items()
                   if svc.get("enabled", True)})


def drop(names: list[str]) -> None:
    subprocess.run(["podman", "rmi", "--force", *names], capture_output=True)


def throttled_env() -> dict[str, str]:
    """An environment whose registries.conf mirrors through a bandwidth-limited relay."""
    registry = os.environ["AIRPODS_RIG_REGISTRY"]
    relay = Throttle(int(registry.rsplit(":", 1)[1]), RATE)
    conf = Path(os.environ["CONTAINERS_REGISTRIES_CONF"]).read_text()
    conf = re.sub(r'location = "127\.0\.0\.1:\d+"', f'location = "127.0.0.1:{relay.port}"', conf)
    path = Path(tempfile.mkdtemp()) / "registries.conf"
    path.write_text(conf)
    return {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(path)}


def measure(names: list[str], env: dict[str, str] | None) -> tuple[dict, dict, dict]:
    together = "for i in " + " ".join(names) + "; do podman pull --quiet $i >/dev/null & done; wait"
    whole, slowest, shell = [], [], []
    for _ in range(RUNS):
        singles = []
        for name in names:
            drop([name])
            singles.append(timed_ms(["podman", "pull", "--quiet", name], env))
        slowest.append(max(singles))
        drop(names)
        shell.append(timed_ms(["bash", "-c", together], env))
        drop(names)
        whole.append(timed_ms([AIRPODS, "start", "--pre-fetch"], env))
    return stats(whole), stats(slowest), stats(shell)


def run() -> list[dict]:
    remove_pods()
    names = images()
    a, b, c = measure(names, None)
    note = f"{len(names)} images from the loopback registry mirror (CPU/storage bound)"
    results = [entry("start --pre-fetch of all default images vs the slowest single pull", "ms", a, b, "<= 1.2x",
                     a["median"] <= 1.2 * b["median"], note=note),
               entry("start --pre-fetch vs the same pulls started at once by a shell", "ms", a, c, "<= 1.2x",
                     a["median"] <= 1.2 * c["median"], note=note)]
    a, b, c = measure(names, throttled_env())
    note = f"{len(names)} images through a relay limited to {RATE / 2**20:.0f} MiB/s per connection (network bound)"
    results.append(entry("start --pre-fetch vs the slowest single pull, network-bound mirror", "ms", a, b, "<= 1.2x",
                         a["median"] <= 1.2 * b["median"], note=note))
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
