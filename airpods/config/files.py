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
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or Path.home(), ".config")
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


def parse_toml(text: str, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(found.group(1)) if found else None
        detail = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise ConfigError(f"invalid TOML: {detail}", file=label, line=line) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("cannot read the file: not UTF-8 text", file=str(path)) from None
    return parse_toml(text, str(path))
