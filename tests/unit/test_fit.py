"""The memory estimate (models/fit.py) from real GGUF headers, against the sizes the rig's
llama-server printed for the same files (measured at --log-verbosity 4, build 11434, CPU); the
end-to-end test (tests/integration/test_fit.py) measures them live."""

from __future__ import annotations

import pytest

from airpods.config.syntax import memory_bytes
from airpods.models.fit import (
    MAX_CTX,
    MIB,
    Settings,
    estimate,
    largest_context,
    read_shape,
    settings_from_args,
)
from tests.rig.tiny_gguf import write_tiny_model

# (n_embd, n_layers, n_head, n_ff) → {ctx: (model, KV, compute) MiB as llama-server printed them}
MEASURED = {
    (64, 2, 4, 128): {
        512: (0.45, 0.25, 1.64),
        1024: (0.45, 0.50, 2.14),
        4096: (0.45, 2.00, 5.14),
        16384: (0.45, 8.00, 17.14),
    },
    (512, 4, 8, 2048): {512: (65.07, 4.00, 17.52), 4096: (65.07, 32.00, 21.02)},
}


@pytest.mark.parametrize("dims", list(MEASURED))
def test_each_part_is_within_5_percent_of_what_llama_server_allocated(tmp_path, dims):
    n_embd, n_layers, n_head, n_ff = dims
    shape = read_shape(
        [write_tiny_model(tmp_path / "m.gguf", n_embd=n_embd, n_layers=n_layers, n_head=n_head, n_ff=n_ff)]
    )
    for ctx, parts in MEASURED[dims].items():
        found = estimate(shape, Settings(ctx=ctx))
        for mine, theirs in zip((found.weights_host, found.kv_host, found.compute_host), parts, strict=True):
            assert abs(mine / MIB - theirs) <= 0.05 * theirs + 0.01, (ctx, mine / MIB, theirs)


def test_gpu_layers_move_weights_and_kv_to_the_gpu(tmp_path):
    shape = read_shape([write_tiny_model(tmp_path / "m.gguf", n_layers=4)])
    cpu, half, every = (estimate(shape, Settings(ctx=1024, gpu_layers=n)) for n in (0, 2, 99))
    assert cpu.gpu == 0 and half.kv_gpu == cpu.kv_host // 2 and every.kv_host == 0
    assert half.weights_gpu == sum(shape.layer_bytes[2:]) and every.weights_gpu > sum(shape.layer_bytes)
    assert cpu.total <= every.total  # the same bytes, somewhere else (plus the GPU's compute buffer)


def test_quantized_kv_cache_and_the_models_own_context(tmp_path):
    shape = read_shape([write_tiny_model(tmp_path / "m.gguf")])
    f16, q8 = (estimate(shape, Settings(ctx=4096, cache_type_k=t, cache_type_v=t)).kv_host for t in ("f16", "q8_0"))
    assert q8 == f16 * 34 // 64
    assert estimate(shape, Settings()).ctx == 512  # --ctx-size unset: the training context
    assert estimate(shape, Settings(ctx=1000)).ctx == 1024  # padded to 256 cells


def test_largest_context_is_the_last_multiple_of_256_that_fits(tmp_path):
    shape = read_shape([write_tiny_model(tmp_path / "m.gguf", n_embd=512, n_layers=4, n_head=8, n_ff=2048)])
    budget = estimate(shape, Settings(ctx=3000)).host  # beyond its training context (512): memory only
    best = largest_context(shape, Settings(), budget)
    assert best == 3072 and estimate(shape, Settings(ctx=best)).host <= budget
    assert estimate(shape, Settings(ctx=best + 256)).host > budget
    assert largest_context(shape, Settings(), 1) == 0
    assert largest_context(shape, Settings(), 1 << 50) == MAX_CTX


def test_settings_come_from_the_rendered_command_line():
    args = ["--host", "0.0.0.0", "--ctx-size", "8192", "--cache-type-k", "q8_0", "--n-gpu-layers", "all"]
    assert settings_from_args(args, gpu=True) == Settings(ctx=8192, cache_type_k="q8_0", gpu_layers=1 << 16)
    assert settings_from_args(args, gpu=False).gpu_layers == 0  # the CPU image offloads nothing
    assert settings_from_args(["--ctx-size", "0"], gpu=False).ctx is None


@pytest.mark.parametrize(("text", "size"), [("512m", 512 * MIB), ("8g", 8 << 30), ("1.5G", 3 << 29), ("100k", 102400)])
def test_memory_sizes_read_as_podman_reads_them(text, size):
    assert memory_bytes(text) == size


def _stack(tmp_path, extra: str = "", args: str = 'model = "/models/tiny.gguf", ctx_size = 65536'):
    """The tiny model in a host folder served by llamacpp (single-model by default; `args`
    without `model` makes it a router) with an 8 MiB memory limit."""
    from airpods.gpu import HostGpu
    from airpods.stack.build import build_stack
    from tests.unit.helpers import load_text

    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny_model(folder / "tiny.gguf")
    text = f"""
        [services.llamacpp]
        volumes = [{{ source = "{folder}", target = "/models", mode = "ro" }}]
        resources = {{ memory = "8m" }}
        command_args = {{ {args} }}
        {extra}
    """
    return build_stack(load_text(tmp_path, text).config, HostGpu("none"), ["llamacpp"], "abc")


