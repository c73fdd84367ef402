"""Secure by default, measured on the real engines: containers without capabilities (llama.cpp
and Ollama on a read-only root), a planted secret that never shows where airpods or the engine
could print it, and a public bind address that is refused until it is meant."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import capabilities, openai_env, service_env

PLANTED = "planted-" + secrets.token_hex(12)
IN_ENV = "env-" + secrets.token_hex(12)  # a secret put under `env` by mistake


def test_every_container_runs_without_capabilities_llama_on_a_read_only_root(airpods, engine, model_volume):
    started = airpods("start")
    assert started.code == 0, started.err
    for container in ("ollama-0", "open-webui-0", "llamacpp-0"):
        assert capabilities(airpods, container) == ("0000000000000000", "1"), container
    denied = airpods.ctr("exec", "llamacpp-0", "sh", "-c", "echo x > /probe", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert airpods.ctr("exec", "llamacpp-0", "sh", "-c", "echo x > /tmp/probe", check=False).returncode == 0
    import openai

    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=60)
    reply = api.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.usage.completion_tokens > 0  # the hardened server serves


def cmdlines_while(proc) -> list[str]:
    """Every process's command line, sampled while `proc` runs (the engine's children included)."""
    seen: set[str] = set()
    while proc.poll() is None:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    seen.add(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    continue
    return sorted(seen)


def test_a_planted_secret_never_shows_in_argv_inspect_dry_run_config_errors_or_logs(
    airpods, engine, monkeypatch, tmp_path
):
    monkeypatch.setenv("AIRPODS_TEST_PLANTED", PLANTED)
    airpods.write_config(f"""
        [services.ollama.secrets]
        PLANTED_TOKEN = "env:AIRPODS_TEST_PLANTED"
        [services.open-webui.env]
        HF_TOKEN = "{IN_ENV}"
    """)
    proc = airpods.popen("start", "ollama", "open-webui")
    sampler: list[list[str]] = []
    thread = threading.Thread(target=lambda: sampler.append(cmdlines_while(proc)))
    thread.start()
    out, err = proc.communicate(timeout=300)
    thread.join()
    assert proc.returncode == 0, err
    (lines,) = sampler
    assert any("ollama-0" in line for line in lines)  # the sampler saw the engine at work
    assert not [line for line in lines if PLANTED in line]
    assert "services.open-webui.env.HF_TOKEN looks like a secret" in err  # said, and masked below
    # The service's process has it, as an env variable; no engine's `inspect` (Podman before
    # 5.3 and Docker wrote env secrets into the container's config) nor `exec env` shows it.
    assert service_env(airpods, "ollama-0")["PLANTED_TOKEN"] == PLANTED
    for looked in (airpods.ctr("inspect", "ollama-0"), airpods.ctr("exec", "ollama-0", "env")):
        assert PLANTED not in looked.stdout
    shown = [airpods(*args) for args in (["start", "--dry-run"], ["config", "show", "--resolved"], ["status"])]
    # The service prints it: `airpods logs` masks it, also from a shell without the variable.
    airpods.ctr(
        "exec",
        "ollama-0",
        "sh",
        "-c",
        "echo token=$(tr '\\0' '\\n' < /proc/1/environ | sed -n 's/^PLANTED_TOKEN=//p') > /proc/1/fd/1",
    )
    logs = airpods("logs", "ollama")
    assert "token=********" in logs.out
    monkeypatch.delenv("AIRPODS_TEST_PLANTED")
    elsewhere = airpods("logs", "ollama")
    assert elsewhere.code == 0 and "token=********" in elsewhere.out
    monkeypatch.setenv("AIRPODS_TEST_PLANTED", PLANTED)
    shown += [logs, elsewhere]
    # A container the engine cannot start: its error (engine errors' argv: test_security unit).
    airpods.write_config(f"""
        [services.ollama.secrets]
        PLANTED_TOKEN = "env:AIRPODS_TEST_PLANTED"
        [services.ollama]
        entrypoint_override = ["/no-such-program"]
        [services.ollama.env]
        HF_TOKEN = "{IN_ENV}"
    """)
    failed = airpods("start", "ollama")
    assert failed.code == 1 and "/no-such-program" in failed.err, failed.err
    shown.append(failed)
    # A service that prints its environment and the secret as it fails its start (issue 34): its
    # last log lines are shown, masked, in text and in --json.
    airpods.write_config(f"""
        [services.ollama.secrets]
        PLANTED_TOKEN = "env:AIRPODS_TEST_PLANTED"
        [services.ollama]
        entrypoint_override = ["/bin/sh", "-c", "env; echo the token is $PLANTED_TOKEN; exit 3"]
        [services.ollama.env]
        HF_TOKEN = "{IN_ENV}"
    """)
    for args in (("start", "ollama"), ("start", "--json", "ollama")):
        crashed = airpods(*args)
        assert crashed.code == 1 and "the token is ********" in crashed.out + crashed.err, crashed.out + crashed.err
        assert (
            "PLANTED_TOKEN=********" in crashed.out + crashed.err and "HF_TOKEN=********" in crashed.out + crashed.err
        )
        shown.append(crashed)
    for run in shown:
        assert PLANTED not in run.out + run.err and IN_ENV not in run.out + run.err


def test_a_rotated_secret_leaves_no_old_value_behind(airpods, engine, monkeypatch):
    airpods.write_config('[services.ollama.secrets]\nPLANTED_TOKEN = "env:AIRPODS_TEST_PLANTED"\n')
    monkeypatch.setenv("AIRPODS_TEST_PLANTED", "first-" + PLANTED)
    assert airpods("start", "ollama").code == 0
    before = secret_names(airpods)
    monkeypatch.setenv("AIRPODS_TEST_PLANTED", "second-" + PLANTED)
    rotated = airpods("start", "ollama")
    assert rotated.code == 0, rotated.err
    after = secret_names(airpods)
    assert len(before) == len(after) == 1 and before != after  # the old value's secret is gone
    assert service_env(airpods, "ollama-0")["PLANTED_TOKEN"] == "second-" + PLANTED


def secret_names(airpods) -> set[str]:
    """The engine's user secrets of this stack (Docker: airpods' 0400 files)."""
    if airpods.engine == "docker":
        folder = Path(os.environ["XDG_STATE_HOME"]) / "airpods" / "docker-secrets" / "airpods"
        names = {p.name for p in folder.iterdir() if not p.name.endswith(".env")}
    else:
        names = set(airpods.ctr("secret", "ls", "--format", "{{.Name}}").stdout.split())
    return {n for n in names if n.startswith("airpods-secret-")}


def test_a_public_bind_address_is_refused_until_it_is_meant_then_said_out_loud(airpods):
    airpods.write_config('[runtime]\nbind_address = "0.0.0.0"\n')
    refused = airpods("start", "ollama")
    assert refused.code == 2 and "runtime.bind_address" in refused.err and "runtime.expose" in refused.err
    assert airpods.pods() == set()
    airpods.write_config('[runtime]\nbind_address = "0.0.0.0"\nexpose = true\n')
    started = airpods("start", "ollama", "llamacpp")
    assert started.code == 0, started.err
    assert "ollama on 0.0.0.0:11434 is reachable from the network: no authentication" in started.err
    assert "llamacpp on 0.0.0.0:8081 is reachable from the network: the stack's API key" in started.err
    checks = [c for c in airpods("doctor", "--json").json()["checks"] if c["name"] == "exposed"]
    assert {(c["level"], c["detail"].split(" on ")[0]) for c in checks} >= {("WARN", "ollama"), ("OK", "llamacpp")}


def test_a_multi_line_secret_reaches_the_container_whole(airpods, engine, tmp_path):
    """Docker's env files carry one line a variable: a PEM key arrived as its first line only."""
    pem = tmp_path / "key.pem"
    body = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n" + PLANTED + "\n-----END PRIVATE KEY-----"
    pem.write_text(body + "\n")
    airpods.write_config(f'[services.ollama.secrets]\nTLS_KEY = "file:{pem}"\n')
    started = airpods("start", "ollama")
    assert started.code == 0, started.err
    assert (
        service_env(airpods, "ollama-0")["TLS_KEY"] == body
    )  # every line (the value's surrounding whitespace is trimmed, as for any secret)


def test_a_tool_container_that_runs_out_of_time_is_removed_not_left_writing(airpods, engine):
    """A time-out killed the client and left the tool container running (issue 34 §1)."""
    import time

    from airpods.engine.base import OneOff
    from airpods.engine.docker import Docker
    from airpods.engine.errors import EngineTimeout
    from airpods.engine.podman import Podman

    tool = Docker() if engine == "docker" else Podman()
    job = OneOff("docker.io/ollama/ollama:latest", ("-c", "sleep 120"), entrypoint="/bin/sh", tool="test")
    began = time.monotonic()
    with pytest.raises(EngineTimeout):
        tool.run_one_off(job, on_line=lambda line: None, timeout_s=5)
    assert time.monotonic() - began < 60
    left = airpods.ctr("ps", "-a", "--filter", f"name={job.name}", "--format", "{{.Names}}").stdout.split()
    assert job.name not in left
