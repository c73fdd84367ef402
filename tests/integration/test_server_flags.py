"""command_args checked against the real llama-server image, rendered in its own grammar, and
the user's own API key used everywhere: through `airpods start` on the rig's real server."""

from __future__ import annotations

import json
import re

import openai
import pytest

from tests.integration.conftest import openai_env, podman, service_env
from tests.unit.helpers import single_model_toml

SERVER = "ghcr.io/ggml-org/llama.cpp:server"


def test_flash_attn_on_and_jinja_off_reach_the_server(airpods, model_volume):
    """flash_attn = true used to render a bare --flash-attn (which swallows the next flag) and
    jinja = false was dropped (jinja is on by default in this llama.cpp)."""
    # Without jinja the server needs a built-in template (its own advice: --no-jinja
    # --chat-template chatml); verbosity 4: llama_context reports its settings.
    extra = 'flash_attn = "on"\njinja = false\nchat_template = "chatml"\nverbosity = 4\n'
    airpods.write_config(single_model_toml("tiny.gguf") + extra)
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    args = podman("inspect", "llamacpp-0", "--format", "{{json .Args}}").stdout
    assert '"--flash-attn","on"' in args.replace(" ", "") and '"--no-jinja"' in args
    logs = airpods("logs", "llamacpp")
    assert re.search(r"llama_context: flash_attn +\= enabled", logs.out + logs.err)  # the server's own report
    api = openai.OpenAI(**_client(airpods))
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(openai.APIStatusError) as refused:  # the server's words: jinja is really off
        api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], tools=[tool])
    assert "tools param requires --jinja flag" in str(refused.value)


def _client(airpods) -> dict[str, str]:
    env = openai_env(airpods)
    return {"base_url": env["OPENAI_BASE_URL"], "api_key": env["OPENAI_API_KEY"]}


def test_a_typod_flag_fails_with_exit_2_before_any_pod_exists(airpods):
    podman("pull", SERVER)  # present: the check uses the table read from this image
    airpods.write_config("[services.llamacpp.command_args]\nctx_sizee = 4096\n")
    for command in (["start"], ["start", "--dry-run"], ["config", "validate"]):
        done = airpods(*command)
        assert done.code == 2, (command, done.err)
        assert f"{airpods.config}: services.llamacpp.command_args.ctx_sizee: llama-server has no flag" in done.err
        assert "did you mean ctx_size?" in done.err and f"llama-server --help of {SERVER}" in done.err
        assert "Traceback" not in done.err
    assert podman("pod", "ls", "-q").stdout.strip() == ""
    assert airpods("start", "--pre-fetch", "llamacpp").code == 0  # pulling needs no valid flags
    airpods.write_config("[services.llamacpp.command_args]\nflash_attn = true\nctx_size = 2048\n")
    wrong = airpods("start", "llamacpp")
    assert wrong.code == 2 and "--flash-attn takes a value (on|off|auto), not true" in wrong.err
    airpods.write_config("")
    valid = airpods("config", "validate")
    assert valid.code == 0 and f"checked against llama-server --help of {SERVER} (image" in valid.out


def test_your_own_key_from_the_environment_is_the_stacks_key(airpods, model_volume, monkeypatch):
    """runtime.api_key = "env:VAR": llama-server requires that key, Open WebUI is handed it,
    `airpods env` prints it; it is in no command line, inspect output or generated key file."""
    monkeypatch.setenv("MY_LLAMA_KEY", "sk-users-own-key-42")
    airpods.write_config('[runtime]\napi_key = "env:MY_LLAMA_KEY"\n')
    started = airpods("start", "llamacpp", "open-webui")
    assert started.code == 0, started.err
    env = openai_env(airpods)
    assert env["OPENAI_API_KEY"] == "sk-users-own-key-42"
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=60)
    chat = api.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4, extra_body={"ignore_eos": True}
    )
    assert chat.usage.completion_tokens > 0
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key="sk-airpods-something-else").models.list()
    assert service_env(airpods, "open-webui-0")["OPENAI_API_KEYS"] == "sk-users-own-key-42"
    answer = podman(
        "exec",
        "open-webui-0",
        "wget",
        "-qO-",
        "--header",
        "Authorization: Bearer sk-users-own-key-42",
        "http://llamacpp:8080/v1/models",
    ).stdout
    assert "tiny" in [m["id"] for m in json.loads(answer)["data"]]
    # llama-server reads the key from a mounted secret file; Open WebUI's OPENAI_API_KEYS is a
    # secret file its wrapper exports (engine/env_handover): neither inspect shows it.
    for container in ("llamacpp-0", "open-webui-0"):
        assert "sk-users-own-key-42" not in podman("inspect", container).stdout
    assert "sk-users-own-key-42" not in podman("ps", "-a", "--no-trunc").stdout
    monkeypatch.delenv("MY_LLAMA_KEY")
    unset = airpods("start", "llamacpp")
    assert unset.code == 2 and "MY_LLAMA_KEY is not set" in unset.err
    assert airpods("status").code == 0  # reading commands need no key
