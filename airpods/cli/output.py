"""Rendering for the terminal: errors as one short paragraph, JSON, Rich tables."""

from __future__ import annotations

import json
import sys
from typing import Any

from airpods.errors import AirpodsError


def print_error(exc: AirpodsError) -> None:
    print(f"airpods: error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"  hint: {exc.hint}", file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def warn(message: str) -> None:
    print(f"airpods: warning: {message}", file=sys.stderr)
