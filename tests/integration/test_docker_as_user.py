"""Docker as a normal user in the `docker` group (the rootless pass's user, on the rig's Docker
daemon, which runs as root): Docker keeps its volumes where only root can read them, so the
model store used to fail on every start after the first ("internal error") and every models
command with it. Every other Docker test runs as root and could not see it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import Airpods, docker, docker_problem, remove_everything_docker_made


@pytest.fixture
def docker_user(rig, tmp_path):
    """airpods on Docker as this (non-root) user; runs in the rootless pass only."""
    assert os.geteuid() != 0, "runs as the rootless pass's user"
    assert (why := docker_problem()) is None, why
    remove_everything_docker_made()
    yield Airpods(tmp_path, engine="docker")
    remove_everything_docker_made()


def test_a_docker_group_user_keeps_models_and_backs_them_up(docker_user, tiny_model, tmp_path):
    airpods = docker_user
    first = airpods("start", "llamacpp")
    assert first.code == 0, first.err
    options = json.loads(docker("volume", "inspect", "--format", "{{json .Options}}", "airpods_llamacpp_models").stdout)
    device = Path(options["device"])  # bound to a folder this user owns, not Docker's root-only one
    assert device == Path.home() / ".local/share/airpods/volumes/airpods_llamacpp_models" and device.owner()
    imported = airpods("models", "import", str(tiny_model), "--name", "tiny")
    assert imported.code == 0, imported.err
    assert (device / "tiny.gguf").read_bytes() == tiny_model.read_bytes()
    listed = airpods("models", "list", "--json")
    assert listed.code == 0, listed.err
    assert [(r["name"], r["problem"]) for r in listed.json()["models"]] == [("tiny", None)]
    again = airpods("start", "llamacpp")  # the second start used to end in "internal error"
    assert again.code == 0, again.err
    assert airpods("status").code == 0

    archive = tmp_path / "b.tar"
    made = airpods("backup", "--with-models", "--services", "llamacpp", "-o", str(archive))
    assert made.code == 0, made.err
    assert airpods("models", "rm", "tiny", "--yes").code == 0 and not (device / "tiny.gguf").exists()
    assert airpods("stop").code == 0
    restored = airpods("restore", str(archive), "--force")
    assert restored.code == 0, restored.err
    assert (device / "tiny.gguf").read_bytes() == tiny_model.read_bytes()
    assert [r["name"] for r in airpods("models", "list", "--json").json()["models"]] == ["tiny"]
