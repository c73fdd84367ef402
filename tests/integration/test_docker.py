"""What is Docker's own on the Docker engine, on the rig's real dockerd: choosing it from the
config, its doctor checks, secrets as read-only files, pulls, and the same output as Podman.
(The engine-neutral lifecycle and llama.cpp tests run on Docker too: test_lifecycle.py,
test_llamacpp.py.)"""

from __future__ import annotations

import functools
import json
import os
import stat
from pathlib import Path

import pytest

from tests.integration.conftest import (
    MANAGED,
    Airpods,
    docker,
    docker_inspect,
    docker_problem,
    eventually,
    podman,
    remove_everything_docker_made,
)


@pytest.fixture
def on_docker(rig, tmp_path) -> Airpods:
    """airpods on the rig's Docker daemon (Podman's store is left alone)."""
    if why := docker_problem():
        pytest.skip(why)
    remove_everything_docker_made()
    yield Airpods(tmp_path, name="docker.toml", engine="docker")
    remove_everything_docker_made()


def test_the_config_file_chooses_docker(on_docker):
    plain = Airpods(on_docker.config.parent, name="chosen.toml")  # no --engine: the file decides
    plain.write_config('[runtime]\nengine = "docker"\n')
    started = plain("start", "ollama")
    assert started.code == 0, started.err
    assert docker("ps", "--filter", "name=ollama-0", "--format", "{{.Names}}").stdout.split() == ["ollama-0"]
    assert podman("container", "exists", "ollama-0", check=False).returncode != 0
    rows = plain("status", "--json").json()["services"]
    assert [(r["name"], r["state"], r["health"]) for r in rows][0] == ("ollama", "running", "healthy")
    refused = plain("autostart", "on")
    assert refused.code == 2 and "restart policy" in refused.err and "Traceback" not in refused.err


def test_doctor_checks_the_daemon_its_socket_and_version(on_docker):
    done = on_docker("doctor", "--json")
    checks = {c["name"]: c for c in done.json()["checks"]}
    daemon = docker("version", "--format", "{{.Server.Version}}").stdout.strip()  # 20.10 on Debian 12, 26 on 13
    assert checks["docker"]["level"] == "OK" and f"(daemon {daemon})" in checks["docker"]["detail"]
    assert (
        checks["docker socket"]["level"] == "OK" and os.environ["DOCKER_HOST"][7:] in checks["docker socket"]["detail"]
    )
    assert checks["mode"]["detail"] == "rootful" and "reboot" in checks
    assert "podman" not in checks

    stopped = Path(on_docker.config.parent) / "no-daemon.sock"
    env = {**os.environ, "DOCKER_HOST": f"unix://{stopped}"}
    import subprocess

    down = subprocess.run(on_docker.argv("doctor"), capture_output=True, text=True, env=env, timeout=120)
    assert down.returncode == 1 and f"{stopped} does not exist: the Docker daemon is not running" in down.stdout
    # the fix follows what this machine has (engine.choose.docker_start_hint), as observed here
    from airpods.engine.choose import docker_start_hint
    from airpods.host.engines import DockerService

    assert "fix: " + docker_start_hint(DockerService.observe()) in " ".join(down.stdout.split())
    status = subprocess.run(on_docker.argv("status"), capture_output=True, text=True, env=env, timeout=120)
    assert status.returncode == 1 and "Cannot connect to the Docker daemon" in status.stderr
    assert f"nothing answers at DOCKER_HOST=unix://{stopped}" in status.stderr and "Traceback" not in status.stderr


def test_secrets_are_read_only_files_never_env_or_argv(on_docker):
    started = on_docker("start", "llamacpp", "open-webui")
    assert started.code == 0, started.err
    secrets = Path(os.environ["XDG_STATE_HOME"]) / "airpods" / "docker-secrets"
    folder = secrets / "airpods"  # the project's
    assert stat.S_IMODE(secrets.stat().st_mode) == stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) in (0o400, 0o600) for f in files)
    key_files = [f for f in files if not f.name.endswith(".env")]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o400 for f in key_files)

    llama = docker_inspect("llamacpp-0")[0]
    mounts = {m["Destination"]: m for m in llama["Mounts"]}
    assert mounts["/run/secrets/api_key"]["RW"] is False
    key = on_docker("env").out.split("OPENAI_API_KEY=")[1].split()[0].strip("'\"")
    assert key not in json.dumps(llama) and key not in docker("ps", "-a", "--no-trunc").stdout
    write = docker("exec", "llamacpp-0", "sh", "-c", "echo x > /run/secrets/api_key", check=False)
    assert write.returncode != 0  # read-only inside the container too


