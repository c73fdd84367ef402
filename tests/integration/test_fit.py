"""The memory fit check on the rig: `models fit`'s estimate against what the real llama-server
says it allocated (its log at --log-verbosity 4: model, KV cache and compute buffers), and a
model that cannot fit its instance's memory limit, said before it loads (or refused, strict)."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import put_in_volume
from tests.integration.test_router import minilm  # noqa: F401 (the fixture)

BUFFER = re.compile(r"\b(model|KV|compute) buffer size =\s+([\d.]+) MiB")


def allocated_mib(airpods) -> float:
    """What llama-server said it allocated, in MiB (each buffer line of its log)."""
    log = airpods("logs", "llamacpp").out
    sizes = [float(size) for _, size in BUFFER.findall(log)]
    assert {kind for kind, _ in BUFFER.findall(log)} >= {"model", "compute"}, log[-2000:]
    return sum(sizes)


def single(model: str, ctx: int, *extra: str) -> str:
    args = ", ".join([f'model = "/models/{model}.gguf"', f"ctx_size = {ctx}", "log_verbosity = 4", *extra])
    return f"[services.llamacpp]\ncommand_args = {{ {args} }}\n"


def test_the_estimate_is_within_15_percent_of_what_llama_server_allocates(airpods, tiny_model, minilm):  # noqa: F811
    put_in_volume("airpods_llamacpp_models", tiny_model)
    converted = airpods("models", "convert", str(minilm), "--name", "minilm")
    assert converted.code == 0, converted.err
    for model, ctx, extra in (
        ("tiny", 512, ()),
        ("tiny", 8192, ()),
        ("tiny", 32768, ()),
        ("minilm", 512, ("embeddings = true",)),
        ("minilm", 2048, ("embeddings = true",)),
    ):
        airpods.write_config(single(model, ctx, *extra))
        started = airpods("start", "llamacpp")
        assert started.code == 0, started.err
        real = allocated_mib(airpods)
        fit = airpods("models", "fit", model, "--json")
        assert fit.code == 0, fit.err
        estimate = fit.json()["estimate"]["total"] / 2**20
        print(f"{model} at --ctx-size {ctx}: llama-server {real:.2f} MiB, estimate {estimate:.2f} MiB")
        assert abs(estimate - real) <= 0.15 * real, (model, ctx, estimate, real)


def test_a_model_that_cannot_fit_its_memory_limit_is_said_before_it_loads(airpods, engine, tiny_model):
    put_in_volume("airpods_llamacpp_models", tiny_model, engine=airpods.engine)
    # 64Ki cells of KV cache (32 MiB) in an 8 MiB container.
    airpods.write_config(single("tiny", 65536) + 'resources = { memory = "8m" }\n')
    fit = airpods("models", "fit", "tiny", "--json")
    assert fit.code == 1, fit.err  # does not fit: exit 1, the report on stdout
    report = fit.json()
    assert report["fits"] is False and "resources.memory" in report["problem"]
    largest = report["largest_ctx"]
    assert report["limit"] == 8 * 2**20 and report["n_ctx_train"] == 512 and 512 < largest < 65536
    shown = airpods("models", "fit", "tiny")
    assert shown.code == 1 and "does not fit" in shown.out, shown.out
    assert f"command_args.ctx_size (at most {largest} fits; the model was trained for 512)" in shown.out
    assert airpods("models", "list", "--json").json()["models"][0]["fits"] is False
    assert airpods("models", "fit", "tiny", "--ctx", str(largest), "--json").json()["fits"] is True
    assert airpods("models", "fit", "tiny", "--ctx", str(largest + 256), "--json").json()["fits"] is False

    warned = airpods("start", "llamacpp")  # it may then fail to load: the warning came first
    assert "warning: tiny needs about" in warned.err and "services.llamacpp.resources.memory" in warned.err

    airpods("stop")
    airpods.write_config(single("tiny", 65536) + 'resources = { memory = "8m" }\nfit = "strict"\n')
    dry = airpods("start", "llamacpp", "--dry-run")
    assert dry.code == 0 and "start would refuse: tiny needs about" in dry.out + dry.err, dry.out
    refused = airpods("start", "llamacpp")
    assert refused.code == 1 and "nothing was started" in refused.err, refused.err
    assert "llamacpp" not in airpods.pods()


@pytest.mark.parametrize("setting", ['fit = "off"'])
def test_the_check_can_be_turned_off(airpods, tiny_model, setting):
    put_in_volume("airpods_llamacpp_models", tiny_model)
    airpods.write_config(single("tiny", 65536) + f'resources = {{ memory = "8m" }}\n{setting}\n')
    started = airpods("start", "llamacpp")
    assert "warning: tiny needs" not in started.err
