"""GPU decisions on fake device trees (issue 19): every container airpods gives a GPU can use it,
or airpods says why not. Each case is a tree as the kernel, the driver and the NVIDIA Container
Toolkit lay it out; the table checks image, podman flags, env and the warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from airpods.engine.podman_argv import gpu_options
from airpods.errors import RuntimeFailure
from airpods.gpu import HostGpu, detect_gpu
from airpods.stack.build import build_stack
from tests.unit.helpers import load_text

CDI = """cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: {node}
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
"""


def nvidia(driver: str = "570.86.10", cdi: str | None = "valid", model: str | None = None) -> dict[str, str]:
    """An NVIDIA host's tree: the driver's version file, the nodes, a CDI spec ("valid", "stale"
    or None) and, given a `model`, the driver's information file for one GPU."""
    files = {
        "dev/nvidia0": "",
        "dev/nvidiactl": "",
        "proc/driver/nvidia/version": f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  Release Build\n",
    }
    if model:
        files["proc/driver/nvidia/gpus/0000:01:00.0/information"] = (
            f"Model: \t\t {model}\nIRQ:   \t\t 130\nGPU UUID: \t GPU-5e1d0c31-0000\nBus Type: \t PCIe\n"
        )
    if cdi:
        files["etc/cdi/nvidia.yaml"] = CDI.replace(
            "{node}", "/dev/nvidia0" if cdi == "valid" else "/dev/dri/renderD129"
        )
    return files


def amd(*cards: tuple[int, int, int]) -> dict[str, str]:
    """cards: (gfx_target_version, render minor, VRAM bytes); node 0 is the CPU."""
    files = {"dev/kfd": "", "sys/class/kfd/kfd/topology/nodes/0/properties": "simd_count 0\n"}
    for i, (gfx, minor, vram) in enumerate(cards, start=1):
        files[f"sys/class/kfd/kfd/topology/nodes/{i}/properties"] = (
            f"cpu_cores_count 0\nsimd_count 256\ngfx_target_version {gfx}\ndrm_render_minor {minor}\n"
        )
        files[f"dev/dri/renderD{minor}"] = ""
        files[f"sys/class/drm/renderD{minor}/device/mem_info_vram_total"] = str(vram)
        files[f"sys/class/drm/renderD{minor}/device/vendor"] = "0x1002"
    return files


GiB = 2**30
INTEL = {"dev/dri/renderD128": "", "dev/dri/card0": "", "sys/class/drm/renderD128/device/vendor": "0x8086"}


def make_tree(root, files: dict[str, str]):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """containers.conf names the OCI runtime (crun honours --group-add keep-groups, runc does not)."""

    def use(name: str) -> None:
        conf = tmp_path / "containers.conf"
        conf.write_text(f'[engine]\nruntime = "{name}"\n')
        monkeypatch.setenv("CONTAINERS_CONF", str(conf))

    use("crun")
    return use


def decide(tmp_path, files, service="llamacpp", config=""):
    root = tmp_path / f"root{len(list(tmp_path.glob('root*')))}"  # a tree of its own per call
    gpu = detect_gpu(make_tree(root, files))
    stack = build_stack(load_text(tmp_path, config).config, gpu, [service])
    return gpu, stack.service(service), stack.warnings


