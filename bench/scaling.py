#!/usr/bin/env python3
"""How `airpods start` and `airpods status` grow with 1, 4 and 8 llama.cpp instances (router
mode, images present, from no pods). Targets: status(8) <= 1.5x status(1) (near flat: one
podman ps, concurrent probes); start(8) <= 4x start(1) (instances come up together, not one by
one, which would be ~8x). Prints JSON entries."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import AIRPODS, RUNS, entry, remove_pods, stats, timed_ms

COUNTS = (1, 4, 8)


def config_for(count: int, folder: Path) -> Path:
    lines = ["[services.ollama]\nenabled = false\n[services.open-webui]\nenabled = false\n"]
    for i in range(1, count):
        lines.append(
            f'[services.llama-{i}]\nextends = "llamacpp"\nports = [{{ host = {8100 + i}, container = 8080 }}]\n'
        )
    path = folder / f"scale-{count}.toml"
    path.write_text("\n".join(lines))
    return path


def run() -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="airpods-scale-"))
    starts: dict[int, dict] = {}
    statuses: dict[int, dict] = {}
    for count in COUNTS:
        config = str(config_for(count, folder))
        start_ms, status_ms = [], []
        for _ in range(RUNS):
            remove_pods()
            start_ms.append(timed_ms([AIRPODS, "--config", config, "start"]))
            status_ms.append(timed_ms([AIRPODS, "--config", config, "status"]))
        starts[count], statuses[count] = stats(start_ms), stats(status_ms)
    remove_pods()
    detail = lambda table: ", ".join(f"{n}: {table[n]['median']:.0f} ms" for n in COUNTS)  # noqa: E731
    return [
        entry(
            "scaling: status with 8 llama.cpp instances vs 1",
            "ms",
            statuses[8],
            statuses[1],
            "<= 1.5x",
            statuses[8]["median"] <= 1.5 * statuses[1]["median"],
            note=detail(statuses),
        ),
        entry(
            "scaling: start with 8 llama.cpp instances vs 1",
            "ms",
            starts[8],
            starts[1],
            "<= 4x (one by one ~8x)",
            starts[8]["median"] <= 4 * starts[1]["median"],
            note=detail(starts),
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
