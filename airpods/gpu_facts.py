"""Facts about GPUs and their software that airpods decides by, each with its source.

Update them from the sources named when a new CUDA release or ROCm image appears."""

from __future__ import annotations

# The Linux x86_64 driver each CUDA release shipped with (its "toolkit driver"): NVIDIA CUDA Toolkit
# Release Notes, Table 3 "CUDA Toolkit and Corresponding Driver Versions" (docs.nvidia.com/cuda/
# cuda-toolkit-release-notes). A driver this new runs everything a program of that release does,
# PTX compiled at run time (JIT) included. A release missing here counts as the closest one listed
# below it of the same major (an image for 13.4 needs at least 13.0's).
CUDA_MIN_DRIVER: dict[str, str] = {
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.4": "550.54.14",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "13.0": "580.65.06",
}

# CUDA minor-version compatibility: since CUDA 11 a program built with any release of a major runs,
# "with limited feature-set", on a driver at least this old (NVIDIA, CUDA Compatibility, "Minor
# Version Compatibility", Table 1, docs.nvidia.com/deploy/cuda-compatibility/minor-version-
# compatibility.html: 11.x >= 450.80.02, 12.x >= 525 (525.60.13, the 12.0 GA driver), 13.x >= 580).
# Its limits, from the same page: the driver cannot JIT-compile PTX made by a newer toolkit (the
# program fails with cudaErrorUnsupportedPtxVersion, "the provided PTX was compiled with an
# unsupported toolchain", or "device kernel image is invalid"), so the GPU needs machine code
# (SASS) of its own in the program; and APIs of newer releases answer
# cudaErrorCallRequiresNewerDriver. llama.cpp's CUDA backend calls no such API at start; the first
# limit is why a GPU's compute capability decides (LLAMACPP_CUDA_SASS below).
# Seen in the field: a CUDA 12 llama.cpp build on driver 535 finds a GTX 1080 Ti (6.1, PTX only)
# and then fails with "device kernel image is invalid" (canonical/inference-snaps issue 255).
CUDA_COMPAT_DRIVER: dict[str, str] = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}

# The machine code (SASS) llama.cpp's CUDA images carry, by the CUDA release they are built with:
# .devops/cuda.Dockerfile builds with CUDA_DOCKER_ARCH=default, i.e. ggml's default list in
# ggml/src/ggml-cuda/CMakeLists.txt (llama.cpp master, 2026): real (SASS) 86; 89 from CUDA 11.8;
# 120a from 12.8; 121a from 12.9; and only PTX (virtual) for 50, 61, 70 (before CUDA 13), 75, 80
# and 90. (compute capability, first CUDA release that adds it). SASS for X.Y runs on X.Z with
# Z >= Y; an "a" (architecture-specific) one only on X.Y itself (CUDA C++ Programming Guide,
# "Binary Compatibility" and "Feature Availability").
LLAMACPP_CUDA_SASS: tuple[tuple[str, str], ...] = (
    ("8.6", "11.1"),
    ("8.9", "11.8"),
    ("12.0a", "12.8"),
    ("12.1a", "12.9"),
)
LLAMACPP_IMAGE = "ghcr.io/ggml-org/llama.cpp"

# A GPU's compute capability by its model name (as /proc/driver/nvidia/gpus/*/information says it):
# NVIDIA, "CUDA GPUs - Compute Capability" (developer.nvidia.com/cuda-gpus). First match wins; an
# unlisted name is unknown (airpods then lets the server's own log say where the model runs).
COMPUTE_CAPABILITY: tuple[tuple[str, str], ...] = (
    (r"\bGB10\b|DGX Spark", "12.1"),
    (r"RTX 50\d\d|RTX PRO \d+ Blackwell", "12.0"),
    (r"\bG?B[12]00\b", "10.0"),
    (r"\bG?H(100|200|800|20)\b", "9.0"),
    (r"RTX 40\d\d|\bL4\b|\bL40S?\b|RTX \d+ Ada", "8.9"),
    (r"RTX 30\d\d|\bA(10G?|16|2|40)\b|RTX A\d+", "8.6"),
    (r"\bA(100|30|800)\b", "8.0"),
    (r"RTX 20\d\d|GTX 16\d\d|\bT4\b|Quadro RTX|TITAN RTX", "7.5"),
    (r"\bV100\b|TITAN V\b", "7.0"),
    (r"GTX 10\d\d|\bP(4|40)\b|TITAN Xp?\b", "6.1"),
    (r"\bP100\b", "6.0"),
)

# llama.cpp images that ship CUDA's forward-compatibility libraries (/usr/local/cuda*/compat, for
# hosts whose driver is older than the image's CUDA, llama.cpp PR 18022): under CDI, on a host
# whose driver is newer than that CUDA, they are loaded instead of the host's libcuda and CUDA fails
# to start (llama.cpp issue 23111: server-cuda13, driver 595, toolkit 1.18 with CDI). The legacy
# hook (Docker --gpus) mounts them only for an older driver.
COMPAT_LIB_IMAGES = (LLAMACPP_IMAGE + ":server-cuda13",)
COMPAT_LIB_FIX = (
    'use the CUDA 12 image, whose driver range has no such libraries: image = { "cuda-12.8" = '
    '"ghcr.io/ggml-org/llama.cpp:server-cuda" } in the service\'s config'
)

