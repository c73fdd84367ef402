"""Issue 34 §2: inputs that used to pass validation, crash or hang airpods. Each is refused
with exit 2 naming the key (config) or exit 1 with the cause (runtime), never a traceback."""

from __future__ import annotations

import os

import pytest

from tests.unit.helpers import run_cli, write_toml

# `$` also matches before a final newline: every name is checked as the whole string.
NEWLINE_NAMES = [
    ('[services."llama2\\n"]\nimage = "a/b:1"\n', 'services."llama2\\n"'),
    ('[services.llamacpp.models."tiny1\\n"]\nctx_size = 512\n', "services.llamacpp.models"),
    ('[services.ollama.env]\n"PATH\\n" = "x"\n', "services.ollama.env"),
    ('[services.ollama]\nimage = "docker.io/ollama/ollama:latest\\n"\n', "services.ollama.image"),
    ('[services.ollama]\nvolumes = [{ source = "data\\n", target = "/data" }]\n', "services.ollama.volumes"),
    ('[services.llamacpp]\nimage = { "cuda\\n" = "a/b:1" }\n', "services.llamacpp.image"),
    ('[services.ollama.resources]\nmemory = "8g\\n"\n', "services.ollama.resources.memory"),
]


@pytest.mark.parametrize("body, key", NEWLINE_NAMES)
def test_a_name_with_a_final_newline_is_refused(tmp_path, capsys, body, key):
    path = write_toml(tmp_path, body)
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and key in done.err, done.err
    assert "Traceback" not in done.err and "internal error" not in done.err
    shown = run_cli(capsys, "-c", str(path), "start", "--dry-run")
    assert shown.code == 2 and "\\n" not in shown.out


def test_variables_that_double_each_other_stop_at_a_size_naming_the_key(tmp_path, capsys):
    """27 variables each doubling the previous one grew `config validate` to 3.2 GB."""
    lines = ['[variables]\na0 = "' + "x" * 80 + '"']
    lines += [f'a{i} = "{{{{a{i - 1}}}}}{{{{a{i - 1}}}}}"' for i in range(1, 28)]
    lines += ['[services.ollama.env]\nX = "{{a27}}"']
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, "\n".join(lines) + "\n")), "config", "validate")
    assert done.code == 2 and "variables.a" in done.err and "more than 65536" in done.err, done.err


@pytest.mark.parametrize("depth", [40, 5000])
def test_deep_nesting_is_a_config_error(tmp_path, capsys, depth):
    """A 5000-deep array ended in "internal error: RecursionError"."""
    path = write_toml(tmp_path, "[variables]\nx = " + "[" * depth + "]" * depth + "\n")
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and "nested more than 32 deep" in done.err and "internal error" not in done.err


@pytest.mark.parametrize(
    "body, said",
    [
        ("cpus = inf", "services.ollama.resources.cpus"),
        ("cpus = nan", "services.ollama.resources.cpus"),
        ("cpus = 1e9", "services.ollama.resources.cpus"),
        ('memory = "99999999999g"', "1048576g"),
    ],
)
def test_resources_beyond_any_host_are_refused(tmp_path, capsys, body, said):
    done = run_cli(
        capsys, "-c", str(write_toml(tmp_path, f"[services.ollama.resources]\n{body}\n")), "config", "validate"
    )
    assert done.code == 2 and said in done.err, done.err


def test_more_cpus_than_the_host_has_is_refused_before_anything_is_made(tmp_path):
    from airpods.plan import Observed, build_start_plan
    from airpods.preflight import HostFacts, preflight
    from tests.unit.helpers import stack_of

    stack = stack_of(tmp_path, "[services.ollama.resources]\ncpus = 3\n")
    plan = build_start_plan(stack, Observed())
    (problem,) = preflight(stack, plan, {}, HostFacts("podman", cpus=2))
    assert (
        problem.exit_code == 2
        and problem.key == "services.ollama.resources.cpus"
        and "this host has 2" in problem.message
    )
    assert preflight(stack, plan, {}, HostFacts("podman", cpus=4)) == []


