"""Templates: {{name}} from [variables], {{dotted.path}} from the root, types, cycles."""

from __future__ import annotations

import pytest

from airpods.config.templates import resolve_templates
from airpods.errors import ConfigError


@pytest.mark.parametrize(
    "data, path, expected",
    [
        pytest.param(
            {"variables": {"m": "x.gguf"}, "a": "/models/{{m}}"}, ("a",), "/models/x.gguf", id="variable-spliced"
        ),
        pytest.param({"variables": {"m": "x"}, "a": "{{ m }}"}, ("a",), "x", id="whitespace-in-braces"),
        pytest.param({"s": {"p": [{"c": 8080}]}, "a": "{{s.p.0.c}}"}, ("a",), 8080, id="whole-template-keeps-int"),
        pytest.param(
            {"s": {"p": [{"c": 8080}]}, "a": "http://h:{{s.p.0.c}}/v1"},
            ("a",),
            "http://h:8080/v1",
            id="dotted-list-index-spliced",
        ),
        pytest.param(
            {"variables": {"a": "{{b}}", "b": "{{c}}", "c": "deep"}, "x": "{{a}}"}, ("x",), "deep", id="chained"
        ),
        pytest.param({"variables": {"on": True}, "x": "flag={{on}}"}, ("x",), "flag=true", id="bool-spliced-as-toml"),
        pytest.param({"variables": {"n": 2}, "x": ["{{n}}", "a{{n}}"]}, ("x",), [2, "a2"], id="inside-lists"),
        pytest.param(
            {"services": {"my-svc": {"port": 1}}, "x": "{{services.my-svc.port}}"}, ("x",), 1, id="dashes-in-names"
        ),
    ],
)
def test_resolves(data, path, expected):
    node = resolve_templates(data)
    for part in path:
        node = node[part]
    assert node == expected


@pytest.mark.parametrize(
    "data, key, words",
    [
        pytest.param({"x": {"y": "{{nope}}"}}, "x.y", "unknown template name '{{nope}}'", id="unknown-variable"),
        pytest.param({"s": [1], "x": "{{s.3}}"}, "x", "unknown template name '{{s.3}}'", id="index-out-of-range"),
        pytest.param(
            {"variables": {"a": "{{a}}"}}, "variables.a", "template cycle: variables.a -> variables.a", id="self-cycle"
        ),
        pytest.param(
            {"variables": {"a": "{{b}}", "b": "{{a}}"}, "x": "{{a}}"}, "variables.", "template cycle", id="two-cycle"
        ),
        pytest.param({"t": {"k": {"z": 1}}, "x": "a{{t.k}}"}, "x", "table or array", id="table-in-string"),
    ],
)
def test_errors_name_the_key_that_used_the_template(data, key, words):
    with pytest.raises(ConfigError) as err:
        resolve_templates(data)
    assert err.value.key.startswith(key)
    assert words in err.value.detail


def test_resolved_everywhere_in_the_config(tmp_path):
    from tests.unit.helpers import load_text

    config = load_text(
        tmp_path,
        """
        [variables]
        tag = "server-b1"
        default_model = "tiny.gguf"
        [services.llamacpp]
        image = "ghcr.io/ggml-org/llama.cpp:{{tag}}"
        volumes = [{ source = "{{runtime.network}}_models", target = "/models", mode = "ro" }]
        [services.llamacpp.command_args]
        model = "/models/{{default_model}}"
    """,
    ).config
    llama = config.services["llamacpp"]
    assert llama.image == "ghcr.io/ggml-org/llama.cpp:server-b1"
    assert llama.volumes[0].source == "airpods_models"
    assert llama.command_args["model"] == "/models/tiny.gguf"
    assert config.services["ollama"].env["OLLAMA_HOST"] == "0.0.0.0:11434"


def test_doubled_braces_are_literal_so_an_inline_chat_template_passes_through(tmp_path):
    from tests.unit.helpers import load_text

    config = load_text(
        tmp_path,
        """
        [variables]
        who = "assistant"
        [services.llamacpp.command_args]
        chat_template = "{{{{ bos_token }}{%- for m in messages %}{{{{ m.content }}{% endfor %} {{who}}"
    """,
    ).config
    value = config.services["llamacpp"].command_args["chat_template"]
    assert value == "{{ bos_token }}{%- for m in messages %}{{ m.content }}{% endfor %} assistant"
