"""`airpods export kube --target podman` played by real Podman: the same stack, the same
volumes, the key from a podman secret; `kube down` keeps the data."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from tests.integration.conftest import eventually, openai_env, podman, put_in_volume


def _models(url: str, key: str | None) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(url + "/v1/models", headers=headers), timeout=5) as answer:
        return [m["id"] for m in json.load(answer)["data"]]


def test_kube_play_serves_the_model_with_the_key_and_kube_down_keeps_the_volume(airpods, tiny_model, tmp_path):
    put_in_volume("airpods_llamacpp_models", tiny_model)
    out = tmp_path / "stack.yaml"
    exported = airpods("export", "kube", "llamacpp", "-o", str(out))
    assert exported.code == 0, exported.err
    key = openai_env(airpods)["OPENAI_API_KEY"]
    assert key not in out.read_text()
    create_secret(out)
    podman("network", "create", "--label", "io.airpods.managed=true", "airpods")
    podman("kube", "play", "--network", "airpods", str(out))
    assert eventually(lambda: _try(lambda: _models("http://127.0.0.1:8081", key)), timeout=60) == ["tiny"]
    with pytest.raises(urllib.error.HTTPError) as denied:
        _models("http://127.0.0.1:8081", None)
    assert denied.value.code == 401
    podman("kube", "down", str(out))
    assert podman("pod", "exists", "llamacpp", check=False).returncode != 0
    mount = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "airpods_llamacpp_models").stdout.strip()
    assert os.path.exists(os.path.join(mount, "tiny.gguf"))


def test_kube_play_of_the_default_stack_is_wired_like_start(airpods, tiny_model, tmp_path):
    put_in_volume("airpods_llamacpp_models", tiny_model)
    out = tmp_path / "stack.yaml"
    assert airpods("export", "kube", "-o", str(out)).code == 0
    create_secret(out)
    podman("network", "create", "--label", "io.airpods.managed=true", "airpods")
    podman("kube", "play", "--network", "airpods", str(out))
    webui = "open-webui-open-webui-0"  # kube play names containers POD-CONTAINER
    script = 'wget -qO- --header "Authorization: Bearer ${OPENAI_API_KEYS%%;*}" http://llamacpp:8080/v1/models'
    answer = eventually(lambda: podman("exec", webui, "sh", "-c", script, check=False).stdout, timeout=60)
    assert "tiny" in [m["id"] for m in json.loads(answer)["data"]]
    assert "models" in json.loads(podman("exec", webui, "wget", "-qO-", "http://ollama:11434/api/tags").stdout)
    podman("kube", "down", str(out))
    volumes = {v["Name"] for v in json.loads(podman("volume", "ls", "--format", "json").stdout)}
    assert {"airpods_ollama_data", "airpods_webui_data", "airpods_llamacpp_models"} <= volumes


def create_secret(exported) -> None:
    """The export creates no podman secret (issue 33 §5): its header says the command, which
    creates it from a private file beside the export."""
    import shlex

    secret = exported.with_suffix(".secret.json")
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    (command,) = [line.removeprefix("#   ") for line in exported.read_text().splitlines() if "secret create" in line]
    podman(*shlex.split(command)[1:])


def _try(call):
    try:
        return call()
    except (OSError, ValueError):
        return None
