"""Living with the stack (issue 14), on real Podman: every pod of the stack seen and controlled,
orphans, projects, image updates, reboots, partial failure, and inputs that used to break."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from airpods.health import NOT_LISTENING
from tests.integration.conftest import Airpods, container_ids, eventually, podman, podman_json


def pods() -> set[str]:
    return {p["Name"] for p in podman_json("pod", "ps", "--filter", "label=io.airpods.managed=true")}


def pod_ids() -> dict[str, str]:
    return {p["Name"]: p["Id"] for p in podman_json("pod", "ps", "--filter", "label=io.airpods.managed=true")}


def status_rows(airpods) -> dict[str, dict]:
    done = airpods("status", "--json")
    assert done.code == 0, done.err
    return {row["name"]: row for row in done.json()["services"]}


def test_a_disabled_service_started_by_name_is_seen_logged_restarted_and_stopped(airpods):
    assert airpods("start", "llamacpp-ui").code == 0
    rows = status_rows(airpods)
    assert rows["llamacpp-ui"]["state"] == "running" and rows["llamacpp-ui"]["health"] == "healthy"
    assert rows["llamacpp"]["state"] == "absent"  # enabled ones are listed too
    logs = airpods("logs", "-n", "3")
    assert logs.code == 0 and "router mode" in logs.out + logs.err  # the one existing container's log
    named = airpods("logs", "llamacpp")
    assert named.code == 1 and "no container for llamacpp" in named.err
    before = container_ids()["llamacpp-ui-0"]
    restarted = airpods("restart", "--json")
    assert restarted.code == 0, restarted.err
    assert [s["name"] for s in restarted.json()["services"]] == ["llamacpp-ui"]
    assert container_ids()["llamacpp-ui-0"] != before and pods() == {"llamacpp-ui"}
    stopped = airpods("stop")
    assert stopped.code == 0 and "stopped: llamacpp-ui" in stopped.out, stopped.out
    assert pods() == set()


def test_orphans_are_listed_kept_and_removed_only_when_asked(airpods):
    airpods.write_config("""
        [services.llama-old]
        extends = "llamacpp"
        ports = [{ host = 8090, container = 8080 }]
    """)
    assert airpods("start", "llama-old", "ollama").code == 0
    airpods.write_config("")  # renamed away: llama-old is an orphan now
    rows = status_rows(airpods)
    assert rows["llama-old"]["kind"] == "orphan" and rows["llama-old"]["state"] == "running"
    assert "orphans: llama-old" in airpods("status").out
    started = airpods("start", "ollama")
    assert started.code == 0 and "--remove-orphans" in started.err
    stopped = airpods("stop")
    assert stopped.code == 0 and "orphan pod llama-old" in stopped.out and pods() == {"llama-old"}
    removed = airpods("stop", "--remove-orphans")
    assert removed.code == 0 and pods() == set()


def test_projects_never_touch_each_other(airpods, tmp_path):
    assert airpods("start", "ollama", "llamacpp").code == 0
    lab = tmp_path / "lab.toml"
    lab.write_text("""
