"""Ollama's own models, through its HTTP API (list, and pull with progress)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from airpods.errors import RuntimeFailure


def ollama_models(base_url: str) -> list[dict[str, object]]:
    try:
        with urllib.request.urlopen(base_url + "/api/tags", timeout=5) as answer:
            models = json.load(answer).get("models", [])
    except (OSError, ValueError):
        return []
    return [
        {
            "file": m.get("name"),
            "size": m.get("size"),
            "backend": "ollama",
            "architecture": (m.get("details") or {}).get("family"),
            "parameters": (m.get("details") or {}).get("parameter_size"),
            "quantization": (m.get("details") or {}).get("quantization_level"),
            "context_length": None,
            "served_by": ["ollama"],
        }
        for m in models
    ]


def ollama_pull(base_url: str, name: str, on_status: Callable[[str, int | None, int | None], None]) -> None:
    """POST /api/pull and follow its stream of {status, total, completed} lines."""
    request = urllib.request.Request(
        base_url + "/api/pull",
        data=json.dumps({"model": name, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=3600) as answer:
            for line in answer:
                if not line.strip():
                    continue
                event = json.loads(line)
                if "error" in event:
                    raise RuntimeFailure(f"ollama could not pull {name}: {event['error']}")
                on_status(str(event.get("status", "")), event.get("total"), event.get("completed"))
    except urllib.error.URLError as exc:
        raise RuntimeFailure(
            f"cannot reach ollama at {base_url}: {exc.reason}", hint="`airpods start ollama` first"
        ) from None
