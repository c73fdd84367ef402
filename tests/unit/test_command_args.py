"""command_args → argv, rule by rule, and entrypoint_override."""

from __future__ import annotations

import pytest

from airpods.stack.args import has_flag, render_command_args


@pytest.mark.parametrize(
    "args, argv",
    [
        pytest.param({"ctx_size": 8192}, ["--ctx-size", "8192"], id="underscores-become-dashes"),
        pytest.param({"no_webui": True}, ["--no-webui"], id="true-is-a-bare-flag"),
        pytest.param({"metrics": False}, [], id="false-is-omitted"),
        pytest.param(
            {"lora": ["a.gguf", "b.gguf"]}, ["--lora", "a.gguf", "--lora", "b.gguf"], id="list-repeats-the-flag"
        ),
        pytest.param({"lora": []}, [], id="empty-list-is-omitted"),
        pytest.param({"-ngl": 99, "-c": 512}, ["-ngl", "99", "-c", "512"], id="dash-keys-verbatim"),
        pytest.param({"temp": 0.5}, ["--temp", "0.5"], id="floats-as-text"),
        pytest.param({"b": 1, "a": 2, "c": True}, ["--b", "1", "--a", "2", "--c"], id="toml-order-kept"),
        pytest.param({"model": "/models/x y.gguf"}, ["--model", "/models/x y.gguf"], id="spaces-stay-one-argument"),
    ],
)
def test_render(args, argv):
    assert render_command_args(args) == argv


def test_has_flag_matches_keys_and_flag_spellings():
    assert has_flag({"n_gpu_layers": 1}, "n_gpu_layers")
    assert has_flag({"--n-gpu-layers": 1}, "n_gpu_layers")
    assert has_flag({"-ngl": 1}, "n_gpu_layers", "-ngl")
    assert not has_flag({"ctx_size": 1}, "n_gpu_layers", "-ngl")


def test_default_model_template_renders_the_model_flag(tmp_path):
    from airpods.gpu import HostGpu
    from airpods.stack.build import build_service
    from tests.unit.helpers import load_text, single_model_toml

    config = load_text(tmp_path, single_model_toml("x.gguf")).config
    spec, _ = build_service(config, "llamacpp", HostGpu("none"))
    assert spec.args[:2] == ("--host", "0.0.0.0")
    i = spec.args.index("--model")
    assert spec.args[i : i + 2] == ("--model", "/models/x.gguf")


def test_entrypoint_override_replaces_the_entrypoint_and_args_follow(tmp_path):
    from airpods.engine.podman_argv import container_run_argv
    from airpods.gpu import HostGpu
    from airpods.stack.build import build_service
    from tests.unit.helpers import load_text

    config = load_text(
        tmp_path,
        """
        [services.tool]
        image = "ghcr.io/ggml-org/llama.cpp:full"
        entrypoint_override = ["/app/tools.sh", "--server"]
        command_args = { port = 9000, verbose = true }
    """,
    ).config
    argv = container_run_argv(build_service(config, "tool", HostGpu("none"))[0])
    i = argv.index("--entrypoint")
    assert argv[i + 1] == '["/app/tools.sh", "--server"]'
    assert argv[-4:] == ("ghcr.io/ggml-org/llama.cpp:full", "--port", "9000", "--verbose")
