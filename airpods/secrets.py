"""The stack's API key: generated once, kept 0600 in the state directory, never printed unless
asked for (`airpods env`). Podman secrets carry it into containers (see stack/wiring.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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
