"""llama-server's flag table, read from the server's own `--help`: which spellings name one flag,
which flags take a value (and the values the help lists), which have an off form, and the
environment variable each reads. airpods ships the table of the llama.cpp build its default image
runs (llama-server-flags.json, written by scripts/llama-flag-table from a built server) and learns
the table of every other image from that image (see airpods/server_flags.py).

The help's layout (llama.cpp common/arg.cpp, `common_params_print_usage`): an entry starts at
column 0 with its comma-separated spellings, the negative ones (`--no-…`) last, then the value
placeholder (`N`, `[on|off|auto]`, `{none,linear,yarn}`); the description follows after two or
more spaces and wraps onto indented lines, one of which may say `(env: LLAMA_ARG_…)`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

BUILTIN_FILE = Path(__file__).with_name("llama-server-flags.json")
ENV_RE = re.compile(r"\(env: ([A-Z0-9_]+)\)")
CHOICES_RE = re.compile(r"^(?:\[([\w.|-]+)\]|\{([\w.,-]+)\}|<([\w.|-]+)>)\Z")


@dataclass(frozen=True)
class Flag:
    """One llama-server option. `value` is the help's placeholder (None: a switch)."""

    spellings: tuple[str, ...]  # the "on" forms: ("-c", "--ctx-size")
    negations: tuple[str, ...] = ()  # the "off" forms: ("--no-jinja",)
    value: str | None = None
    env: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The first long spelling (the one airpods renders for an alias or env spelling)."""
        return next((s for s in self.spellings if s.startswith("--")), self.spellings[0])

    @property
    def choices(self) -> tuple[str, ...]:
        """The values the help lists in the placeholder ([on|off|auto] → on, off, auto), else ()."""
        found = CHOICES_RE.match(self.value or "")
        if not found:
            return ()
        listed = next(group for group in found.groups() if group)
        return tuple(re.split(r"[|,]", listed))


@dataclass(frozen=True)
class FlagTable:
    """Every flag of one llama-server build; `source` says where the table was read."""

    flags: tuple[Flag, ...]
    source: str
    _index: dict[str, tuple[Flag, bool]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, tuple[Flag, bool]] = {}  # spellings as keys (case matters: -c is not -C)
        for flag in self.flags:
            for spelling in flag.spellings:
                index.setdefault(_key_of(spelling), (flag, False))
            for spelling in flag.negations:
                index.setdefault(_key_of(spelling), (flag, True))
        for flag in self.flags:  # then env names, upper case, where no spelling has the key
            for env in flag.env:
                index.setdefault(env, (flag, False))
        object.__setattr__(self, "_index", index)

    def lookup(self, key: str) -> tuple[Flag, bool] | None:
        """(flag, negated) for a command_args key: a spelling with or without its dashes
        (`ctx_size`, `c`, `-c`, `--ctx-size`, `no_jinja`), or the environment variable the flag
        reads (`LLAMA_ARG_CTX_SIZE`, any case). None when the server has no such flag."""
        return self._index.get(_key_of(key)) or self._index.get(_key_of(key).upper())

    def suggestions(self, key: str) -> list[str]:
        """Up to three command_args keys close to `key` (did-you-mean)."""
        import difflib  # only when a key is wrong

        keys = {_key_of(s) for flag in self.flags for s in (*flag.spellings, *flag.negations) if s.startswith("--")}
        return difflib.get_close_matches(_key_of(key), sorted(keys), n=3, cutoff=0.75)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "flags": [
                {"spellings": f.spellings, "negations": f.negations, "value": f.value, "env": f.env} for f in self.flags
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FlagTable:
        flags = tuple(
            Flag(tuple(f["spellings"]), tuple(f["negations"]), f["value"], tuple(f["env"])) for f in data["flags"]
        )
        return cls(flags, str(data["source"]))


def _key_of(spelling: str) -> str:
    """The command_args key of a spelling: no leading dashes, _ for - (--ctx-size → ctx_size)."""
    return spelling.lstrip("-").replace("-", "_")


def _split_negations(spellings: list[str]) -> tuple[list[str], list[str]]:
    """The help lists an option's on forms, then its off forms: the off forms start at the first
    long `--no-X` whose X is a long on form before it (with the short off forms just before it,
    as in `-kvo, --kv-offload, -nkvo, --no-kv-offload`)."""
    for i, spelling in enumerate(spellings):
        if spelling.startswith("--no-") and "--" + spelling[5:] in spellings[:i]:
            start = i
            while start > 0 and not spellings[start - 1].startswith("--"):
                start -= 1
            return spellings[:start], spellings[start:]
    return spellings, []


def parse_help(text: str, source: str) -> FlagTable:
    """The flag table in `llama-server --help` output (see the module docstring for the layout).

    Raises ValueError when the text lists no flags (not llama-server's help)."""
    flags: list[Flag] = []
    entry: tuple[list[str], str | None] | None = None
    env: list[str] = []

    def close() -> None:
        if entry is not None:
            on, off = _split_negations(entry[0])
            flags.append(Flag(tuple(on), tuple(off), entry[1], tuple(env)))

    for line in text.splitlines():
        if line.startswith("-") and not line.startswith("-----"):
            close()
            spec = re.split(r"\s{2,}", re.sub(r",\s+", ", ", line.rstrip()), maxsplit=1)[0]
            parts = spec.split(", ")
            last, _, value = parts[-1].partition(" ")
            spellings = [*parts[:-1], last]
            if not all(s.startswith("-") and " " not in s for s in spellings):
                entry = None  # a description line that happens to start with a dash
                continue
            entry, env = (spellings, value.strip() or None), []
        elif entry is not None:
            env += ENV_RE.findall(line)
        if entry is not None and line.startswith("-"):
            env += ENV_RE.findall(line)
    close()
    if not any(s == "--port" for f in flags for s in f.spellings):
        raise ValueError("not llama-server's --help: no --port flag listed")
    return FlagTable(tuple(flags), source)


@cache
def builtin_table() -> FlagTable:
    """The table airpods ships: the default image's llama-server (see scripts/llama-flag-table)."""
    return FlagTable.from_json(json.loads(BUILTIN_FILE.read_text(encoding="utf-8")))


def table_json(table: FlagTable) -> str:
    """The table as the JSON file airpods ships and caches: one flag a line (diff-friendly)."""
    data = table.to_json()
    rows = ",\n ".join(json.dumps(flag) for flag in data["flags"])
    return f'{{"source": {json.dumps(data["source"])},\n"flags": [\n {rows}\n]}}\n'
