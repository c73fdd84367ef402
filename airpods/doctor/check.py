"""One doctor check's result, and the version arithmetic the checks share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # OK | WARN | FAIL
    detail: str
    fix: str = ""


def version_check(name: str, detail: str, version: str, minimum: tuple[int, ...], upgrade: str) -> Check:
    """OK when `version` is at least `minimum`, else a warning whose fix is `upgrade`."""
    ok = version_tuple(version) >= minimum
    return Check(name, "OK" if ok else "WARN", detail, "" if ok else upgrade)


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
