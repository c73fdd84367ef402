"""Finding and reading the config files. No pydantic here: cheap enough for every command."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airpods.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("default.toml")
DEFAULTS_LABEL = "built-in defaults (airpods/config/default.toml)"


def default_toml_text() -> str:
    return DEFAULTS_FILE.read_text(encoding="utf-8")


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where `config init` writes and where the file is looked for last: XDG config home."""
    env = os.environ if env is None else env
    if not (base := env.get("XDG_CONFIG_HOME") or ""):
        from airpods.state import home

        base = os.path.join(env.get("HOME") or home(), ".config")
    return Path(base) / "airpods" / "config.toml"


def locate_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path | None:
    """First hit wins: --config, $AIRPODS_CONFIG, XDG. A named file that is missing is an error."""
    env = os.environ if env is None else env
    for origin, value in (("--config", explicit), ("AIRPODS_CONFIG", env.get("AIRPODS_CONFIG"))):
        if value:
            path = Path(value).expanduser()
            if path.is_dir():
                raise ConfigError(
                    f"is a folder, not a config file (named by {origin})",
                    file=str(path),
                    hint=f"name a TOML file, e.g. {path / 'config.toml'}",
                )
            if not path.is_file():
                raise ConfigError(
                    f"file not found (named by {origin})",
                    file=str(path),
                    hint=f"create it with `airpods -c {path} config init`",
                )
            return path
    path = user_config_path(env)
    return path if path.is_file() else None


# The deepest nesting of tables and arrays a config may have: airpods' own keys go 6 deep
# (services.X.models.M.key, a port table in an array); tomllib parses nesting by recursion, and
# a file of 5000 "[" ended in RecursionError.
MAX_DEPTH = 32


def parse_toml(text: str, label: str) -> dict[str, Any]:
    """The TOML document `text` (from `label`). Raises ConfigError for a syntax error (with its
    line) and for tables or arrays nested deeper than MAX_DEPTH (naming the key)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(found.group(1)) if found else None
        detail = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise ConfigError(f"invalid TOML: {detail}", file=label, line=line) from None
    except RecursionError:
        raise ConfigError(f"tables or arrays nested more than {MAX_DEPTH} deep", file=label) from None
    check_depth(data, label)
    return data


def check_depth(data: dict[str, Any], label: str) -> None:
    """Raise ConfigError naming the first key nested deeper than MAX_DEPTH (walked without
    recursion)."""
    from airpods.config.keys import key_path

    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        path, node = stack.pop()
        if len(path) > MAX_DEPTH:
            shown = key_path(path[:MAX_DEPTH]) + ".…"
            raise ConfigError(f"tables or arrays nested more than {MAX_DEPTH} deep", file=label, key=shown)
        if isinstance(node, dict):
            stack += [((*path, k), v) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [((*path, i), v) for i, v in enumerate(node)]


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("cannot read the file: not UTF-8 text", file=str(path)) from None
    return parse_toml(text, str(path))
