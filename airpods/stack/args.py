"""command_args (a TOML table) → an argv list of flags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flag_name(key: str) -> str:
    """ctx_size → --ctx-size; keys already starting with '-' pass through verbatim."""
    return key if key.startswith("-") else "--" + key.replace("_", "-")


def render_command_args(args: Mapping[str, Any]) -> list[str]:
    """In TOML order: true → bare flag, false → omitted, a list → the flag once per item,
    anything else → flag and value. Values were validated and templated by the config layer."""
    argv: list[str] = []
    for key, value in args.items():
        flag = flag_name(key)
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def has_flag(args: Mapping[str, Any], *names: str) -> bool:
    """Whether command_args sets any of the given flags (by key or rendered flag name)."""
    wanted = {flag_name(n) for n in names}
    return any(flag_name(key) in wanted for key in args)
