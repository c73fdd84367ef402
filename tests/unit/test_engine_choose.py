"""Which engine a command runs on: --engine, else [runtime] engine, else auto."""

from __future__ import annotations

import pytest

from airpods.engine.choose import configured_engine, engine_name
from airpods.errors import ConfigError


def which_of(*present: str):
    return lambda tool: f"/usr/bin/{tool}" if tool in present else None


@pytest.mark.parametrize(
    ("present", "expected"),
    [(("podman", "docker"), "podman"), (("docker",), "docker"), (("podman",), "podman"), ((), "podman")],
)
def test_auto_prefers_podman_then_docker(present, expected):
    assert engine_name("auto", which_of(*present)) == expected


def test_a_named_engine_is_taken_as_is():
    assert engine_name("docker", which_of("podman")) == "docker"
    assert engine_name("podman", which_of("docker")) == "podman"


def test_the_config_names_the_engine(tmp_path):
    config = tmp_path / "airpods.toml"
    assert configured_engine(None) == "auto"  # no file at all
    config.write_text('[runtime]\nproject = "x"\n')
    assert configured_engine(config) == "auto"
    config.write_text('[runtime]\nengine = "docker"\n')
    assert configured_engine(config) == "docker"


@pytest.mark.parametrize("value", ['"dockr"', "true", '"Docker"', "[]"])
def test_a_bad_engine_is_a_config_error_naming_file_and_key(tmp_path, value):
    config = tmp_path / "airpods.toml"
    config.write_text(f"[runtime]\nengine = {value}\n")
    with pytest.raises(ConfigError) as error:
        configured_engine(config)
    assert error.value.exit_code == 2 and error.value.key == "runtime.engine"
    assert str(config) in str(error.value.file) and "podman" in error.value.message


def test_the_cli_reports_a_bad_engine_with_exit_2(tmp_path, capsys):
    from airpods.cli import main

    config = tmp_path / "airpods.toml"
    config.write_text('[runtime]\nengine = "dockr"\n')
    with pytest.raises(SystemExit) as done:
        main(["--config", str(config), "status"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "runtime.engine" in err and str(config) in err and "Traceback" not in err
    with pytest.raises(SystemExit) as done:
        main(["--engine", "dockr", "status"])
    assert done.value.code == 2 and "dockr" in capsys.readouterr().err


def test_a_dry_run_shows_the_chosen_engines_commands(tmp_path, capsys, monkeypatch):
    from airpods.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # neither engine installed: nothing is observed
    config = tmp_path / "airpods.toml"
    config.write_text('[runtime]\nengine = "docker"\n')
    with pytest.raises(SystemExit) as done:
        main(["--config", str(config), "start", "--dry-run", "llamacpp"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "docker run --detach --name llamacpp-0" in shown and "podman" not in shown


def test_the_cli_offers_exactly_the_choices():
    from airpods.cli import EngineChoice
    from airpods.engine.choose import CHOICES

    assert sorted(e.value for e in EngineChoice) == sorted(CHOICES)


def test_an_errors_suggested_commands_carry_the_typed_engine(capsys, monkeypatch):
    from airpods.cli import _engine_flag

    assert _engine_flag(["--engine", "docker", "status"]) == "docker"
    assert _engine_flag(["--engine=docker", "logs"]) == "docker"
    assert _engine_flag(["-c", "x.toml", "logs", "--engine", "x"]) is None  # after the command: not ours
    from airpods.cli import output
    from airpods.errors import RuntimeFailure

    monkeypatch.setattr(output, "engine_flag", "docker")
    output.print_error(RuntimeFailure("no container for ollama", hint="`airpods start ollama` starts it"))
    assert "`airpods --engine docker start ollama` starts it" in capsys.readouterr().err


def test_a_missing_engine_says_what_chose_it(tmp_path, capsys, monkeypatch):
    from airpods.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # neither engine installed
    config = tmp_path / "airpods.toml"
    config.write_text('[runtime]\nengine = "docker"\n')
    with pytest.raises(SystemExit) as done:
        main(["--config", str(config), "status"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and 'docker is not installed (chosen by [runtime] engine = "docker"' in err
    with pytest.raises(SystemExit):
        main(["--engine", "podman", "status"])
    assert "podman is not installed (chosen by --engine podman)" in capsys.readouterr().err
