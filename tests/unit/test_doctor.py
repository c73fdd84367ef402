"""doctor's rootless checks on fake host trees."""

from __future__ import annotations

import getpass
import os

from airpods.doctor import rootless_checks, unprivileged_port_check


def tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


def by_name(checks):
    return {c.name: c for c in checks}


def test_missing_ranges_and_undelegated_cgroups_are_explained(tmp_path):
    checks = by_name(rootless_checks({"cgroupVersion": "v1"}, tree(tmp_path, {"etc/subuid": "", "etc/subgid": ""})))
    assert checks["subuid"].level == "FAIL" and "usermod --add-subuids" in checks["subuid"].fix
    assert checks["resource limits"].level == "WARN" and "refused" in checks["resource limits"].detail
    assert checks["linger"].level == "WARN" and "enable-linger" in checks["linger"].fix


def test_a_complete_rootless_setup_passes(tmp_path):
    user = getpass.getuser()
    root = tree(
        tmp_path,
        {
            "etc/subuid": f"{user}:100000:65536\n",
            "etc/subgid": f"{user}:100000:65536\n",
            f"var/lib/systemd/linger/{user}": "",
        },
    )
    checks = by_name(rootless_checks({"cgroupVersion": "v2", "cgroupControllers": ["cpu", "memory", "pids"]}, root))
    assert {c.level for n, c in checks.items() if n != "newuidmap"} == {"OK"}


def test_low_ports(tmp_path):
    root = tree(tmp_path, {"proc/sys/net/ipv4/ip_unprivileged_port_start": "1024\n"})
    assert unprivileged_port_check([3000, 8081], root) is None
    low = unprivileged_port_check([80, 3000], root)
    assert low.level == "FAIL" and "80" in low.detail and "ip_unprivileged_port_start=80" in low.fix
    assert os.path.exists(root)


def test_doctor_says_each_services_gpu_decision_and_the_fix(tmp_path, capsys, monkeypatch):
    """One place says it: per service the image, the device flags and why (issue 19)."""
    import json

    from tests.unit.helpers import run_cli
    from tests.unit.test_gpu import nvidia

    monkeypatch.setenv("AIRPODS_HOST_ROOT", tree(tmp_path / "host", nvidia(cdi="stale")))
    monkeypatch.setenv("PATH", str(tmp_path))  # no podman: the host checks still run
    done = run_cli(capsys, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.out)["checks"]}
    assert checks["gpu"]["level"] == "WARN" and "nvidia-ctk cdi generate" in checks["gpu"]["fix"]
    llama = checks["gpu llamacpp"]
    assert llama["level"] == "WARN" and "llama.cpp:server " in llama["detail"] and "stale" in llama["detail"]
