"""`extends`: a new service inherits every field of its base but its identity."""

from __future__ import annotations

from airpods.gpu import HostGpu
from airpods.stack.build import build_stack, kind_of
from tests.unit.helpers import load_text

TWO_INSTANCES = """
    [services.llama-fast]
    extends = "llamacpp"
    ports = [{ host = 8083, container = 8080 }]
    command_args = { ctx_size = 2048 }
"""


def test_extra_instance_inherits_and_overrides(tmp_path):
    config = load_text(tmp_path, TWO_INSTANCES).config
    fast, base = config.services["llama-fast"], config.services["llamacpp"]
    assert fast.image == base.image
    assert fast.volumes == base.volumes
    assert fast.health == base.health
    assert fast.command_args["ctx_size"] == 2048
    assert fast.command_args["models_dir"] == "/models"
    assert fast.pod is None and fast.container is None and fast.network_aliases is None
    assert kind_of(config, "llama-fast") == "llamacpp"


def test_identity_defaults_to_the_service_name(tmp_path):
    config = load_text(tmp_path, TWO_INSTANCES).config
    spec = build_stack(config, HostGpu("none")).service("llama-fast")
    assert (spec.pod, spec.container, spec.aliases) == ("llama-fast", "llama-fast-0", ("llama-fast",))
    assert spec.publish[0].address() == "127.0.0.1:8083" and spec.publish[0].container == 8080


def test_enabled_is_not_inherited(tmp_path):
    config = load_text(
        tmp_path,
        """
        [services.llamacpp]
        enabled = false
        [services.solo]
        extends = "llamacpp"
    """,
    ).config
    assert config.enabled_services() == ["ollama", "open-webui", "solo"]


def test_llamacpp_ui_is_a_disabled_llamacpp_with_the_web_ui(tmp_path):
    config = load_text(tmp_path, "").config
    ui = config.services["llamacpp-ui"]
    assert not ui.enabled and kind_of(config, "llamacpp-ui") == "llamacpp"
    assert ui.command_args["no_webui"] is False and ui.health.path == "/"


def test_chains_resolve(tmp_path):
    config = load_text(
        tmp_path,
        """
        [services.a]
        extends = "llamacpp"
        ports = [{ host = 9001, container = 8080 }]
        command_args = { ctx_size = 1 }
        [services.b]
        extends = "a"
        ports = [{ host = 9002, container = 8080 }]
    """,
    ).config
    assert config.services["b"].command_args["ctx_size"] == 1
    assert kind_of(config, "b") == "llamacpp"
