"""The stack's API key: generated once, kept 0600 in the state directory, never printed unless
asked for (`airpods env`); or the user's own, read from an environment variable or a file that
`runtime.api_key` names. Podman secrets carry it into containers (see stack/wiring.py)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.errors import ConfigError
from airpods.redact import register
from airpods.state import state_dir, state_path

if TYPE_CHECKING:
    from airpods.stack.model import Stack

KEY_FILE = "api-key"


def api_key_path() -> Path:
    return state_dir() / KEY_FILE


def existing_api_key() -> str | None:
    """The key if one was made, else None (reading never creates it, nor the state folder)."""
    return _existing(state_path() / KEY_FILE)


def _existing(path: Path) -> str | None:
    """The text of airpods' state file `path`, stripped; None when it is missing or empty.
    Raises RuntimeFailure for one that cannot be read (a folder in its place, no permission)."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        from airpods.errors import RuntimeFailure

        raise RuntimeFailure(
            f"cannot read airpods' state file {path}: {getattr(exc, 'strerror', None) or exc}",
            hint="fix its permissions, or move it away (airpods then makes a new one where it can)",
        ) from None


def api_key() -> str:
    """The key, created on first use (see `generated`)."""
    return generated(KEY_FILE, "sk-airpods-")


def generated(name: str, prefix: str = "") -> str:
    """The secret in airpods' state file `name`, created on first use: random (32 bytes,
    URL-safe base64 after `prefix`), 0600, written in full and synced before it is visible, and
    the first of two racing commands wins (the other reads the winner's)."""
    path = state_dir() / name
    damaged = path.exists()  # there, but empty: made again (a secret is never "")
    key = _existing(path)
    if key:
        return key
    import secrets  # only when a key is made: its import costs every command ~5 ms
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    with os.fdopen(fd, "w") as handle:
        handle.write(prefix + secrets.token_urlsafe(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        if damaged:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if another command made the key first
    except FileExistsError:
        pass
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return _existing(path) or ""


NAMES_KEY_FILE = "secret-names-key"  # the random key secret names are derived under (0600)
UNNAMED = "not-made-yet"  # a value's name before this machine has a names key (nothing was made)


def key_id(value: str, *, create: bool = True) -> str:
    """A short, non-secret name for a secret value (secret names and config hashes use it):
    12 hex digits of HMAC-SHA256 under this machine's random names key, created on first use
    (`create`; without it, UNNAMED while there is none). An unkeyed hash would let anyone who
    sees a name (`ps`, `--dry-run`, `secret ls`) test guesses of a password-like value offline."""
    import hmac

    names_key = generated(NAMES_KEY_FILE) if create else _existing(state_path() / NAMES_KEY_FILE)
    if not names_key:
        return UNNAMED
    return hmac.new(names_key.encode(), value.encode(), hashlib.sha256).hexdigest()[:12]


def key_source(setting: bool | str) -> str:
    """runtime.api_key as the Stack keeps it: "generated", "none", "env:VAR" or "file:PATH"."""
    return ("generated" if setting else "none") if isinstance(setting, bool) else setting


def read_secret(source: str, *, key: str, create: bool, noun: str = "secret") -> str | None:
    """The value behind "env:VAR" (that variable of airpods' environment) or "file:PATH" (the
    file's text), surrounding whitespace stripped. With `create` (the commands that hand the
    value over) a value that cannot be read is a ConfigError at `key` (its config key path);
    without it, None."""
    kind, _, where = source.partition(":")
    problem, value = "", ""
    if kind == "generated":  # one airpods makes (Open WebUI's session key): created, never missing
        made = generated(where) if create else _existing(state_path() / where)
        register(made)
        return made
    if kind == "state":  # a file airpods wrote in its state folder (the gateway's: gateway/prepare.py)
        kept = _existing(state_path() / where)
        register(kept)
        return kept
    if kind == "env":
        value = os.environ.get(where, "").strip()
        problem = "" if value else f"{where} is not set (or empty) in airpods' environment"
        hint = f"export {where}=YOUR_{noun.upper()} before running airpods, or change {key}"
    else:
        path = Path(where).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
            problem = "" if value else f"the {noun} file {path} is empty"
        except OSError as exc:
            problem = f"cannot read the {noun} file {path}: {exc.strerror or exc}"
        except UnicodeDecodeError:
            problem = f"the {noun} file {path} is not UTF-8 text"
        hint = f"write your {noun} to {path} (chmod 600), or change {key}"
    if problem:
        if create:
            raise ConfigError(problem, key=key, hint=hint)
        return None
    register(value)
    return value


VALUES_DIR = "secret-values"  # airpods' copy of each user secret it handed over (0600 files)


def stack_secret_values(stack: Stack) -> dict[str, str]:
    """Secret name → value for the stack's user secrets ([services.X.secrets]), read now, and
    kept in airpods' private state folder so that later commands (`logs`, in a shell without
    the variable) can still mask them. Raises ConfigError (at the secret's key) for one that
    cannot be read."""
    from airpods.files import write_atomic

    values = {d.name: read_secret(d.source, key=d.config_key, create=True) or "" for d in stack.secrets if d.source}
    folder = state_dir() / VALUES_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    handed = {d.name for d in stack.secrets if d.source and not d.source.startswith(("generated:", "state:"))}
    for name in handed - {p.name for p in folder.iterdir()}:  # generated ones are in state already
        write_atomic(folder / name, values[name].encode(), mode=0o600)
    return values


def forget_values(names: Iterable[str]) -> None:
    """Drop airpods' copies of these secrets (their engine secrets are gone)."""
    for name in names:
        (state_dir() / VALUES_DIR / name).unlink(missing_ok=True)


def register_stack_secrets(stack: Stack) -> None:
    """Read (never create) the stack's key and user secrets, so what this process shows masks
    them (redact.py): `airpods logs`, whose services may print them."""
    read_key(stack.key_source, create=False)
    for secret in stack.secrets:
        if secret.source:
            read_secret(secret.source, key=secret.config_key, create=False)
    # What was handed over (a shell without the variable cannot say what the service got).
    folder = state_dir() / VALUES_DIR
    for copy in folder.iterdir() if folder.is_dir() else ():
        register(_existing(copy))


def read_key(source: str, *, create: bool) -> str | None:
    """The key behind a key source (see `key_source`). `create`: make the generated key if it
    does not exist yet, and treat a user key that cannot be read as an error (the commands that
    hand the key over); without it, None stands for a key that is not there.

    Raises ConfigError (at runtime.api_key) for a user key that is unset, unreadable, empty, or
    holds characters a key list cannot carry (whitespace, `,` or `;`)."""
    if source == "none":
        return None
    if source == "generated":
        key = api_key() if create else existing_api_key()
        register(key)
        return key
    value = read_secret(source, key="runtime.api_key", create=create, noun="key")
    if value is None:
        return None
    if any(c.isspace() or c in ",;" or not c.isascii() or not c.isprintable() for c in value):
        raise ConfigError(
            f"the key from {source} holds whitespace, ',', ';' or characters outside printable ASCII "
            "(llama-server and Open WebUI split key lists on the first, HTTP headers carry only ASCII)",
            key="runtime.api_key",
            hint="use a key of letters, digits and -_.~+/= only",
        )
    return value
