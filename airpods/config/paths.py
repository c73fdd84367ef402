"""Host paths written relative to the config file: volume folders (`./data`, `../models`) and
local model files (`models.NAME.source = "./tiny.gguf"`) are resolved against the folder of the
file that says them (as Compose does), `~/x` against the home directory. Runs after templates,
before validation; the result is always an absolute path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

RELATIVE_PREFIXES = ("./", "../")


def is_relative_folder(source: str) -> bool:
    return source in (".", "..") or source.startswith(RELATIVE_PREFIXES)


def resolve_host_folders(data: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """A copy of `data` whose volume sources are absolute where they named a host folder.
    `base` is the config file's folder (None for the built-in defaults: the working directory
    then, though the defaults name no relative folder)."""
    services = data.get("services")
    if not isinstance(services, dict):
        return data
    folder = base or Path.cwd()
    out_services: dict[str, Any] = {}
    for name, service in services.items():
        volumes = service.get("volumes") if isinstance(service, dict) else None
        if isinstance(volumes, list):
            service = {**service, "volumes": [_resolve(v, folder) for v in volumes]}
        models = service.get("models") if isinstance(service, dict) else None
        if isinstance(models, dict):
            service = {**service, "models": {n: _resolve(m, folder) for n, m in models.items()}}
        out_services[name] = service
    return {**data, "services": out_services}


def _resolve(table: Any, folder: Path) -> Any:
    """`table` with its `source` made absolute when it names a relative or ~ host path."""
    source = table.get("source") if isinstance(table, dict) else None
    if not isinstance(source, str):
        return table
    if is_relative_folder(source):
        return {**table, "source": os.path.normpath(folder / source)}
    if source == "~" or source.startswith("~/"):
        return {**table, "source": os.path.normpath(Path(source).expanduser())}
    return table