[runtime]
project = "lab"      # its network, volumes, pods and containers are named after it
[services.ollama]
ports = [{ host = 11435, container = 11434 }]
[services.llamacpp]
ports = [{ host = 8091, container = 8080 }]
""")

    in_lab = Airpods(tmp_path, "lab.toml")

    mine = {"ollama", "llamacpp"}
    assert in_lab("start", "ollama", "llamacpp").code == 0
    assert pods() == mine | {"lab-ollama", "lab-llamacpp"}
    labels = podman("pod", "inspect", "lab-ollama", "--format", "{{json .Labels}}").stdout
    assert '"io.airpods.project":"lab"' in labels.replace(" ", "")
    # Its own network (no alias of the other stack resolves there) and its own volumes.
    assert podman("inspect", "lab-ollama-0", "--format", "{{json .NetworkSettings.Networks}}").stdout.startswith(
        '{"lab"'
    )
    assert "lab_ollama_data" in {v["Name"] for v in podman_json("volume", "ls")}
    assert {row["name"] for row in status_rows(airpods).values() if row["state"] == "running"} == mine
    assert in_lab("stop").code == 0 and pods() == mine  # only the lab's pods went
    assert in_lab("start", "ollama", "llamacpp").code == 0
    secrets = set(podman("secret", "ls", "--format", "{{.Name}}").stdout.split())
    assert {name for name in secrets if name.endswith("-lab")}  # the lab has its own key secret
    assert in_lab("clean", "--pods").code == 0 and pods() == mine
    left = set(podman("secret", "ls", "--format", "{{.Name}}").stdout.split())
    assert left == {name for name in secrets if not name.endswith("-lab")} and left
    assert status_rows(airpods)["llamacpp"]["health"] == "healthy"
    # The lab asking for a pod name the default project holds: refused, nothing touched.
    lab.write_text(lab.read_text().replace("[services.ollama]", '[services.ollama]\npod = "ollama"'))
    before = pod_ids()
    clash = in_lab("start", "ollama")
    assert clash.code == 1 and "the name ollama (its pod) is already taken by airpods project 'airpods'" in clash.err
    assert "give services.ollama.pod another name" in clash.err
    assert pod_ids() == before


def _push(image_ref: str, target: str) -> None:
    podman("push", "--quiet", "--tls-verify=false", image_ref, f"docker://{target}", timeout=300)


def _variant_of(base: str, tag: str, revision: str, workdir: Path) -> str:
    """A local image built from `base` with one more label: a different image ID, same content."""
    context = workdir / f"ctx-{revision}"
    context.mkdir()
    (context / "Containerfile").write_text(f"FROM {base}\nLABEL io.airpods.test.revision={revision}\n")
    podman("build", "--quiet", "-t", tag, str(context), timeout=300)
    return tag


def test_pull_then_start_recreates_exactly_the_service_whose_image_changed(airpods, tmp_path):
    registry = os.environ["AIRPODS_RIG_REGISTRY"]
    name = f"{registry}/airpods-test/ollama-updates:latest"
    podman("pull", "docker.io/ollama/ollama:latest", timeout=300)
    _push(_variant_of("docker.io/ollama/ollama:latest", "localhost/airpods-test-build:1", "1", tmp_path), name)
    podman("rmi", "--force", name, check=False)
    airpods.write_config(f'[services.ollama]\nimage = "{name}"\n')
    assert airpods("start", "ollama", "llamacpp").code == 0
    first = pod_ids()
    assert all(row["up_to_date"] for row in status_rows(airpods).values() if row["state"] == "running")

    # A new image under the same tag reaches the registry.
    _push(_variant_of(name, "localhost/airpods-test-build:2", "2", tmp_path), name)
    pulled = airpods("pull", "--json")
    assert pulled.code == 0, pulled.err
    images = {i["image"]: i for i in pulled.json()["images"]}
    assert images[name]["outcome"] == "updated" and images[name]["to_recreate"] == ["ollama"]
    assert images["ghcr.io/ggml-org/llama.cpp:server"]["outcome"] == "unchanged"
    assert images[name]["size"] and images[name]["image_id"]
    rows = status_rows(airpods)
    assert rows["ollama"]["up_to_date"] is False and rows["ollama"]["changes"] == ["image"]
    assert rows["llamacpp"]["up_to_date"] is True
    assert "new image pulled: `airpods start` applies it" in airpods("status").out
    assert airpods("start", "ollama", "llamacpp").code == 0
    second = pod_ids()
    assert second["ollama"] != first["ollama"] and second["llamacpp"] == first["llamacpp"]
    label = podman("inspect", "ollama-0", "--format", '{{index .Config.Labels "io.airpods.test.revision"}}').stdout
    assert label.strip() == "2"

    # start --pull always: the next image is fetched and applied in one go; llama.cpp left alone.
    _push(_variant_of(name, "localhost/airpods-test-build:3", "3", tmp_path), name)
    again = airpods("start", "--pull", "always", "ollama", "llamacpp")
    assert again.code == 0, again.err
    third = pod_ids()
    assert third["ollama"] != second["ollama"] and third["llamacpp"] == first["llamacpp"]
    # --pull never with an absent image: refused before anything is created.
    podman("pod", "rm", "--force", "ollama")
    podman("rmi", "--force", name)
    never = airpods("start", "--pull", "never", "ollama")
    assert never.code == 1 and "not present and --pull never" in never.err and "ollama" not in pods()


def _unit_exec_start(unit: Path) -> list[str]:
    line = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart=").replace("%%", "%").replace("$$", "$"))


def test_autostart_brings_the_stack_back_after_a_reboot(airpods):
    assert airpods("start", "ollama", "llamacpp").code == 0
    try:
        on = airpods("autostart", "on", "--json")
        assert on.code == 0, on.err
        state = on.json()
        assert state["installed"] and state["enabled"] and state["containers"] == 2
        unit = Path(state["path"])
        assert unit.is_file() and "label=io.airpods.project=airpods" in unit.read_text()
        assert airpods("autostart", "status", "--json").json()["enabled"] is True
        doctor = {c["name"]: c for c in airpods("doctor", "--json").json()["checks"]}
        assert doctor["reboot"]["level"] == ("OK" if state["survives_reboot"] else "WARN")

        # The reboot: every container stops behind airpods' back, then the unit's own command runs.
        for pod in pods():
            podman("pod", "stop", "--time", "2", pod)
        assert not any(row["state"] == "running" for row in status_rows(airpods).values())
        boot = subprocess.run(_unit_exec_start(unit), capture_output=True, text=True, timeout=120)
        assert boot.returncode == 0, boot.stderr
        healthy = eventually(
            lambda: all(status_rows(airpods)[n]["health"] == "healthy" for n in ("ollama", "llamacpp")), timeout=60
        )
        assert healthy, status_rows(airpods)
    finally:
        off = airpods("autostart", "off", "--json")
    assert off.code == 0 and not off.json()["installed"]
    assert not Path(state["path"]).exists()
    doctor = {c["name"]: c for c in airpods("doctor", "--json").json()["checks"]}
    assert doctor["reboot"]["level"] == "WARN" and "autostart on" in doctor["reboot"]["fix"]


def test_a_slow_service_does_not_take_the_healthy_ones_down(airpods):
    airpods.write_config("""
        [services.open-webui.health]
        path = "/never-healthy"
        timeout_s = 3
    """)
    failed = airpods("start")
    assert failed.code == 1
    assert "open-webui did not become ready" in failed.err and "HTTP 404" in failed.err
    assert "removed the failed services' pods (open-webui)" in failed.err
    assert pods() == {"ollama", "llamacpp"}
    rows = status_rows(airpods)
    assert rows["ollama"]["health"] == "healthy" and rows["llamacpp"]["health"] == "healthy"


def test_status_says_starting_while_a_service_is_not_yet_listening(airpods):
    airpods.write_config("""
        [services.ollama]
        entrypoint_override = ["/bin/sh", "-c", "sleep 600"]
        health = { path = "/api/version", timeout_s = 300 }
    """)
    proc = airpods.popen("start", "ollama")
    try:
        assert eventually(lambda: status_rows(airpods)["ollama"]["state"] == "running", timeout=60)
        row = status_rows(airpods)["ollama"]
        # Refused (rootful); rootless Podman's port forwarder accepts, then closes or resets.
        assert row["health"] == "starting" and row["detail"] in NOT_LISTENING, row
        assert f"starting ({row['detail']})" in airpods("status").out
    finally:
        import signal

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130


def test_relative_host_folder_is_the_one_beside_the_config_file(airpods, tmp_path):
    airpods.write_config("""
        [services.ollama]
        volumes = [{ source = "./ollama-data", target = "/root/.ollama" }]
    """)
    missing = airpods("start", "ollama")
    assert missing.code == 1 and f"{tmp_path}/ollama-data" in missing.err and "does not exist" in missing.err
    assert pods() == set()
    (tmp_path / "ollama-data").mkdir()
    os.chmod(tmp_path / "ollama-data", 0o777)  # the rootless pass maps root in the container elsewhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        airpods.argv("start", "ollama"),
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    podman("exec", "ollama-0", "sh", "-c", "echo here > /root/.ollama/marker")
    assert (tmp_path / "ollama-data" / "marker").read_text().strip() == "here"
    assert not (elsewhere / "ollama-data").exists()


def test_ipv6_loopback_bind_address(airpods):
    if not Path("/proc/net/if_inet6").exists():
        pytest.skip("this machine has no IPv6")
    airpods.write_config('[runtime]\nbind_address = "::1"\n')
    started = airpods("start", "llamacpp")
    rootless = json.loads(podman("info", "--format", "json").stdout)["host"]["security"]["rootless"]
    if not rootless:  # netavark's DNAT cannot reach a container from ::1: said, not hung
        assert started.code == 1 and "rootful Podman cannot publish on the IPv6 address ::1" in started.err
        assert "nothing was created" in started.err and pods() == set()
        return
    assert started.code == 0, started.err
    row = status_rows(airpods)["llamacpp"]
    assert row["url"] == "http://[::1]:8081" and row["health"] == "healthy" and row["http_status"] == 200
    published = {(p["host_ip"], p["host_port"]) for c in podman_json("ps") for p in c.get("Ports") or []}
    assert ("::1", 8081) in published


def test_clean_volumes_keeps_what_airpods_did_not_create_and_its_users(airpods):
    podman("volume", "create", "userdata")
    podman("run", "-d", "--name", "usercontainer", "-v", "userdata:/d", "docker.io/ollama/ollama:latest")
    try:
        airpods.write_config('[services.ollama]\nvolumes = [{ source = "userdata", target = "/root/.ollama" }]\n')
        cleaned = airpods("clean", "--volumes", "--yes")
        assert cleaned.code == 0, cleaned.err
        assert "kept volume userdata: airpods did not create it" in cleaned.out
        assert "userdata" in {v["Name"] for v in podman_json("volume", "ls")}
        assert podman("container", "exists", "usercontainer", check=False).returncode == 0
    finally:
        podman("rm", "--force", "--time", "0", "usercontainer", check=False)
        podman("volume", "rm", "--force", "userdata", check=False)


def test_an_empty_service_name_is_refused_not_taken_as_everything(airpods):
    assert airpods("start", "ollama").code == 0
    for command in ("stop", "restart", "logs", "status"):
        done = airpods(command, "")
        assert done.code == 2 and "unknown service: ''" in done.err, (command, done)
    assert pods() == {"ollama"}


def test_a_container_name_held_by_something_else_is_refused_before_anything_is_created(airpods):
    podman("run", "-d", "--name", "llamacpp-0", "docker.io/ollama/ollama:latest")
    try:
        failed = airpods("start")
        assert (
            failed.code == 1
            and "llamacpp-0 (its container) is already taken by something other than airpods" in failed.err
        )
        assert pods() == set()
    finally:
        podman("rm", "--force", "--time", "0", "llamacpp-0", check=False)


def test_a_crash_looping_service_is_unhealthy_with_its_restarts(airpods):
    airpods.write_config("""
        [runtime]
        restart_policy = "always"
        [services.ollama]
        entrypoint_override = ["/bin/sh", "-c", "sleep 2; exit 3"]
    """)
    started = airpods("start", "ollama", "--keep-failed")
    assert started.code == 1 and "exit code 3" in started.err

    def looped():
        row = status_rows(airpods)["ollama"]
        return row if row["health"] == "unhealthy" and "restarted" in row["detail"] else None

    row = eventually(looped, timeout=60, interval=0.5)
    assert row, status_rows(airpods)["ollama"]
    assert "by its restart policy" in row["detail"]


def test_one_image_that_cannot_be_pulled_does_not_hide_or_stop_the_others(airpods):
    airpods.write_config('[services.ollama]\nimage = "docker.io/airpods-test/does-not-exist:1"\n')
    pulled = airpods("pull", "--json")
    assert pulled.code == 1 and "could not pull docker.io/airpods-test/does-not-exist:1" in pulled.err
    rows = {i["image"]: i for i in pulled.json()["images"]}
    assert rows["docker.io/airpods-test/does-not-exist:1"]["outcome"] == "failed"
    assert rows["ghcr.io/ggml-org/llama.cpp:server"]["outcome"] in ("new", "updated", "unchanged")
    started = airpods("start", "ollama", "llamacpp")
    assert (
        started.code == 1
        and "ollama: its image docker.io/airpods-test/does-not-exist:1 could not be pulled" in started.err
    )
    assert pods() == {"llamacpp"} and status_rows(airpods)["llamacpp"]["health"] == "healthy"


def test_chat_with_a_model_the_server_lacks_and_a_backup_to_nowhere_fail_clearly(airpods):
    assert airpods("start", "llamacpp").code == 0
    done = subprocess.run(
        airpods.argv("chat", "--model", "no-such-model"), input="hello\n", capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "answered HTTP 400 for model no-such-model" in done.stderr, done.stderr
    assert "internal error" not in done.stderr and "models list" in done.stderr
    backup = airpods("backup", "-o", "/nonexistent/stack.tar")
    assert backup.code == 1 and "/nonexistent is not a folder" in backup.err and "backing up" not in backup.out


def test_a_protected_health_path_is_probed_with_the_key_and_a_refused_key_fails_at_once(airpods):
    """/props needs the key (measured: 401 without, 200 with); probes used to wait out the timeout."""
    airpods.write_config('[services.llamacpp.health]\npath = "/props"\ntimeout_s = 600\n')
    started = airpods("start", "llamacpp", "--json")
    assert started.code == 0, started.err
    assert status_rows(airpods)["llamacpp"]["health"] == "healthy"
    assert airpods("stop").code == 0
    # A server that wants a key airpods does not know (command_args refuse api_key: an
    # entrypoint_override is the escape hatch that can still do it).
    airpods.write_config("""
        [runtime]
        api_key = false
        [services.llamacpp]
        entrypoint_override = ["/app/llama-server", "--api-key", "a-key-airpods-does-not-know"]
        [services.llamacpp.health]
        path = "/props"
        timeout_s = 600
    """)
    began = time.monotonic()
    failed = airpods("start", "llamacpp")
    assert failed.code == 1 and "authentication failed on /props (HTTP 401)" in failed.err, failed.err
    assert time.monotonic() - began < 60  # not the 600 s health timeout
