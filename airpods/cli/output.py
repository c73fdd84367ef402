"""Rendering for the terminal: errors as one short paragraph, JSON, Rich tables."""

from __future__ import annotations

import json
import sys
from typing import Any

from airpods.errors import AirpodsError

# `--engine X` as the user typed it: the airpods commands an error suggests carry it too
# (they would otherwise act on the configured engine).
engine_flag: str | None = None


def with_engine(text: str) -> str:
    """`text` with each suggested "`airpods …`" command given the --engine the user typed."""
    return text.replace("`airpods ", f"`airpods --engine {engine_flag} ") if engine_flag else text


def visible(text: str) -> str:
    """`text` with every control character (a newline too) written as its escape: a config
    error quotes the user's values, and one ending in a newline must show it."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_error(exc: AirpodsError) -> None:
    from airpods.errors import ConfigError

    shown = visible if isinstance(exc, ConfigError) else str  # a runtime failure may quote log lines
    print(f"airpods: error: {with_engine(shown(exc.message))}", file=sys.stderr)
    if exc.hint:
        print(f"  hint: {with_engine(shown(exc.hint))}", file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def warn(message: str) -> None:
    print(f"airpods: warning: {message}", file=sys.stderr)
