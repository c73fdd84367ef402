"""backup / restore on real Podman volumes: a byte-exact round trip, damaged archives rejected
with nothing touched, no overwrite without --force, secrets only when asked."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

from tests.integration.conftest import podman, put_in_volume, remove_everything_airpods_made


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
    forced = airpods("restore", str(archive), "--force")
    assert forced.code == 0, forced.err
    with open(os.path.join(mountpoint("airpods_webui_data"), "webui.db")) as handle:
        assert handle.read() == "chats\n"
    (aside,) = [v for v in airpods.volumes() if v.startswith("airpods_webui_data.before-restore-")]
    assert f"kept in volume {aside}" in forced.out
    with open(os.path.join(mountpoint(aside), "webui.db")) as handle:  # what --force replaced is kept
        assert handle.read() == "newer\n"
    cleaned = airpods("clean", "--volumes", "--yes")
    assert cleaned.code == 0, cleaned.err
    assert aside in airpods.volumes() and f"kept volume {aside}" in cleaned.out  # never without its name


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


def test_a_volume_bound_to_another_folder_is_backed_up_and_restored_there(airpods, tiny_model, tmp_path):
    """Open WebUI's volume made by the user on another disk (a bind device): its podman
    mountpoint is empty while its services are stopped, so it used to look empty to restore,
    which removed it and made it again without its options; backup failed outright."""
    disk = tmp_path / "bigger-disk"
    disk.mkdir()
    opts = ["--opt", "type=none", "--opt", "o=bind", "--opt", f"device={disk}"]
    podman("volume", "create", *opts, "airpods_webui_data")
    try:
        seed(airpods, tiny_model)
        assert (disk / "webui.db").read_text() == "chats\n"
        archive = tmp_path / "b.tar"
        made = airpods("backup", "--services", "open-webui", "-o", str(archive))
        assert made.code == 0, made.err
        with tarfile.open(archive) as tar:
            assert "volumes/airpods_webui_data.tar" in tar.getnames()
        (disk / "webui.db").write_text("newer\n")
        refused = airpods("restore", str(archive))
        assert refused.code == 1 and "already holds data" in refused.err, refused.err
        assert (disk / "webui.db").read_text() == "newer\n"
        forced = airpods("restore", str(archive), "--force")
        assert forced.code == 0, forced.err
        assert (disk / "webui.db").read_text() == "chats\n"  # on the user's disk, not podman's _data
        assert (disk / "uploads" / "file.bin").stat().st_size == 300000
        options = podman("volume", "inspect", "--format", "{{json .Options}}", "airpods_webui_data").stdout
        assert f'"device":"{disk}"' in options.replace(" ", "")  # its driver options survived
    finally:
        remove_everything_airpods_made()
        podman("volume", "rm", "--force", "airpods_webui_data", check=False)


def test_backup_stop_brings_back_what_it_stopped_with_the_same_wiring(airpods, tiny_model, tmp_path):
    assert airpods("start", "open-webui", "llamacpp").code == 0
    before = airpods.container_ids()
    label = '{{index .Config.Labels "io.airpods.config-hash"}}'
    hashed = podman("inspect", "--format", label, "open-webui-0").stdout
    made = airpods("backup", "--stop", "-o", str(tmp_path / "b.tar"))
    assert made.code == 0, made.err
    after = airpods.container_ids()
    assert after["llamacpp-0"] == before["llamacpp-0"]  # not stopped: it needs no consistent copy
    assert after["open-webui-0"] != before["open-webui-0"]  # stopped for the copy, and back
    assert podman("inspect", "--format", label, "open-webui-0").stdout == hashed  # wired as before


def test_a_restore_killed_half_way_leaves_the_data_as_it_was(airpods, tiny_model, tmp_path):
    import signal

    from tests.integration.conftest import eventually

    seed(airpods, tiny_model)
    archive = tmp_path / "b.tar"
    assert airpods("backup", "--with-models", "-o", str(archive)).code == 0
    with open(os.path.join(mountpoint("airpods_webui_data"), "webui.db"), "w") as handle:
        handle.write("newer\n")
    before = {v: digests(v) for v in ("airpods_webui_data", "airpods_llamacpp_models")}
    proc = airpods.popen("restore", str(archive), "--force")
    staging = eventually(lambda: [v for v in airpods.volumes() if ".restoring-" in v], timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert staging
    assert {v: digests(v) for v in before} == before  # nothing it held was touched before the copy was safe
    cleaned = airpods("clean", "--volumes", "--yes")
    assert cleaned.code == 0 and "an interrupted restore's" in cleaned.out, cleaned.out + cleaned.err


def test_bad_archive_paths_unknown_services_and_a_mounted_aside_volume(airpods, tiny_model, tmp_path):
    """Inputs a reviewer tried: each used to crash, overwrite or delete."""
    seed(airpods, tiny_model)
    archive = tmp_path / "b.tar"
    folder = airpods("backup", "-o", str(tmp_path))  # a folder: an internal error after every export
    assert folder.code == 2 and "got a folder" in folder.err, folder.err
    assert airpods("backup", "-o", str(archive)).code == 0
    again = airpods("backup", "-o", str(archive))  # an existing file is not replaced without --force
    assert again.code == 2 and "--force" in again.err
    unknown = airpods("restore", str(archive), "--services", "nosuch")
    assert unknown.code == 2 and "no service nosuch" in unknown.err
    assert airpods("restore", str(archive), "--force").code == 0
    (aside,) = [v for v in airpods.volumes() if ".before-restore-" in v]
    airpods.write_config(  # mounted to look into it: clean --volumes still never deletes it
        f'[services.open-webui]\nvolumes = [{{ source = "airpods_webui_data", target = "/app/backend/data" }}, '
        f'{{ source = "{aside}", target = "/old", mode = "ro" }}]\n'
    )
    cleaned = airpods("clean", "--volumes", "--yes")
    assert cleaned.code == 0 and aside in airpods.volumes(), cleaned.out
    assert f"deleted volume {aside}" not in cleaned.out


def test_backup_stop_refuses_when_the_config_changed_since_the_service_started(airpods, tmp_path):
    assert airpods("start", "open-webui").code == 0
    before = airpods.container_ids()
    airpods.write_config("[services.open-webui]\nports = [{ host = 3005, container = 8080 }]\n")
    refused = airpods("backup", "--stop", "-o", str(tmp_path / "b.tar"))
    assert refused.code == 1 and "changed since it started" in refused.err, refused.err
    assert airpods.container_ids() == before and not (tmp_path / "b.tar").exists()  # nothing stopped
