"""Facts about GPUs and their software that airpods decides by, each with its source.

Update them from the sources named when a new CUDA release or ROCm image appears."""

from __future__ import annotations

# The minimum Linux x86_64 driver for each CUDA release: NVIDIA CUDA Toolkit Release Notes,
# Table 3 "CUDA Toolkit and Corresponding Driver Versions" (docs.nvidia.com/cuda/
# cuda-toolkit-release-notes). airpods asks the driver of the release itself (not the looser
# minor-version compatibility, whose limits depend on the program); a release missing here counts
# as the closest one listed below it of the same major (an image for 13.4 needs at least 13.0's).
CUDA_MIN_DRIVER: dict[str, str] = {
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.4": "550.54.14",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "13.0": "580.65.06",
}

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


def cuda_runs(cuda: str, driver: str) -> bool:
    """Whether an image built for CUDA `cuda` ("12.8") runs on NVIDIA driver `driver` ("570.86.10")."""
    major = cuda.split(".")[0]
    known = sorted((v for v in CUDA_MIN_DRIVER if v.split(".")[0] == major), key=driver_tuple)
    usable = [v for v in known if driver_tuple(v) <= driver_tuple(cuda)] or known[:1]
    if not usable:
        return False
    return driver_tuple(driver) >= driver_tuple(CUDA_MIN_DRIVER[usable[-1]])
