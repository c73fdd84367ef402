"""Secure by default (issue 21): least privilege in every renderer, and going public said out
loud."""

from __future__ import annotations

import pytest

from airpods.engine.docker_argv import container_run_argv as docker_run
from airpods.engine.podman_argv import container_run_argv as podman_run
from airpods.errors import ConfigError
from airpods.export.kube import kubernetes_documents
from airpods.export.quadlet import quadlet_units
from airpods.stack.exposure import exposed
from tests.unit.helpers import KEY, load_text, stack_of


def joined(argv) -> str:
    return " ".join(argv)


def test_every_service_drops_every_capability_in_every_renderer(tmp_path):
    from pathlib import Path

    stack = stack_of(tmp_path)
    for spec in stack.services:
        for argv in (podman_run(spec), docker_run(spec, Path("/s"))):
            assert "--cap-drop all --security-opt no-new-privileges" in joined(argv)
    llama = stack.service("llamacpp")
    assert "--read-only --tmpfs /tmp --tmpfs /var/tmp --tmpfs /run" in joined(podman_run(llama))
    assert "--read-only" not in joined(podman_run(stack.service("open-webui")))  # writes outside its volume
    unit = quadlet_units(stack)["llamacpp-0.container"]
    assert "DropCapability=all" in unit and "NoNewPrivileges=true" in unit and "ReadOnly=true" in unit
    pods = [d for d in kubernetes_documents(stack, KEY) if d["kind"] == "Deployment"]
    for pod in pods:
        context = pod["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        assert context["capabilities"]["drop"] == ["ALL"] and context["allowPrivilegeEscalation"] is False


def test_a_service_adds_back_named_capabilities_and_may_keep_a_writable_root(tmp_path):
    stack = stack_of(
        tmp_path,
        '[services.ollama.security]\ncap_add = ["chown", "CAP_SETUID"]\nread_only = false\ntmpfs = ["/cache/"]\n',
    )
    argv = joined(podman_run(stack.service("ollama")))
    assert "--cap-add CHOWN --cap-add SETUID" in argv and "--read-only" not in argv and "--tmpfs /cache" in argv


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ('[services.ollama.security]\ncap_add = ["CHOWNN"]', "services.ollama.security.cap_add.0", "capabilit"),
        ('[services.ollama.security]\ntmpfs = ["cache"]', "services.ollama.security.tmpfs.0", "absolute path"),
        ('[services.ollama.security]\nread_only = "no"', "services.ollama.security.read_only", "true or false"),
    ],
)
def test_bad_security_settings_name_their_key(tmp_path, toml, key, words):
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, toml)
    assert error.value.key == key and words in str(error.value).lower()


def test_a_public_bind_address_needs_expose_and_names_both_keys(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, '[runtime]\nbind_address = "0.0.0.0"\n')
    assert error.value.exit_code == 2 and error.value.key == "runtime.bind_address"
    assert "runtime.expose" in error.value.message + (error.value.hint or "")
    load_text(tmp_path, '[runtime]\nbind_address = "::1"\n')  # loopback needs nothing


def test_exposure_says_what_is_open_and_what_guards_it(tmp_path):
    stack = stack_of(tmp_path, '[runtime]\nbind_address = "0.0.0.0"\nexpose = true\n')
    said = {e.service: e for e in exposed(stack)}
    assert said["ollama"].open and said["ollama"].address == "0.0.0.0:11434"
    assert not said["llamacpp"].open and "API key" in said["llamacpp"].guard
    assert "first one to sign up becomes the admin" in said["open-webui"].describe()
    keyless = stack_of(tmp_path, '[runtime]\nbind_address = "0.0.0.0"\nexpose = true\napi_key = false\n')
    assert {e.service for e in exposed(keyless) if e.open} == {"ollama", "llamacpp"}
    assert not exposed(stack_of(tmp_path))  # loopback: nothing to say


def test_the_stack_cache_keeps_security_and_the_engines_gpu_handover(tmp_path):
    from airpods.gpu import HostGpu
    from airpods.stack.build import build_stack
    from airpods.stack.cache import cached_stack

    config = load_text(tmp_path, '[services.ollama.security]\ncap_add = ["CHOWN"]\ntmpfs = ["/cache"]\n').config
    gpu = HostGpu("nvidia", cdi=True, driver="570.86.10", cdi_names=("0", "all"), handover="--gpus")
    stack = build_stack(config, gpu, ["ollama", "llamacpp"])
    path = tmp_path / "cache.json"
    assert cached_stack(path, "k", lambda: stack) == stack
    again = cached_stack(path, "k", lambda: pytest.fail("served from the cache"))
    assert again == stack and again.gpu.handover == "--gpus" and again.service("ollama").cap_add == ("CHOWN",)