@pytest.mark.parametrize(
    "files, image, flags, warning",
    [
        pytest.param({}, "server", [], None, id="no-gpu"),
        pytest.param(nvidia(), "server-cuda", ["--device", "nvidia.com/gpu=all"], None, id="nvidia-cdi"),
        pytest.param(nvidia(cdi=None), "server", [], "no CDI spec names nvidia.com/gpu", id="nvidia-without-cdi"),
        pytest.param(
            nvidia(cdi="stale"), "server", [], "lists /dev/dri/renderD129, which does not exist", id="nvidia-stale-cdi"
        ),
        pytest.param(
            nvidia(driver="550.54.15"), "server-cuda", ["--device", "nvidia.com/gpu=all"], None, id="nvidia-550"
        ),
        pytest.param(
            nvidia(driver="535.183.01"), "server-cuda", ["--device", "nvidia.com/gpu=all"], None, id="debian12-535"
        ),
        pytest.param(
            nvidia(driver="520.61.05"), "server", [], "driver 520.61.05 is too old for CUDA 12.8", id="nvidia-520"
        ),
        pytest.param(
            amd((110000, 128, 24 * GiB)),
            "server-rocm",
            ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "keep-groups"],
            None,
            id="amd-dgpu",
        ),
        pytest.param(
            amd((90012, 128, 512 * 2**20)),
            "server-vulkan",
            ["--device", "/dev/dri/renderD128", "--group-add", "keep-groups"],
            None,
            id="amd-apu-gfx90c",
        ),
        pytest.param(
            amd((90012, 128, 512 * 2**20), (110000, 129, 16 * GiB)),
            "server-rocm",
            ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "keep-groups"],
            None,
            id="amd-igpu-and-dgpu",
        ),
        pytest.param(
            amd((80003, 128, 8 * GiB)),
            "server-vulkan",
            ["--device", "/dev/dri/renderD128", "--group-add", "keep-groups"],
            None,
            id="amd-unsupported-gfx803",
        ),
        pytest.param(INTEL, "server-vulkan", ["--device", "/dev/dri", "--group-add", "keep-groups"], None, id="intel"),
    ],
)
def test_decisions_on_fake_trees(tmp_path, runtime, files, image, flags, warning):
    _, spec, warnings = decide(tmp_path, files)
    assert spec.image == f"ghcr.io/ggml-org/llama.cpp:{image}"
    assert gpu_options(spec.gpu_request) == flags
    assert "--n-gpu-layers" not in spec.args  # unset: the server's --fit places the layers
    gpu_warnings = [w for w in warnings if "runs on the CPU" in w]
    assert (warning is None and not gpu_warnings) or (warning and any(warning in w for w in gpu_warnings)), warnings
    assert spec.gpu_reason  # said by start, doctor and status


def test_the_fix_for_a_missing_or_stale_cdi_spec_is_named(tmp_path, runtime):
    _, _, warnings = decide(tmp_path, nvidia(cdi="stale"))
    assert any("nvidia-ctk cdi generate" in w for w in warnings)


def test_amd_exposes_the_discrete_gpu_only_and_a_users_value_wins(tmp_path, runtime):
    tree = amd((90012, 128, 512 * 2**20), (110000, 129, 16 * GiB))
    _, spec, _ = decide(tmp_path, tree)
    assert ("ROCR_VISIBLE_DEVICES", "1") in spec.env and ("HIP_VISIBLE_DEVICES", "1") in spec.env  # KFD order
    _, mine, _ = decide(tmp_path, tree, config='[services.llamacpp.env]\nHIP_VISIBLE_DEVICES = "0"\n')
    assert ("HIP_VISIBLE_DEVICES", "0") in mine.env and ("HIP_VISIBLE_DEVICES", "1") not in mine.env


def test_the_unsupported_gfx_is_the_reason(tmp_path, runtime):
    _, spec, _ = decide(tmp_path, amd((90012, 128, 512 * 2**20)))
    assert "gfx90c is not a target of the ROCm image" in spec.gpu_reason


def test_runc_gets_the_node_groups_by_id(tmp_path, runtime):
    """keep-groups is a crun feature: with runc the plan carries the nodes' group IDs."""
    import os

    runtime("runc")
    root = make_tree(tmp_path / "root0", amd((110000, 128, 24 * GiB)))
    gid = 993 if os.geteuid() == 0 else os.getgid()  # a render group (root's own group 0 is never added)
    for node in (root / "dev/kfd", root / "dev/dri/renderD128"):
        os.chown(node, -1, gid)
    gpu = detect_gpu(root)
    spec = build_stack(load_text(tmp_path, "").config, gpu, ["llamacpp"]).service("llamacpp")
    assert gpu.runtime == "runc" and gpu.groups == (gid,)
    assert gpu_options(spec.gpu_request)[-2:] == ["--group-add", str(gid)]


def test_comfyui_cuda_image_follows_the_driver(tmp_path, runtime):
    _, new, _ = decide(tmp_path, nvidia(driver="580.76.05"), "comfyui", "[services.comfyui]\nenabled = true\n")
    assert new.image.endswith(":cu130-slim-v2")
    _, older, _ = decide(tmp_path, nvidia(driver="565.57.01"), "comfyui", "[services.comfyui]\nenabled = true\n")
    assert older.image.endswith(":cu126-slim")
    _, compat, _ = decide(tmp_path, nvidia(driver="535.183.01"), "comfyui", "[services.comfyui]\nenabled = true\n")
    assert compat.image.endswith(":cu126-slim") and "minor-version compatibility" in compat.gpu_reason
    _, old, warnings = decide(tmp_path, nvidia(driver="520.61.05"), "comfyui", "[services.comfyui]\nenabled = true\n")
    assert old.image.endswith(":cpu") and any("too old" in w for w in warnings)


