"""Where each model runs, from llama-server's own log (issue 36 §2): recorded logs of each case
(CUDA found, partial offload, CUDA init failure, CPU image, a router's children), written from
the format strings in llama.cpp's source (see airpods/placement.py), parsed and judged; and the
same observation in start and status on the in-memory engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from airpods.gpu import HostGpu
from airpods.placement import model_placements, parse_log
from airpods.usecases import start as starting
from airpods.usecases.placement import judge
from tests.memory_engine import MemoryEngine
from tests.unit.helpers import stack_of
from tests.unit.test_start_scope import UNPUBLISHED, Quiet

LOGS = Path(__file__).parent / "server_logs"
H200 = HostGpu("nvidia", cdi=True, driver="570.86.10", cdi_names=("0", "all"), models=("NVIDIA H200",))


def log(name: str) -> list[str]:
    return (LOGS / f"{name}.log").read_text().splitlines()


def test_cuda_found_all_layers_on_the_gpu():
    (tiny,) = model_placements(log("cuda-found"))
    assert (tiny.model, tiny.where, tiny.layers_on_gpu, tiny.layers) == ("tiny", "CUDA0", 33, 33)
    assert tiny.describe() == "tiny on CUDA0 (NVIDIA H200, 139 GiB): 33/33 layers"
    assert (tiny.gpu_mib("model"), tiny.gpu_mib("KV"), tiny.gpu_mib("compute")) == (62.5, 64.0, 104.0)
    assert tiny.devices[0].capability == "9.0" and tiny.backends == ["CUDA", "CPU"]


def test_partial_offload_says_the_rest_is_on_the_cpu():
    (tiny,) = model_placements(log("partial-offload"))
    assert tiny.where == "CUDA0" and tiny.partial and (tiny.layers_on_gpu, tiny.layers) == (20, 33)
    assert tiny.describe().endswith("20/33 layers (the rest on the CPU)")
    assert tiny.to_json()["buffers_mib"]["kv"] == {"CUDA0": 40.0, "CPU": 24.0}


def test_a_cuda_init_failure_is_the_cpu_with_the_runtimes_words():
    (tiny,) = model_placements(log("cuda-init-failed"))
    assert tiny.where == "CPU" and (tiny.layers_on_gpu, tiny.layers) == (0, 33)
    assert tiny.cuda_error == "CUDA driver version is insufficient for CUDA runtime version"


def test_the_cpu_image_places_every_layer_on_the_cpu():
    (tiny,) = model_placements(log("cpu-image"))
    assert (tiny.where, tiny.layers_on_gpu, tiny.layers, tiny.cuda_error) == ("CPU", 0, 33, None)
    assert tiny.describe() == "tiny on the CPU: 33 layers"


def test_a_router_places_each_model_from_its_childs_forwarded_lines():
    placements = {p.model: p for p in model_placements(log("router-cuda"))}
    assert set(placements) == {"tiny", "minilm"}
    assert placements["minilm"].describe() == "minilm on CUDA0 (NVIDIA GeForce RTX 3090, 23 GiB): 7/7 layers"
    assert placements["tiny"].gpu_mib("compute") == 104.0
    assert parse_log(log("router-cuda"))[""].devices[0].model == "NVIDIA GeForce RTX 3090"  # the router's own


def test_a_routers_own_lines_and_its_childrens_in_either_order_and_with_the_loggers_prefix():
    """An engine hands stdout and stderr apart, so the spawn line may come after its child's
    lines; the real server prefixes each line with its time and level (seen on b11434)."""
    lines = log("router-cuda")
    children = [line for line in lines if line.startswith("[")]
    stamped = [f"0.00.{i:03d}.000 I {line}" for i, line in enumerate(lines) if not line.startswith("[")]
    children = [f"{line[: line.index(']') + 2]}0.00.001.000 I {line[line.index(']') + 2 :]}" for line in children]
    placements = {p.model: p for p in model_placements(children + stamped)}
    assert placements["minilm"].describe() == "minilm on CUDA0 (NVIDIA GeForce RTX 3090, 23 GiB): 7/7 layers"
    assert placements["tiny"].gpu_mib("compute") == 104.0


def test_a_model_loaded_again_is_what_its_latest_load_said():
    again = log("router-cuda") + [
        "srv          load: spawning server instance with name=tiny on port 39045",
        "[39045] ggml_cuda_init: failed to initialize CUDA: out of memory",
        "[39045] print_info: n_layer          = 32",
        "[39045] load_tensors:   CPU_Mapped model buffer size =    66.50 MiB",
    ]
    tiny = next(p for p in model_placements(again) if p.model == "tiny")
    assert tiny.where == "CPU" and tiny.cuda_error == "out of memory"


def test_a_log_that_says_nothing_places_nothing():
    assert model_placements(["main: HTTP server is listening", "srv  update_slots: all slots are idle"]) == []


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    for name, sub in (("HOME", "home"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    return tmp_path


@pytest.mark.parametrize(
    "name, level, said",
    [
        ("cuda-found", "ok", "llamacpp: tiny on CUDA0 (NVIDIA H200, 139 GiB): 33/33 layers"),
        ("partial-offload", "ok", "a smaller model, quant or ctx_size puts every layer on the GPU"),
        ("cuda-init-failed", "warn", "older than the image's CUDA runtime needs"),
        ("cpu-image", "warn", "the CUDA backend did not load"),
    ],
)
def test_judging_a_cuda_service(home, name, level, said):
    spec = stack_of(home, UNPUBLISHED, gpu=H200, only=["llamacpp"]).service("llamacpp")
    assert spec.variant == "cuda"
    (verdict,) = [judge(spec, p) for p in model_placements(log(name))]
    assert verdict.level == level and said in verdict.message, verdict.message
    if level == "warn":
        assert "runs on the CPU although its CUDA image was chosen" in verdict.message and "fix: " in verdict.message
        assert ".py" not in verdict.message


def test_the_compat_library_trap_names_its_fix(home):
    spec = stack_of(home, UNPUBLISHED, gpu=H200, only=["llamacpp"]).service("llamacpp")
    lines = ["ggml_cuda_init: failed to initialize CUDA: forward compatibility was attempted on non supported HW"]
    (verdict,) = [judge(spec, p) for p in model_placements([*lines, *log("cpu-image")])]
    assert "compatibility libraries" in verdict.message and "server-cuda" in verdict.message


def start_with(home, log_name: str, config: str = ""):
    stack = stack_of(home, UNPUBLISHED + config, gpu=H200, only=["llamacpp"])
    engine = MemoryEngine(home / "volumes", registry={image: f"sha256:{n}" for n, image in enumerate(stack.images)})
    engine.prints[stack.service("llamacpp").container] = log(log_name)
    return engine, starting.start(lambda present: stack, engine, Quiet())


def test_start_says_where_each_model_runs(home):
    _, result = start_with(home, "cuda-found")
    assert result.ok and [v.message for v in result.placements] == [
        "llamacpp: tiny on CUDA0 (NVIDIA H200, 139 GiB): 33/33 layers"
    ]


def test_a_gpu_service_that_ended_on_the_cpu_is_a_warning_and_a_required_gpu_a_failure(home):
    _, warned = start_with(home, "cuda-init-failed")
    assert warned.ok and warned.placements[0].level == "warn"
    engine, failed = start_with(home, "cuda-init-failed", '[services.llamacpp.gpu]\nenabled = "required"\n')
    assert not failed.ok and "runs on the CPU" in failed.readiness[0].detail
    assert not engine.pods_by_name  # the failed service's pods are removed, as for any failure


def test_status_json_carries_the_placement(home):
    from airpods.usecases.status import status

    engine, result = start_with(home, "cuda-found")
    (row,) = [r for r in status(lambda present: result.stack, engine, placements=True) if r.name == "llamacpp"]
    (placed,) = row.to_json()["placements"]
    assert placed["where"] == "CUDA0" and (placed["layers_on_gpu"], placed["layers"]) == (33, 33)
    assert placed["buffers_mib"]["compute"]["CUDA0"] == 104.0