def test_pull_goes_through_the_daemon_and_only_changed_images_count(on_docker):
    image, mirror = "docker.io/ollama/ollama:latest", os.environ["AIRPODS_RIG_REGISTRY"] + "/ollama/ollama:latest"
    docker("rmi", image, check=False)
    try:
        fetched = on_docker("start", "--pre-fetch", "ollama")
        assert fetched.code == 0, fetched.err
        assert "pulled docker.io/ollama/ollama:latest" in fetched.err
        assert docker("image", "inspect", image, check=False).returncode == 0
        again = on_docker("pull", "ollama", "--json")
        assert again.code == 0, again.err
        assert [r["outcome"] for r in again.json()["images"]] == ["unchanged"]
    finally:  # the rig's image stays for the tests after this one
        if docker("image", "inspect", image, check=False).returncode != 0:
            docker("pull", mirror)
            docker("tag", mirror, image)


def test_status_says_the_same_on_both_engines(airpods, on_docker):
    def normalized(runner: Airpods) -> list[dict]:
        rows = runner("status", "--json").json()["services"]
        # the registry digest is each engine's own record of a pull (the rig tags Docker's images)
        return [{k: v for k, v in r.items() if k not in ("uptime_s", "started_at", "digest")} for r in rows]

    for runner in (airpods, on_docker):
        runner.write_config("")
    assert airpods("start", "ollama", "llamacpp").code == 0
    on_podman, podman_log = normalized(airpods), airpods("logs", "ollama").out.splitlines()
    assert airpods("stop").code == 0
    assert on_docker("start", "ollama", "llamacpp").code == 0
    assert normalized(on_docker) == on_podman
    docker_log = on_docker("logs", "ollama").out.splitlines()
    assert docker_log[0] == podman_log[0] == "stand-in for ollama listening on 11434"
    assert "standin: GET /api/version" in set(docker_log) & set(podman_log)  # airpods' readiness probe


def test_clean_removes_this_projects_secret_files_and_keeps_the_others(on_docker):
    other = Airpods(on_docker.config.parent, name="other.toml", engine="docker")
    other.write_config("""
        [runtime]
        project = "second"
        [services.llamacpp]
        ports = [{ host = 8091, container = 8080 }]
    """)
    assert on_docker("start", "llamacpp").code == 0 and other("start", "llamacpp").code == 0
    secrets = Path(os.environ["XDG_STATE_HOME"]) / "airpods" / "docker-secrets"
    assert [p.name for p in (secrets / "airpods").iterdir()]
    cleaned = on_docker("clean", "--pods", "--yes")
    assert cleaned.code == 0, cleaned.err
    assert not list((secrets / "airpods").iterdir())
    assert docker("ps", "-aq", "--filter", "label=io.airpods.project=second").stdout.split()  # not this project's
    assert [p.name for p in (secrets / "second").iterdir()]
    assert on_docker("start", "llamacpp").code == 0  # made again from the key file


def test_a_port_held_by_the_stack_on_the_other_engine_says_so(airpods, on_docker):
    assert on_docker("start", "ollama").code == 0
    blocked = airpods("start", "ollama")  # Podman: the port is Docker's
    assert blocked.code == 1 and "nothing was created" in blocked.err
    assert "`airpods --engine docker status`" in blocked.err, blocked.err


def _restarted_and_running(cid: str) -> bool:
    """Running again after a restart: its inspect's ExitCode is back to 0."""
    found = docker_inspect(cid)[0]
    return found["RestartCount"] >= 1 and found["State"]["Running"] and found["State"]["ExitCode"] == 0


def test_a_restarted_containers_exit_code_is_its_last_runs(on_docker):
    """Docker resets ExitCode when its restart policy starts the container again, so the code
    comes from the `die` event, including one in the current second: `--until 0s` means whole
    seconds to the Docker CLI, and `start` said "exit code 0" for a service that exited with 3."""
    from airpods.engine.docker import Docker

    engine = Docker()
    for _ in range(5):  # an exit often lands in the same second as the question
        ran = docker(
            *("run", "--detach", "--label", MANAGED.removeprefix("label="), "--network", "none"),
            *("--restart", "unless-stopped", "--entrypoint", "/bin/sh", "docker.io/ollama/ollama:latest"),
            *("-c", "sleep 0.3; exit 3"),
        )
        cid = ran.stdout.strip()
        assert eventually(functools.partial(_restarted_and_running, cid), timeout=30, interval=0.02)
        code, restarts = engine.last_exit(cid)
        assert (code, restarts >= 1) == (3, True)
        docker("rm", "--force", cid)
