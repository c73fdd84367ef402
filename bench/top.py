#!/usr/bin/env python3
"""One refresh of `airpods top` on a 5-service stack (ollama, open-webui, comfyui and two
llama.cpp instances, every one running) against one bare `podman stats --no-stream` of the same
containers, measured in the same run. Target: refresh <= bare + 150 ms (a refresh is one podman
ps, one podman stats and /metrics + /slots of each llama.cpp instance). Prints JSON entries."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from common import AIRPODS, RUNS, entry, remove_pods, stats

CONFIG = """
[services.comfyui]
enabled = true
[services.llama-two]
extends = "llamacpp"
ports = [{ host = 8083, container = 8080 }]
"""


def run() -> list[dict]:
    from airpods.cli.context import Options, stack_source
    from airpods.cli.context import engine as engine_of
    from airpods.lifecycle import stack_in_use, stack_key
    from airpods.top import Top

    folder = Path(tempfile.mkdtemp(prefix="airpods-top-"))
    config = folder / "top.toml"
    config.write_text(CONFIG)
    remove_pods()
    subprocess.run([AIRPODS, "--config", str(config), "start"], check=True, capture_output=True)
    options = Options(config=config)
    engine = engine_of(options)
    stack = stack_in_use(stack_source(options, None), engine.pods())
    containers = [s.container for s in stack.services]
    assert len(containers) == 5, containers
    watcher = Top(stack, engine, stack_key(stack))
    watcher.refresh()  # warm: imports, the first /metrics
    bare, refresh = [], []
    for _ in range(max(RUNS, 5)):
        began = time.perf_counter()
        subprocess.run(["podman", "stats", "--no-stream", *containers], check=True, capture_output=True)
        bare.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        view = watcher.refresh()
        refresh.append((time.perf_counter() - began) * 1000)
    assert not view.problems, view.problems
    mine, base = stats(refresh), stats(bare)
    passed = mine["median"] <= base["median"] + 150
    remove_pods()
    return [
        entry(
            "top: one refresh of a 5-service stack vs bare podman stats --no-stream",
            "ms",
            mine,
            base,
            "median <= bare + 150 ms",
            passed,
            note=f"{len(view.servers)} llama.cpp samples per refresh",
        )
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
