"""GPU detection on fake device trees, and what each result means for images and flags."""

from __future__ import annotations

import pytest

from airpods.engine.podman_argv import gpu_options
from airpods.gpu import HostGpu, detect_gpu, gpu_request
from airpods.stack.build import build_stack, select_image
from tests.unit.helpers import load_text


def make_tree(root, files: dict[str, str]):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    "files, vendor, flags",
    [
        pytest.param({}, "none", [], id="no-gpu"),
        pytest.param(
            {"dev/nvidia0": "", "dev/nvidiactl": "", "etc/cdi/nvidia.yaml": "kind: nvidia.com/gpu"},
            "nvidia",
            ["--device", "nvidia.com/gpu=all"],
            id="nvidia-cdi-etc",
        ),
        pytest.param(
            {"dev/nvidia0": "", "var/run/cdi/nvidia.json": '{"kind": "nvidia.com/gpu"}'},
            "nvidia",
            ["--device", "nvidia.com/gpu=all"],
            id="nvidia-cdi-var-run",
        ),
        pytest.param(
            {"dev/nvidia0": "", "dev/nvidiactl": "", "dev/nvidia-uvm": ""},
            "nvidia",
            ["--device", "/dev/nvidia0", "--device", "/dev/nvidiactl", "--device", "/dev/nvidia-uvm"],
            id="nvidia-legacy-without-cdi",
        ),
        pytest.param(
            {"proc/driver/nvidia/version": "NVRM", "etc/cdi/nvidia.yaml": "nvidia.com/gpu"},
            "nvidia",
            ["--device", "nvidia.com/gpu=all"],
            id="nvidia-by-proc",
        ),
        pytest.param(
            {"dev/kfd": "", "dev/dri/renderD128": ""},
            "amd",
            ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "keep-groups"],
            id="amd",
        ),
        pytest.param(
            {"dev/dri/renderD128": "", "dev/dri/card0": ""}, "other", ["--device", "/dev/dri"], id="vulkan-dri"
        ),
        pytest.param({"dev/dri/card0": ""}, "none", [], id="dri-without-render-node"),
    ],
)
def test_detection(tmp_path, files, vendor, flags):
    gpu = detect_gpu(make_tree(tmp_path, files))
    assert gpu.vendor == vendor
    assert gpu_options(gpu_request(gpu)) == flags


@pytest.mark.parametrize(
    "vendor, image",
    [
        ("none", "ghcr.io/ggml-org/llama.cpp:server"),
        ("nvidia", "ghcr.io/ggml-org/llama.cpp:server-cuda"),
        ("amd", "ghcr.io/ggml-org/llama.cpp:server-rocm"),
        ("other", "ghcr.io/ggml-org/llama.cpp:server-vulkan"),
    ],
)
def test_llamacpp_image_variant_per_vendor(tmp_path, vendor, image):
    config = load_text(tmp_path, "").config
    assert select_image(config.services["llamacpp"], HostGpu(vendor))[0] == image


@pytest.mark.parametrize(
    "gpu_table, image_suffix, devices, layers",
    [
        pytest.param("{ enabled = true }", "server-cuda", ("--device", "nvidia.com/gpu=all"), "all", id="gpu"),
        pytest.param("{ enabled = true, force_cpu = true }", "server", (), "0", id="force-cpu"),
        pytest.param("{ enabled = false }", "server", (), "0", id="disabled"),
    ],
)
def test_force_cpu_and_disabled(tmp_path, gpu_table, image_suffix, devices, layers):
    config = load_text(tmp_path, f"[services.llamacpp]\ngpu = {gpu_table}\n").config
    spec = build_stack(config, HostGpu("nvidia", cdi=True), ["llamacpp"]).service("llamacpp")
    assert spec.image.endswith(":" + image_suffix)
    assert tuple(gpu_options(spec.gpu_request)) == devices
    assert spec.args[-2:] == ("--n-gpu-layers", layers)


def test_user_n_gpu_layers_wins(tmp_path):
    config = load_text(tmp_path, "[services.llamacpp.command_args]\nn_gpu_layers = 20\n").config
    spec = build_stack(config, HostGpu("nvidia", cdi=True), ["llamacpp"]).service("llamacpp")
    assert spec.args.count("--n-gpu-layers") == 1 and "20" in spec.args


def test_variant_missing_falls_back_to_cpu_without_devices(tmp_path):
    config = load_text(tmp_path, "").config
    spec = build_stack(config, HostGpu("other"), ["ollama"]).service("ollama")
    assert spec.variant == "cpu" and spec.gpu_request is None