def test_required_gpu_is_an_error_not_a_cpu_fallback(tmp_path, runtime):
    with pytest.raises(RuntimeFailure) as caught:
        decide(tmp_path, nvidia(cdi=None), config='[services.llamacpp.gpu]\nenabled = "required"\n')
    assert "requires a GPU" in caught.value.message and "nvidia-ctk" in caught.value.message


def test_gpu_devices_pick_gpus_and_an_absent_one_is_an_error(tmp_path, runtime):
    _, spec, _ = decide(tmp_path, nvidia(), config="[services.llamacpp.gpu]\nenabled = true\ndevices = [0]\n")
    assert gpu_options(spec.gpu_request) == ["--device", "nvidia.com/gpu=0"]
    with pytest.raises(RuntimeFailure) as caught:
        decide(tmp_path, nvidia(), config="[services.llamacpp.gpu]\nenabled = true\ndevices = [3]\n")
    assert "asks for GPU 3" in caught.value.message
    _, rocm, _ = decide(
        tmp_path,
        amd((110000, 128, 8 * GiB), (110000, 129, 24 * GiB)),
        config="[services.llamacpp.gpu]\nenabled = true\ndevices = [1]\n",
    )
    assert ("ROCR_VISIBLE_DEVICES", "0") in rocm.env  # the second by VRAM is KFD's first


def test_force_cpu_and_disabled(tmp_path, runtime):
    for table, image in (("{ enabled = true, force_cpu = true }", "server"), ("{ enabled = false }", "server")):
        _, spec, _ = decide(tmp_path, nvidia(), config=f"[services.llamacpp]\ngpu = {table}\n")
        assert spec.image.endswith(":" + image) and spec.gpu_request is None


def test_user_n_gpu_layers_wins(tmp_path, runtime):
    _, spec, _ = decide(tmp_path, nvidia(), config="[services.llamacpp.command_args]\nn_gpu_layers = 20\n")
    assert spec.model_args().count("--n-gpu-layers") == 1 and "20" in spec.model_args()


def test_an_image_variant_key_is_checked(tmp_path, capsys):
    from tests.unit.helpers import run_cli, write_toml

    path = write_toml(tmp_path, '[services.llamacpp]\nimage = { cpu = "a/b:1", cuda12 = "a/b:2" }\n')
    done = run_cli(capsys, "-c", str(path), "config", "validate")
    assert done.code == 2 and "services.llamacpp.image" in done.err and "cuda-X.Y" in done.err


def test_detection_reads_the_driver_and_the_cdi_names(tmp_path, runtime):
    gpu = detect_gpu(make_tree(tmp_path, nvidia()))
    assert (gpu.vendor, gpu.driver, gpu.cdi, gpu.cdi_names) == ("nvidia", "570.86.10", True, ("0", "all"))
    assert isinstance(gpu, HostGpu) and "driver 570.86.10" in gpu.describe()


