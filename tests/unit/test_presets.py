"""Per-model presets (issue 17): the TOML tables → the router's INI file, checked flags, the
embedding rule read from GGUF metadata, and folder models in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from airpods.errors import ConfigError
from airpods.gpu import HostGpu
from airpods.stack.build import build_service
from airpods.stack.model import Preset
from airpods.stack.presets import preset_ini
from tests.unit.helpers import load_text


def test_declared_presets_render_to_sections_and_detected_ones_fill_in():
    declared = [Preset("tiny", (("--ctx-size", "256"), ("--no-jinja", None)), True, None)]
    detected = {"minilm": [("--embeddings", None), ("--pooling", "mean")], "tiny": [("--embeddings", None)]}
    text = preset_ini(declared, detected)
    assert "[minilm]\nembeddings = true\npooling = mean\n" in text
    # the declared section keeps the detected flags it does not set (embeddings stay on)
    assert "[tiny]\nctx-size = 256\nno-jinja = true\nembeddings = true\nload-on-startup = true\n" in text
    assert text.count("[tiny]") == 1 and "version = 1" in text


def test_presets_are_checked_like_command_args_and_mounted(tmp_path):
    config = load_text(
        tmp_path,
        """
        [services.llamacpp.models.tiny]
        c = 256
        flash_attn = "on"
        jinja = false
        load_on_startup = true
        source = "acme/tiny-GGUF:Q8_0"
        """,
    ).config
    spec, _ = build_service(config, "llamacpp", HostGpu("none"))
    shared, preset = spec.presets
    assert preset.flags == (("--ctx-size", "256"), ("--flash-attn", "on"), ("--no-jinja", None))
    # llama-server's command line beats a model's section (a trial found ctx_size = 256 ignored):
    # the default --ctx-size 4096 moves to [*], which the model's own section overrides.
    assert shared.name == "*" and shared.flags == (("--ctx-size", "4096"),) and "--ctx-size" not in spec.args
    assert preset_ini(spec.presets).index("[*]") < preset_ini(spec.presets).index("[tiny]")
    assert (preset.load_on_startup, preset.source) == (True, "acme/tiny-GGUF:Q8_0")
    assert "--models-preset" in spec.args and any(m.target == "/presets" and m.mode == "ro" for m in spec.mounts)


@pytest.mark.parametrize(
    "body, key, words",
    [
        ("ctx_sizee = 1", "services.llamacpp.models.tiny.ctx_sizee", ["no flag", "did you mean ctx_size"]),
        ("flash_attn = true", "services.llamacpp.models.tiny.flash_attn", ["takes a value (on|off|auto)"]),
        ('alias = "x"', "services.llamacpp.models.tiny.alias", ["the router sets --alias"]),
        ('hf_repo = "a/b"', "services.llamacpp.models.tiny.hf_repo", ["source ="]),
        ("port = 1", "services.llamacpp.models.tiny.port", ["airpods sets --port"]),
    ],
)
def test_bad_presets_are_refused_at_their_key(tmp_path, body, key, words):
    config = load_text(tmp_path, f"[services.llamacpp.models.tiny]\n{body}\n").config
    with pytest.raises(ConfigError) as caught:
        build_service(config, "llamacpp", HostGpu("none"))
    assert caught.value.key == key
    for word in words:
        assert word in caught.value.message + (caught.value.hint or "")


def test_presets_need_a_router(tmp_path):
    config = load_text(
        tmp_path, '[services.llamacpp.command_args]\nmodel = "/models/x.gguf"\n[services.llamacpp.models.x]\nc = 1\n'
    ).config
    with pytest.raises(ConfigError) as caught:
        build_service(config, "llamacpp", HostGpu("none"))
    assert caught.value.key == "services.llamacpp.models" and "single-model" in caught.value.message
    single = load_text(tmp_path, '[services.llamacpp.command_args]\nmodel = "/models/x.gguf"\n').config
    spec, _ = build_service(single, "llamacpp", HostGpu("none"))
    assert "--models-preset" not in spec.args  # a single-model server reads no preset file


@pytest.mark.parametrize(
    "table, words",
    [
        ('[services.llamacpp.models."../x"]', ["expected a model's name"]),
        ('[services.llamacpp.models.x]\nsource = "nope"', ["Hugging Face reference", "https:// URL"]),
        ('[services.llamacpp.models.x]\nlora = ["a", "b"]', ["one value per flag"]),
        ('[services.llamacpp.models.x]\nchat_template = """a\nb"""', ["one line"]),
        ('[services.llamacpp.models.x]\nload_on_startup = "yes"', ["expected true or false"]),
    ],
)
def test_preset_tables_are_validated_with_their_key_path(tmp_path, capsys, table, words):
    from tests.unit.helpers import run_cli, write_toml

    path = write_toml(tmp_path, table + "\n")
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and "services.llamacpp.models" in done.err and str(path) in done.err, done.err
    for word in words:
        assert word in done.err


def test_a_relative_local_source_is_relative_to_the_config_file(tmp_path):
    config = load_text(tmp_path, '[services.llamacpp.models.mine]\nsource = "./models/mine.gguf"\n').config
    assert config.services["llamacpp"].models["mine"].source == str(tmp_path / "models" / "mine.gguf")


def _gguf(path: Path, arch: str, pooling: int | None = None) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    if pooling is not None:
        writer.add_uint32(f"{arch}.pooling_type", pooling)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _store(root: Path):
    """A store over a plain host folder (the models themselves; no podman involved)."""
    from airpods.models.store import ModelStore

    return ModelStore(None, str(root), {}, folder=True)  # type: ignore[arg-type]


def test_embedding_models_are_recognised_from_their_metadata(tmp_path):
    from airpods.models.presets import detected_flags

    _gguf(tmp_path / "minilm.gguf", "bert")  # an encoder, no pooling declared: mean
    _gguf(tmp_path / "e5.gguf", "llama", pooling=3)  # a decoder that declares last-token pooling
    _gguf(tmp_path / "chat.gguf", "llama")
    (tmp_path / "split").mkdir()
    _gguf(tmp_path / "split" / "split-00001-of-00002.gguf", "bert")  # incomplete: left out
    flags = detected_flags(_store(tmp_path))
    assert flags == {
        "e5": [("--embeddings", None), ("--pooling", "last")],
        "minilm": [("--embeddings", None), ("--pooling", "mean")],
    }


def test_folder_models_are_one_model_named_after_the_folder(tmp_path):
    store = _store(tmp_path)
    (tmp_path / "big").mkdir()
    for i in (1, 2):
        (tmp_path / "big" / f"big-0000{i}-of-00002.gguf").write_bytes(b"GGUF" + bytes(i))
    (tmp_path / "eye").mkdir()
    (tmp_path / "eye" / "eye.gguf").write_bytes(b"GGUF1")
    (tmp_path / "eye" / "mmproj-F16.gguf").write_bytes(b"GGUF22")
    (tmp_path / "one.gguf").write_bytes(b"GGUF")
    (tmp_path / ".one.gguf.partial").write_bytes(b"GG")
    models = {m.name: m for m in store.models()}
    assert set(models) == {"big", "eye", "one"}
    assert models["big"].size == 11 and models["big"].problem is None
    assert [p.name for p in models["eye"].weights] == ["eye.gguf"]
    assert store.model("one.gguf").name == "one"  # .gguf optional
    (tmp_path / "big" / "big-00002-of-00002.gguf").unlink()
    assert store.model("big").problem == "incomplete split set: 1 of 2 shards"


def test_a_per_model_flag_moves_the_instances_value_to_the_shared_section(tmp_path):
    config = load_text(tmp_path, "[services.llamacpp.models.tiny]\nctx_size = 1024\n").config
    spec, _ = build_service(config, "llamacpp", HostGpu("none"))
    assert ("--ctx-size", "4096") in spec.presets[0].flags and "--ctx-size" not in spec.args


def test_the_users_spelling_replaces_a_defaults_and_false_unsets(tmp_path, capsys):
    """README: any spelling works (c, LLAMA_ARG_CTX_SIZE); the defaults' ctx_size used to make it
    "set twice"; `ctx_size = false` with `c` did too."""
    import json

    from tests.unit.helpers import run_cli, write_toml

    for body in ("c = 8192", "LLAMA_ARG_CTX_SIZE = 8192", "ctx_size = false\nc = 8192", "webui = true"):
        path = write_toml(tmp_path, f"[services.llamacpp.command_args]\n{body}\n")
        assert run_cli(capsys, "-c", str(path), "config", "validate").code == 0, body
        shown = json.loads(run_cli(capsys, "-c", str(path), "config", "show", "--resolved", "--json").out)
        argv = shown["rendered"]["llamacpp"]["argv"]
        shared = shown["rendered"]["llamacpp"]["preset_file"]  # a router's per-model flags: its [*] section
        assert "--ctx-size" not in argv and argv.count("--webui") + argv.count("--no-webui") <= 1, (body, argv)
        assert shared.count("ctx-size =") <= 1, (body, shared)
        if "8192" in body:
            assert "[*]\nctx-size = 8192" in shared
    twice = write_toml(tmp_path, "[services.llamacpp.command_args]\nc = 1\nctx_size = 2\n")
    done = run_cli(capsys, "-c", str(twice), "config", "validate")
    assert done.code == 2 and "set twice" in done.err  # both the user's: still an error


def test_presets_outside_llama_services_are_refused(tmp_path, capsys):
    from tests.unit.helpers import run_cli, write_toml

    path = write_toml(tmp_path, "[services.ollama.models.a]\nctx_size = 5\n")
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and "services.ollama.models" in done.err and "llama.cpp services" in done.err
