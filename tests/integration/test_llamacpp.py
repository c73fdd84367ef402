"""llama.cpp through `airpods start` only: a real llama-server serving a real tiny GGUF model
to the real `openai` client, with the stack's API key, on one or more instances; every test on
Podman and on Docker Engine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from tests.integration.conftest import openai_env, put_in_volume, service_env
from tests.unit.helpers import single_model_toml

EMBEDDINGS = """
[services.llamacpp.command_args]
embeddings = true     # /v1/embeddings next to chat (needs a pooling type)
pooling = "mean"
"""


def client(airpods, name=None) -> openai.OpenAI:
    env = openai_env(airpods, name)
    return openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=60)


def test_openai_client_models_chat_stream_completions_embeddings(airpods, engine, model_volume):
    airpods.write_config(EMBEDDINGS)
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    api = client(airpods)
    assert "tiny" in [m.id for m in api.models.list().data]

    # Random weights may pick end-of-text first: ignore_eos makes every reply carry tokens.
    always = {"ignore_eos": True}
    chat = api.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=8, extra_body=always
    )
    assert chat.usage.completion_tokens > 0 and chat.choices[0].message.content

    chunks = list(
        api.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True, extra_body=always
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and streamed

    completion = api.completions.create(model="tiny", prompt="the tiny model", max_tokens=8, extra_body=always)
    assert completion.choices[0].text and completion.usage.completion_tokens > 0

    vector = api.embeddings.create(model="tiny", input="hello world").data[0].embedding
    assert len(vector) == 64 and any(v != 0 for v in vector)


def test_requests_without_the_key_get_401_and_the_key_stays_out_of_argv_and_inspect(airpods, engine, model_volume):
    assert airpods("start", "llamacpp").code == 0
    env = openai_env(airpods)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key="wrong").models.list()
    request = urllib.request.Request(env["OPENAI_BASE_URL"] + "/chat/completions", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, timeout=10)
    assert denied.value.code == 401
    key = env["OPENAI_API_KEY"]
    assert key not in airpods.ctr("inspect", "llamacpp-0").stdout
    assert key not in airpods.ctr("ps", "-a", "--no-trunc").stdout
    status = airpods("status")
    assert key not in status.out and "airpods env" in status.out


def test_two_instances_answer_on_their_own_ports(airpods, engine, model_volume):
    airpods.write_config("""
        [services.llama-fast]
        extends = "llamacpp"
        ports = [{ host = 8083, container = 8080 }]
        command_args = { ctx_size = 1024 }
    """)
    started = airpods("start", "llamacpp", "llama-fast")
    assert started.code == 0, started.err
    for name, port in (("llamacpp", 8081), ("llama-fast", 8083)):
        api = client(airpods, name)
        assert str(api.base_url).startswith(f"http://127.0.0.1:{port}/")
        reply = api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": name}], max_tokens=4)
        assert reply.usage.completion_tokens > 0
    shared = airpods.ctr("exec", "llama-fast-0", "cat", "/presets/models.ini").stdout  # its models' flags
    assert "[*]\nctx-size = 1024" in shared
    tiny = next(m for m in client(airpods, "llama-fast").models.list().data if m.id == "tiny")
    assert "1024" in tiny.model_extra["status"]["args"]


def test_single_model_shape_serves_the_default_model(airpods, engine, model_volume):
    airpods.write_config(single_model_toml("tiny.gguf"))
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    api = client(airpods)
    assert [m.id for m in api.models.list().data] == ["tiny"]
    reply = api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=4)
    assert reply.usage.completion_tokens > 0


def test_a_model_file_that_is_not_there_or_not_a_model_fails_start(airpods, engine, model_volume, tmp_path):
    """Absent: refused before anything is created (the config's error, naming the file); there
    but not a model: the server's own words."""
    airpods.write_config(single_model_toml("missing.gguf"))
    refused = airpods("start", "llamacpp")
    assert refused.code == 2 and "--model names /models/missing.gguf" in refused.err, refused.err
    assert "llamacpp" not in airpods.pods()
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    put_in_volume("airpods_llamacpp_models", junk, engine=airpods.engine)
    airpods.write_config(single_model_toml("junk.gguf"))
    failed = airpods("start", "llamacpp")
    assert failed.code == 1
    assert "junk.gguf" in failed.err and "llamacpp did not become ready" in failed.err, failed.err
    assert "llamacpp" not in airpods.pods()


def test_open_webui_reaches_every_backend_with_its_configured_key(airpods, engine, model_volume):
    airpods.write_config("""
        [services.llama-fast]
        extends = "llamacpp"
        ports = [{ host = 8083, container = 8080 }]
    """)
    started = airpods("start")
    assert started.code == 0, started.err
    env = service_env(airpods, "open-webui-0")
    urls, keys = env["OPENAI_API_BASE_URLS"].split(";"), env["OPENAI_API_KEYS"].split(";")
    assert urls == ["http://llamacpp:8080/v1", "http://llama-fast:8080/v1"] and len(keys) == len(urls)
    for url, key in zip(urls, keys, strict=True):
        answer = airpods.ctr(
            "exec", "open-webui-0", "wget", "-qO-", "--header", f"Authorization: Bearer {key}", f"{url}/models"
        ).stdout
        assert "tiny" in [m["id"] for m in json.loads(answer)["data"]], url
    for url in env["OLLAMA_BASE_URLS"].split(";"):
        assert "models" in json.loads(airpods.ctr("exec", "open-webui-0", "wget", "-qO-", f"{url}/api/tags").stdout)
    assert env["ENABLE_PERSISTENT_CONFIG"] == "False"
    assert not [key for key in keys if key in airpods.ctr("inspect", "open-webui-0").stdout]


def test_llamacpp_ui_serves_its_web_ui_and_is_healthy(airpods, engine, model_volume):
    started = airpods("start", "llamacpp-ui")
    assert started.code == 0, started.err
    request = urllib.request.Request("http://127.0.0.1:8082/", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as page:
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    rows = {r["name"]: r for r in airpods("status", "--json", "llamacpp-ui").json()["services"]}
    assert rows["llamacpp-ui"]["health"] == "healthy"


def test_start_and_status_say_the_cpu_server_places_its_model_on_the_cpu(airpods, engine, model_volume, tiny_model):
    """Issue 36 §2 on the real server: the CPU image's llama-server says where its model went, and
    airpods reports it: "CPU", every layer counted (the tiny model's block count + the output)."""
    from gguf import GGUFReader

    field = GGUFReader(tiny_model).fields["llama.block_count"]
    layers = int(field.parts[field.data[0]][0]) + 1
    airpods.write_config(single_model_toml("tiny.gguf"))
    started = airpods("start", "llamacpp", "--json")
    assert started.code == 0, started.err
    placed = [p for p in started.json()["placements"] if p["service"] == "llamacpp"]
    assert [(p["model"], p["where"], p["layers_on_gpu"], p["layers"]) for p in placed] == [("tiny", "CPU", 0, layers)]
    assert placed[0]["level"] == "ok" and placed[0]["cuda_error"] is None and placed[0]["buffers_mib"]["model"]

    status = airpods("status", "--json", "llamacpp")
    (row,) = [r for r in status.json()["services"] if r["name"] == "llamacpp"]
    assert [(p["model"], p["where"], p["layers"]) for p in row["placements"]] == [("tiny", "CPU", layers)]
