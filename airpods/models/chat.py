"""`airpods chat`: a streaming chat against a running instance's API, or llama-cli in a one-off
container when no instance runs."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TextIO

from airpods.errors import RuntimeFailure


def _stream(url: str, key: str | None, model: str, messages: list[dict[str, str]]) -> Iterator[str]:
    body = {"model": model, "messages": messages, "stream": True}
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=600) as answer:
        for raw in answer:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices", []):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text


def first_model(url: str, key: str | None) -> str | None:
    """The first model the instance at `url` lists (None: none). Raises RuntimeFailure when it
    refuses the key, or does not answer with a model list."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/v1/models", headers=headers), timeout=10) as answer:
            data = json.load(answer).get("data", [])
    except urllib.error.HTTPError as exc:
        raise refused(url, exc) from None
    except (OSError, ValueError, AttributeError) as exc:
        raise RuntimeFailure(f"{url} did not answer with its models: {exc}", hint="`airpods status` shows it") from None
    return data[0]["id"] if data and isinstance(data[0], dict) and "id" in data[0] else None


def refused(url: str, exc: urllib.error.HTTPError, model: str | None = None) -> RuntimeFailure:
    """An HTTP error answer of the instance, said with what to do about it."""
    detail = exc.read().decode("utf-8", "replace").strip()[:300] if exc.fp else ""
    what = f"{url} answered HTTP {exc.code}" + (f" for model {model}" if model else "") + f": {detail or exc.reason}"
    if exc.code in (401, 403):
        return RuntimeFailure(
            what, hint="it does not take the stack's key: `airpods env` prints the key, `airpods restart` hands it over"
        )
    return RuntimeFailure(what, hint="`airpods models list` shows the models an instance serves")


def api_chat(url: str, key: str | None, model: str, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """A REPL: each line is a user turn; the reply streams as it is generated. Ctrl-D or Ctrl-C quits."""
    messages: list[dict[str, str]] = []
    stdout.write(f"chatting with {model} at {url} (Ctrl-D to quit)\n")
    try:
        while True:
            stdout.write("you> ")
            stdout.flush()
            line = stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            messages.append({"role": "user", "content": line.rstrip("\n")})
            reply = []
            try:
                for piece in _stream(url, key, model, messages):
                    reply.append(piece)
                    stdout.write(piece)
                    stdout.flush()
            except urllib.error.HTTPError as exc:  # e.g. 400 for a model the server does not have
                raise refused(url, exc, model) from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise RuntimeFailure(f"lost the connection to {url}: {exc}", hint="`airpods status` shows it") from None
            stdout.write("\n")
            messages.append({"role": "assistant", "content": "".join(reply)})
    except KeyboardInterrupt:
        pass
    stdout.write("\nbye\n")
    return 0