def test_a_bind_address_that_is_not_this_hosts_is_a_config_error():
    """EADDRNOTAVAIL ended in "internal error: OSError"."""
    from airpods.errors import ConfigError
    from airpods.ports import port_is_free

    with pytest.raises(ConfigError) as caught:
        port_is_free("192.0.2.77", 8080)  # TEST-NET-1 (RFC 5737): never an address of this host
    assert caught.value.key == "runtime.bind_address" and "not an address of this host" in caught.value.message


def test_exporting_a_stack_with_no_service_says_so(tmp_path, capsys):
    off = "".join(f"[services.{name}]\nenabled = false\n" for name in ("ollama", "open-webui", "llamacpp"))
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, off)), "export", "quadlet", "-o", str(tmp_path / "q"))
    assert done.code == 2 and "no service to export" in done.err and "internal error" not in done.err


@pytest.mark.parametrize("status, said", [(401, "does not take the stack's key"), (404, "models list")])
def test_chat_against_an_instance_that_refuses_is_a_runtime_failure(status, said):
    """`chat` with a wrong key or an unknown model was "internal error … report it"."""
    import http.server
    import io
    import threading

    from airpods.errors import RuntimeFailure
    from airpods.models.chat import api_chat, first_model

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_error(status, "refused")

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(RuntimeFailure) as listing:
            first_model(url, "wrong")
        assert f"HTTP {status}" in listing.value.message and said in (listing.value.hint or "")
        with pytest.raises(RuntimeFailure) as chatting:
            api_chat(url, "wrong", "nope", stdin=io.StringIO("hi\n"), stdout=io.StringIO())
        assert f"HTTP {status} for model nope" in chatting.value.message
    finally:
        server.shutdown()


