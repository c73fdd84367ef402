"""What a gateway needs on this host before `start` hands it over: its TLS files (tls.py) and
the credentials Ollama's and ComfyUI's routes ask for, made or renewed in the state folder, or
the user's own certificate and key checked (`tls`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from airpods.errors import ConfigError, RuntimeFailure
from airpods.files import write_atomic
from airpods.gateway import tls
from airpods.gateway.caddy import GATEWAY, gateway_folder

if TYPE_CHECKING:
    from airpods.stack.model import ServiceSpec, Stack

PASSWORD, AUTH_HASH = "password", "auth.bcrypt"
PRIVATE_FILES = (tls.CA_KEY, tls.SERVER_KEY, PASSWORD, AUTH_HASH)
MIN_PASSWORD = 16  # characters: a generated one has 43


def private_folder(project: str) -> Path:
    """The project's gateway folder in airpods' state folder, it and its parent made 0700 and
    its private files 0600. RuntimeFailure when either folder is a symbolic link (the CA key
    would be written wherever it points)."""
    from airpods.state import state_dir

    folder = gateway_folder(state_dir(), project)
    for made in (folder.parent, folder):
        if made.is_symlink():
            raise RuntimeFailure(
                f"{made} is a symbolic link: airpods keeps the gateway's CA key only in a folder of its own",
                hint=f"remove the link (and move what it points to back to {made} if it is yours)",
            )
        made.mkdir(mode=0o700, exist_ok=True)
        made.chmod(0o700)
    for name in PRIVATE_FILES:
        path = folder / name
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
    return folder


def password(project: str) -> str:
    """The gateway's password for basic credentials (user caddy.GATEWAY_USER): random, made
    on first use, 0600 in the project's gateway folder. RuntimeFailure for one shorter than
    MIN_PASSWORD characters (an edited file; an empty one is made again)."""
    from airpods.secrets import generated

    private_folder(project)
    secret = generated(f"gateway/{project}/{PASSWORD}")
    if len(secret) < MIN_PASSWORD:
        path = private_folder(project) / PASSWORD
        raise RuntimeFailure(
            f"the gateway's password in {path} is shorter than {MIN_PASSWORD} characters",
            hint="write a longer one there, or remove the file and airpods makes one",
        )
    return secret


def ensure_auth(folder: Path, project: str) -> bool:
    """The bcrypt hash of the password in `folder`, made again only when it no longer matches
    (bcrypt salts every hash: a new one each start would recreate the gateway each start) or
    cannot be read. True when it was made. bcrypt by the `bcrypt` package (Caddy's basic_auth
    takes bcrypt)."""
    import bcrypt

    secret = password(project).encode()
    path = folder / AUTH_HASH
    try:
        if bcrypt.checkpw(secret, path.read_bytes().strip()):
            return False
    except (OSError, ValueError):
        pass
    if path.is_dir() and not path.is_symlink():
        raise RuntimeFailure(
            f"{path} is a folder, where airpods keeps the gateway's password hash", hint="move it away"
        )
    write_atomic(path, bcrypt.hashpw(secret, bcrypt.gensalt()) + b"\n", mode=0o600)
    return True


def check_own(spec: ServiceSpec, stack: Stack) -> None:
    """The user's certificate and key (`tls`): PEM, belonging together, current and naming the
    gateway's hosts. ConfigError at services.NAME.tls.certificate or .key saying what is wrong."""
    from airpods.secrets import read_secret

    sources = {d.name: d for d in stack.secrets}
    found: dict[str, str] = {}
    for use in spec.secrets:
        secret = sources.get(use.name)
        if secret is not None and use.type == "mount" and secret.source.startswith(("file:", "env:")):
            field = "certificate" if use.target.endswith(".crt") else "key"
            found[field] = read_secret(secret.source, key=f"services.{spec.name}.tls.{field}", create=True) or ""
    problem = tls.own_problem(found.get("certificate", ""), found.get("key", ""), spec.hosts)
    if problem:
        field, what = problem
        raise ConfigError(what, key=f"services.{spec.name}.tls.{field}", hint=tls.OWN_HINT)


def prepare(stack: Stack) -> tuple[bool, list[str]]:
    """Make or renew the files of the stack's gateway, or check the user's (`tls`); (whether
    any file changed: the stack is then resolved again, its secrets being new; notes for the
    user, such as a CA made). One command at a time per project (a lock file in the folder)."""
    import fcntl

    from airpods.gateway.clients import own_certificate

    changed, notes = False, []
    for spec in stack.services:
        if spec.kind != GATEWAY:
            continue
        folder = private_folder(stack.project)
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not own_certificate(stack):
                made = tls.ensure(folder, stack.project, spec.hosts)
                changed |= made.made
                notes += [made.note] if made.note else []
            else:
                check_own(spec, stack)
            changed |= ensure_auth(folder, stack.project)
    return changed, notes
