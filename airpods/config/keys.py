"""TOML key paths as errors name them, and the llama-server flags airpods sets itself (no
pydantic here: the stack's derivation and the code that runs use them)."""

from __future__ import annotations

import re
from typing import Any

from airpods.errors import ConfigError

BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")


def key_path(parts: tuple[Any, ...]) -> str:
    """A TOML dotted key: parts that are not bare keys are quoted as TOML basic strings
    (services."llama.fast", services."llama2\\n": a control character shows as its escape)."""
    import json

    return ".".join(str(p) if BARE_KEY_RE.match(str(p)) else json.dumps(str(p), ensure_ascii=False) for p in parts)


def key_parts(key: str) -> list[str]:
    """The parts of a dotted key written by `key_path`."""
    return [quoted or bare for quoted, bare in re.findall(r'"([^"]*)"|([^.]+)', key)]


# Flags airpods sets on llama.cpp servers itself, and where their value belongs instead.
KEY_HINT = '[runtime] api_key = "env:VARIABLE" or "file:/path/to/key" gives every service your own key'
OWNED_FLAGS = {
    "--host": "it listens on every address inside the pod (0.0.0.0 or ::, the only ones reachable there); "
    "runtime.bind_address says where the host publishes",
    "--port": "the server listens on the container port of the first `ports` entry",
    "--api-key": "it hands the stack's API key over as a podman secret, never on a command line; " + KEY_HINT,
    "--api-key-file": "it mounts the stack's API key from a podman secret; " + KEY_HINT,
}


ALL_INTERFACES = ("0.0.0.0", "::", "[::]")


def agrees_with_airpods(flag: str, value: Any, listens_on: int | None) -> bool:
    """A host or port the user wrote that says what airpods sets anyway (every interface; the
    container port of `ports`): accepted, and rendered once, by airpods."""
    if flag == "--host":
        return str(value) in ALL_INTERFACES
    if flag == "--port" and listens_on is not None:
        return str(value).isdigit() and int(str(value)) == listens_on
    return False


def owned_flag_error(flag: str, key: str, service: str) -> ConfigError | None:
    """The error for a flag airpods sets itself (`flag` a long spelling), else None."""
    if flag not in OWNED_FLAGS:
        return None
    return ConfigError(
        f"airpods sets {flag} itself: {OWNED_FLAGS[flag]}",
        key=key,
        hint=f"remove it; change services.{service}.ports instead" if flag == "--port" else "remove it",
    )
