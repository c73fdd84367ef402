"""Which engine a command runs on: --engine, else [runtime] engine, else auto."""

from __future__ import annotations

import socket

import pytest

from airpods.engine.choose import configured_engine, docker_start_hint, engine_name, no_engine
from airpods.errors import ConfigError
from airpods.host.engines import DEFAULT_SOCKET, DockerService, docker_answers, docker_socket


def which_of(*present: str):
    return lambda tool: f"/usr/bin/{tool}" if tool in present else None


@pytest.mark.parametrize(
    ("present", "answers", "expected"),
    [
        (("podman", "docker"), True, "podman"),
        (("docker",), True, "docker"),
        (("docker",), False, "podman"),  # a client alone is no engine: podman, whose absence is explained
        (("podman",), False, "podman"),
        ((), False, "podman"),
    ],
)
def test_auto_prefers_podman_then_a_docker_daemon_that_answers(present, answers, expected):
    assert engine_name("auto", which_of(*present), lambda: answers) == expected


def test_the_daemon_is_asked_only_when_it_decides():
    def never() -> bool:
        raise AssertionError("asked")

    assert engine_name("auto", which_of("podman", "docker"), never) == "podman"
    assert engine_name("auto", which_of(), never) == "podman"
    assert engine_name("docker", which_of(), never) == "docker"


@pytest.fixture
def short_tmp():
    """A folder short enough for a unix socket's path (108 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ap-", dir="/tmp") as folder:
        yield __import__("pathlib").Path(folder)


def test_a_daemon_answers_when_its_socket_listens(short_tmp):
    path = short_tmp / "d.sock"
    env = {"DOCKER_HOST": f"unix://{path}"}
    assert not docker_answers(env)  # no socket at all
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        assert not docker_answers(env)  # a socket file that nobody listens on refuses
        listener.listen(1)
        assert docker_answers(env)


def test_where_the_docker_client_looks(tmp_path):
    assert docker_socket({}, home=tmp_path) == DEFAULT_SOCKET
    assert str(docker_socket({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"})) == "/run/user/1000/docker.sock"
    assert docker_socket({"DOCKER_HOST": "tcp://10.0.0.2:2376"}) is None  # remote: docker's own error speaks
    assert docker_socket({"DOCKER_CONTEXT": "remote"}) is None
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text('{"currentContext": "rootless"}')
    assert docker_socket({}, home=tmp_path) is None
    (tmp_path / ".docker" / "config.json").write_text("not json")
    assert docker_socket({}, home=tmp_path) == DEFAULT_SOCKET


@pytest.mark.parametrize(
    ("service", "said", "not_said"),
    [
        (DockerService(systemd=True, unit=True, dockerd=True), "sudo systemctl enable --now docker", "apt-get"),
        (DockerService(systemd=True, unit=False, dockerd=True), "sudo dockerd", "systemctl"),
        (DockerService(systemd=False, unit=True, dockerd=True), "sudo dockerd", "systemctl"),
        (DockerService(systemd=False, unit=False, dockerd=False), "apt-get install docker.io", "systemctl"),
    ],
)
def test_how_to_start_docker_follows_what_is_installed(service, said, not_said):
    hint = docker_start_hint(service)
    assert said in hint and not_said not in hint


def test_a_docker_client_without_a_daemon_is_explained(monkeypatch, tmp_path):
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.docker of the user running the tests
    found = no_engine(which_of("docker"), DockerService(False, False, False))
    assert found is not None
    said, hint = found
    assert "podman is not installed" in said and "no Docker daemon answering" in said
    assert "apt-get install podman" in hint and "apt-get install docker.io" in hint and "systemctl" not in hint
    _, hint = no_engine(which_of("docker"), DockerService(True, True, True)) or ("", "")
    assert "apt-get install podman" in hint and "systemctl enable --now docker" in hint
    assert no_engine(which_of()) is None  # nothing at all: podman's own install hint
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere/docker.sock")
    said, hint = no_engine(which_of("docker"), DockerService(False, False, False)) or ("", "")
    assert "unix:///nowhere/docker.sock" in said and "unset DOCKER_HOST" in hint


def test_no_home_at_all_is_no_error(monkeypatch):
    """A uid with no passwd entry and no HOME (a container's --user N): the default socket."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr("pathlib.Path.home", lambda: (_ for _ in ()).throw(RuntimeError("no home")))
    assert docker_socket({}) == DEFAULT_SOCKET
    assert docker_socket({"DOCKER_HOST": "unix://"}) is None  # empty: docker's own error speaks


def test_the_cli_says_so_with_exit_1(tmp_path, capsys, monkeypatch):
    """A machine with only a docker client on PATH (no daemon), no podman: `status` exits 1
    with what was found and the next step, not Docker's "is the daemon running?"."""
    from airpods.cli import main

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\nexit 1\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(SystemExit) as done:
        main(["status"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and "Traceback" not in err
    assert "no container engine answers" in err and "podman" in err and str(docker) in err
    assert "hint: install podman" in err


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
