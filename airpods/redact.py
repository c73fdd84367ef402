"""One way to keep secrets out of what airpods shows: everything the command writes to its
standard output and error passes through `Redacting` (cli/__init__.py wraps both streams before
a command runs), so no display path (a failed start's log lines, `--json`, errors, dry runs,
`config show`, `airpods logs`) can show a secret. Two kinds of secret are masked: the values
airpods knows are secret (the API key, the user's [services.X.secrets], registered when read),
and the value of any env variable whose name says it is one (HF_TOKEN, WEBUI_SECRET_KEY,
OPENAI_API_KEY…), as a config shows it or as a service prints its environment (`NAME=value`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

MASK = "********"
# Names that hold credentials by convention (Hugging Face, OpenAI, Open WebUI, databases…), as
# whole words of the name: HF_TOKEN, OPENAI_API_KEY, WEBUI_SECRET_KEY — not WEBUI_AUTH or
# TOKENIZERS_PARALLELISM, which are settings.
SECRET_NAME_RE = re.compile(
    r"(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEYS?|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)(?:_|$)",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 4  # shorter values ("no", "1") would mask ordinary words

_known: list[str] = []  # longest first, so a secret that contains another is masked whole


def register(*values: str | None) -> None:
    """Values from now on masked wherever this process shows text (a key, a user secret)."""
    fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH} - set(_known)
    _known[:] = sorted([*_known, *fresh], key=len, reverse=True)


def secret_like(name: str) -> bool:
    """Whether an env variable's name says it holds a credential."""
    return bool(SECRET_NAME_RE.search(name))


ASSIGNMENT_RE = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=(\S+)")  # NAME=value, as an env dump prints it


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by MASK, and the value of every
    `NAME=value` whose NAME says it is a secret."""
    for value in _known:
        text = text.replace(value, MASK)
    if "=" in text:
        text = ASSIGNMENT_RE.sub(lambda m: f"{m[1]}={MASK}" if secret_like(m[1]) and m[2] != MASK else m[0], text)
    return text


class Redacting:
    """A text stream (sys.stdout, sys.stderr) whose every write is `redact`ed; the rest is the
    stream's own (isatty, fileno, encoding… for Rich and the progress bars)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def write_unmasked(text: str) -> None:
    """Write `text` to standard output unmasked: only for what a command exists to hand the
    user (`airpods env` prints the key for `eval`; `export kube` without -o, its Secret)."""
    import sys

    stream = sys.stdout
    (stream.stream if isinstance(stream, Redacting) else stream).write(text)


def print_secret(line: str) -> None:
    """`line` and a newline, unmasked (write_unmasked)."""
    write_unmasked(line + "\n")


def redact_env(name: str, value: str) -> str:
    """An env value as shown: MASK for a secret-like name, else the value with secrets masked."""
    return MASK if secret_like(name) and value else redact(value)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line as shown: `--env NAME=VALUE` (and `-e`) with a secret-like NAME masked,
    and every registered secret value masked wherever it appears."""
    shown: list[str] = []
    after_env = False
    for arg in argv:
        if after_env and "=" in arg:
            name, _, value = arg.partition("=")
            arg = f"{name}={redact_env(name, value)}"
        elif arg.startswith("--env="):
            name, _, value = arg[len("--env=") :].partition("=")
            arg = f"--env={name}={redact_env(name, value)}"
        shown.append(redact(arg))
        after_env = arg in ("--env", "-e")
    return shown
