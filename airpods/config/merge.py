"""Merging raw config tables: defaults ⊕ user file, and `extends` between services."""

from __future__ import annotations

import copy
from typing import Any

from airpods.errors import ConfigError

# Identity fields name one pod; an extending service gets its own (defaults: its name).
NOT_INHERITED = ("enabled", "extends", "pod", "container", "network_aliases")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; every other value (arrays included) replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_extends(services: dict[str, Any]) -> dict[str, Any]:
    """Each service with `extends = "base"` inherits every field of base but its identity."""
    done: dict[str, dict[str, Any]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in done:
            return done[name]
        table = services[name]
        parent = table.get("extends") if isinstance(table, dict) else None
        if parent is None:
            done[name] = table
            return table
        key = f"services.{name}.extends"
        if not isinstance(parent, str):
            raise ConfigError("expected the name of another service (a string)", key=key)
        if parent not in services:
            known = ", ".join(sorted(services))
            raise ConfigError(f"unknown service '{parent}' (services are: {known})", key=key)
        if parent in chain or parent == name:
            raise ConfigError("extends cycle: " + " -> ".join(chain + (name, parent)), key=key)
        base = {k: v for k, v in resolve(parent, chain + (name,)).items() if k not in NOT_INHERITED}
        done[name] = deep_merge(base, table)
        return done[name]

    return {name: resolve(name, ()) for name in services}
