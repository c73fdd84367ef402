"""The stack's API key file: private, stable, and one key even when commands race."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

from airpods.secrets import api_key, api_key_path, key_id


def test_key_is_private_and_stable():
    first = api_key()
    assert first.startswith("sk-airpods-") and api_key() == first
    mode = stat.S_IMODE(api_key_path().stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(api_key_path().parent.stat().st_mode) == 0o700
    assert len(key_id(first)) == 12 and first not in key_id(first)


def test_racing_commands_agree_on_one_key():
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: api_key(), range(32)))
    assert len(keys) == 1
    assert not [p for p in api_key_path().parent.iterdir() if p.name.startswith(".api-key.")]


# ---- the user's own key: runtime.api_key = "env:VAR" | "file:/path" ----

import pytest  # noqa: E402

from tests.unit.helpers import run_cli, write_toml  # noqa: E402


@pytest.mark.parametrize("value", ['"my-own-key"', '"env:"', '"env:1BAD"', '"file:relative/key"', '"file:"', "1"])
def test_a_key_source_is_env_or_an_absolute_file(tmp_path, capsys, value):
    path = write_toml(tmp_path, f"[runtime]\napi_key = {value}\n")
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and "runtime.api_key" in done.err and str(path) in done.err, done.err
    assert "internal error" not in done.err


def test_the_users_key_is_used_everywhere_the_generated_one_was(tmp_path, capsys, monkeypatch):
    """Podman secrets (named after the key), Open WebUI's key list, `airpods env`, the kube
    export; no key file is generated, and the key is in no command line."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no podman
    monkeypatch.setenv("AIRPODS_HOST_ROOT", str(tmp_path))
    monkeypatch.setenv("MY_LLAMA_KEY", "user-key-123")
    path = write_toml(tmp_path, '[runtime]\napi_key = "env:MY_LLAMA_KEY"\n')
    env = run_cli(capsys, "-c", str(path), "env")
    assert env.code == 0 and "OPENAI_API_KEY=user-key-123" in env.out, env.err
    plan = run_cli(capsys, "-c", str(path), "start", "--dry-run")
    assert plan.code == 0 and f"airpods-api-key-{key_id('user-key-123')}" in plan.out
    assert f"airpods-openai-keys-{key_id('user-key-123')}-x1" in plan.out  # Open WebUI's key list
    assert "user-key-123" not in plan.out and "--api-key-file" in plan.out
    out = tmp_path / "k8s.yaml"
    assert run_cli(capsys, "-c", str(path), "export", "kube", "--target", "kubernetes", "-o", str(out)).code == 0
    assert "user-key-123" in out.read_text() and out.stat().st_mode & 0o777 == 0o600
    assert not api_key_path().exists()
    monkeypatch.setenv("MY_LLAMA_KEY", "another-key")  # a changed key: a new secret (the cache sees it)
    again = run_cli(capsys, "-c", str(path), "start", "--dry-run")
    assert f"airpods-api-key-{key_id('another-key')}" in again.out


def test_a_key_file_and_its_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("AIRPODS_HOST_ROOT", str(tmp_path))
    key = tmp_path / "key"
    path = write_toml(tmp_path, f'[runtime]\napi_key = "file:{key}"\n')
    missing = run_cli(capsys, "-c", str(path), "env")
    assert missing.code == 2 and f"cannot read the key file {key}" in missing.err and str(path) in missing.err
    assert run_cli(capsys, "-c", str(path), "status").code != 2  # reading commands need no key
    key.write_text("has space\n")
    spaced = run_cli(capsys, "-c", str(path), "env")
    assert spaced.code == 2 and "whitespace" in spaced.err and "has space" not in spaced.err
    key.write_text("file-key\n")
    assert "OPENAI_API_KEY=file-key" in run_cli(capsys, "-c", str(path), "env").out
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    unset = write_toml(tmp_path, '[runtime]\napi_key = "env:UNSET_KEY_VAR"\n', "unset.toml")
    done = run_cli(capsys, "-c", str(unset), "start", "--dry-run")
    assert done.code == 2 and "UNSET_KEY_VAR is not set" in done.err and "export UNSET_KEY_VAR" in done.err


def test_validate_checks_your_own_key_as_start_does(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    path = write_toml(tmp_path, '[runtime]\napi_key = "env:NOT_SET_KEY"\n')
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and "NOT_SET_KEY is not set" in done.err
    monkeypatch.setenv("NOT_SET_KEY", "kéy")  # HTTP headers carry ASCII: a client would get 401
    accented = run_cli(capsys, "-c", str(path), "config", "validate")
    assert accented.code == 2 and "printable ASCII" in accented.err and "kéy" not in accented.err