def test_start_warns_before_a_model_that_cannot_fit_its_limit_and_names_the_settings(tmp_path):
    from airpods.models.fit_check import check_start, start_loads

    said: list[str] = []
    (report,) = check_start(start_loads(_stack(tmp_path), None), said.append)  # type: ignore[arg-type]
    assert report.fits is False and report.largest_ctx == 4352 and report.n_ctx_train == 512
    (line,) = said
    assert line.startswith("warning: tiny needs about") and "llamacpp's resources.memory (8.0 MiB)" in line
    assert "raise services.llamacpp.resources.memory, or lower services.llamacpp.command_args.ctx_size" in line


def test_strict_refuses_before_anything_is_created(tmp_path):
    from airpods.errors import RuntimeFailure
    from airpods.models.fit_check import check_start, start_loads

    stack = _stack(tmp_path, 'fit = "strict"')
    with pytest.raises(RuntimeFailure, match="nothing was started") as refused:
        check_start(start_loads(stack, None), print)  # type: ignore[arg-type]
    assert "at most 4352 fits; the model was trained for 512" in (refused.value.hint or "")


def test_fit_off_checks_nothing(tmp_path):
    from airpods.models.fit_check import check_start, start_loads

    assert check_start(start_loads(_stack(tmp_path, 'fit = "off"'), None), print) == []  # type: ignore[arg-type]


def test_a_routers_presets_give_each_model_its_own_settings(tmp_path):
    from airpods.gpu import HostGpu
    from airpods.models.fit_check import instance_settings
    from airpods.stack.build import build_stack
    from tests.unit.helpers import load_text

    text = '[services.llamacpp.models.big]\nctx_size = 16384\ncache_type_k = "q8_0"\n'
    spec = build_stack(load_text(tmp_path, text).config, HostGpu("none"), ["llamacpp"], "a").service("llamacpp")
    assert instance_settings(spec, "big") == Settings(ctx=16384, cache_type_k="q8_0")
    assert instance_settings(spec, "other").ctx == 4096  # the instance's, moved to the shared section
    assert instance_settings(spec, "big", ctx=512).ctx == 512


def test_a_router_warns_for_models_it_loads_on_request_and_never_refuses(tmp_path):
    from airpods.models.fit_check import check_start, start_loads

    stack = _stack(tmp_path, 'fit = "strict"', args="ctx_size = 65536")
    said: list[str] = []
    (report,) = check_start(start_loads(stack, None), said.append)  # type: ignore[arg-type]
    assert report.model == "tiny" and said[0].startswith("warning: tiny needs about")
    assert "requests for it will fail to load it" in said[0]


def test_on_a_gpu_the_layers_go_where_fit_would_put_them(tmp_path):
    """With --n-gpu-layers unset, llama-server's --fit offloads the layers that fit in the GPU
    less its 1 GiB margin: the estimate does the same where sysfs gives the VRAM (AMD)."""
    from dataclasses import replace

    from airpods.gpu import GpuCard, GpuRequest, HostGpu
    from airpods.models.fit_check import FIT_TARGET, gpu_memory, offload

    shape = read_shape([write_tiny_model(tmp_path / "m.gguf", n_embd=512, n_layers=4, n_head=8, n_ff=2048)])
    every = Settings(ctx=4096, gpu_layers=1 << 16)
    two = estimate(shape, replace(every, gpu_layers=2)).gpu
    assert offload(shape, every, FIT_TARGET + two).gpu_layers == 2
    assert offload(shape, every, 64 << 30).gpu_layers == 4 and offload(shape, every, FIT_TARGET).gpu_layers == 0
    spec = _stack(tmp_path).service("llamacpp")
    card = GpuCard("amd", "/dev/dri/renderD128", "gfx1100", 24 << 30)
    amd = HostGpu("amd", cards=(card,))
    assert gpu_memory(amd, spec) is None  # the CPU image: no GPU handed over
    handed = replace(spec, gpu_request=GpuRequest("amd", ("/dev/kfd", "/dev/dri/renderD128")))
    assert gpu_memory(amd, handed) == 24 << 30
    assert (
        gpu_memory(HostGpu("nvidia"), replace(spec, gpu_request=GpuRequest("nvidia", ("nvidia.com/gpu=all",)))) is None
    )


def test_server_settings_are_read_once_from_the_rendered_command_line(tmp_path):
    from airpods.stack.model import ServerSettings
    from tests.unit.helpers import single_model_toml, stack_of

    router = stack_of(tmp_path).service("llamacpp").server
    assert router.model is None and router.ctx_size == 4096 and router.models_preset == "/presets/models.ini"
    single = stack_of(tmp_path, single_model_toml("tiny.gguf")).service("llamacpp").server
    assert single.model == "/models/tiny.gguf" and single.alias == "tiny" and single.models_preset is None
    later = ServerSettings.from_args(["-m", "/models/a.gguf", "--ctx-size", "0", "--ubatch-size", "256"])
    assert (later.model, later.ctx_size, later.ubatch_size) == ("/models/a.gguf", None, 256)