def test_the_real_gpu_check_script_decides_before_it_runs_anything(tmp_path, runtime):
    """scripts/gpu-check runs for real on a GPU machine; here its dry mode on fake trees."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "scripts" / "gpu-check"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

    def dry(files, *args):
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "AIRPODS_PYTHON": sys.executable,
            "AIRPODS_HOST_ROOT": str(make_tree(tmp_path / f"t{len(list(tmp_path.glob('t*')))}", files)),
        }
        return subprocess.run([str(script), "--dry-run", *args], env=env, capture_output=True, text=True, timeout=120)

    ready = dry(nvidia())
    assert ready.returncode == 0, ready.stderr
    assert "server-cuda" in ready.stdout and "+ airpods start llamacpp" in ready.stdout
    stale = dry(nvidia(cdi="stale"))
    assert stale.returncode == 1 and "would not get the CUDA image" in stale.stderr
    # Docker: the toolkit's hook, not a CDI spec, decides.
    hooked = dry({**nvidia(cdi=None), "usr/bin/nvidia-container-runtime-hook": ""}, "--engine", "docker")
    assert hooked.returncode == 0 and "--gpus all" in hooked.stdout, hooked.stderr
    unhooked = dry(nvidia(), "--engine", "docker")
    assert unhooked.returncode == 1 and "would not get the CUDA image" in unhooked.stderr
    assert dry({}, "--bogus").returncode == 2


@pytest.mark.parametrize(
    "files",
    [
        {"dev/kfd": "", "dev/dri/renderD128": "", "sys/class/kfd/kfd/topology/nodes/1/properties": "simd_count abc\n"},
        {**amd((110000, 128, 1)), "sys/class/drm/renderD128/device/mem_info_vram_total": "lots"},
        {"dev/kfd": "", "sys/class/kfd/kfd/topology/nodes/1/properties": "simd_count 64\ngfx_target_version 110000\n"},
    ],
    ids=["garbage-simd-count", "garbage-vram", "no-render-node"],
)
def test_malformed_sysfs_values_never_crash_nor_make_bogus_devices(tmp_path, runtime, files):
    _, spec, _ = decide(tmp_path, files)
    assert "/dev/dri/renderD " not in " ".join(gpu_options(spec.gpu_request)) + " "
    assert not any(d.endswith("renderD") for d in (spec.gpu_request.devices if spec.gpu_request else ()))


def docker_argv_of(spec) -> list[str]:
    from airpods.engine.docker_argv import container_run_argv

    return list(container_run_argv(spec, Path("/secrets")))


def test_docker_hands_nvidia_over_with_the_toolkits_hook_not_a_cdi_spec(tmp_path, runtime):
    hooked = {**nvidia(cdi=None), "usr/bin/nvidia-container-runtime-hook": "", "dev/nvidia1": ""}
    gpu = detect_gpu(make_tree(tmp_path / "hooked", hooked), engine="docker")
    assert (gpu.cdi, gpu.cdi_names, gpu.handover) == (True, ("0", "1", "all"), "--gpus")
    assert "Docker --gpus" in gpu.describe()
    stack = build_stack(load_text(tmp_path, "").config, gpu, ["llamacpp"])
    spec = stack.service("llamacpp")
    assert spec.image.endswith(":server-cuda") and "--gpus all" in " ".join(docker_argv_of(spec))
    assert "--gpus all" in spec.gpu_reason
    two = build_stack(load_text(tmp_path, "[services.llamacpp.gpu]\ndevices = [1]\n").config, gpu, ["llamacpp"])
    assert '--gpus "device=1"' in " ".join(docker_argv_of(two.service("llamacpp")))

    # The same host without the hook: the CPU image, and the toolkit's fix named.
    bare = detect_gpu(make_tree(tmp_path / "bare", nvidia()), engine="docker")
    cpu = build_stack(load_text(tmp_path, "").config, bare, ["llamacpp"])
    assert cpu.service("llamacpp").image.endswith(":server")
    assert any("nvidia-ctk runtime configure --runtime=docker" in w for w in cpu.warnings)
    # Podman on the hooked host still needs its CDI spec.
    assert not detect_gpu(make_tree(tmp_path / "hooked", {}), engine="podman").cdi


def test_the_stack_cache_keeps_the_engines_gpu_handover(tmp_path):
    from airpods.stack.cache import cached_stack

    gpu = HostGpu("nvidia", cdi=True, driver="570.86.10", cdi_names=("0", "all"), handover="--gpus")
    stack = build_stack(load_text(tmp_path, "").config, gpu, ["llamacpp"])
    path = tmp_path / "cache.json"
    assert cached_stack(path, "k", lambda: stack) == stack
    again = cached_stack(path, "k", lambda: pytest.fail("served from the cache"))
    assert again == stack and again.gpu.handover == "--gpus"


def test_a_server_without_fit_is_told_to_offload_every_layer(tmp_path):
    """An image pulled before llama-server had --fit offloads nothing unless told: the table
    learned from its --help has no --fit, so airpods passes --n-gpu-layers all (CPU images never)."""
    from airpods.stack.build import build_service
    from airpods.stack.flag_table import parse_help

    old = parse_help(
        "-c,    --ctx-size N       size of the prompt context\n"
        "-ngl,  --gpu-layers, --n-gpu-layers N   number of layers to store in VRAM\n"
        "--host HOST   ip address to listen\n--port PORT   port to listen\n",
        "an older server",
    )
    gpu = detect_gpu(make_tree(tmp_path / "root", nvidia()))
    config = load_text(tmp_path, "").config
    image = "ghcr.io/ggml-org/llama.cpp:server-cuda"
    spec, _ = build_service(config, "llamacpp", gpu, flag_tables={image: old}, check_flags=False)
    assert spec.image == image and spec.args[-2:] == ("--n-gpu-layers", "all")
    assert "--n-gpu-layers" not in build_service(config, "llamacpp", gpu, check_flags=False)[0].args  # built-in: --fit
    mine = load_text(tmp_path, "[services.llamacpp.command_args]\nn_gpu_layers = 20\n").config
    spec, _ = build_service(mine, "llamacpp", gpu, flag_tables={image: old}, check_flags=False)
    assert spec.model_args().count("--n-gpu-layers") == 1 and "20" in spec.model_args()


def test_a_required_gpu_makes_the_fit_check_strict(tmp_path):
    """gpu.enabled = "required": a model that cannot fit is refused before start, as with fit = "strict"."""
    _, spec, _ = decide(tmp_path, nvidia(), config='[services.llamacpp]\ngpu = { enabled = "required" }\n')
    assert spec.fit == "strict"
    _, off, _ = decide(tmp_path, nvidia(), config='[services.llamacpp]\ngpu = { enabled = "required" }\nfit = "off"\n')
    assert off.fit == "off"
    _, usual, _ = decide(tmp_path, nvidia())
    assert usual.fit == "warn"


@pytest.mark.parametrize(
    "driver, model, image, said",
    [
        # Debian 12 / Ubuntu 22.04's stock driver: older than CUDA 12.8's own (570.26), newer than 12.x's
        # minimum (525.60.13); the image carries SASS for 8.6 and 8.9, so these GPUs run it.
        pytest.param("535.183.01", None, "server-cuda", "minor-version compatibility", id="535-gpu-unknown"),
        pytest.param("535.183.01", "NVIDIA GeForce RTX 3090", "server-cuda", "minor-version", id="535-rtx3090"),
        pytest.param("535.183.01", "NVIDIA L4", "server-cuda", "minor-version", id="535-l4-ada"),
        pytest.param("535.183.01", "NVIDIA RTX A6000", "server-cuda", "minor-version", id="535-a6000"),
        # PTX only (80-virtual, 90-virtual): the old driver cannot compile the image's newer PTX.
        pytest.param("535.183.01", "NVIDIA H100 80GB HBM3", "server", "compute capability 9.0", id="535-h100"),
        pytest.param("535.183.01", "NVIDIA A100-SXM4-80GB", "server", "compute capability 8.0", id="535-a100"),
        pytest.param("535.183.01", "Tesla T4", "server", "compute capability 7.5", id="535-t4"),
        pytest.param("535.183.01", "NVIDIA GeForce GTX 1080 Ti", "server", "compute capability 6.1", id="535-1080ti"),
        # CUDA 12.8's own driver: every GPU, PTX compiled at run time.
        pytest.param("570.86.10", "NVIDIA H100 80GB HBM3", "server-cuda", "CUDA 12.8) on driver", id="570-h100"),
        pytest.param("525.60.13", None, "server-cuda", "minor-version", id="525.60.13-exactly"),
        pytest.param("525.53", None, "server", "(they need 525.60.13 or newer)", id="below-525.60.13"),
        pytest.param("470.256.02", "Tesla T4", "server", "is too old for CUDA 12.8", id="470"),
    ],
)
def test_minor_version_compatibility_decides_the_cuda_image(tmp_path, runtime, driver, model, image, said):
    """gpu_facts: a 12.x image runs on drivers >= 525.60.13 where it carries machine code for the GPU."""
    _, spec, warnings = decide(tmp_path, nvidia(driver=driver, model=model))
    assert spec.image == f"ghcr.io/ggml-org/llama.cpp:{image}"
    text = spec.gpu_reason + " ".join(warnings)
    assert said in text, text
    if image == "server":
        cpu = next(w for w in warnings if "runs on the CPU" in w)
        assert "update the NVIDIA driver" in cpu and "sudo ubuntu-drivers install" in cpu
        assert ".py" not in cpu  # the user is told what to do, not where the code is


def test_the_cpu_message_for_an_old_driver_is_the_users(tmp_path, runtime):
    _, _, warnings = decide(tmp_path, nvidia(driver="520.61.05"))
    assert (
        "llamacpp runs on the CPU: NVIDIA driver 520.61.05 is too old for CUDA 12.8 images (they need 525.60.13 or "
        "newer); update the NVIDIA driver (Ubuntu: sudo ubuntu-drivers install;" in " ".join(warnings)
    )


def test_docker_skips_the_legacy_hooks_cuda_requirement_only_under_minor_version_compatibility(tmp_path, runtime):
    """The legacy hook behind --gpus checks the image's NVIDIA_REQUIRE_CUDA; CDI does not."""
    hook = {"usr/bin/nvidia-container-runtime-hook": ""}
    config = load_text(tmp_path, "").config
    old = detect_gpu(make_tree(tmp_path / "old", {**nvidia("535.183.01", cdi=None), **hook}), engine="docker")
    spec = build_stack(config, old, ["llamacpp"]).service("llamacpp")
    assert spec.image.endswith(":server-cuda") and ("NVIDIA_DISABLE_REQUIRES", "true") in spec.env
    new = detect_gpu(make_tree(tmp_path / "new", {**nvidia("570.86.10", cdi=None), **hook}), engine="docker")
    podman = detect_gpu(make_tree(tmp_path / "podman", nvidia("535.183.01")))
    for gpu in (new, podman):
        env = build_stack(config, gpu, ["llamacpp"]).service("llamacpp").env
        assert not any(k == "NVIDIA_DISABLE_REQUIRES" for k, _ in env)


