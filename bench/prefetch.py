#!/usr/bin/env python3
"""`airpods start --pre-fetch` of every default image vs the slowest single `podman pull` of one
of them. Pulls run concurrently so that the whole costs about the slowest one (target <= 1.2x):
that is what concurrency buys where pulls wait on the network, as from a real registry, so the
target entry pulls through a relay that limits each connection's bandwidth.

The bare loopback registry is reported too, as context without a target: there a pull is bound by
local CPU and, above all, by Podman's storage, which applies layers one at a time (Podman 4.3:
each layer's `storage-untar` starts only after the previous one, across all pulls), so no client,
not even a shell starting the pulls at once, gets near the slowest single pull; the floor is
about the sum of the layer applications. Its entries show airpods against that shell and against
pulling one image after the other. Prints JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from common import AIRPODS, RUNS, entry, remove_pods, stats, timed_ms
from throttle import Throttle

RATE = int(os.environ.get("BENCH_PULL_RATE", str(4 * 1024 * 1024)))  # bytes/s per connection


def images() -> list[str]:
    """The images of the enabled services, as `config show --resolved` renders them."""
    shown = json.loads(
        subprocess.run(
            [AIRPODS, "config", "show", "--resolved", "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    return sorted(
        {shown["rendered"][name]["image"] for name, svc in shown["services"].items() if svc.get("enabled", True)}
    )


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


def measure(names: list[str], env: dict[str, str] | None) -> dict[str, dict]:
    """Per round: each image alone, a shell pulling them all at once, then airpods; medians."""
    together = "for i in " + " ".join(names) + "; do podman pull --quiet $i >/dev/null & done; wait"
    runs: dict[str, list[float]] = {"airpods": [], "slowest": [], "serial": [], "shell": []}
    for _ in range(RUNS):
        singles = []
        for name in names:
            drop([name])
            singles.append(timed_ms(["podman", "pull", "--quiet", name], env))
        runs["slowest"].append(max(singles))
        runs["serial"].append(sum(singles))
        drop(names)
        runs["shell"].append(timed_ms(["bash", "-c", together], env))
        drop(names)
        runs["airpods"].append(timed_ms([AIRPODS, "start", "--pre-fetch"], env))
    return {key: stats(values) for key, values in runs.items()}


def run() -> list[dict]:
    remove_pods()
    names = images()
    net = measure(names, throttled_env())
    loop = measure(names, None)
    what = f"{len(names)} images"
    return [
        entry(
            "start --pre-fetch vs the slowest single pull (network-bound mirror)",
            "ms",
            net["airpods"],
            net["slowest"],
            "<= 1.2x",
            net["airpods"]["median"] <= 1.2 * net["slowest"]["median"],
            note=f"{what} through a relay limiting each connection to {RATE / 2**20:.0f} MiB/s, as a real "
            f"registry is network-bound; one after the other: {net['serial']['median']} ms",
        ),
        entry(
            "start --pre-fetch vs the slowest single pull (bare loopback registry)",
            "ms",
            loop["airpods"],
            loop["slowest"],
            "none: context",
            None,
            note=f"{what}; storage applies layers one at a time, so the floor is their sum: pulled one after "
            f"the other {loop['serial']['median']} ms, a shell starting them at once "
            f"{loop['shell']['median']} ms",
        ),
        entry(
            "start --pre-fetch vs a shell starting the same pulls at once (bare loopback registry)",
            "ms",
            loop["airpods"],
            loop["shell"],
            "none: context",
            None,
            note="the difference is airpods' own work: CLI start, one `podman images` before and one after",
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
