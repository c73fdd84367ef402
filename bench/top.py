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
import urllib.request
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
    from airpods.top import Top
    from airpods.usecases.common import stack_in_use, stack_key
    from tests.integration.conftest import put_in_volume
    from tests.rig.tiny_gguf import write_tiny_model

    folder = Path(tempfile.mkdtemp(prefix="airpods-top-"))
    config = folder / "top.toml"
    config.write_text(CONFIG)
    remove_pods()
    put_in_volume("airpods_llamacpp_models", write_tiny_model(folder / "tiny.gguf"))
    subprocess.run([AIRPODS, "--config", str(config), "start"], check=True, capture_output=True)
    options = Options(config=config)
    engine = engine_of(options)
    stack = stack_in_use(stack_source(options, None), engine.pods())
    containers = [s.container for s in stack.services]
    assert len(containers) == 5, containers
    key = stack_key(stack)
    for spec in stack.services:  # a model loaded in each router: what a refresh samples
        if spec.kind == "llamacpp" and spec.url:
            request = urllib.request.Request(
                f"{spec.url}/v1/completions",
                data=json.dumps({"model": "tiny", "prompt": "hi", "max_tokens": 4}).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=120).read()
    watcher = Top(stack, engine, key)
    watcher.refresh()  # warm: imports, the first /metrics
    bare, refresh = [], []
    for _ in range(max(RUNS, 5)):
        began = time.perf_counter()
        subprocess.run(["podman", "stats", "--no-stream", *containers], check=True, capture_output=True)
        bare.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        view = watcher.refresh()
        refresh.append((time.perf_counter() - began) * 1000)
    assert not view.problems and len(view.servers) == 2, (view.problems, view.servers)
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
