"""A cache of the derived Stack, so read-mostly commands (status, logs, stop) skip loading
pydantic and validating. Keyed by everything the stack is derived from: airpods' code (version
and a fingerprint of the installed modules, so `git pull && ./scripts/install` never serves a
stack built by the old code), the defaults, the user file's path and bytes, the host GPU, the
services asked for and the ones found running. A changed file misses the cache and is fully
validated (its errors reported as usual). The file keeps the few most recent stacks: commands
that ask for different services do not evict each other."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from airpods import __version__
from airpods.config.files import default_toml_text
from airpods.gpu import GpuCard, GpuRequest, HostGpu
from airpods.stack.model import (
    HealthCheck,
    Mount,
    Preset,
    Publish,
    SecretDef,
    SecretUse,
    ServiceSpec,
    Settings,
    Stack,
)

KEEP_ENTRIES = 8


def code_fingerprint() -> str:
    """Path, size and modification time of every module of the installed airpods package: a
    reinstall or an edited checkout changes it. (Stat calls only: ~60 files, well under 1 ms.)"""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def cache_key(
    user_file: Path | None, gpu: HostGpu, names: Sequence[str], flag_tables: str, present: Sequence[str] = ()
) -> str:
    """`flag_tables`: the stamp of the learned llama-server flag tables (server_flags.store_stamp)."""
    digest = hashlib.sha256()
    # Lists as JSON: joined strings would make [""] (a typo, an empty shell variable) the same
    # key as [] (every service).
    for part in (
        __version__,
        code_fingerprint(),
        default_toml_text(),
        str(user_file),
        repr(gpu),
        json.dumps(list(names)),
        flag_tables,
        json.dumps(sorted(present)),
    ):
        digest.update(part.encode() + b"\0")
    if user_file is not None:
        digest.update(user_file.read_bytes())
    return digest.hexdigest()


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def stack_from_json(data: dict[str, Any]) -> Stack:
    services = []
    for raw in data["services"]:
        fields = {k: _tuples(v) for k, v in raw.items()}
        fields["publish"] = tuple(Publish(*p) for p in fields["publish"])
        fields["mounts"] = tuple(Mount(*m) for m in fields["mounts"])
        fields["secrets"] = tuple(SecretUse(**u) for u in raw["secrets"])
        fields["gpu_request"] = (
            GpuRequest(request["vendor"], tuple(request["devices"]), request["keep_groups"], tuple(request["groups"]))
            if (request := raw["gpu_request"])
            else None
        )
        health = raw["health"]
        fields["health"] = HealthCheck(health["path"], _tuples(health["expected"]), health["timeout_s"])
        fields["presets"] = tuple(
            Preset(p["name"], tuple((s, v) for s, v in p["flags"]), p["load_on_startup"], p["source"])
            for p in raw["presets"]
        )
        services.append(ServiceSpec(**fields))
    gpu = data["gpu"]
    return Stack(
        network=data["network"],
        gpu=HostGpu(
            gpu["vendor"],
            gpu["cdi"],
            tuple(gpu["nodes"]),
            gpu["driver"],
            gpu["problem"],
            tuple(gpu["cdi_names"]),
            tuple(GpuCard(**card) for card in gpu["cards"]),
            tuple(gpu["groups"]),
            gpu["runtime"],
            gpu["handover"],
            tuple(gpu.get("models", ())),
        ),
        services=tuple(services),
        warnings=tuple(data["warnings"]),
        settings=Settings(**data["settings"]),
        secrets=tuple(SecretDef(**d) for d in data["secrets"]),
        project=data["project"],
        configured=tuple(data["configured"]),
        enabled=tuple(data["enabled"]),
        volume_sizes=tuple((v, size) for v, size in data["volume_sizes"]),
        key_source=data["key_source"],
        key_id=data["key_id"],
        secret_ids=tuple((source, sid) for source, sid in data["secret_ids"]),
    )


def _to_json(stack: Stack) -> dict[str, Any]:
    data = asdict(stack)
    for raw in data["services"]:
        raw["publish"] = [[p["host_ip"], p["host"], p["container"]] for p in raw["publish"]]
        raw["mounts"] = [[m["source"], m["target"], m["mode"], m["named"], m["folders"]] for m in raw["mounts"]]
    return data


def cached_stack(
    path: Path,
    key: str,
    build: Callable[[], Stack],
    still_holds: Callable[[Stack], bool] = lambda stack: True,
    save: bool = True,
) -> Stack:
    """The stack stored under `key` at `path` if `still_holds` says so, else `build()` (then,
    with `save`, stored privately beside the most recent others)."""
    entries: list[dict[str, Any]] = []
    try:
        stored = json.loads(path.read_text())
        entries = [e for e in stored.get("entries", []) if isinstance(e, dict)]
        for entry in entries:
            if entry.get("key") == key:
                stack = stack_from_json(entry["stack"])
                if still_holds(stack):
                    return stack
        entries = [e for e in entries if e.get("key") != key]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        entries = []
    stack = build()
    if not save:
        return stack
    import tempfile

    entries = [{"key": key, "stack": _to_json(stack)}, *entries][:KEEP_ENTRIES]
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stack-cache.")  # unique: commands may race
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps({"entries": entries}))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed
    return stack
