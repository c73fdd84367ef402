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


STALL_S = 120.0  # a pull stream that sends no line for this long has stalled (each read's timeout)


def ollama_pull(
    base_url: str, name: str, on_status: Callable[[str, int | None, int | None], None], stall_s: float = STALL_S
) -> None:
    """POST /api/pull and follow its stream of {status, total, completed} lines. Raises
    RuntimeFailure when Ollama cannot be reached, reports an error, sends a line that is not
    such an object, or sends nothing for `stall_s` seconds (Ollama keeps what it has: pulling
    again resumes)."""
    request = urllib.request.Request(
        base_url + "/api/pull",
        data=json.dumps({"model": name, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    again = f"`airpods models pull --backend ollama {name}` resumes it"
    try:
        with urllib.request.urlopen(request, timeout=stall_s) as answer:
            for line in answer:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                    status, total, completed = str(event.get("status", "")), event.get("total"), event.get("completed")
                except (ValueError, AttributeError):
                    shown = line[:200].decode("utf-8", "replace").strip()
                    raise RuntimeFailure(
                        f"ollama sent a line that is not a pull status: {shown!r}", hint=again
                    ) from None
                if "error" in event:
                    raise RuntimeFailure(f"ollama could not pull {name}: {event['error']}")
                on_status(
                    status, total if isinstance(total, int) else None, completed if isinstance(completed, int) else None
                )
    except urllib.error.URLError as exc:
        raise RuntimeFailure(
            f"cannot reach ollama at {base_url}: {exc.reason}", hint="`airpods start ollama` first"
        ) from None
    except TimeoutError:
        raise RuntimeFailure(f"ollama sent nothing for {stall_s:g} s while pulling {name}", hint=again) from None
    except OSError as exc:
        raise RuntimeFailure(f"the connection to ollama broke while pulling {name}: {exc}", hint=again) from None