def test_a_required_gpu_on_a_too_old_driver_is_refused_with_the_fix(tmp_path, runtime):
    with pytest.raises(RuntimeFailure) as caught:
        decide(tmp_path, nvidia(driver="520.61.05"), config='[services.llamacpp.gpu]\nenabled = "required"\n')
    assert "525.60.13" in caught.value.message and "ubuntu-drivers" in caught.value.message


@pytest.mark.parametrize(
    "sass, capability, runs",
    [
        (("8.6",), "8.6", True),
        (("8.6",), "8.7", True),  # SASS for X.Y runs on X.Z, Z >= Y
        (("8.6",), "8.0", False),
        (("8.6", "8.9"), "9.0", False),  # never across majors
        (("12.0a",), "12.0", True),
        (("12.0a",), "12.1", False),  # an architecture-specific target runs on itself only
    ],
)
def test_sass_compatibility_rules(sass, capability, runs):
    from airpods.gpu_facts import sass_runs_on

    assert sass_runs_on(sass, capability) is runs


def test_the_llamacpp_image_sass_follows_its_cuda_release():
    from airpods.gpu_facts import compute_capability, llamacpp_sass

    assert llamacpp_sass("12.4") == ("8.6", "8.9")
    assert llamacpp_sass("12.8") == ("8.6", "8.9", "12.0a")
    assert llamacpp_sass("13.0") == ("8.6", "8.9", "12.0a", "12.1a")
    assert compute_capability("NVIDIA H200") == "9.0" and compute_capability("NVIDIA GeForce RTX 4090") == "8.9"
    assert compute_capability("NVIDIA GeForce RTX 5090") == "12.0" and compute_capability("Some Future GPU") is None


def test_detection_reads_the_gpu_model_names(tmp_path, runtime):
    gpu = detect_gpu(make_tree(tmp_path, nvidia(model="NVIDIA H200")))
    assert gpu.models == ("NVIDIA H200",)


def test_doctor_names_the_compat_library_trap_under_cdi(tmp_path, runtime):
    from airpods.doctor import gpu_decisions

    cuda13 = (
        '[services.llamacpp]\nimage = { cpu = "ghcr.io/ggml-org/llama.cpp:server", '
        '"cuda-13.0" = "ghcr.io/ggml-org/llama.cpp:server-cuda13" }\n'
    )
    config = load_text(tmp_path, cuda13).config
    newer = detect_gpu(make_tree(tmp_path / "newer", nvidia("595.58.03")))
    trap = [c for c in gpu_decisions(config, newer) if "compat" in c.name]
    assert trap and trap[0].level == "WARN" and "server-cuda" in trap[0].fix
    same = detect_gpu(make_tree(tmp_path / "same", nvidia("580.65.06")))
    assert not [c for c in gpu_decisions(config, same) if "compat" in c.name]
