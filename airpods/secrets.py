"""The stack's API key: generated once, kept 0600 in the state directory, never printed unless
asked for (`airpods env`); or the user's own, read from an environment variable or a file that
`runtime.api_key` names. Podman secrets carry it into containers (see stack/wiring.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from airpods.errors import ConfigError
from airpods.state import state_dir

KEY_FILE = "api-key"


def api_key_path() -> Path:
    return state_dir() / KEY_FILE


def existing_api_key() -> str | None:
    """The key if one was made, else None (reading never creates it)."""
    try:
        return api_key_path().read_text().strip() or None
    except FileNotFoundError:
        return None


def api_key() -> str:
    """The key, created on first use: 0600, complete before it is visible, and the first of two
    racing commands wins (the other reads the winner's key)."""
    path = api_key_path()
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    import secrets  # only when a key is made: its import costs every command ~5 ms
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".api-key.")  # mode 0600
    with os.fdopen(fd, "w") as handle:
        handle.write("sk-airpods-" + secrets.token_urlsafe(32) + "\n")
    try:
        os.link(tmp, path)  # fails if another command made the key first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def key_id(key: str) -> str:
    """A short, non-secret name for a key (secret names and config hashes use it)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def key_source(setting: bool | str) -> str:
    """runtime.api_key as the Stack keeps it: "generated", "none", "env:VAR" or "file:PATH"."""
    return ("generated" if setting else "none") if isinstance(setting, bool) else setting


def read_key(source: str, *, create: bool) -> str | None:
    """The key behind a key source (see `key_source`). `create`: make the generated key if it
    does not exist yet, and treat a user key that cannot be read as an error (the commands that
    hand the key over); without it, None stands for a key that is not there.

    Raises ConfigError (at runtime.api_key) for a user key that is unset, unreadable, empty, or
    holds characters a key list cannot carry (whitespace, `,` or `;`)."""
    if source == "none":
        return None
    if source == "generated":
        return api_key() if create else existing_api_key()
    kind, _, where = source.partition(":")
    problem, value = "", ""
    if kind == "env":
        value = os.environ.get(where, "").strip()
        problem = "" if value else f"{where} is not set (or empty) in airpods' environment"
        hint = f"export {where}=YOUR_KEY before running airpods, or change runtime.api_key"
    else:
        path = Path(where).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
            problem = "" if value else f"the key file {path} is empty"
        except OSError as exc:
            problem = f"cannot read the key file {path}: {exc.strerror or exc}"
        except UnicodeDecodeError:
            problem = f"the key file {path} is not UTF-8 text"
        hint = f"write your key to {path} (chmod 600), or change runtime.api_key"
    if problem:
        if create:
            raise ConfigError(problem, key="runtime.api_key", hint=hint)
        return None
    if any(c.isspace() or c in ",;" or not c.isascii() or not c.isprintable() for c in value):
        raise ConfigError(
            f"the key from {source} holds whitespace, ',', ';' or characters outside printable ASCII "
            "(llama-server and Open WebUI split key lists on the first, HTTP headers carry only ASCII)",
            key="runtime.api_key",
            hint="use a key of letters, digits and -_.~+/= only",
        )
    return value
