"""Open WebUI wiring and the API key, as the stack renders them (no podman)."""

from __future__ import annotations

import json

import pytest

from airpods.engine.podman_argv import container_run_argv, step_argv
from airpods.gpu import HostGpu
from airpods.stack.build import build_stack
from tests.unit.helpers import load_text, single_model_toml

TWO = """
[services.llama-fast]
extends = "llamacpp"
ports = [{ host = 8083, container = 8080 }]
"""


def env_of(spec) -> dict[str, str]:
    return dict(spec.env)


def test_open_webui_gets_every_backend_by_alias_and_aligned_keys(tmp_path):
    stack = build_stack(load_text(tmp_path, TWO).config, HostGpu("none"), (), "abc123")
    webui = stack.service("open-webui")
    env = env_of(webui)
    assert env["OLLAMA_BASE_URLS"] == "http://ollama:11434"
    assert env["OPENAI_API_BASE_URLS"] == "http://llamacpp:8080/v1;http://llama-fast:8080/v1"
    assert "OPENAI_API_KEYS" not in env  # a secret, not env
    (keys,) = [s for s in webui.secrets if s.target == "OPENAI_API_KEYS"]
    assert keys.type == "env"
    (definition,) = [d for d in stack.secrets if d.name == keys.name]
    assert definition.value("K") == "K;K"
    assert {d.name for d in stack.secrets} == {keys.name, "airpods-api-key-abc123", "airpods-webui-secret-key"}


def test_wiring_covers_enabled_backends_even_when_only_open_webui_starts(tmp_path):
    stack = build_stack(load_text(tmp_path, "").config, HostGpu("none"), ["open-webui"], "abc123")
    assert env_of(stack.service("open-webui"))["OPENAI_API_BASE_URLS"] == "http://llamacpp:8080/v1"


def test_user_env_wins(tmp_path):
    config = load_text(
        tmp_path,
        """
        [services.open-webui.env]
        OPENAI_API_BASE_URLS = "http://elsewhere:1/v1"
        OLLAMA_BASE_URL = "http://my-ollama:11434"
    """,
    ).config
    webui = build_stack(config, HostGpu("none"), ["open-webui"], "abc123").service("open-webui")
    env = env_of(webui)
    assert env["OPENAI_API_BASE_URLS"] == "http://elsewhere:1/v1"
    assert "OLLAMA_BASE_URLS" not in env and env["OLLAMA_BASE_URL"] == "http://my-ollama:11434"
    assert not [s for s in webui.secrets if s.target == "OPENAI_API_KEYS"]


def test_open_webui_gets_comfyui_for_image_generation_when_it_is_enabled(tmp_path):
    off = build_stack(load_text(tmp_path, "").config, HostGpu("none"), ["open-webui"], "abc123")
    assert not {"ENABLE_IMAGE_GENERATION", "COMFYUI_BASE_URL"} & set(env_of(off.service("open-webui")))
    on = load_text(tmp_path, '[services.comfyui]\nenabled = true\nnetwork_aliases = ["comfy", "comfyui"]\n').config
    env = env_of(build_stack(on, HostGpu("none"), ["open-webui"], "abc123").service("open-webui"))
    assert env["ENABLE_IMAGE_GENERATION"] == "True" and env["IMAGE_GENERATION_ENGINE"] == "comfyui"
    assert env["COMFYUI_BASE_URL"] == "http://comfy:8188"  # its first alias, its container port
    nodes = {node["type"]: node for node in json.loads(env["COMFYUI_WORKFLOW_NODES"])}
    assert nodes["prompt"] == {"type": "prompt", "key": "text", "node_ids": ["6"]}
    assert nodes["model"]["key"] == "ckpt_name"
    own = load_text(
        tmp_path, '[services.comfyui]\nenabled = true\n[services.open-webui.env]\nCOMFYUI_WORKFLOW = "{}"\n'
    )
    assert "COMFYUI_WORKFLOW_NODES" not in env_of(
        build_stack(own.config, HostGpu("none"), (), "a").service("open-webui")
    )


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        # Opting out of image generation: Open WebUI's own switch, the rest is inert.
        (
            'ENABLE_IMAGE_GENERATION = "False"',
            {"ENABLE_IMAGE_GENERATION": "False", "COMFYUI_BASE_URL": "http://comfyui:8188"},
        ),
        # Another engine: none of airpods' image wiring; another ComfyUI: only the URL is yours.
        ('IMAGE_GENERATION_ENGINE = "openai"', {"IMAGE_GENERATION_ENGINE": "openai", "COMFYUI_BASE_URL": None}),
        (
            'COMFYUI_BASE_URL = "http://gpu-box:8188"',
            {"COMFYUI_BASE_URL": "http://gpu-box:8188", "IMAGE_GENERATION_ENGINE": "comfyui"},
        ),
    ],
)
def test_a_user_value_wins_over_the_comfyui_wiring(tmp_path, user, expected):
    text = f"[services.comfyui]\nenabled = true\n[services.open-webui.env]\n{user}\n"
    env = env_of(
        build_stack(load_text(tmp_path, text).config, HostGpu("none"), ["open-webui"], "abc").service("open-webui")
    )
    assert {name: env.get(name) for name in expected} == expected


def test_llama_server_reads_the_key_from_a_mounted_secret(tmp_path):
    spec = build_stack(load_text(tmp_path, "").config, HostGpu("none"), ["llamacpp"], "abc123").service("llamacpp")
    argv = container_run_argv(spec)
    assert "airpods-api-key-abc123,type=mount,target=/run/secrets/api_key,mode=0400" in argv
    assert argv[-2:] == ("--api-key-file", "/run/secrets/api_key")


def test_api_key_off_means_no_secrets_and_none_keys(tmp_path):
    stack = build_stack(load_text(tmp_path, "[runtime]\napi_key = false\n").config, HostGpu("none"), (), "abc123")
    assert [d.name for d in stack.secrets] == ["airpods-webui-secret-key"]  # Open WebUI's sessions only
    assert "--api-key-file" not in stack.service("llamacpp").args
    assert env_of(stack.service("open-webui"))["OPENAI_API_KEYS"] == "none"


def test_single_model_shape_gets_an_alias(tmp_path):
    config = load_text(tmp_path, single_model_toml("qwen-0.5b-q4_k_m.gguf")).config
    args = build_stack(config, HostGpu("none"), ["llamacpp"]).service("llamacpp").args
    assert args[args.index("--alias") + 1] == "qwen-0.5b-q4_k_m"


def test_secret_values_never_show_in_the_rendered_plan(tmp_path):
    from airpods.plan import Observed, build_start_plan

    stack = build_stack(load_text(tmp_path, "").config, HostGpu("none"), (), "abc123")
    plan = build_start_plan(stack, Observed(), api_key="sk-very-secret")
    assert "sk-very-secret" not in plan.render(step_argv)
    assert "sk-very-secret" not in str(plan.to_json(step_argv))
    assert any(step.stdin == "sk-very-secret" for step in plan.steps)