PLANTED = "hf_planted-secret-value-7f3a"


def test_a_user_secret_is_a_secret_env_never_argv_and_dry_run_masks_it(tmp_path, monkeypatch, capsys):
    from airpods.plan import Observed, build_start_plan
    from airpods.secrets import stack_secret_values
    from tests.unit.helpers import run_cli, write_toml

    monkeypatch.setenv("MY_HF_TOKEN", PLANTED)
    toml = '[services.ollama.secrets]\nHF_TOKEN = "env:MY_HF_TOKEN"\n'
    stack = stack_of(tmp_path, toml)
    (use,) = [u for u in stack.service("ollama").secrets]
    assert (use.type, use.target) == ("env", "HF_TOKEN")
    plan = build_start_plan(stack, Observed(), api_key=KEY, values=stack_secret_values(stack))
    (step,) = [s for s in plan.steps if s.kind == "secret" and s.target == use.name]
    assert step.stdin == PLANTED and "services.ollama.secrets.HF_TOKEN" in step.why
    assert PLANTED not in joined(podman_run(stack.service("ollama")))
    config = write_toml(tmp_path, toml + '[services.open-webui.env]\nOPENAI_API_KEY = "sk-in-env-by-mistake"\n')
    for args in (["start", "--dry-run"], ["start", "--dry-run", "--json"], ["config", "show", "--resolved"]):
        shown = run_cli(capsys, "-c", str(config), *args)
        assert shown.code == 0, shown.err
        assert PLANTED not in shown.out + shown.err and "sk-in-env-by-mistake" not in shown.out + shown.err
    warned = run_cli(capsys, "-c", str(config), "start", "--dry-run")
    assert "services.open-webui.env.OPENAI_API_KEY looks like a secret" in warned.out + warned.err


def test_a_new_secret_value_makes_a_new_secret_and_an_unreadable_one_is_a_config_error(tmp_path, monkeypatch):
    from airpods.secrets import stack_secret_values
    from airpods.stack.resolve import resolve_stack
    from tests.unit.helpers import write_toml

    config = write_toml(tmp_path, '[services.ollama.secrets]\nHF_TOKEN = "file:' + str(tmp_path / "tok") + '"\n')
    (tmp_path / "tok").write_text("first-value\n")
    first = resolve_stack(config, ["ollama"])
    (tmp_path / "tok").write_text("second-value\n")
    second = resolve_stack(config, ["ollama"])  # the cached stack no longer holds
    assert first.service("ollama").secrets[0].name != second.service("ollama").secrets[0].name
    assert first.service("ollama").config_hash != second.service("ollama").config_hash
    (tmp_path / "tok").unlink()
    gone = resolve_stack(config, ["ollama"])
    with pytest.raises(ConfigError) as error:
        stack_secret_values(gone)
    assert (
        error.value.key == "services.ollama.secrets.HF_TOKEN" and "cannot read the secret file" in error.value.message
    )


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[services.ollama.secrets]\nHF_TOKEN = "hunter2"', "services.ollama.secrets.HF_TOKEN"),
        ('[services.ollama.secrets]\n"BAD-NAME" = "env:X"', "services.ollama.secrets"),
        ('[services.ollama]\nenv = { T = "x" }\nsecrets = { T = "env:T" }', "services.ollama.secrets.T"),
    ],
)
def test_bad_secrets_name_their_key(tmp_path, toml, key):
    with pytest.raises(ConfigError) as error:
        stack_of(tmp_path, toml)
    assert str(error.value.key).startswith(key)


def test_redaction_masks_known_values_and_secret_like_env_only():
    from airpods.redact import MASK, redact, redact_argv, register

    register("sk-registered-1234")
    shown = redact_argv(["podman", "run", "--env", "HF_TOKEN=abc", "--env", "OLLAMA_HOST=0.0.0.0:11434", "x"])
    assert shown[3] == f"HF_TOKEN={MASK}" and shown[5] == "OLLAMA_HOST=0.0.0.0:11434"
    assert redact("key is sk-registered-1234.") == f"key is {MASK}."
    assert redact("no") == "no"


def test_an_engine_error_shows_its_command_and_stderr_masked():
    from airpods.engine.errors import EngineError
    from airpods.redact import register

    register("sk-from-the-secret-store")
    error = EngineError(
        ["/usr/bin/podman", "run", "--env", "HF_TOKEN=hf_abcdefgh", "--env", "PORT=1", "img"],
        125,
        "Error: bad value sk-from-the-secret-store\n",
    )
    assert "HF_TOKEN=********" in error.message and "PORT=1" in error.message
    assert "hf_abcdefgh" not in error.message and "sk-from-the-secret-store" not in error.message
    assert error.message.startswith("`podman run")
