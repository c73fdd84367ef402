"""What `config show` prints: the merged or resolved tables, plus each service's command."""

from __future__ import annotations

import shlex
from typing import Any

from airpods.config.loader import LoadedConfig


def show_config(loaded: LoadedConfig, *, resolved: bool) -> dict[str, Any]:
    if not resolved:
        return dict(loaded.merged)
    from airpods.gpu import detect_host_gpu
    from airpods.secrets import existing_api_key, key_id
    from airpods.stack.build import build_service

    data: dict[str, Any] = dict(loaded.resolved)
    gpu = detect_host_gpu()
    rendered: dict[str, Any] = {}
    # Showing the config makes no key: the rendered flags are the same before `start` makes one.
    secret = existing_api_key()
    kid = (key_id(secret) if secret else "not-made-yet") if loaded.config.runtime.api_key else None
    for name in loaded.config.services:
        spec, _ = build_service(loaded.config, name, gpu, kid, loaded.config.enabled_services())
        args = [*spec.args, *spec.key_args]
        argv = [*(spec.entrypoint or ()), spec.image, *args]
        rendered[name] = {"image": spec.image, "argv": args, "display": shlex.join(argv)}
    data["rendered"] = rendered
    return data