@pytest.mark.parametrize("body, said", [(b"not json\n", "not a pull status"), (b"", "sent nothing for 0.5 s")])
def test_an_ollama_pull_stream_that_breaks_or_stalls_is_a_runtime_failure(body, said):
    import http.server
    import threading

    from airpods.errors import RuntimeFailure
    from airpods.models.ollama import ollama_pull

    release = threading.Event()

    class Stream(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status": "pulling manifest"}\n' + body)
            self.wfile.flush()
            release.wait(10)  # then stalls

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen: list[str] = []
    try:
        with pytest.raises(RuntimeFailure) as caught:
            ollama_pull(f"http://127.0.0.1:{server.server_address[1]}", "tiny", lambda s, t, c: seen.append(s), 0.5)
        assert (
            said in caught.value.message and "resumes it" in (caught.value.hint or "") and seen == ["pulling manifest"]
        )
    finally:
        release.set()
        server.shutdown()


def test_a_user_with_no_home_is_told_what_to_set(monkeypatch, capsys):
    """No HOME and no passwd entry (a container's --user 1234) was an internal error."""
    import pwd

    def no_entry(uid: int) -> None:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for variable in ("HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "AIRPODS_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    done = run_cli(capsys, "env")
    assert done.code == 1 and "cannot tell the home folder of user" in done.err and "set HOME" in done.err, done.err
    assert "internal error" not in done.err


def test_a_file_published_by_airpods_is_whole_or_the_old_one(tmp_path, monkeypatch):
    """Restore wrote the config and the API key in place, truncated first: a crash or a full
    disk left an empty key file, then read as the key "". Every write is files.publish now."""
    import errno
    import os

    from airpods.errors import RuntimeFailure
    from airpods.files import publish

    key = tmp_path / "api-key"
    key.write_text("sk-old\n")

    def full_disk():
        yield b"sk-n"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(RuntimeFailure, match="No space left"):
        publish(key, full_disk())
    assert key.read_text() == "sk-old\n" and [p.name for p in tmp_path.iterdir()] == ["api-key"]
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    publish(key, [b"sk-new\n"])
    assert key.read_text() == "sk-new\n" and len(synced) == 2  # the file, then its folder
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_secret_names_are_keyed_by_a_private_random_key(isolated_home, capsys, monkeypatch, tmp_path):
    """A name carrying sha256(value)[:12] let anyone who sees it (`ps`, `--dry-run`, `secret ls`)
    test guesses of a password-like secret offline."""
    import hashlib
    import os

    from airpods.secrets import NAMES_KEY_FILE, UNNAMED, key_id
    from airpods.state import state_path

    names = state_path() / NAMES_KEY_FILE
    names.unlink()  # a machine that never made one
    monkeypatch.setenv("PATH", str(tmp_path))  # no engine: the dry run plans from nothing
    monkeypatch.setenv("AIRPODS_HOST_ROOT", str(tmp_path))
    assert key_id("hunter2", create=False) == UNNAMED and not names.exists()
    shown = run_cli(capsys, "start", "--dry-run")  # looks, creates nothing
    assert shown.code == 0 and not names.exists()
    made = key_id("hunter2")
    assert names.exists() and oct(os.stat(names).st_mode & 0o777) == "0o600"
    assert made == key_id("hunter2") and made != key_id("hunter3")  # stable, and per value
    assert made != hashlib.sha256(b"hunter2").hexdigest()[:12]  # not the unkeyed hash
    names.write_text("another machine\n")
    assert key_id("hunter2") != made  # another machine's names say nothing of this one's


def test_tool_containers_are_named_labelled_and_hardened_like_services():
    """quantize, convert and llama-cli ran unnamed, unlabelled, with every capability."""
    from airpods.engine.base import OneOff
    from airpods.engine.docker import Docker
    from airpods.engine.podman import Podman

    job = OneOff("ghcr.io/ggml-org/llama.cpp:full", ("--quantize", "a", "b", "Q4_K_M"), tool="quantize")
    for engine in (Podman(), Docker()):
        argv = engine.one_off_argv(job)
        pairs = set(zip(argv, argv[1:], strict=False))
        assert ("--name", job.name) in pairs and job.name.startswith("airpods-tool-"), argv
        assert {("--label", "io.airpods.tool=quantize"), ("--network", "none"), ("--cap-drop", "all")} <= pairs
        assert ("--security-opt", "no-new-privileges") in pairs and ("--cap-add", "SYS_ADMIN") not in pairs
    assert OneOff("a", ()).name != OneOff("a", ()).name  # one name per container


def test_writes_into_the_store_never_follow_a_planted_link(tmp_path):
    """A container that can write into the store could plant a link between airpods' check and
    its call: the partial, its source note, a folder to make. Opens and folder making go
    through file descriptors and O_NOFOLLOW, so a link is an error, never a redirected write."""
    import errno

    from airpods.files import open_private
    from airpods.models.store import _fsync, _make_under

    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "passwd"
    victim.write_text("root:x:0:0\n")
    victim.chmod(0o600)
    store = tmp_path / "store"
    store.mkdir()
    (store / ".model.gguf.partial").symlink_to(victim)
    for mode in ("wb", "ab", "rb"):
        with pytest.raises(OSError) as caught:
            open_private(store / ".model.gguf.partial", mode)
        assert caught.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        _fsync(store / ".model.gguf.partial", 0o644)  # no chmod through the link
    assert victim.read_text() == "root:x:0:0\n" and oct(victim.stat().st_mode & 0o777) == "0o600"
    (store / "vae").symlink_to(outside)
    with pytest.raises(FileExistsError, match="vae is a symbolic link"):
        _make_under(store, ["vae", "evil"], (1000, 1000))
    assert not (outside / "evil").exists()
    assert _make_under(store, ["checkpoints", "sdxl"], (0, 0)) and (store / "checkpoints" / "sdxl").is_dir()
    assert not _make_under(store, ["checkpoints"], (0, 0))  # there already


def test_a_split_downloads_partial_folder_is_pinned_against_a_planted_link(tmp_path):
    """The last component was guarded, not the partial folder of a multi-file download: a link
    planted at `.NAME.partial` (before, or while it downloads) redirected every part's write."""
    from airpods.errors import RuntimeFailure
    from airpods.files import open_private
    from airpods.models.store import ModelStore

    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store").mkdir()
    store = ModelStore(None, str(tmp_path / "store"), {}, folder=True)  # type: ignore[arg-type]  # a folder: no engine
    (store.root / ".big.partial").symlink_to(outside)
    with pytest.raises(RuntimeFailure, match="not a folder of airpods'"):
        with store.incoming_folder("big", keep_partial=True):
            pass
    (store.root / ".big.partial").unlink()
    with store.incoming_folder("big", keep_partial=True) as folder:
        os.rename(store.root / ".big.partial", store.root / ".moved")  # swapped while it downloads
        (store.root / ".big.partial").symlink_to(outside)
        with open_private(folder / "big-00001-of-00002.gguf", "wb") as out:
            out.write(b"GGUF")
        os.unlink(store.root / ".big.partial")
        os.rename(store.root / ".moved", store.root / ".big.partial")
    assert list(outside.iterdir()) == []
    assert (store.root / "big" / "big-00001-of-00002.gguf").read_bytes() == b"GGUF"


def test_what_a_command_exists_to_hand_over_is_not_masked_and_everything_else_is(capsys, monkeypatch):
    """Standard output is masked as a whole (redact.Redacting); `airpods env` and a Kubernetes
    manifest written to stdout hand the key over on purpose, and must carry it whole."""
    from airpods.redact import MASK, Redacting, redact
    from airpods.secrets import api_key

    key = api_key()
    env = run_cli(capsys, "env")
    assert env.code == 0 and f"OPENAI_API_KEY={key}" in env.out
    manifest = run_cli(capsys, "export", "kube", "--target", "kubernetes", "--gpu", "none")
    assert manifest.code == 0 and key in manifest.out and MASK not in manifest.out
    import io

    shown = io.StringIO()
    Redacting(shown).write(f"the key is {key}; HF_TOKEN=hf_abc and TOKENIZERS_PARALLELISM=false\n")
    assert shown.getvalue() == f"the key is {MASK}; HF_TOKEN={MASK} and TOKENIZERS_PARALLELISM=false\n"
    assert redact(f"PASSWORD={MASK}") == f"PASSWORD={MASK}"


@pytest.mark.parametrize(
    "prints",
    [
        "",  # podman prints nothing at all
        'echo "time=2026 level=warning msg=\\"the cgroupv2 manager is set to systemd\\""; echo "{}"',  # a warning first
    ],
)
def test_doctor_where_podman_prints_nothing_or_a_warning_first(tmp_path, capsys, monkeypatch, prints):
    """`doctor` where podman printed nothing, or a non-JSON line on the stdout of a
    `--format json` call, ended in "internal error"."""
    import json

    fake = tmp_path / "bin"
    fake.mkdir()
    podman = fake / "podman"
    podman.write_text(f"#!/bin/sh\n{prints}\nexit 0\n")
    podman.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    monkeypatch.setenv("AIRPODS_HOST_ROOT", str(tmp_path))
    done = run_cli(capsys, "--engine", "podman", "doctor", "--json")
    assert done.code in (0, 1) and "internal error" not in done.err and "Traceback" not in done.err, done.err
    checks = json.loads(done.out)
    assert checks, done.out


def test_engine_json_skips_warning_lines_and_says_what_is_not_json():
    from airpods.engine.process import parse_json, parse_json_lines
    from airpods.errors import RuntimeFailure

    assert parse_json("", "podman info", {}) == {}
    assert parse_json('WARN[0000] cgroups v1\n{"host": {}}\n', "podman info", {}) == {"host": {}}
    assert parse_json_lines('level=warning\n{"a": 1}\n{"b": 2}\n', "docker ps") == [{"a": 1}, {"b": 2}]
    with pytest.raises(RuntimeFailure) as caught:
        parse_json("Error: something else", "podman info", {})
    assert "`podman info` printed something that is not JSON" in caught.value.message


def test_one_problem_is_one_problem_in_a_service_that_others_extend(tmp_path, capsys):
    """llamacpp-ui extends llamacpp: its copy of the same mistake was counted as "1 more problem"."""
    path = write_toml(tmp_path, '[services.llamacpp.models.tiny1]\nload_on_startup = "yes"\n')
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and "load_on_startup" in done.err and "more problem" not in done.err, done.err
    two = write_toml(
        tmp_path, '[services.llamacpp.models.tiny1]\nload_on_startup = "yes"\n[services.ollama]\npod = 5\n'
    )
    assert "(and 1 more problem)" in run_cli(capsys, "-c", str(two), "config", "validate").err


@pytest.mark.parametrize("value", ["nan", "-1", "abc"])
def test_drain_takes_a_number_of_seconds(capsys, value):
    done = run_cli(capsys, "start", "--dry-run", "--drain", value)
    assert done.code == 2 and "--drain" in done.err, done.err