# How to get a newer NVIDIA driver, said whenever one is too old.
DRIVER_FIX = (
    "Ubuntu: sudo ubuntu-drivers install; Debian and others: NVIDIA's CUDA repository, "
    "sudo apt install cuda-drivers; then reboot"
)

# Docker's --gpus goes through the NVIDIA Container Toolkit's legacy hook, which refuses a container
# whose image's NVIDIA_REQUIRE_CUDA (cuda>=12.8 in nvidia/cuda:12.8 images) the driver does not
# meet ("requirement error: unsatisfied condition: cuda>=12.8"; MauriceNino/dashdot issue 1226, on
# Debian 12's 535 driver); NVIDIA_DISABLE_REQUIRES=true skips that check (NVIDIA/nvidia-container-
# toolkit issue 152, its maintainer). CDI (Podman) does not check it at all (same repository,
# issue 1470). airpods sets it only where minor-version compatibility is what makes the image run.
DISABLE_REQUIRES = ("NVIDIA_DISABLE_REQUIRES", "true")

# The gfx targets llama.cpp's ROCm images are built for (.devops/rocm.Dockerfile,
# ROCM_DOCKER_ARCH, llama.cpp b11434); a GPU with another target needs Vulkan.
ROCM_TARGETS = frozenset(
    {
        "gfx908",
        "gfx90a",
        "gfx942",
        "gfx1030",
        "gfx1100",
        "gfx1101",
        "gfx1102",
        "gfx1150",
        "gfx1151",
        "gfx1200",
        "gfx1201",
    }
)

# PCI vendor IDs (/sys/class/drm/renderD*/device/vendor; pci.ids).
PCI_VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}

CDI_FIX = "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (NVIDIA Container Toolkit)"

# Docker's `--gpus` hands NVIDIA GPUs over through the NVIDIA Container Toolkit's prestart hook:
# dockerd registers its "nvidia" device driver only when this program is on its PATH (moby,
# daemon/nvidia_linux.go); without it `docker run --gpus` fails with "could not select device
# driver". The toolkit's package installs it in /usr/bin.
NVIDIA_HOOK = "nvidia-container-runtime-hook"
DOCKER_GPU_FIX = (
    "install the NVIDIA Container Toolkit (package nvidia-container-toolkit), then "
    "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
)


def driver_tuple(version: str) -> tuple[int, ...]:
    """ "570.86.10" → (570, 86, 10), for comparing driver versions."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def toolkit_driver(cuda: str) -> str | None:
    """The driver CUDA release `cuda` ("12.8") shipped with (CUDA_MIN_DRIVER), None for a major
    airpods knows nothing of."""
    major = cuda.split(".")[0]
    known = sorted((v for v in CUDA_MIN_DRIVER if v.split(".")[0] == major), key=driver_tuple)
    usable = [v for v in known if driver_tuple(v) <= driver_tuple(cuda)] or known[:1]
    return CUDA_MIN_DRIVER[usable[-1]] if usable else None


def compat_driver(cuda: str) -> str | None:
    """The oldest driver that runs a program of CUDA `cuda`'s major (CUDA_COMPAT_DRIVER)."""
    return CUDA_COMPAT_DRIVER.get(cuda.split(".")[0])


def cuda_runs(cuda: str, driver: str) -> bool:
    """Whether driver `driver` ("570.86.10") is at least the one CUDA `cuda` ("12.8") shipped with."""
    needed = toolkit_driver(cuda)
    return needed is not None and driver_tuple(driver) >= driver_tuple(needed)


def llamacpp_sass(cuda: str) -> tuple[str, ...]:
    """The compute capabilities llama.cpp's CUDA image for CUDA `cuda` carries SASS for
    ("8.6", "8.9", "12.0a", ...): LLAMACPP_CUDA_SASS."""
    return tuple(arch for arch, since in LLAMACPP_CUDA_SASS if driver_tuple(cuda) >= driver_tuple(since))


def sass_runs_on(sass: tuple[str, ...], capability: str) -> bool:
    """Whether one of the SASS targets `sass` runs on a GPU of compute capability `capability`
    ("8.7"): same major and a minor at most the GPU's, or exactly it for an "a" target."""
    major, _, minor = capability.partition(".")
    for arch in sass:
        specific = arch.endswith("a")
        a_major, _, a_minor = arch.rstrip("a").partition(".")
        if a_major == major and (a_minor == minor if specific else int(a_minor or 0) <= int(minor or 0)):
            return True
    return False


def compute_capability(model: str) -> str | None:
    """The compute capability of the NVIDIA GPU named `model` ("NVIDIA H200"), None when
    COMPUTE_CAPABILITY does not list it."""
    import re

    return next((cc for pattern, cc in COMPUTE_CAPABILITY if re.search(pattern, model)), None)
