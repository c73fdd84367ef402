"""Host folders written relative to the config file: `./data` and `../models` are resolved
against the folder of the file that says them (as Compose does), `~/x` against the home
directory. Runs after templates, before validation; the result is always an absolute path."""

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
        out_services[name] = service
    return {**data, "services": out_services}


def _resolve(volume: Any, folder: Path) -> Any:
    source = volume.get("source") if isinstance(volume, dict) else None
    if not isinstance(source, str):
        return volume
    if is_relative_folder(source):
        return {**volume, "source": os.path.normpath(folder / source)}
    if source == "~" or source.startswith("~/"):
        return {**volume, "source": os.path.normpath(Path(source).expanduser())}
    return volume
