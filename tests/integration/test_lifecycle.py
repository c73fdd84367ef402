"""start / status / stop / logs / pre-fetch on real Podman and (the engine-neutral tests, those
taking `engine`) on real Docker Engine, with images served offline."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import signal
import socket
import time

from tests.integration.conftest import eventually, podman, podman_json

STACK = ["ollama", "open-webui", "llamacpp"]


def pods() -> set[str]:
    return {p["Name"] for p in podman_json("pod", "ps", "--filter", "label=io.airpods.managed=true")}


def test_start_brings_the_default_stack_up_healthy_and_status_reports_it(airpods, engine):
    started = airpods("start", "--json")
    assert started.code == 0, started.err
    data = started.json()
    assert data["ok"] and [s["name"] for s in data["services"]] == STACK
    assert all(s["ready"] for s in data["services"])

    status = airpods("status", "--json")
    assert status.code == 0
    rows = {row["name"]: row for row in status.json()["services"]}
    assert set(rows) == set(STACK)
    llama = rows["llamacpp"]
    assert llama["state"] == "running" and llama["health"] == "healthy" and llama["http_status"] == 200
    assert llama["url"] == "http://127.0.0.1:8081"
    assert llama["image"] == "ghcr.io/ggml-org/llama.cpp:server"
    assert llama["pod"] == "llamacpp" and llama["container"] == "llamacpp-0"
    assert isinstance(llama["uptime_s"], int) and llama["up_to_date"] is True
    # Published on loopback only, on the ports the defaults document.
    published = airpods.published()
    assert {("127.0.0.1", 11434), ("127.0.0.1", 3000), ("127.0.0.1", 8081)} <= published


def test_pods_reach_each_other_by_alias_on_the_airpods_network(airpods, engine):
    assert airpods("start", "ollama", "open-webui").code == 0
    # The Open WebUI stand-in asks Ollama at the alias its env was given.
    env = airpods.ctr("exec", "open-webui-0", "env").stdout
    assert "OLLAMA_BASE_URLS=http://ollama:11434" in env
    answer = airpods.ctr("exec", "open-webui-0", "wget", "-qO-", "http://ollama:11434/api/version").stdout
    assert "standin" in answer


def test_second_start_leaves_healthy_services_alone(airpods, engine):
    assert airpods("start").code == 0
    before = airpods.container_ids()
    again = airpods("start", "--json")
    assert again.code == 0, again.err
    assert airpods.container_ids() == before
    assert "llamacpp: running and unchanged, left alone" in again.json()["notes"]


def test_config_change_recreates_only_that_service(airpods, engine):
    assert airpods("start").code == 0
    before = airpods.container_ids()
    airpods.write_config("[services.llamacpp.command_args]\nthreads_http = 3\n")  # a flag the router keeps
    assert airpods("status", "--json").json()["services"][2]["up_to_date"] is False
    changed = airpods("start")
    assert changed.code == 0, changed.err
    after = airpods.container_ids()
    assert after["ollama-0"] == before["ollama-0"] and after["open-webui-0"] == before["open-webui-0"]
    assert after["llamacpp-0"] != before["llamacpp-0"]
    args = airpods.ctr("inspect", "llamacpp-0", "--format", "{{json .Config.Cmd}}").stdout
    assert '"--threads-http","3"' in args.replace(" ", "")
    # a flag of every model is the preset file's: reread by the same container (issue 33 §1)
    airpods.write_config("[services.llamacpp.command_args]\nthreads_http = 3\nctx_size = 2048\n")
    assert airpods("start").code == 0 and airpods.container_ids() == after
    assert "[*]\nctx-size = 2048" in airpods.ctr("exec", "llamacpp-0", "cat", "/presets/models.ini").stdout


def test_stop_removes_pods_and_keeps_volume_data(airpods, engine):
    assert airpods("start", "ollama").code == 0
    airpods.ctr("exec", "ollama-0", "sh", "-c", "echo kept > /root/.ollama/marker")
    stopped = airpods("stop")
    assert stopped.code == 0 and "volumes kept" in stopped.out
    assert airpods.pods() == set()
    assert "airpods_ollama_data" in airpods.volumes()
    again = airpods("stop")
    assert again.code == 0 and "nothing to stop" in again.out
    assert airpods("start", "ollama").code == 0
    assert airpods.ctr("exec", "ollama-0", "cat", "/root/.ollama/marker").stdout.strip() == "kept"


def test_pre_fetch_pulls_through_the_mirror_without_starting(airpods):
    images = [
        "docker.io/ollama/ollama:latest",
        "ghcr.io/open-webui/open-webui:main",
        "ghcr.io/ggml-org/llama.cpp:server",
    ]
    for image in images:
        podman("rmi", "--force", image, check=False)
    fetched = airpods("start", "--pre-fetch")
    assert fetched.code == 0, fetched.err
    for image in images:
        assert podman("image", "exists", image, check=False).returncode == 0, image
    assert re.search(r"pulled ghcr.io/ggml-org/llama.cpp:server \(\d+(\.\d)? MB\)", fetched.err), fetched.err
    assert pods() == set()
    again = airpods("start", "--pre-fetch")  # presence comes from one filtered listing
    assert again.code == 0 and "pulled" not in again.err
    assert all(f"{image}: already present" in again.out + again.err for image in images)


def test_container_that_exits_during_start_fails_at_once_and_is_rolled_back(airpods, engine):
    airpods.write_config("""
        [services.ollama]
        entrypoint_override = ["/bin/sh", "-c", "echo model-store-corrupt >&2; sleep 1; exit 3"]
        health = { path = "/api/version", timeout_s = 120 }
    """)
    began = time.monotonic()
    failed = airpods("start")
    took = time.monotonic() - began
    assert failed.code == 1
    assert "ollama" in failed.err and "exit code 3" in failed.err
    assert "model-store-corrupt" in failed.err  # its last log lines are shown
    assert took < 20  # not the 120 s health timeout
    assert airpods.pods() == {"open-webui", "llamacpp"}  # only the failed service's pod was removed
    assert "removed the failed services' pods (ollama)" in failed.err
    assert "open-webui, llamacpp are up and kept running" in failed.err
    assert "airpods_ollama_data" in airpods.volumes()


def test_keep_failed_keeps_the_pods(airpods, engine):
    airpods.write_config("""
        [services.ollama]
        entrypoint_override = ["/bin/sh", "-c", "exit 4"]
    """)
    assert airpods("start", "ollama", "--keep-failed").code == 1
    assert airpods.pods() == {"ollama"}


def test_health_timeout_names_the_last_answer_and_a_path_never_served_fails_at_once(airpods, engine):
    airpods.write_config("""
        [services.open-webui.health]
        path = "/health"
        expected_status = "204"
        timeout_s = 2
    """)
    failed = airpods("start", "open-webui")
    assert failed.code == 1
    assert "not ready after 2 s (last answer: HTTP 200)" in failed.err, failed.err
    assert airpods.pods() == set()
    airpods.write_config("""
        [services.open-webui.health]
        path = "/not-there"
        timeout_s = 60
    """)
    began = time.monotonic()
    never = airpods("start", "open-webui")
    assert never.code == 1 and "GET /not-there answers HTTP 404" in never.err, never.err
    assert time.monotonic() - began < 30 and airpods.pods() == set()


def test_port_conflict_is_found_before_anything_is_created(airpods, engine):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 3000))
        sock.listen()
        failed = airpods("start")
    assert failed.code == 1
    assert "127.0.0.1:3000" in failed.err and "python" in failed.err and "nothing was created" in failed.err
    assert airpods.pods() == set()
    assert not airpods.volumes("label=io.airpods.managed=true")


def test_second_concurrent_start_waits_for_the_lock_then_fails_clearly(airpods, tmp_path):
    import fcntl
    import os

    airpods.write_config("[cli]\nlock_timeout_s = 1\n")
    path = os.path.join(os.environ["XDG_STATE_HOME"], "airpods", "lifecycle.lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as held:  # another process's lock, as flock(1) takes it
        fcntl.flock(held, fcntl.LOCK_EX)
        blocked = airpods("start")
    assert blocked.code == 1 and "another airpods start or stop is running" in blocked.err
    assert pods() == set()


def test_two_starts_at_once_both_succeed_one_after_the_other(airpods):
    first, second = airpods.popen("start"), airpods.popen("start")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=300) == 0, second.stderr.read()
    assert pods() == {"ollama", "open-webui", "llamacpp"}


def test_ctrl_c_during_start_leaves_no_half_created_pods(airpods, engine):
    airpods.write_config("""
        [services.llamacpp.health]
        path = "/health"
        expected_status = "204"  # it answers 200: never what this start waits for
        timeout_s = 300
    """)
    proc = airpods.popen("start")
    assert eventually(lambda: "llamacpp" in airpods.pods(), timeout=60)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read()
    assert "interrupted" in proc.stderr.read()
    assert airpods.pods() == set()


def test_logs_tail_and_follow(airpods, engine):
    assert airpods("start", "ollama", "llamacpp").code == 0
    whole = airpods("logs", "ollama").out.splitlines()
    assert whole[0] == "stand-in for ollama listening on 11434" and len(whole) > 1
    one = airpods("logs", "ollama", "-n", "1")
    assert one.code == 0 and one.out.splitlines() == whole[-1:]  # its last line: the readiness probe
    both = airpods("logs", "ollama", "llamacpp", "-n", "2")
    prefixes = {line.split("|")[0].strip() for line in both.out.splitlines()}
    assert prefixes == {"ollama", "llamacpp"}
    follow = airpods.popen("logs", "-f", "ollama")
    try:
        assert "stand-in for ollama" in follow.stdout.readline()
        airpods.ctr("exec", "ollama-0", "sh", "-c", "echo followed-line > /proc/1/fd/1")
        lines = iter(follow.stdout.readline, "")  # the history first, then what comes
        assert any("followed-line" in line for line in lines)
    finally:
        follow.terminate()
        follow.wait(timeout=10)


def test_resource_limits_are_applied_or_refused_never_dropped(airpods):
    airpods.write_config('[services.ollama.resources]\nmemory = "256m"\ncpus = 0.5\n')
    info = json.loads(podman("info", "--format", "json").stdout)["host"]
    started = airpods("start", "ollama")
    cannot = info["security"]["rootless"] and (
        info.get("cgroupVersion") != "v2" or not {"memory", "cpu"} <= set(info.get("cgroupControllers") or [])
    )
    if cannot:
        assert started.code == 1 and (
            "cannot apply memory or CPU limits" in started.err or "not delegated" in started.err
        )
        assert pods() == set()
    else:
        assert started.code == 0, started.err
        limits = json.loads(podman("inspect", "ollama-0").stdout)[0]["HostConfig"]
        assert limits["Memory"] == 256 * 1024 * 1024 and limits["NanoCpus"] == 500_000_000


def test_doctor_reports_the_real_mode_and_a_valid_config(airpods):
    info = json.loads(podman("info", "--format", "json").stdout)["host"]
    done = airpods("doctor", "--json")
    checks = {c["name"]: c for c in done.json()["checks"]}
    assert checks["mode"]["detail"] == ("rootless" if info["security"]["rootless"] else "rootful")
    assert checks["config"]["level"] == "OK" and checks["podman"]["level"] == "OK"
    if info["security"]["rootless"]:
        assert {"subuid", "subgid", "newuidmap", "resource limits", "linger"} <= set(checks)


def test_clean_removes_only_what_the_flags_name(airpods):
    assert airpods("start", "ollama", "llamacpp").code == 0
    nothing = airpods("clean")
    assert nothing.code == 2 and "say what to clean" in nothing.err
    cleaned = airpods("clean", "--pods")
    assert cleaned.code == 0 and pods() == set()
    assert not [n for n in podman("secret", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith("airpods-")]
    assert "airpods_ollama_data" in {v["Name"] for v in podman_json("volume", "ls")}  # data stays
    refused = airpods("clean", "--volumes")  # no stdin: not confirmed
    assert refused.code != 0 and "airpods_ollama_data" in {v["Name"] for v in podman_json("volume", "ls")}
    assert airpods("clean", "--volumes", "--yes").code == 0
    assert "airpods_ollama_data" not in {v["Name"] for v in podman_json("volume", "ls")}
    assert airpods("start", "ollama", "llamacpp").code == 0  # secrets come back


def test_a_dry_run_on_a_machine_with_no_key_and_no_learned_table_changes_nothing(airpods, tmp_path, monkeypatch):
    """It made the API key and ran a container (to read llama-server's flag table) while saying
    it only shows. Images present, no state folder: afterwards still none, and no engine event."""
    state = tmp_path / "fresh-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    assert airpods("start", "--pre-fetch").code == 0  # every image present (learning needs them)
    shutil.rmtree(state, ignore_errors=True)
    objects = ("pod", "ps"), ("ps", "-a"), ("volume", "ls"), ("secret", "ls"), ("network", "ls")
    # names and IDs only: Podman shows its default network with a fresh "created" time at each listing
    listing = {"ps": "{{.ID}} {{.Names}} {{.Status}}", "pod": "{{.ID}} {{.Name}} {{.Status}}"}
    before = [podman(*args, "--format", listing.get(args[0], "{{.Name}}")).stdout for args in objects]
    began = time.time()
    shown = airpods("start", "--dry-run")
    assert shown.code == 0, shown.err
    assert "--api-key-file" in shown.out and "airpods-api-key-new-key" in shown.out  # the key start would make
    assert "is not known yet: start reads it from the image" in shown.out
    assert not state.exists()  # no key, no learned table, no stack cache, not even the folder
    assert [podman(*args, "--format", listing.get(args[0], "{{.Name}}")).stdout for args in objects] == before
    since = datetime.datetime.fromtimestamp(began, datetime.UTC).isoformat()  # RFC 3339, to the microsecond
    events = podman("events", "--stream=false", "--since", since, "--format", "{{.Type}} {{.Status}}")
    assert not [line for line in events.stdout.splitlines() if line.split()[:1] in (["container"], ["pod"])]
    started = airpods("start", "llamacpp")  # start itself makes the key and reads the table
    assert started.code == 0, started.err
    assert (state / "airpods" / "api-key").exists() and (state / "airpods" / "llama-server-flags.json").exists()
