"""config init / show / path / validate through the CLI."""

from __future__ import annotations

import json
import os

from airpods.config.files import default_toml_text
from tests.unit.helpers import run_cli, write_toml


def test_init_writes_the_commented_defaults_and_never_overwrites(capsys, isolated_home):
    target = isolated_home / ".config" / "airpods" / "config.toml"
    first = run_cli(capsys, "config", "init")
    assert first.code == 0 and target.read_text() == default_toml_text()
    target.write_text("# mine\n")
    again = run_cli(capsys, "config", "init")
    assert again.code == 1 and "already exists" in again.err and "--force" in again.err
    assert target.read_text() == "# mine\n"
    forced = run_cli(capsys, "config", "init", "--force")
    assert forced.code == 0 and target.read_text() == default_toml_text()


def test_path_reports_the_file_in_effect(capsys, isolated_home, tmp_path):
    none = run_cli(capsys, "config", "path")
    assert none.code == 0 and none.out.startswith("none: using the built-in defaults")
    own = write_toml(tmp_path, "")
    os.environ["AIRPODS_CONFIG"] = str(own)
    try:
        assert run_cli(capsys, "config", "path").out.strip() == str(own)
    finally:
        del os.environ["AIRPODS_CONFIG"]


def test_validate_ok(capsys, tmp_path):
    result = run_cli(capsys, "config", "validate", str(write_toml(tmp_path, "[services.comfyui]\nenabled = true\n")))
    assert result.code == 0 and "enabled: ollama, open-webui, comfyui, llamacpp" in result.out


def test_show_merged_json_keeps_templates_and_resolved_renders_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRPODS_HOST_ROOT", str(tmp_path))
    merged = json.loads(run_cli(capsys, "config", "show", "--json").out)
    assert merged["services"]["ollama"]["env"]["OLLAMA_HOST"] == "0.0.0.0:{{services.ollama.ports.0.container}}"
    resolved = json.loads(run_cli(capsys, "config", "show", "--resolved", "--json").out)
    assert resolved["services"]["ollama"]["env"]["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert resolved["rendered"]["llamacpp"]["argv"][:4] == ["--host", "0.0.0.0", "--port", "8080"]
    toml_text = run_cli(capsys, "config", "show", "--resolved").out
    assert "# llamacpp runs: ghcr.io/ggml-org/llama.cpp:server --host 0.0.0.0" in toml_text


def test_version(capsys):
    from airpods import __version__

    assert run_cli(capsys, "--version").out.strip() == f"airpods {__version__}"
