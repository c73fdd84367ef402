"""Env secrets as files read by a wrapper (issue 34 §1): the wrapper itself, run by the host's
real /bin/sh on a folder of files, and what the container would have run without it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from airpods.engine.env_handover import ImageConfig, handed_over, program, script
from airpods.engine.podman_argv import container_run_argv, secret_option
from airpods.plan import Observed, build_start_plan
from airpods.stack.model import SecretUse
from tests.unit.helpers import KEY, stack_of

PRINT_ENV = (
    sys.executable,
    "-c",
    "import json, os, sys; print(json.dumps(dict(os.environ)) + '|' + sys.argv[1]) ",
    "arg",
)


def wrapped(folder, *argv: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path or os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        ["/bin/sh", "-c", script(str(folder)), "airpods-env", *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_the_wrapper_exports_each_file_whole_and_execs_the_program(tmp_path):
    import json

    pem = '-----BEGIN PRIVATE KEY-----\nMIIE\n$(touch /tmp/never) `id` "quoted" it\'s\n-----END PRIVATE KEY-----'
    (tmp_path / "TLS_KEY").write_text(pem + "\n")
    (tmp_path / "OPENAI_API_KEYS").write_text("k1;k2")
    done = wrapped(tmp_path, *PRINT_ENV)
    assert done.returncode == 0, done.stderr
    env, _, arg = done.stdout.strip().rpartition("|")
    seen = json.loads(env)
    assert seen["TLS_KEY"] == pem and seen["OPENAI_API_KEYS"] == "k1;k2" and arg == "arg"


def test_an_empty_folder_runs_the_program_and_an_unreadable_file_stops_it(tmp_path):
    assert wrapped(tmp_path / "none", "/bin/echo", "ran").stdout == "ran\n"
    # A `cat` that cannot read (a file of another owner in the container; as any user here).
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "cat").write_text('#!/bin/sh\necho "cat: $1: Permission denied" >&2\nexit 1\n')
    (tools / "cat").chmod(0o755)
    secrets = tmp_path / "env"
    secrets.mkdir()
    (secrets / "TOKEN").write_text("x")
    done = wrapped(secrets, "/bin/echo", "ran", path=f"{tools}:/usr/bin:/bin")
    assert done.returncode == 126 and "ran" not in done.stdout and "TOKEN: Permission denied" in done.stderr


def test_the_program_is_what_the_engine_would_have_run(tmp_path):
    stack = stack_of(tmp_path, '[services.ollama.secrets]\nTOKEN = "env:HOME"\n')
    ollama = stack.service("ollama")
    image = ImageConfig(("/bin/ollama",), ("serve",), "")
    assert program(ollama, image) == ("/bin/ollama", "serve")  # no arguments: the image's CMD
    overridden = stack_of(tmp_path, '[services.ollama]\nentrypoint_override = ["/bin/sh", "-c", "sleep 1"]\n').service(
        "ollama"
    )
    assert program(overridden, image) == ("/bin/sh", "-c", "sleep 1")  # an entrypoint drops CMD
    llama = stack.service("llamacpp")
    ran = program(llama, ImageConfig(("/app/llama-server",), ("--help",), ""))
    assert ran[0] == "/app/llama-server" and "--help" not in ran and ran[1:] == (*llama.args, *llama.key_args)


def test_only_env_secrets_become_files_and_a_stack_without_them_is_unchanged(tmp_path):
    plan = build_start_plan(stack_of(tmp_path), Observed(), api_key=KEY)
    specs = {s.spec.name: s.spec for s in plan.steps if s.kind == "container" and s.spec is not None}
    assert handed_over(specs["llamacpp"], None) == specs["llamacpp"]  # its key is a file already
    webui = handed_over(specs["open-webui"], ImageConfig(("bash", "start.sh")))
    assert {u.type for u in webui.secrets} == {"mount"} and webui.entrypoint[:2] == ("/bin/sh", "-c")
    shown = container_run_argv(specs["open-webui"])  # a dry run: the image not read
    assert "<the image's ENTRYPOINT and CMD>" in shown and "type=env" not in " ".join(shown)


@pytest.mark.parametrize(
    ("user", "owner", "option"),
    [
        ("", (0, 0), ",mode=0400"),
        ("root", (0, 0), ",mode=0400"),
        ("1000", (1000, 1000), ",uid=1000,gid=1000,mode=0400"),
        ("1000:100", (1000, 100), ",uid=1000,gid=100,mode=0400"),
        ("ollama", None, ",mode=0444"),
        ("1000:staff", None, ",mode=0444"),
    ],
)
def test_the_file_is_owned_by_the_images_user(user, owner, option):
    assert ImageConfig(user=user).owner == owner
    use = SecretUse("s", "mount", "/run/airpods-env/TOKEN")
    assert secret_option(use, owner) == "s,type=mount,target=/run/airpods-env/TOKEN" + option


def test_an_inspected_config_with_nulls_reads_as_empty():
    assert ImageConfig.from_inspect({"Entrypoint": None, "Cmd": ["serve"], "User": None}) == ImageConfig(
        (), ("serve",), ""
    )
    assert ImageConfig.from_inspect(None) == ImageConfig()
