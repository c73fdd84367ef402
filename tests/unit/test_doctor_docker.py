"""doctor's Docker socket check, on real files: who may use the daemon, and the exact fix."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

from airpods.doctor.docker import Who, socket_check
from airpods.host.engines import DockerService


def who(uid: int, groups: set[int], members: dict[int, set[str]] | None = None) -> Who:
    return Who("ada", uid, frozenset(groups), lambda gid: frozenset((members or {}).get(gid, set())))


@pytest.fixture
def short_dir():
    """A folder short enough for a unix socket's path (108 bytes), whatever TMPDIR says."""
    with tempfile.TemporaryDirectory(prefix="ap-", dir="/tmp") as folder:
        yield Path(folder)


def socket_file(folder: Path, mode: int = 0o660):
    """A real unix socket (bound, so its file exists) with the mode given."""
    path = folder / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()
    path.chmod(mode)
    return path, path.stat().st_gid


def test_a_user_outside_the_group_gets_the_usermod_fix(short_dir):
    path, gid = socket_file(short_dir)
    check = socket_check(path, who(4242, {4242}))
    assert check.level == "FAIL" and "ada may not use it" in check.detail
    assert check.fix.startswith("sudo usermod -aG ") and "ada, then log out and in again" in check.fix


def test_a_member_whose_session_lacks_the_group_is_told_to_log_in_again(short_dir):
    path, gid = socket_file(short_dir)
    check = socket_check(path, who(4242, {4242}, {gid: {"ada"}}))
    assert check.level == "FAIL" and "not yet" in check.detail and "newgrp" in check.fix


def test_group_access_root_and_owner_are_fine(short_dir):
    path, gid = socket_file(short_dir)
    assert socket_check(path, who(4242, {4242, gid})).level == "OK"
    assert socket_check(path, who(0, {0})).level == "OK"
    assert socket_check(path, who(os.getuid(), set())).level == "OK"  # the owner


def test_a_socket_without_group_rights_refuses_group_members(short_dir):
    path, gid = socket_file(short_dir, 0o600)
    assert socket_check(path, who(4242, {gid})).level == "FAIL"


def test_a_missing_socket_means_the_daemon_is_not_running(tmp_path):
    systemd = DockerService(systemd=True, unit=True, dockerd=True)
    check = socket_check(tmp_path / "absent.sock", who(4242, set()), systemd)
    assert check.level == "FAIL" and "not running" in check.detail and "systemctl enable --now docker" in check.fix


def test_without_a_docker_service_the_fix_is_not_systemctl(tmp_path):
    """A machine with the client only (as some images ship it) is told to install the Engine or
    use Podman; one with dockerd but no unit, to start dockerd: never `systemctl enable docker`."""
    client_only = socket_check(tmp_path / "absent.sock", who(0, {0}), DockerService(False, False, False))
    assert "systemctl" not in client_only.fix and "apt-get install docker.io" in client_only.fix
    assert "podman" in client_only.fix
    no_unit = socket_check(tmp_path / "absent.sock", who(0, {0}), DockerService(True, False, True))
    assert "systemctl" not in no_unit.fix and "sudo dockerd" in no_unit.fix


def test_a_path_that_is_not_a_socket_is_said_so(tmp_path):
    """DOCKER_HOST pointing at a file or a folder: no daemon there, whatever the permissions."""
    (tmp_path / "file").write_text("")
    for path in (tmp_path / "file", tmp_path):
        check = socket_check(path, who(0, {0}), DockerService(True, True, True))
        assert check.level == "FAIL" and "is not a socket" in check.detail and "DOCKER_HOST" in check.fix
