"""The heavy tier (AIRPODS_E2E_REAL_WEBUI=1; image from scripts/build-open-webui, ~8 GB, ~8 min
once): the real Open WebUI, started by `airpods start`, lists the llama.cpp model through
airpods' wiring and completes a chat with it, checked through its own HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.integration.conftest import capabilities, put_in_volume

pytestmark = pytest.mark.real_webui
IMAGE = "ghcr.io/open-webui/open-webui:v0.12.4"
BASE = "http://127.0.0.1:3000"


def call(method: str, path: str, body: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(
        BASE + path, data=None if body is None else json.dumps(body).encode(), headers=headers, method=method
    )
    with urllib.request.urlopen(request, timeout=300) as answer:
        return json.loads(answer.read() or b"null")


def test_real_open_webui_lists_and_chats_with_the_llamacpp_model(airpods, tiny_model, monkeypatch):
    """With the user's own key (runtime.api_key = "env:…"): the key llama-server requires is
    the one Open WebUI is handed (the generated key takes the same path from there)."""
    put_in_volume("airpods_llamacpp_models", tiny_model)
    monkeypatch.setenv("AIRPODS_TEST_OWN_KEY", "sk-own-key-for-open-webui")
    airpods.write_config(f"""
        [runtime]
        api_key = "env:AIRPODS_TEST_OWN_KEY"
        [services.open-webui]
        image = "{IMAGE}"
        health = {{ path = "/health", expected_status = 200, timeout_s = 900 }}
    """)
    started = airpods("start", timeout=1200)
    assert started.code == 0, started.err
    admin = call(
        "POST",
        "/api/v1/auths/signup",
        {"name": "Admin", "email": "admin@example.org", "password": "airpods-test-password"},
    )
    token = admin["token"]
    assert admin["role"] == "admin"
    models = [m["id"] for m in call("GET", "/api/models", token=token)["data"]]
    assert "tiny" in models
    reply = call(
        "POST",
        "/api/chat/completions",
        {"model": "tiny", "stream": False, "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]},
        token,
    )
    # Tokens from the tiny model (random weights: the text itself may be empty when it stops at once).
    assert reply["usage"]["completion_tokens"] > 0 and reply["model"] == "tiny"
    with pytest.raises(urllib.error.HTTPError):
        call("GET", "/api/models")  # Open WebUI's own auth is on

    # Least privilege, with the real thing: no capabilities, no privilege gain.
    for container in ("open-webui-0", "llamacpp-0"):
        assert capabilities(airpods, container) == ("0000000000000000", "1"), container
    # Its session key is the stack's (WEBUI_SECRET_KEY, generated once): a recreated container
    # still accepts the session it signed before.
    restarted = airpods("restart", "open-webui", timeout=1200)
    assert restarted.code == 0, restarted.err
    assert call("GET", "/api/v1/auths/", token=token)["email"] == "admin@example.org"
