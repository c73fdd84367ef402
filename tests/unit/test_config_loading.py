"""Loading: defaults alone, merging a user file over them, and where the file is found."""

from __future__ import annotations

import pytest

from airpods.config.files import locate_config
from airpods.config.loader import build_config, load_config
from airpods.errors import ConfigError
from tests.unit.helpers import load_text, write_toml


def test_defaults_alone_give_the_documented_stack():
    config = build_config({}).config
    assert config.enabled_services() == ["ollama", "open-webui", "llamacpp"]
    assert set(config.services) == {"ollama", "open-webui", "comfyui", "llamacpp", "llamacpp-ui", "gateway"}
    assert config.runtime.bind_address == "127.0.0.1"
    hosts = {name: [p.host for p in s.ports] for name, s in config.services.items()}
    assert hosts == {
        "ollama": [11434],
        "open-webui": [3000],
        "comfyui": [8188],
        "llamacpp": [8081],
        "llamacpp-ui": [8082],
        "gateway": [8443],
    }
    assert config.services["llamacpp"].volumes[0].mode == "ro"


def test_user_file_sets_one_field_and_keeps_the_rest(tmp_path):
    config = load_text(
        tmp_path,
        """
        [services.llamacpp.command_args]
        ctx_size = 8192
    """,
    ).config
    args = config.services["llamacpp"].command_args
    assert args["ctx_size"] == 8192
    assert args["models_dir"] == "/models"  # untouched default
    assert config.services["llamacpp"].health.path == "/health"


def test_user_file_adds_a_service_and_arrays_replace(tmp_path):
    config = load_text(
        tmp_path,
        """
        [services.ollama]
        ports = [{ host = 11500, container = 11434 }]
        [services.whisper]
        image = "docker.io/example/whisper:1"
    """,
    ).config
    assert [(p.host, p.container) for p in config.services["ollama"].ports] == [(11500, 11434)]
    assert config.services["whisper"].image == "docker.io/example/whisper:1"
    assert "whisper" in config.enabled_services()


def test_discovery_order(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    xdg_file = write_toml(tmp_path, "", "unused.toml")
    (xdg / "airpods").mkdir(parents=True)
    (xdg / "airpods" / "config.toml").write_text("")
    env_file = write_toml(tmp_path, "", "env.toml")
    flag_file = write_toml(tmp_path, "", "flag.toml")
    env = {"XDG_CONFIG_HOME": str(xdg), "AIRPODS_CONFIG": str(env_file)}
    assert locate_config(flag_file, env) == flag_file
    assert locate_config(None, env) == env_file
    assert locate_config(None, {"XDG_CONFIG_HOME": str(xdg)}) == xdg / "airpods" / "config.toml"
    assert locate_config(None, {"XDG_CONFIG_HOME": str(tmp_path / "empty")}) is None
    assert xdg_file.exists()


@pytest.mark.parametrize("origin", ["flag", "env"], ids=["--config missing", "AIRPODS_CONFIG missing"])
def test_a_named_file_that_is_missing_is_an_error(tmp_path, origin):
    missing = tmp_path / "nope.toml"
    env = {"AIRPODS_CONFIG": str(missing)} if origin == "env" else {}
    with pytest.raises(ConfigError) as err:
        load_config(missing if origin == "flag" else None, env)
    assert str(missing) in err.value.message and "not found" in err.value.message


def test_without_any_file_the_defaults_are_used(tmp_path):
    loaded = load_config(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert loaded.path is None
    assert loaded.config.services["llamacpp"].command_args["models_dir"] == "/models"
