"""What a gateway needs on this host before `start` hands it over: its TLS files (tls.py) and
the credentials Ollama's and ComfyUI's routes ask for, made or renewed in the state folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from airpods.files import write_atomic
from airpods.gateway import tls
from airpods.gateway.caddy import GATEWAY, gateway_folder

if TYPE_CHECKING:
    from airpods.stack.model import Stack

PASSWORD, AUTH_HASH = "password", "auth.bcrypt"


def private_folder(project: str) -> Path:
    """The project's gateway folder in airpods' state folder, it and its parent made 0700."""
    from airpods.state import state_dir

    folder = gateway_folder(state_dir(), project)
    for made in (folder.parent, folder):
        made.mkdir(mode=0o700, exist_ok=True)
        made.chmod(0o700)
    return folder


def password(project: str) -> str:
    """The gateway's password for basic credentials (user caddy.GATEWAY_USER): random, made
    on first use, 0600 in the project's gateway folder."""
    from airpods.secrets import generated

    private_folder(project)
    return generated(f"gateway/{project}/{PASSWORD}")


def ensure_auth(folder: Path, project: str) -> bool:
    """The bcrypt hash of the password in `folder`, made again only when it no longer matches
    (bcrypt salts every hash: a new one each start would recreate the gateway each start).
    True when it was made. bcrypt by the `bcrypt` package (Caddy's basic_auth takes bcrypt)."""
    import bcrypt

    secret = password(project).encode()
    path = folder / AUTH_HASH
    try:
        if bcrypt.checkpw(secret, path.read_bytes().strip()):
            return False
    except (OSError, ValueError):
        pass
    write_atomic(path, bcrypt.hashpw(secret, bcrypt.gensalt()) + b"\n", mode=0o600)
    return True


def prepare(stack: Stack) -> bool:
    """Make or renew the files of every gateway of `stack`; True when any file changed (the
    stack is then resolved again: their secrets are new)."""
    changed = False
    own = f"state:gateway/{stack.project}/{tls.SERVER_CERT}"
    for spec in stack.services:
        if spec.kind == GATEWAY:
            folder = private_folder(stack.project)
            if any(d.source == own for d in stack.secrets):  # else the user's `tls` certificate
                changed |= tls.ensure(folder, stack.project, spec.hosts).made
            changed |= ensure_auth(folder, stack.project)
    return changed
