"""The real tier (AIRPODS_E2E_REAL_WEBUI=1, in every whole-suite run; image from
scripts/build-open-webui, 8 GB, ~5 min once): the real Open WebUI, started by `airpods start`,
lists the models of every backend airpods wired it to, chats with the second llama.cpp instance
and generates an image through ComfyUI (the rig's stand-in), checked through its own HTTP API."""

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


def test_real_open_webui_is_the_hub_of_every_backend(airpods, tiny_model, monkeypatch):
    """With the user's own key (runtime.api_key = "env:…"): the key llama-server requires is
    the one Open WebUI is handed (the generated key takes the same path from there). Two
    llama.cpp instances, Ollama and ComfyUI (stand-ins for the last two) at once, all wired by
    airpods and checked from Open WebUI's side, as its signed-up admin."""
    put_in_volume("airpods_llamacpp_models", tiny_model)
    monkeypatch.setenv("AIRPODS_TEST_OWN_KEY", "sk-own-key-for-open-webui")
    airpods.write_config(f"""
        [runtime]
        api_key = "env:AIRPODS_TEST_OWN_KEY"
        [services.open-webui]
        image = "{IMAGE}"
        health = {{ path = "/health", expected_status = 200, timeout_s = 900 }}
        env = {{ IMAGE_GENERATION_MODEL = "standin.safetensors" }}
        [services.comfyui]
        enabled = true
        [services.llama-fast]
        extends = "llamacpp"
        ports = [{{ host = 8083, container = 8080 }}]
        command_args = {{ model = "/models/tiny.gguf", alias = "tiny-fast" }}
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

    # Every model of every backend: the router's, the second instance's, Ollama's.
    models = {m["id"]: m for m in call("GET", "/api/models", token=token)["data"]}
    assert {"tiny", "tiny-fast", "standin-ollama:latest"} <= set(models), sorted(models)
    assert models["standin-ollama:latest"]["owned_by"] == "ollama" and models["tiny-fast"]["owned_by"] == "openai"
    # A chat through Open WebUI to the second instance, answered by it.
    reply = call(
        "POST",
        "/api/chat/completions",
        {"model": "tiny-fast", "stream": False, "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]},
        token,
    )
    # Tokens from the tiny model (random weights: the text itself may be empty when it stops at once).
    assert reply["usage"]["completion_tokens"] > 0 and reply["model"] == "tiny-fast"
    assert "stop processing" in airpods("logs", "llama-fast").out  # its slot ran the task
    with pytest.raises(urllib.error.HTTPError):
        call("GET", "/api/models")  # Open WebUI's own auth is on
    # Each llama.cpp connection is a llama.cpp router to it (load state, load/unload), indexed
    # as the URLs are; Ollama's is its own.
    openai = call("GET", "/openai/config", token=token)
    assert len(openai["OPENAI_API_BASE_URLS"]) == 2
    assert all(openai["OPENAI_API_CONFIGS"][str(i)]["provider"] == "llama.cpp" for i in range(2)), openai
    # A second, non-admin user sees the stack's models and chats (models_for = "everyone").
    call(
        "POST",
        "/api/v1/auths/add",
        {"name": "User", "email": "user@example.org", "password": "airpods-user-password", "role": "user"},
        token,
    )
    user = call("POST", "/api/v1/auths/signin", {"email": "user@example.org", "password": "airpods-user-password"})
    assert user["role"] == "user"
    seen = {m["id"] for m in call("GET", "/api/models", token=user["token"])["data"]}
    assert {"tiny", "tiny-fast", "standin-ollama:latest"} <= seen, sorted(seen)

    # Image generation: wired to ComfyUI by alias, as Open WebUI's admin config reports it.
    images = call("GET", "/api/v1/images/config", token=token)
    assert images["ENABLE_IMAGE_GENERATION"] is True and images["IMAGE_GENERATION_ENGINE"] == "comfyui"
    assert images["COMFYUI_BASE_URL"] == "http://comfyui:8188"
    airpods.ctr("exec", "comfyui-0", "sh", "-c", "echo w > /root/ComfyUI/models/checkpoints/standin.safetensors")
    assert {"id": "standin.safetensors", "name": "standin.safetensors"} in call(
        "GET", "/api/v1/images/models", token=token
    )
    made = call("POST", "/api/v1/images/generations", {"prompt": "a lighthouse at dusk"}, token)
    assert len(made) == 1 and made[0]["url"], made  # the stand-in's PNG, stored by Open WebUI
    with urllib.request.urlopen("http://127.0.0.1:8188/_last_prompt", timeout=30) as answer:
        queued = json.loads(answer.read())
    # Open WebUI's default workflow, with the request's values where airpods' node map puts them.
    workflow = queued["prompt"]
    assert workflow["6"]["inputs"]["text"] == "a lighthouse at dusk" and queued["client_id"]
    assert workflow["4"]["inputs"]["ckpt_name"] == "standin.safetensors"
    assert (workflow["5"]["inputs"]["width"], workflow["5"]["inputs"]["batch_size"]) == (512, 1)

    # Least privilege, with the real thing: no capabilities, no privilege gain.
    for container in ("open-webui-0", "llamacpp-0"):
        assert capabilities(airpods, container) == ("0000000000000000", "1"), container
    # Its session key is the stack's (WEBUI_SECRET_KEY, generated once): a recreated container
    # still accepts the session it signed before.
    restarted = airpods("restart", "open-webui", timeout=1200)
    assert restarted.code == 0, restarted.err
    assert call("GET", "/api/v1/auths/", token=token)["email"] == "admin@example.org"
