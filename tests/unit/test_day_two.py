"""Day-two logic without podman: projects and orphans, image updates in the plan, partial
failure bookkeeping, host folders, IPv6 publishing, step timeouts, the stack cache key, status
health states and the autostart unit."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from airpods.engine.podman_argv import step_argv
from airpods.errors import RuntimeFailure
from airpods.health import Probe, http_status
from airpods.plan import Observed, ObservedPod, build_start_plan, build_stop_plan, orphans
from tests.unit.helpers import engine_steps, load_text, stack_of, write_toml


def running(stack, image_id: str = "sha-1", **overrides) -> Observed:
    """Every service of `stack` up and unchanged, on images with ID `image_id`."""
    pods = {s.pod: ObservedPod(s.pod, s.name, s.config_hash, True, stack.project, image_id) for s in stack.services}
    pods.update(overrides)
    return Observed(
        networks=frozenset({stack.network}),
        volumes=frozenset(stack.volumes),
        images={image: image_id for image in stack.images},
        secrets=frozenset(s.name for s in stack.secrets),
        pods=pods,
    )


def test_a_new_image_under_the_same_name_recreates_exactly_its_services(tmp_path):
    stack = stack_of(tmp_path)
    observed = running(stack)
    llama = stack.service("llamacpp")
    newer = Observed(**{**observed.__dict__, "images": {**observed.images, llama.image: "sha-2"}})
    plan = build_start_plan(stack, newer)
    assert [(s.kind, s.target) for s in plan.steps] == [
        ("presets", "llamacpp"),
        ("wait", "ollama"),  # kept: start still says they are ready
        ("wait", "open-webui"),
        ("drain", "llamacpp"),  # a running router lets its requests finish first (issue 33 §1)
        ("tag", observed.pods["llamacpp"].image_id),  # kept under an airpods name, to roll back to
        ("remove", "llamacpp"),
        ("pod", "llamacpp"),
        ("container", "llamacpp-0"),
        ("wait", "llamacpp"),
        ("rollback", "llamacpp"),  # no snapshot: its model volume is shared, its presets a host folder
    ]
    assert "new image pulled" in plan.steps[5].why
    unchanged = build_start_plan(stack, observed)
    assert not engine_steps(unchanged)  # its preset file is rewritten if it changed, and reread then
    assert [(s.kind, s.target) for s in unchanged.steps] == [
        ("presets", "llamacpp"),
        ("wait", "ollama"),
        ("wait", "open-webui"),
        ("reload", "llamacpp"),  # before its wait: the wait is for the startup models the reread loads
        ("wait", "llamacpp"),
    ]


def test_pull_policies(tmp_path):
    stack = stack_of(tmp_path)
    observed = running(stack)
    always = build_start_plan(stack, observed, pull="always")
    assert [s.target for s in always.steps if s.kind == "pull"] == list(stack.images)
    assert all(s.timeout_s == 3600 for s in always.steps if s.kind == "pull")
    absent = Observed(**{**observed.__dict__, "images": {}})
    with pytest.raises(RuntimeFailure, match="not present and --pull never"):
        build_start_plan(stack, absent, pull="never")
    assert engine_steps(build_start_plan(stack, observed, pull="never")) == []


def test_orphans_are_noted_and_removed_only_when_asked(tmp_path):
    stack = stack_of(tmp_path)
    gone = ObservedPod("llama-old", "llama-old", "h", True, "airpods")
    other = ObservedPod("theirs", "theirs", "h", True, "other-project")
    observed = running(stack, **{"llama-old": gone, "theirs": other})
    assert [p.name for p in orphans(stack, observed)] == ["llama-old"]
    plan = build_start_plan(stack, observed)
    assert any("llama-old" in n and "--remove-orphans" in n for n in plan.notes)
    assert not engine_steps(plan)
    removing = build_start_plan(stack, observed, remove_orphans=True)
    assert [(s.kind, s.target) for s in engine_steps(removing)] == [("remove", "llama-old")]
    stop = build_stop_plan(stack, observed, 10, remove_orphans=True)
    assert "theirs" not in {s.target for s in stop.steps}  # another project's: never
    assert {s.target for s in stop.steps} == {"ollama", "open-webui", "llamacpp", "llama-old"}
    kept = build_stop_plan(stack, observed, 10)
    assert "llama-old" not in {s.target for s in kept.steps}
    assert any("orphan" in n for n in kept.notes)


@pytest.mark.parametrize(
    "owner, words",
    [
        ("other", "is already taken by airpods project 'other'"),
        (None, "is already taken by something other than airpods"),
    ],
)
def test_a_pod_name_held_by_another_project_is_an_error(tmp_path, owner, words):
    stack = stack_of(tmp_path)
    clash = ObservedPod("ollama", "ollama", "h", True, owner)
    with pytest.raises(RuntimeFailure, match=words) as caught:
        build_start_plan(stack, Observed(pods={"ollama": clash}))
    assert "[runtime] project" in (caught.value.hint or "")
    # A container name is checked the same way (pods and containers share podman's namespace).
    with pytest.raises(RuntimeFailure, match="ollama-0 \\(its container\\) is already taken"):
        build_start_plan(stack, Observed(containers={"ollama-0": owner}))
    lab = stack_of(tmp_path, '[runtime]\nproject = "lab"')
    assert lab.service("ollama").pod == "lab-ollama" and lab.service("ollama").container == "lab-ollama-0"
    assert lab.network == "lab" and "lab_ollama_data" in lab.volumes
    build_start_plan(lab, Observed(pods={"ollama": clash}, containers={"ollama-0": owner}))  # no clash


def test_project_labels_and_per_project_secret_names(tmp_path):
    default = stack_of(tmp_path)
    other = stack_of(tmp_path, '[runtime]\nproject = "lab"')
    assert default.service("ollama").labels["io.airpods.project"] == "airpods"
    assert other.service("ollama").labels["io.airpods.project"] == "lab"
    assert other.service("ollama").config_hash != default.service("ollama").config_hash
    assert not {s.name for s in default.secrets} & {s.name for s in other.secrets}
    argv = [a for s in build_start_plan(other, Observed()).steps for a in step_argv(s)]
    assert "io.airpods.project=lab" in argv and "io.airpods.project=airpods" not in argv


def test_stop_timeout_gives_the_engine_step_that_long_plus_a_margin(tmp_path):
    stack = stack_of(tmp_path)
    plan = build_stop_plan(stack, None, 300)
    stops = [s for s in plan.steps if s.kind == "stop"]
    assert stops and all(s.timeout_s == 360 and "--time" in step_argv(s) and "300" in step_argv(s) for s in stops)


def test_relative_host_folders_resolve_against_the_config_file(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    path = write_toml(
        config_dir,
        """
        [variables]
        data = "./data"
        [services.ollama]
        volumes = [{ source = "{{data}}/ollama", target = "/a" }, { source = "../shared", target = "/b" },
                   { source = "~/models", target = "/c" }, { source = "named_vol", target = "/d" }]
    """,
    )
    from airpods.config.loader import load_config

    volumes = load_config(path).config.services["ollama"].volumes
    assert [v.source for v in volumes] == [
        str(config_dir / "data" / "ollama"),
        str(tmp_path / "shared"),
        str(Path.home() / "models"),
        "named_vol",
    ]
    assert [v.named for v in volumes] == [False, False, False, True]


def test_ipv6_bind_address_is_bracketed_for_podman_and_urls(tmp_path):
    stack = stack_of(tmp_path, '[runtime]\nbind_address = "::1"')
    llama = stack.service("llamacpp")
    from airpods.engine.podman_argv import publish_option

    assert publish_option(llama.publish[0]) == "[::1]:8081:8080" and llama.publish[0].address() == "[::1]:8081"
    assert llama.url == "http://[::1]:8081"
    argv = [a for s in build_start_plan(stack, Observed()).steps for a in step_argv(s)]
    assert "[::1]:8081:8080" in argv


def test_probe_on_ipv6_loopback_sends_a_bracketed_host_header():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    seen: list[bytes] = []
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as server:
        server.bind(("::1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                seen.append(conn.recv(4096))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=answer)
        thread.start()
        assert http_status("::1", port, "/health", 5) == 200
        thread.join(5)
    assert f"Host: [::1]:{port}\r\n".encode() in seen[0]


def test_stack_cache_key_follows_the_installed_code(tmp_path, monkeypatch):
    from airpods.gpu import HostGpu
    from airpods.stack import cache

    first = cache.cache_key(None, HostGpu("none"), [], "k")
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "an upgraded checkout")
    assert cache.cache_key(None, HostGpu("none"), [], "k") != first


def test_code_fingerprint_changes_when_a_module_changes(tmp_path):
    from airpods.stack import cache

    module = Path(cache.__file__)
    before = cache.code_fingerprint()
    stat = module.stat()
    try:
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert cache.code_fingerprint() != before
    finally:
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.code_fingerprint() == before


def test_cache_keeps_several_stacks_and_never_serves_a_stale_one(tmp_path):
    from airpods.stack.cache import cached_stack

    a, b = stack_of(tmp_path), stack_of(tmp_path, only=["llamacpp-ui"])
    path = tmp_path / "stack-cache.json"
    built: list[str] = []

    def build(stack, name):
        return lambda: built.append(name) or stack

    assert cached_stack(path, "ka", build(a, "a")) == a
    assert cached_stack(path, "kb", build(b, "b")) == b
    assert cached_stack(path, "ka", build(a, "a")) == a and cached_stack(path, "kb", build(b, "b")) == b
    assert built == ["a", "b"]
    assert (path.stat().st_mode & 0o077) == 0


@pytest.mark.parametrize(
    "probe, uptime, expected",
    [
        (Probe(True, status=200), 5, "healthy"),
        (Probe(False, error="connection refused"), 5, "starting"),
        (Probe(False, error="connection closed without an answer"), 5, "starting"),  # rootless port forwarder
        (Probe(False, status=503), 100, "starting"),
        (Probe(False, status=503), 700, "unhealthy"),  # past the 600 s health timeout
        (Probe(False, status=500), 5, "unhealthy"),
        (Probe(False, error="timed out"), 5, "unhealthy"),
        (Probe(False, error="connection refused"), None, "unhealthy"),
    ],
)
def test_status_health_states(probe, uptime, expected):
    from airpods.usecases.status import health_of

    assert health_of(probe, uptime, 600) == expected


def test_autostart_unit_starts_this_project_only_and_escapes_values():
    from airpods.autostart import render_unit, start_command, unit_name

    text = render_unit("lab", "/usr/bin/podman", rootless=False, env={"CONTAINERS_CONF": "/etc/100%/$x.conf"})
    assert unit_name("lab") == "airpods-lab.service" and unit_name("airpods") == "airpods.service"
    assert "ExecStart=/usr/bin/podman start --all --filter label=io.airpods.project=lab" in text
    assert 'Environment="CONTAINERS_CONF=/etc/100%%/$$x.conf"' in text
    assert "WantedBy=multi-user.target" in text and "Type=oneshot" in text
    assert "WantedBy=default.target" in render_unit("lab", "/usr/bin/podman", rootless=True, env={})
    assert start_command("lab", "podman")[-1] == "label=io.airpods.project=lab"


def test_present_disabled_services_join_the_stack_and_open_webui_is_wired_to_them(tmp_path):
    from airpods.secrets import key_id
    from airpods.stack.build import build_stack
    from tests.unit.helpers import KEY

    config = load_text(tmp_path, "").config
    plain = build_stack(config, stack_of(tmp_path).gpu, (), key_id(KEY))
    with_ui = build_stack(config, plain.gpu, (), key_id(KEY), present=["llamacpp-ui", "not-configured"])
    assert [s.name for s in with_ui.services] == ["ollama", "open-webui", "llamacpp", "llamacpp-ui"]
    env = dict(with_ui.service("open-webui").env)
    assert env["OPENAI_API_BASE_URLS"] == "http://llamacpp:8080/v1;http://llamacpp-ui:8080/v1"
    assert dict(plain.service("open-webui").env)["OPENAI_API_BASE_URLS"] == "http://llamacpp:8080/v1"


def test_the_engine_gives_each_step_the_time_the_plan_allows(tmp_path):
    """`stop -t 300` used to be cut off by a fixed 120 s limit on every podman call."""
    from airpods.engine.errors import EngineTimeout
    from airpods.engine.podman import Podman
    from airpods.plan import Step

    fake = tmp_path / "podman"
    fake.write_text("#!/bin/sh\nsleep 1\n")
    fake.chmod(0o755)
    engine = Podman(str(fake))
    engine.execute(Step("stop", "p", "stop", timeout_s=10, grace_s=0))
    with pytest.raises(EngineTimeout, match="timed out after 0.3 s"):
        engine.execute(Step("stop", "p", "stop", timeout_s=0.3, grace_s=0))


def test_an_empty_service_name_is_not_the_same_cache_key_as_no_name():
    from airpods.gpu import HostGpu
    from airpods.stack.cache import cache_key

    assert cache_key(None, HostGpu("none"), [""], "k") != cache_key(None, HostGpu("none"), [], "k")


def test_usage_and_runtime_errors_found_by_a_new_user(tmp_path, capsys, monkeypatch):
    from tests.unit.helpers import run_cli

    monkeypatch.setenv("PATH", str(tmp_path))  # no podman: these fail before it is needed
    empty = run_cli(capsys, "start", "--dry-run", "")
    assert empty.code == 2 and "unknown service: ''" in empty.err
    since = run_cli(capsys, "logs", "--since", "bogus")
    assert since.code == 2 and "--since 'bogus'" in since.err
    folder = run_cli(capsys, "-c", str(tmp_path), "status")
    assert folder.code == 2 and "is a folder, not a config file" in folder.err
    missing = run_cli(capsys, "-c", str(tmp_path / "nope.toml"), "status")
    assert missing.code == 2 and f"airpods -c {tmp_path / 'nope.toml'} config init" in missing.err
    monkeypatch.setenv("XDG_STATE_HOME", "/proc/airpods-nope")
    state = run_cli(capsys, "env")  # it hands the key over: the key is made in the state folder
    assert state.code == 1 and "cannot use the state folder /proc/airpods-nope/airpods" in state.err
    assert "internal error" not in state.err
    looked = run_cli(capsys, "start", "--dry-run")  # only looks: it needs no state folder
    assert looked.code == 0 and "podman pod create" in looked.out, looked.err


def test_a_restart_of_one_service_creates_only_the_secrets_it_uses(tmp_path):
    from airpods.usecases.common import stack_subset

    stack = stack_of(tmp_path)
    only = stack_subset(stack, ["llamacpp"])
    assert [d.name for d in only.secrets] == [u.name for u in only.service("llamacpp").secrets]


def test_deriving_a_stack_makes_no_key_only_the_commands_that_hand_it_over_do(tmp_path, capsys, monkeypatch):
    """status, config show and dry runs used to create the key file, even with runtime.api_key =
    false. A dry run shows the key start would make, by a placeholder id, and makes none."""
    from airpods.secrets import api_key_path
    from tests.unit.helpers import run_cli

    monkeypatch.setenv("PATH", str(tmp_path))  # no podman
    monkeypatch.setenv("AIRPODS_HOST_ROOT", str(tmp_path))
    assert run_cli(capsys, "config", "show", "--resolved").code == 0
    assert not api_key_path().exists()
    off = write_toml(tmp_path, "[runtime]\napi_key = false\n", "off.toml")
    assert run_cli(capsys, "-c", str(off), "start", "--dry-run").code == 0
    assert not api_key_path().exists()  # the config wants no key: none is made
    plan = run_cli(capsys, "start", "--dry-run")
    assert plan.code == 0 and "--api-key-file" in plan.out and "airpods-api-key-new-key" in plan.out
    assert not api_key_path().exists()
    assert run_cli(capsys, "env").code == 0  # a command that hands the key over makes it
    assert api_key_path().exists() and api_key_path().stat().st_mode & 0o777 == 0o600
    plan = run_cli(capsys, "start", "--dry-run")
    assert "airpods-api-key-new-key" not in plan.out and "--api-key-file" in plan.out


def test_exports_fail_clearly_and_make_no_key_they_do_not_need(tmp_path, capsys, monkeypatch):
    from airpods.secrets import api_key_path
    from tests.unit.helpers import run_cli

    monkeypatch.setenv("PATH", str(tmp_path))  # no podman: the kubernetes target does not need it
    off = write_toml(tmp_path, "[runtime]\napi_key = false\n", "off.toml")
    out = tmp_path / "k8s.yaml"
    done = run_cli(capsys, "-c", str(off), "export", "kube", "--target", "kubernetes", "-o", str(out))
    assert done.code == 0, done.err
    # No API key is made; the Secret holds Open WebUI's session key alone, and the file is private.
    assert (
        not api_key_path().exists()
        and "api-key:" not in out.read_text()
        and "airpods-webui-secret-key" in out.read_text()
    )
    assert out.stat().st_mode & 0o777 == 0o600
    shared = run_cli(capsys, "export", "kube", "--target", "podman", "--shared-models")
    assert shared.code == 2 and "--shared-models is for --target kubernetes" in shared.err
    nowhere = run_cli(capsys, "-c", str(off), "export", "kube", "--target", "kubernetes", "-o", "/nonexistent/x.yaml")
    assert nowhere.code == 1 and "/nonexistent is not a folder" in nowhere.err
    a_file = tmp_path / "file"
    a_file.write_text("")
    quadlet = run_cli(capsys, "-c", str(off), "export", "quadlet", "-o", str(a_file))
    assert quadlet.code == 1 and f"cannot use {a_file}" in quadlet.err and "internal error" not in quadlet.err


def test_an_extra_instance_listens_on_its_own_container_port_and_host_port_flags_are_refused(tmp_path, capsys):
    """A second instance used to inherit `port = "{{services.llamacpp.ports.0.container}}"`."""
    from tests.unit.helpers import run_cli

    stack = stack_of(
        tmp_path,
        '[services.llama-big]\nextends = "llamacpp"\nports = [{ host = 8090, container = 9000 }]\n',
        only=["llamacpp", "llama-big"],
    )
    big = stack.service("llama-big").args
    assert big[:4] == ("--host", "0.0.0.0", "--port", "9000") and big.count("--port") == 1
    assert stack.service("llamacpp").args[:4] == ("--host", "0.0.0.0", "--port", "8080")
    assert (
        "http://llama-big:9000/v1"
        in dict(
            stack_of(
                tmp_path, '[services.llama-big]\nextends = "llamacpp"\nports = [{ host = 8090, container = 9000 }]\n'
            )
            .service("open-webui")
            .env
        )["OPENAI_API_BASE_URLS"]
    )
    for key in ("port = 9000", 'host = "127.0.0.1"', '"--port" = 1'):
        path = write_toml(tmp_path, f"[services.llamacpp.command_args]\n{key}\n", "owned.toml")
        done = run_cli(capsys, "config", "validate", str(path))
        assert done.code == 2 and "airpods sets --" in done.err and "services.llamacpp.command_args." in done.err


def test_a_dry_run_refuses_what_start_refuses_even_after_a_cached_stack(tmp_path, capsys, monkeypatch):
    """A stack cached by a reading command (a user secret unset: its id "unset") was served to
    the dry run, which then showed a plan start refuses."""
    from tests.unit.helpers import run_cli

    monkeypatch.setenv("PATH", str(tmp_path))  # no podman
    monkeypatch.delenv("MY_TOKEN", raising=False)
    path = write_toml(tmp_path, '[services.ollama.secrets]\nMY_TOKEN = "env:MY_TOKEN"\n')
    assert run_cli(capsys, "-c", str(path), "status").code != 2  # resolves (and caches) the stack, then needs podman
    for args in (["start", "--dry-run"], ["start"]):
        refused = run_cli(capsys, "-c", str(path), *args)
        assert refused.code == 2 and "MY_TOKEN is not set" in refused.err, (args, refused.out, refused.err)
        assert "flag table" not in refused.err
    typo = write_toml(tmp_path, "[services.llamacpp.command_args]\nctx_sizee = 1\n", "typo.toml")
    dry = run_cli(capsys, "-c", str(typo), "start", "--dry-run")
    assert dry.code == 2 and "did you mean ctx_size" in dry.err
    assert "is not known yet (`airpods config validate` reads it" in dry.err  # a dry run reads no table


def test_an_image_change_snapshots_the_services_data_and_plans_its_rollback(tmp_path):
    stack = stack_of(tmp_path)
    observed = running(stack)
    webui = stack.service("open-webui")
    newer = Observed(**{**observed.__dict__, "images": {**observed.images, webui.image: "sha256:" + "2" * 64}})
    steps = [s for s in build_start_plan(stack, newer).steps if s.service == "open-webui"]
    assert [s.kind for s in steps] == ["tag", "remove", "snapshot", "pod", "container", "wait", "rollback"]
    tag, snapshot, back = steps[0], steps[2], steps[-1]
    assert tag.names == ("localhost/airpods-kept/airpods-open-webui:previous",)
    assert snapshot.names == ("airpods_webui_data",) and "--no-snapshot" in snapshot.why
    assert back.names[:2] == (tag.names[0], observed.pods["open-webui"].image_id) and back.names[2] == "snapshot"
    bare = build_start_plan(stack, newer, snapshot=False, rollback=False)
    assert [s.kind for s in bare.steps if s.service == "open-webui"] == ["tag", "remove", "pod", "container", "wait"]
    # A config-only change takes no snapshot and plans no rollback.
    changed = replace(
        stack,
        services=tuple(replace(s, env=(*s.env, ("X", "1"))) if s.name == "open-webui" else s for s in stack.services),
    )
    kinds = [s.kind for s in build_start_plan(changed, observed).steps if s.service == "open-webui"]
    assert kinds == ["remove", "pod", "container", "wait"]
    # A new image that failed and was rolled back is not tried again by a plain start.
    failed = Observed(**{**newer.__dict__, "failed_updates": {"open-webui": (newer.images[webui.image], "then")}})
    again = build_start_plan(stack, failed)
    assert [s.kind for s in again.steps if s.service == "open-webui"] == ["wait"]
    assert any("failed at then and was rolled back; `airpods update open-webui`" in n for n in again.notes)


def test_a_snapshot_that_would_not_fit_is_a_refusal_that_names_the_way_round(tmp_path):
    from airpods.plan import Plan
    from airpods.preflight import HostFacts, preflight

    stack = stack_of(tmp_path)
    plan = Plan("start", ())
    roomy = HostFacts("podman", snapshots=(("open-webui", 5_000_000, 9_000_000_000),))
    assert preflight(stack, plan, {}, roomy) == []
    tight = HostFacts(
        "podman", snapshots=(("open-webui", 3_000_000_000, 1_000_000_000), ("ollama", None, 1_000_000_000))
    )
    (problem,) = preflight(stack, plan, {}, tight)
    assert "snapshot of open-webui, ollama before the update needs 3.00 GB" in problem.message
    assert "1.00 GB free; nothing was changed" in problem.message and "--no-snapshot" in problem.hint
