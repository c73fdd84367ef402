"""Host GPU detection from a root path (tests point it at a fake device tree), and what it means
for a container: the image variant and the podman device flags."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Vendor = Literal["nvidia", "amd", "other", "none"]
Variant = Literal["cpu", "cuda", "rocm", "vulkan"]

CDI_DIRS = ("etc/cdi", "var/run/cdi", "run/cdi")
NVIDIA_LEGACY = ("dev/nvidia0", "dev/nvidiactl", "dev/nvidia-uvm", "dev/nvidia-uvm-tools")
VENDOR_VARIANT: dict[str, Variant] = {"nvidia": "cuda", "amd": "rocm", "other": "vulkan", "none": "cpu"}


@dataclass(frozen=True)
class HostGpu:
    vendor: Vendor
    cdi: bool = False  # NVIDIA: a CDI spec names nvidia.com/gpu
    nodes: tuple[str, ...] = ()  # device nodes present, as container paths (/dev/...)

    @property
    def variant(self) -> Variant:
        return VENDOR_VARIANT[self.vendor]

    def describe(self) -> str:
        if self.vendor == "none":
            return "no GPU found: CPU images"
        how = {
            "nvidia": "CDI nvidia.com/gpu=all" if self.cdi else "legacy /dev/nvidia* devices (no CDI spec)",
            "amd": "/dev/kfd + /dev/dri",
            "other": "/dev/dri",
        }[self.vendor]
        return f"{self.vendor} GPU: {self.variant} images, {how}"


def _has_nvidia_cdi(root: Path) -> bool:
    for folder in CDI_DIRS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for spec in sorted(directory.iterdir()):
            if spec.suffix in (".yaml", ".yml", ".json"):
                try:
                    if "nvidia.com/gpu" in spec.read_text(errors="replace") or "nvidia.com" in spec.name:
                        return True
                except OSError:
                    continue
    return False


def detect_gpu(root: str | Path = "/") -> HostGpu:
    """NVIDIA (device nodes or the driver's proc file), AMD (/dev/kfd), any other DRM render
    node (Vulkan), else none. Reads only files; runs no program."""
    root = Path(root)
    if (root / "dev/nvidia0").exists() or (root / "proc/driver/nvidia/version").exists():
        nodes = tuple("/" + n for n in NVIDIA_LEGACY if (root / n).exists())
        return HostGpu("nvidia", cdi=_has_nvidia_cdi(root), nodes=nodes)
    dri = root / "dev/dri"
    has_render = dri.is_dir() and any(p.name.startswith("renderD") for p in dri.iterdir())
    if (root / "dev/kfd").exists():
        return HostGpu("amd", nodes=("/dev/kfd",) + (("/dev/dri",) if dri.is_dir() else ()))
    if has_render:
        return HostGpu("other", nodes=("/dev/dri",))
    return HostGpu("none")


@dataclass(frozen=True)
class GpuRequest:
    """How this host's GPU is handed to a container: `devices` are CDI names
    (nvidia.com/gpu=all) or device nodes; `keep_groups` keeps the user's supplementary groups
    (render/video), which ROCm's nodes need when rootless."""

    vendor: str
    devices: tuple[str, ...]
    keep_groups: bool = False


def gpu_request(gpu: HostGpu) -> GpuRequest | None:
    """The request for this host's GPU, None when there is none."""
    if gpu.vendor == "nvidia":
        return GpuRequest("nvidia", ("nvidia.com/gpu=all",) if gpu.cdi else tuple(gpu.nodes))
    if gpu.vendor == "amd":
        return GpuRequest("amd", tuple(gpu.nodes), keep_groups=True)
    if gpu.vendor == "other":
        return GpuRequest("other", ("/dev/dri",))
    return None


def detect_host_gpu() -> HostGpu:
    """This host's GPU. AIRPODS_HOST_ROOT points detection at another tree (tests, doctor)."""
    return detect_gpu(os.environ.get("AIRPODS_HOST_ROOT", "/"))
