"""What `config show` prints: the merged or resolved tables, plus each service's command."""

from __future__ import annotations

import shlex
from typing import Any

from airpods.config.loader import LoadedConfig
from airpods.errors import ConfigError


def masked(data: dict[str, Any]) -> dict[str, Any]:
    """The config as shown: a secret-like env value of any service masked (redact.py)."""
    from airpods.redact import redact_env

    shown = dict(data)
    services = shown.get("services")
    if isinstance(services, dict):
        shown["services"] = {
            name: {**svc, "env": {k: redact_env(k, str(v)) for k, v in svc["env"].items()}}
            if isinstance(svc, dict) and isinstance(svc.get("env"), dict)
            else svc
            for name, svc in services.items()
        }
    return shown


def show_config(loaded: LoadedConfig, *, resolved: bool, engine: str = "podman") -> dict[str, Any]:
    """The merged config (with `resolved`: after templates, with each service's rendered
    command), secret-like env values masked."""
    if not resolved:
        return masked(dict(loaded.merged))
    from airpods.gpu import detect_host_gpu
    from airpods.redact import redact_argv
    from airpods.secrets import key_id, key_source, read_key
    from airpods.server_flags import known_tables
    from airpods.stack.build import build_service
    from airpods.stack.presets import preset_ini

    data: dict[str, Any] = masked(dict(loaded.resolved))
    gpu = detect_host_gpu(engine)
    tables = known_tables()
    rendered: dict[str, Any] = {}
    # Showing the config makes no key: the rendered flags are the same before `start` makes one.
    source = key_source(loaded.config.runtime.api_key)
    secret = read_key(source, create=False)
    kid = (key_id(secret, create=False) if secret else "not-made-yet") if source != "none" else None
    for name in loaded.config.services:
        try:
            spec, _ = build_service(
                loaded.config, name, gpu, kid, loaded.config.enabled_services(), tables, user_wrote=loaded.user_wrote
            )
        except ConfigError as exc:
            raise exc.located(loaded.source_of(exc.key)) from None
        args = redact_argv([*spec.args, *spec.key_args])
        argv = [*(spec.entrypoint or ()), spec.image, *args]
        rendered[name] = {"image": spec.image, "argv": args, "display": shlex.join(argv)}
        if spec.presets:
            rendered[name]["preset_file"] = preset_ini(spec.presets)
    data["rendered"] = rendered
    return data
