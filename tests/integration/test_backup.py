"""backup / restore on real Podman volumes: a byte-exact round trip, damaged archives rejected
with nothing touched, no overwrite without --force, secrets only when asked."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

from tests.integration.conftest import podman, put_in_volume


def mountpoint(volume: str) -> str:
    return podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip()


def digests(volume: str) -> dict[str, str]:
    root = mountpoint(volume)
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def seed(airpods, tiny_model) -> None:
    assert airpods("start", "open-webui").code == 0
    podman(
        "exec",
        "open-webui-0",
        "sh",
        "-c",
        "mkdir -p /app/backend/data/uploads && echo chats > /app/backend/data/webui.db "
        "&& head -c 300000 /dev/urandom > /app/backend/data/uploads/file.bin",
    )
    assert airpods("stop").code == 0
    put_in_volume("airpods_llamacpp_models", tiny_model)


def test_round_trip_restores_every_byte(airpods, tiny_model, tmp_path):
    seed(airpods, tiny_model)
    before = {v: digests(v) for v in ("airpods_webui_data", "airpods_llamacpp_models")}
    archive = tmp_path / "b.tar"
    made = airpods("backup", "--with-models", "-o", str(archive))
    assert made.code == 0, made.err
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    for volume in before:
        podman("volume", "rm", "--force", volume)
    restored = airpods("restore", str(archive))
    assert restored.code == 0, restored.err
    assert "airpods start" in restored.out
    assert {v: digests(v) for v in before} == before


def test_models_are_left_out_unless_asked(airpods, tiny_model, tmp_path):
    seed(airpods, tiny_model)
    archive = tmp_path / "b.tar"
    assert airpods("backup", "-o", str(archive)).code == 0
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "volumes/airpods_webui_data.tar" in names
    assert "volumes/airpods_llamacpp_models.tar" not in names


def test_damaged_archives_are_rejected_and_nothing_changes(airpods, tiny_model, tmp_path):
    seed(airpods, tiny_model)
    archive = tmp_path / "b.tar"
    assert airpods("backup", "-o", str(archive)).code == 0
    podman("volume", "rm", "--force", "airpods_webui_data")
    data = bytearray(archive.read_bytes())
    flipped, truncated = tmp_path / "flipped.tar", tmp_path / "truncated.tar"
    data[len(data) // 2] ^= 0xFF  # one byte inside a volume's data
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(archive.read_bytes()[: len(data) * 2 // 3])
    for bad in (flipped, truncated):
        failed = airpods("restore", str(bad))
        assert failed.code == 1 and "nothing was restored" in failed.err, failed.err
        assert podman("volume", "exists", "airpods_webui_data", check=False).returncode != 0


def test_restore_over_existing_data_needs_force(airpods, tiny_model, tmp_path):
    seed(airpods, tiny_model)
    archive = tmp_path / "b.tar"
    assert airpods("backup", "-o", str(archive)).code == 0
    with open(os.path.join(mountpoint("airpods_webui_data"), "webui.db"), "w") as handle:
        handle.write("newer\n")
    refused = airpods("restore", str(archive))
    assert refused.code == 1 and "already holds data" in refused.err and "--force" in refused.err
    with open(os.path.join(mountpoint("airpods_webui_data"), "webui.db")) as handle:
        assert handle.read() == "newer\n"
    assert airpods("restore", str(archive), "--force").code == 0
    with open(os.path.join(mountpoint("airpods_webui_data"), "webui.db")) as handle:
        assert handle.read() == "chats\n"


def test_restore_refuses_while_the_service_runs(airpods, tiny_model, tmp_path):
    seed(airpods, tiny_model)
    archive = tmp_path / "b.tar"
    assert airpods("backup", "-o", str(archive)).code == 0
    assert airpods("start", "open-webui").code == 0
    refused = airpods("restore", str(archive), "--force")
    assert refused.code == 1 and "airpods stop open-webui" in refused.err


def test_secrets_only_with_include_secrets(airpods, tiny_model, tmp_path):
    seed(airpods, tiny_model)
    plain, secret = tmp_path / "plain.tar", tmp_path / "secret.tar"
    assert airpods("backup", "-o", str(plain)).code == 0
    assert airpods("backup", "--include-secrets", "-o", str(secret)).code == 0
    key = Path(os.environ["XDG_STATE_HOME"], "airpods", "api-key").read_text()
    with tarfile.open(plain) as tar:
        assert "secrets/api-key" not in tar.getnames()
        assert key.strip().encode() not in b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    with tarfile.open(secret) as tar:
        member = tar.getmember("secrets/api-key")
        assert stat.S_IMODE(member.mode) == 0o600 and tar.extractfile(member).read().decode() == key
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
