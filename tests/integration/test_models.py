"""Models: import/list/inspect/quantize/rm on the real volume with the real llama-quantize, pulls
from a local stand-in hub and file server (resume, sha256, quant shorthand, space), chat."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import eventually, openai_env, podman
from tests.integration.fake_hub import tiny_bytes


def volume_files() -> set[str]:
    """Every entry of the model volume, hidden ones included (empty when there is no volume)."""
    found = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "airpods_llamacpp_models", check=False)
    return set(os.listdir(found.stdout.strip())) if found.returncode == 0 else set()


def test_import_list_quantize_serve_rm(airpods, tiny_model):
    assert airpods("start", "llamacpp").code == 0
    imported = airpods("models", "import", str(tiny_model))
    assert imported.code == 0, imported.err
    rows = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    tiny = rows["tiny"]
    assert (tiny["architecture"], tiny["quantization"], tiny["context_length"]) == ("llama", "F32", 512)
    assert tiny["parameters"] == 116672 and tiny["size"] == tiny_model.stat().st_size
    assert tiny["served_by"] == ["llamacpp"]

    meta = airpods("models", "inspect", "tiny", "--json").json()["metadata"]
    assert meta["llama.embedding_length"] == 64 and meta["tokenizer.chat_template"] == "present"

    quantized = airpods("models", "quantize", "tiny", "Q8_0")
    assert quantized.code == 0, quantized.err
    rows = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    assert rows["tiny-Q8_0"]["quantization"] == "Q8_0"
    # One name everywhere: --name without .gguf is the model's name (it used to be refused).
    named = airpods("models", "quantize", "tiny.gguf", "Q8_0", "--name", "my-q8")
    assert named.code == 0 and "wrote my-q8 " in named.out, named.err
    assert "my-q8.gguf" in volume_files()
    assert not [f for f in volume_files() if f.startswith(".")]  # no partial left

    import openai

    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"])
    assert "tiny-Q8_0" in [m.id for m in api.models.list().data]
    reply = api.chat.completions.create(model="tiny-Q8_0", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.usage.completion_tokens > 0

    assert airpods("models", "rm", "tiny-Q8_0", "--yes").code == 0
    assert "tiny-Q8_0.gguf" not in volume_files() and "tiny.gguf" in volume_files()


def test_non_gguf_import_is_rejected_and_nothing_is_written(airpods, tmp_path):
    junk = tmp_path / "notes.gguf"
    junk.write_text("not a model")
    failed = airpods("models", "import", str(junk))
    assert failed.code == 1 and "is not a GGUF model" in failed.err and "Traceback" not in failed.err
    assert volume_files() == set()


def test_rm_refuses_the_configured_single_model_without_force(airpods, tiny_model):
    airpods.write_config('[services.llamacpp.command_args]\nmodel = "/models/tiny.gguf"\n')
    assert airpods("models", "import", str(tiny_model)).code == 0
    refused = airpods("models", "rm", "tiny", "--yes")
    assert refused.code == 2 and "configured model of llamacpp" in refused.err
    assert "tiny.gguf" in volume_files()
    assert airpods("models", "rm", "tiny", "--yes", "--force").code == 0
    assert "tiny.gguf" not in volume_files()


def test_quantize_to_an_unknown_type_is_a_usage_error(airpods, tiny_model):
    assert airpods("models", "import", str(tiny_model)).code == 0
    failed = airpods("models", "quantize", "tiny", "Q9_X")
    assert failed.code == 2 and "unknown quantization type Q9_X" in failed.err


def test_convert_refuses_a_folder_that_is_no_hugging_face_model(airpods, tmp_path):
    failed = airpods("models", "convert", str(tmp_path))
    assert failed.code == 2 and "no config.json" in failed.err and "Traceback" not in failed.err
    assert volume_files() == set()


def test_hub_quant_shorthand_pulls_and_verifies(airpods, hub, tmp_path):
    q8, f16 = tiny_bytes(tmp_path, 1), tiny_bytes(tmp_path, 2)
    hub.add_repo_file("acme/tiny-GGUF", "tiny-Q8_0.gguf", q8)
    hub.add_repo_file("acme/tiny-GGUF", "tiny-F16.gguf", f16)
    hub.add_repo_file("acme/tiny-GGUF", "README.md", b"# tiny")
    pulled = airpods("models", "pull", "acme/tiny-GGUF:q8_0")
    assert pulled.code == 0, pulled.err
    assert f"sha256 {hashlib.sha256(q8).hexdigest()}" in pulled.out
    assert "tiny-Q8_0.gguf" in volume_files() and "tiny-F16.gguf" not in volume_files()

    absent = airpods("models", "pull", "acme/tiny-GGUF:Q4_K_M")
    assert absent.code == 2 and "no Q4_K_M" in absent.err and "tiny-F16.gguf, tiny-Q8_0.gguf" in absent.err
    unnamed = airpods("models", "pull", "acme/tiny-GGUF")
    assert unnamed.code == 2 and "say which" in unnamed.err


def test_ambiguous_quant_lists_the_choices(airpods, hub, tmp_path):
    hub.add_repo_file("acme/two", "a-Q8_0.gguf", tiny_bytes(tmp_path, 3))
    hub.add_repo_file("acme/two", "b-Q8_0.gguf", tiny_bytes(tmp_path, 4))
    failed = airpods("models", "pull", "acme/two:Q8_0")
    assert (
        failed.code == 2
        and "matches 2 models" in failed.err
        and "a-Q8_0.gguf" in failed.err
        and "b-Q8_0.gguf" in failed.err
    )


def test_split_gguf_and_mmproj_download_as_one_model_folder(airpods, hub, tmp_path):
    """A split set lands as one folder (the router serves a folder as one model); a repo with
    an mmproj projector lands as the model and its projector in one folder."""
    for i in (1, 2):
        hub.add_repo_file("acme/big", f"big-Q8_0-0000{i}-of-00002.gguf", tiny_bytes(tmp_path, 10 + i))
    assert airpods("models", "pull", "acme/big:Q8_0").code == 0
    assert "big-Q8_0" in volume_files()
    hub.add_repo_file("acme/vision", "eye-Q8_0.gguf", tiny_bytes(tmp_path, 20))
    hub.add_repo_file("acme/vision", "mmproj-eye-F16.gguf", tiny_bytes(tmp_path, 21))
    hub.add_repo_file("acme/vision", "mmproj-eye-Q8_0.gguf", tiny_bytes(tmp_path, 22))
    assert airpods("models", "pull", "acme/vision:Q8_0").code == 0
    rows = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    assert rows["big-Q8_0"]["parts"] == [
        "big-Q8_0/big-Q8_0-00001-of-00002.gguf",
        "big-Q8_0/big-Q8_0-00002-of-00002.gguf",
    ]
    # llama.cpp's rule: the projector whose quant is closest to the model's
    assert rows["eye-Q8_0"]["parts"] == ["eye-Q8_0/eye-Q8_0.gguf", "eye-Q8_0/mmproj-eye-Q8_0.gguf"]
    assert set(rows) == {"big-Q8_0", "eye-Q8_0"} and not [r for r in rows.values() if r["problem"]]


def test_sha256_mismatch_is_rejected_and_removed(airpods, hub, tmp_path):
    hub.add_repo_file("acme/bad", "bad-Q8_0.gguf", tiny_bytes(tmp_path, 5))
    hub.wrong_sha.add("bad-Q8_0.gguf")
    failed = airpods("models", "pull", "acme/bad:Q8_0")
    assert failed.code == 1 and "sha256 mismatch" in failed.err
    assert volume_files() == set()


def test_no_space_refusal_says_how_much(airpods, hub, tmp_path, monkeypatch):
    hub.add_repo_file("acme/tiny", "tiny-Q8_0.gguf", tiny_bytes(tmp_path, 6))
    monkeypatch.setenv("AIRPODS_MODELS_MAX_FREE", "1000")
    failed = airpods("models", "pull", "acme/tiny:Q8_0")
    assert failed.code == 1 and "not enough space" in failed.err and "needs 0.00 GB" in failed.err
    assert volume_files() == set()


def test_url_pull_resumes_after_an_interrupted_transfer(airpods, hub, tmp_path):
    from tests.rig.tiny_gguf import write_tiny_model

    content = write_tiny_model(tmp_path / "big.gguf", n_embd=256, n_layers=2, n_ff=512).read_bytes()
    hub.files["big.gguf"] = content
    hub.hold_after = len(content) // 4
    proc = airpods.popen("models", "pull", f"{hub.url}/files/big.gguf")
    assert eventually(lambda: hub.served >= len(content) // 4, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert "big.gguf" not in volume_files() and ".big.gguf.partial" in volume_files()  # never visible half-done
    mount = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "airpods_llamacpp_models").stdout.strip()
    kept = os.path.getsize(os.path.join(mount, ".big.gguf.partial"))
    assert kept > 0
    hub.hold_after = None
    hub.released.set()
    resumed = airpods("models", "pull", f"{hub.url}/files/big.gguf", "--sha256", hashlib.sha256(content).hexdigest())
    assert resumed.code == 0, resumed.err
    second = hub.requests[-1]
    assert second["start"] == kept  # resumed with a Range request
    assert second["sent"] == len(content) - second["start"]  # only the rest was fetched
    assert "big.gguf" in volume_files() and ".big.gguf.partial" not in volume_files()


def test_ollama_pull_shows_progress(airpods):
    assert airpods("start", "ollama").code == 0
    pulled = airpods("models", "pull", "--backend", "ollama", "tinyllama")
    assert pulled.code == 0, pulled.err
    assert "pulling manifest" in pulled.out and "50%" in pulled.out and "success" in pulled.out


def test_chat_through_the_api_in_a_terminal(airpods, tiny_model):
    import pexpect

    assert airpods("models", "import", str(tiny_model)).code == 0
    assert airpods("start", "llamacpp").code == 0
    child = pexpect.spawn(
        sys.executable,
        ["-m", "airpods", "--config", str(airpods.config), "chat", "--model", "tiny"],
        encoding="utf-8",
        timeout=60,
    )
    child.expect("chatting with tiny")
    child.expect("you> ")
    child.sendline("hello there")
    child.expect("you> ")  # the reply streamed, then the next prompt
    child.sendeof()
    child.expect("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # The turn reached llama-server (router mode routes it to the tiny model).
    logs = airpods("logs", "llamacpp")  # podman logs: the server's stderr on stderr
    assert "proxying request to model tiny" in logs.out + logs.err


def test_chat_with_llama_cli_when_no_instance_runs(airpods, tiny_model):
    import pexpect

    assert airpods("models", "import", str(tiny_model)).code == 0
    child = pexpect.spawn(
        sys.executable,
        ["-m", "airpods", "--config", str(airpods.config), "chat", "--model", "tiny"],
        encoding="utf-8",
        timeout=120,
    )
    child.expect("> ")
    child.sendline("hello")
    child.expect(r"Generation: [\d.]+ t/s")  # llama-cli's stats line after its reply
    child.expect("> ")
    child.sendeof()  # Ctrl-D leaves
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0
    assert not [
        c
        for c in json.loads(podman("ps", "-a", "--format", "json").stdout or "[]")
        if "llama.cpp:light" in c.get("Image", "")
    ]  # the one-off container is gone


def _partial_files() -> set[str]:
    return {f for f in volume_files() if f.startswith(".")}


def test_a_body_cut_short_is_never_installed_and_the_rerun_resumes(airpods, hub, tmp_path):
    """A connection that closes early used to be promoted as complete unless --sha256 was given."""
    content = tiny_bytes(tmp_path, 30)
    hub.files["cut.gguf"] = content
    hub.cut_after["cut.gguf"] = len(content) // 3
    failed = airpods("models", "pull", f"{hub.url}/files/cut.gguf")
    assert failed.code == 1 and "Traceback" not in failed.err and "internal error" not in failed.err, failed.err
    assert "run the same command again" in failed.err
    assert "cut.gguf" not in volume_files() and ".cut.gguf.partial" in volume_files()
    resumed = airpods("models", "pull", f"{hub.url}/files/cut.gguf")
    assert resumed.code == 0, resumed.err
    assert hub.requests[-1]["start"] == len(content) // 3  # only the rest
    mount = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "airpods_llamacpp_models").stdout.strip()
    with open(os.path.join(mount, "cut.gguf"), "rb") as landed:
        assert landed.read() == content
    assert not _partial_files()


def test_a_partial_of_a_file_that_changed_is_thrown_away(airpods, hub, tmp_path):
    old, new = tiny_bytes(tmp_path, 31), tiny_bytes(tmp_path, 32)
    hub.files["moving.gguf"] = old
    hub.etags["moving.gguf"] = '"v1"'
    hub.cut_after["moving.gguf"] = len(old) // 2
    assert airpods("models", "pull", f"{hub.url}/files/moving.gguf").code == 1
    hub.files["moving.gguf"], hub.etags["moving.gguf"] = new, '"v2"'
    again = airpods("models", "pull", f"{hub.url}/files/moving.gguf")
    assert again.code == 0, again.err
    assert hub.requests[-1]["start"] == 0  # not resumed onto the old bytes
    mount = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "airpods_llamacpp_models").stdout.strip()
    with open(os.path.join(mount, "moving.gguf"), "rb") as landed:
        assert landed.read() == new


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_are_runtime_failures_that_say_so(airpods, hub, status):
    hub.status["gone.gguf"] = status
    failed = airpods("models", "pull", f"{hub.url}/files/gone.gguf")
    assert failed.code == 1 and f"answered HTTP {status}" in failed.err and "internal error" not in failed.err
    assert volume_files() == set()
    refused = airpods("models", "pull", "http://127.0.0.1:9/files/x.gguf")  # nothing listens there
    assert refused.code == 1 and "cannot reach" in refused.err and "internal error" not in refused.err


def test_a_hub_pull_lands_once_in_the_store_and_a_second_pull_waits_its_turn(airpods, hub, tmp_path, monkeypatch):
    """The hub cache held a second copy (twice the space on one disk); two pulls of one name shared
    one partial file."""
    from tests.rig.tiny_gguf import write_tiny_model

    content = write_tiny_model(tmp_path / "big.gguf", n_embd=256, n_layers=2, n_ff=512).read_bytes()
    hub.add_repo_file("acme/big", "big-Q8_0.gguf", content)
    hub.hold_after = 65536  # the first pull stays in flight until released
    first = airpods.popen("models", "pull", "acme/big:Q8_0")
    assert eventually(lambda: hub.served > 0, timeout=60)
    second = airpods("models", "pull", "acme/big:Q8_0")
    assert second.code == 1 and "already writing the model big-Q8_0" in second.err, second.err
    hub.hold_after = None
    hub.released.set()
    assert first.wait(timeout=120) == 0, first.stderr.read()
    cache = Path(os.environ["HOME"]) / ".cache" / "huggingface"
    assert not [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 1000]  # no second copy
    assert "big-Q8_0.gguf" in volume_files() and not _partial_files()


def fill(folder: Path, name: str) -> None:
    """Write into `folder` until its disk is full."""
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 65536):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_pull_that_fills_the_disk_keeps_a_partial_that_is_listed_removable_and_resumed(
    airpods, hub, tmp_path, small_disk
):
    """The one file airpods itself left used to be invisible to `models list` and `models rm`."""
    from tests.rig.tiny_gguf import write_tiny_model

    airpods.write_config(f'[services.llamacpp]\nvolumes = [{{ source = "{small_disk}", target = "/models" }}]\n')
    content = write_tiny_model(tmp_path / "big.gguf", n_embd=256, n_layers=2, n_ff=512).read_bytes()
    assert 1_000_000 < len(content) < 12_000_000  # fits the 16 MiB disk, which is then filled
    url = f"{hub.url}/files/big.gguf"
    hub.files["big.gguf"] = content

    def pull_into_a_filling_disk(filler: str):
        hub.released.clear()
        hub.hold_after = len(content) // 4
        proc = airpods.popen("models", "pull", url)
        assert eventually(lambda: hub.served >= len(content) // 4, timeout=60)
        fill(small_disk, filler)  # the space the check saw is gone while the body is held
        hub.hold_after = None
        hub.released.set()
        assert proc.wait(timeout=120) == 1
        return proc.stderr.read()

    hub.served = 0
    failed = pull_into_a_filling_disk("filler")
    assert "No space left on device" in failed and "the partial download kept holds" in failed, failed
    assert "airpods models rm big --partial" in failed
    kept = (small_disk / ".big.gguf.partial").stat().st_size
    listed = airpods("models", "list", "--json")
    assert listed.code == 0, listed.err
    (row,) = listed.json()["models"]
    assert (row["name"], row["size"], row["partial"], row["source"]) == ("big", kept, True, url)
    assert f"airpods models pull {url}" in row["problem"]
    table = airpods("models", "list")
    assert "partial download" in table.out

    (small_disk / "filler").unlink()  # space freed: the same command resumes
    resumed = airpods("models", "pull", url)
    assert resumed.code == 0, resumed.err
    assert hub.requests[-1]["start"] == kept and (small_disk / "big.gguf").read_bytes() == content

    assert airpods("models", "rm", "big", "--yes").code == 0
    hub.served = 0
    pull_into_a_filling_disk("filler2")
    assert (small_disk / ".big.gguf.partial").exists()
    removed = airpods("models", "rm", "big", "--yes")  # no model called big: its partial is what goes
    assert removed.code == 0 and "partial" in removed.out, removed.err
    assert not (small_disk / ".big.gguf.partial").exists() and not (small_disk / ".big.gguf.partial.source").exists()
