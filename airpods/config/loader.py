"""Load the configuration in named phases: locate → read → merge → extends → templates → host
folders → validate.

Every failure is one ConfigError naming the file, the key path and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from airpods.config.files import DEFAULTS_LABEL, default_toml_text, locate_config, parse_toml, read_toml
from airpods.config.keys import key_parts
from airpods.config.merge import apply_extends, deep_merge
from airpods.config.paths import resolve_host_folders
from airpods.config.schema import Config
from airpods.config.templates import resolve_templates
from airpods.config.validation import check_stack_rules, config_error_from_validation
from airpods.errors import ConfigError


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path | None  # the user file, None when running on the defaults alone
    merged: dict[str, Any]  # defaults ⊕ user file, templates not yet resolved
    resolved: dict[str, Any]  # after extends and templates: what was validated
    user: dict[str, Any] = field(default_factory=dict)  # the user file as read

    def source_of(self, key: str | None) -> str:
        """Where a key's error is reported: see `source_of`."""
        return source_of(self.user, self.path, key)

    def user_wrote(self, key: str) -> bool:
        """Whether the user's file has this key, on the service or on one it extends (not a
        default's)."""
        parts = key_parts(key)
        seen: set[str] = set()
        while True:
            node: Any = self.user
            for part in parts:
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
            else:
                return True
            if len(parts) < 2 or parts[0] != "services" or parts[1] in seen:
                return False
            seen.add(parts[1])
            parent = (self.merged.get("services") or {}).get(parts[1], {}).get("extends")
            if not isinstance(parent, str):
                return False
            parts = ["services", parent, *parts[2:]]


def source_of(user: dict[str, Any], path: Path | None, key: str | None) -> str:
    """The user file when the key's section (e.g. services.NAME) is in it, else the defaults."""
    node: Any = user
    for part in key_parts(key or "")[:2]:
        if path is None or not isinstance(node, dict) or part not in node:
            return DEFAULTS_LABEL
        node = node[part]
    return str(path)


def load_config(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    path = locate_config(explicit, env)
    user = read_toml(path) if path else {}
    return build_config(user, path)


def check_project(merged: dict[str, Any]) -> None:
    """runtime.project names objects through templates (network, volumes): a bad one is reported
    at its own key, before it shows up inside other names."""
    from airpods.config.schema import check_dns_label

    project = (merged.get("runtime") or {}).get("project") if isinstance(merged.get("runtime"), dict) else None
    if project is None:
        return
    try:
        check_dns_label(project if isinstance(project, str) else repr(project))
    except ValueError as exc:
        raise ConfigError(str(exc), key="runtime.project") from None


def build_config(user: dict[str, Any], path: Path | None = None) -> LoadedConfig:
    """The pure part of loading: defaults ⊕ user → extends → templates → validate → rules."""
    defaults = parse_toml(default_toml_text(), DEFAULTS_LABEL)
    merged = deep_merge(defaults, user)

    try:
        check_project(merged)
        resolved = dict(merged)
        services = merged.get("services", {})
        if isinstance(services, dict) and all(isinstance(v, dict) for v in services.values()):
            resolved["services"] = apply_extends(services)
        resolved = resolve_host_folders(resolve_templates(resolved), path.absolute().parent if path else None)
        try:
            config = Config.model_validate(resolved)
        except ValidationError as exc:
            raise config_error_from_validation(exc, resolved) from None
        check_stack_rules(config, user_set=lambda key: source_of(user, path, key) != DEFAULTS_LABEL)
    except ConfigError as exc:
        raise exc.located(source_of(user, path, exc.key)) from None
    return LoadedConfig(config=config, path=path, merged=merged, resolved=resolved, user=user)
