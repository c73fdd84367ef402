"""Host GPU detection from a root path (tests point it at a fake device tree), and the decision
for each service: which image variant can really use this host's GPU, how the GPU is handed to
the container, and why — or the CPU image and the reason (the fix) when it cannot.

Reads only files, runs no program. Facts it decides by (CUDA's minimum drivers, the ROCm
image's gfx targets) are in gpu_facts.py with their sources."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from airpods.errors import RuntimeFailure
from airpods.gpu_facts import (
    CDI_FIX,
    DISABLE_REQUIRES,
    DOCKER_GPU_FIX,
    DRIVER_FIX,
    LLAMACPP_IMAGE,
    NVIDIA_HOOK,
    PCI_VENDORS,
    ROCM_TARGETS,
    compat_driver,
    compute_capability,
    cuda_runs,
    driver_tuple,
    llamacpp_sass,
    sass_runs_on,
    toolkit_driver,
)

Vendor = Literal["nvidia", "amd", "intel", "other", "none"]
Variant = Literal["cpu", "cuda", "rocm", "vulkan"]

CDI_DIRS = ("etc/cdi", "var/run/cdi", "run/cdi")
NVIDIA_NODES = ("dev/nvidia0", "dev/nvidiactl", "dev/nvidia-uvm", "dev/nvidia-uvm-tools")
CUDA_KEY_RE = re.compile(r"^cuda(?:-(\d+\.\d+))?\Z")


@dataclass(frozen=True)
class GpuCard:
    """One AMD, Intel or other DRM GPU of the host."""

    vendor: str
    render: str  # its render node, /dev/dri/renderD128
    gfx: str | None = None  # AMD: its ROCm target (from the KFD topology)
    vram: int = 0  # bytes of dedicated memory (an APU has little)
    index: int = 0  # AMD: its index for ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES (KFD order)


@dataclass(frozen=True)
class HostGpu:
    vendor: Vendor
    cdi: bool = False  # NVIDIA: the engine can hand it over (Podman: a usable CDI spec; Docker: --gpus)
    nodes: tuple[str, ...] = ()  # device nodes present, as container paths (/dev/...)
    driver: str | None = None  # NVIDIA: the kernel module's version
    problem: str | None = None  # why the GPU cannot be handed over as it is, and the fix
    cdi_names: tuple[str, ...] = ()  # NVIDIA: the device names the CDI spec offers ("0", "all")
    cards: tuple[GpuCard, ...] = ()  # AMD/Intel/other: the discrete (most VRAM) first
    groups: tuple[int, ...] = ()  # the group IDs that own the device nodes
    runtime: str = "crun"  # the OCI runtime podman uses (crun honours --group-add keep-groups)
    handover: str = "CDI"  # NVIDIA: how the engine hands it over: "CDI" (Podman) or "--gpus" (Docker)
    models: tuple[str, ...] = ()  # NVIDIA: the GPUs' model names ("NVIDIA H200"), in the driver's order

    def describe(self) -> str:
        if self.vendor == "none":
            return "no GPU found: CPU images"
        if self.vendor == "nvidia":
            usable = "CDI nvidia.com/gpu" if self.handover == "CDI" else "Docker --gpus"
            how = usable if self.cdi else f"no usable {self.handover}"
            return f"nvidia GPU, driver {self.driver or 'unknown'}: {how}" + (
                f" ({self.problem})" if self.problem else ""
            )
        cards = ", ".join(
            f"{c.gfx or c.vendor} {c.render}" + (f" {c.vram // 2**20} MiB" if c.vram else "") for c in self.cards
        )
        return f"{self.vendor} GPU: {cards or ', '.join(self.nodes)}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _cdi(root: Path) -> tuple[bool, tuple[str, ...], str | None]:
    """(usable, device names, problem) of the host's NVIDIA CDI specs: a spec is usable when it
    parses, names nvidia.com/gpu and every device node it lists exists (a spec left from an older
    driver or another boot lists nodes that are gone, and every GPU container then fails)."""
    import yaml

    found: list[Path] = []
    for folder in CDI_DIRS:
        directory = root / folder
        if directory.is_dir():
            found += sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    problems = []
    for spec in found:
        text = _read(spec)
        try:
            data: Any = yaml.safe_load(text or "")
        except yaml.YAMLError:
            data = None
        if not isinstance(data, dict) or data.get("kind") != "nvidia.com/gpu":
            if "nvidia" in (text or "") and not isinstance(data, dict):
                problems.append(f"the CDI spec /{spec.relative_to(root)} cannot be read")
            continue
        devices = [d for d in data.get("devices") or [] if isinstance(d, dict)]
        edits = [data.get("containerEdits") or {}] + [d.get("containerEdits") or {} for d in devices]
        nodes = [
            n.get("path")
            for e in edits
            if isinstance(e, dict)
            for n in e.get("deviceNodes") or []
            if isinstance(n, dict)
        ]
        missing = [n for n in nodes if isinstance(n, str) and not (root / n.lstrip("/")).exists()]
        if missing:
            problems.append(f"the CDI spec /{spec.relative_to(root)} lists {missing[0]}, which does not exist (stale)")
            continue
        return True, tuple(str(d.get("name")) for d in devices), None
    problem = problems[0] if problems else "no CDI spec names nvidia.com/gpu"
    return False, (), f"{problem}; fix: {CDI_FIX}"


def _gfx(version: int) -> str:
    """KFD's gfx_target_version (110000, 90010) as a target name (gfx1100, gfx90a)."""
    major, minor, step = version // 10000, version // 100 % 100, version % 100
    return f"gfx{major}{minor:x}{step:x}"


def _amd_cards(root: Path) -> list[GpuCard]:
    """The GPUs in the KFD topology (/sys/class/kfd/kfd/topology/nodes/*/properties: CPU nodes
    have no SIMDs), their gfx target, render node and VRAM, the discrete one (most VRAM) first."""
    cards: list[GpuCard] = []
    nodes = root / "sys/class/kfd/kfd/topology/nodes"
    numbered = (
        sorted((p for p in nodes.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) if nodes.is_dir() else []
    )
    for node in numbered:
        props = dict(line.split(None, 1) for line in (_read(node / "properties") or "").splitlines() if " " in line)
        minor = _number(props.get("drm_render_minor"))
        if not _number(props.get("simd_count")) or minor is None:
            continue  # a CPU node, or a GPU without a render node (nothing to hand a container)
        vram = _number(_read(root / f"sys/class/drm/renderD{minor}/device/mem_info_vram_total")) or 0
        target = _number(props.get("gfx_target_version"))
        cards.append(GpuCard("amd", f"/dev/dri/renderD{minor}", _gfx(target) if target else None, vram, len(cards)))
    return sorted(cards, key=lambda c: -c.vram)


def _number(text: str | None) -> int | None:
    """A sysfs number, None when the file or value is missing or not a number."""
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def _drm_cards(root: Path) -> list[GpuCard]:
    dri = root / "dev/dri"
    renders = sorted(p.name for p in dri.iterdir() if p.name.startswith("renderD")) if dri.is_dir() else []
    cards = []
    for render in renders:
        vendor = (_read(root / f"sys/class/drm/{render}/device/vendor") or "").strip().lower()
        cards.append(GpuCard(PCI_VENDORS.get(vendor, "other"), f"/dev/dri/{render}"))
    return cards


def _groups(root: Path, nodes: Sequence[str]) -> tuple[int, ...]:
    gids = []
    for node in nodes:
        path = root / node.lstrip("/")
        for entry in [path, *sorted(path.iterdir())] if path.is_dir() else [path]:
            try:
                gid = entry.stat().st_gid
            except OSError:
                continue
            if gid and gid not in gids:
                gids.append(gid)
    return tuple(gids)


def _runtime(root: Path) -> str:
    """The OCI runtime podman uses: containers.conf's `[engine] runtime` (the files podman reads,
    CONTAINERS_CONF first), else crun when installed, else runc."""
    user = os.environ.get("HOME") or os.path.expanduser("~")  # "~" itself when no home: no such file
    confs = [os.environ.get("CONTAINERS_CONF", ""), os.path.join(user, ".config/containers/containers.conf")]
    confs += [str(root / "etc/containers/containers.conf"), str(root / "usr/share/containers/containers.conf")]
    for conf in filter(None, confs):
        found = re.search(r'(?m)^\s*runtime\s*=\s*"([^"]+)"', _read(Path(conf)) or "")
        if found:
            return found.group(1)
    return "crun" if any((root / d / "crun").exists() for d in ("usr/bin", "usr/local/bin")) else "runc"


def _docker_gpus(root: Path) -> tuple[bool, tuple[str, ...], str | None]:
    """(usable, device names, problem) of NVIDIA GPUs for Docker's --gpus: the toolkit's hook
    must be installed (gpu_facts.NVIDIA_HOOK); the names are the /dev/nvidiaN indexes and "all"."""
    hooked = any((root / d / NVIDIA_HOOK).exists() for d in ("usr/bin", "usr/local/bin", "usr/sbin"))
    dev = root / "dev"
    indexes = sorted(int(p.name[6:]) for p in dev.glob("nvidia*") if p.name[6:].isdigit()) if dev.is_dir() else []
    names = (*(str(i) for i in indexes), "all")
    if not hooked:
        return False, names, f"{NVIDIA_HOOK} is not installed; fix: {DOCKER_GPU_FIX}"
    return True, names, None


def _nvidia_models(root: Path) -> tuple[str, ...]:
    """The NVIDIA GPUs' model names from the driver's /proc/driver/nvidia/gpus/<PCI address>/
    information files ("Model:           NVIDIA H200"), in PCI order."""
    folder = root / "proc/driver/nvidia/gpus"
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    found = (re.search(r"(?m)^Model:\s*(.+?)\s*$", _read(e / "information") or "") for e in entries)
    return tuple(m.group(1) for m in found if m)


def detect_gpu(root: str | Path = "/", engine: str = "podman") -> HostGpu:
    """NVIDIA (device nodes or the driver's proc file), AMD (/dev/kfd), any other DRM render
    node (Intel and others: Vulkan), else none. NVIDIA's handover depends on the engine: a CDI
    spec for Podman, the NVIDIA Container Toolkit's hook for Docker's --gpus."""
    root = Path(root)
    runtime = _runtime(root)
    if (root / "dev/nvidia0").exists() or (root / "proc/driver/nvidia/version").exists():
        found = re.search(r"Kernel Module\s+([\d.]+)", _read(root / "proc/driver/nvidia/version") or "")
        usable, names, problem = _docker_gpus(root) if engine == "docker" else _cdi(root)
        nodes = tuple("/" + n for n in NVIDIA_NODES if (root / n).exists())
        driver = found.group(1) if found else None
        handover = "--gpus" if engine == "docker" else "CDI"
        return HostGpu(
            "nvidia",
            usable,
            nodes,
            driver,
            problem,
            names,
            (),
            _groups(root, nodes),
            runtime,
            handover,
            _nvidia_models(root),
        )
    if (root / "dev/kfd").exists():
        cards = tuple(_amd_cards(root)) or tuple(c for c in _drm_cards(root))
        nodes = ("/dev/kfd",) + (("/dev/dri",) if (root / "dev/dri").is_dir() else ())
        return HostGpu("amd", nodes=nodes, cards=cards, groups=_groups(root, nodes), runtime=runtime)
    cards = tuple(_drm_cards(root))
    if cards:
        vendor: Vendor = "intel" if cards[0].vendor == "intel" else "other"
        return HostGpu(vendor, nodes=("/dev/dri",), cards=cards, groups=_groups(root, ["/dev/dri"]), runtime=runtime)
    return HostGpu("none", runtime=runtime)


@dataclass(frozen=True)
class GpuRequest:
    """How this host's GPU is handed to a container: `devices` are CDI names
    (nvidia.com/gpu=all) or device nodes; `keep_groups` keeps the user's supplementary groups
    (crun only), `groups` adds the groups that own the nodes by ID (runc, which ignores
    keep-groups)."""

    vendor: str
    devices: tuple[str, ...]
    keep_groups: bool = False
    groups: tuple[int, ...] = ()


@dataclass(frozen=True)
class GpuChoice:
    """A service's GPU decision: the image variant key (cpu, cuda, cuda-12.8, rocm, vulkan), its
    family, the request, env for the container, and why; `warning` when a GPU is there but goes
    unused."""

    key: str
    variant: Variant
    request: GpuRequest | None = None
    env: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    warning: str | None = None


class GpuUnavailable(RuntimeFailure):
    """`gpu.enabled = "required"` and this host's GPU cannot be used."""


def _node_access(host: HostGpu) -> dict[str, Any]:
    """Both ways to open the nodes: podman uses keep-groups under crun, else the group IDs;
    Docker, which has no keep-groups, always the IDs."""
    return {"keep_groups": host.runtime == "crun", "groups": host.groups}


def choose_gpu(
    host: HostGpu,
    service: str,
    enabled: bool | str,
    force_cpu: bool,
    devices: Sequence[int] | None,
    variants: Collection[str],
) -> GpuChoice:
    """The GPU decision for one service (see the module docstring). `variants` are the image
    keys the service offers (a plain image: just "cpu"), or a mapping of them to their images
    (which lets the CUDA decision use what is known of an image's machine code). Raises GpuUnavailable when the
    service requires a GPU it cannot get; RuntimeFailure for `devices` the host lacks."""

    def on_cpu(reason: str, warn: bool = True) -> GpuChoice:
        if enabled == "required":
            raise GpuUnavailable(
                f'{service} requires a GPU (gpu.enabled = "required"), but {reason}',
                hint="fix that, or set gpu.enabled = true to fall back to the CPU image",
            )
        return GpuChoice(
            "cpu",
            "cpu",
            reason=f"CPU image: {reason}",
            warning=f"{service} runs on the CPU: {reason}" if warn else None,
        )

    if not enabled:
        return GpuChoice("cpu", "cpu")  # no GPU asked for: nothing to say
    if force_cpu:
        return GpuChoice("cpu", "cpu", reason="CPU image (gpu.force_cpu)")
    if host.vendor == "none":
        return on_cpu("no GPU was found", warn=False)
    if host.vendor == "nvidia":
        return _nvidia(host, service, devices, variants, on_cpu)
    if host.vendor == "amd":
        return _amd(host, service, devices, variants, on_cpu)
    if "vulkan" not in variants:
        return on_cpu(f"its image has no Vulkan variant for the {host.vendor} GPU")
    picked = _pick(list(host.cards), devices, service)
    nodes = tuple(dict.fromkeys(c.render for c in picked)) if devices else ("/dev/dri",)
    request = GpuRequest(host.vendor, nodes, **_node_access(host))
    return GpuChoice("vulkan", "vulkan", request, reason=f"Vulkan image on the {host.vendor} GPU ({', '.join(nodes)})")


def _pick(cards: list[GpuCard], devices: Sequence[int] | None, service: str) -> list[GpuCard]:
    """The cards `gpu.devices` names (indexes in the order airpods lists them: discrete first)."""
    if not devices:
        return cards[:1]
    missing = [i for i in devices if i >= len(cards)]
    if missing:
        raise RuntimeFailure(
            f"services.{service}.gpu.devices asks for GPU {missing[0]}, but this host has {len(cards)}",
            hint="`airpods doctor` lists the GPUs (discrete first, from 0)",
        )
    return [cards[i] for i in devices]


@dataclass(frozen=True)
class CudaFit:
    """Whether one CUDA image runs on the host's driver and GPU: `how` is "driver" (the driver is
    at least the one its CUDA release shipped with), "compat" (CUDA minor-version compatibility:
    an older driver of the same major, the GPU covered by the image's machine code or not known)
    or "no", and `why` the reason in the user's words."""

    key: str
    cuda: str
    how: Literal["driver", "compat", "no"]
    why: str = ""


def cuda_fit(key: str, cuda: str, image: str | None, host: HostGpu) -> CudaFit:
    """The CudaFit of the image `image` (variant `key`, CUDA `cuda`; "" when its key names no
    release) on `host`. Facts and their sources: gpu_facts (CUDA_MIN_DRIVER, CUDA_COMPAT_DRIVER,
    LLAMACPP_CUDA_SASS, COMPUTE_CAPABILITY)."""
    if not cuda:
        return CudaFit(key, cuda, "driver")  # a plain "cuda" key: its release is not known
    driver = host.driver
    if driver and cuda_runs(cuda, driver):
        return CudaFit(key, cuda, "driver")
    oldest = compat_driver(cuda)
    if not driver or not oldest or driver_tuple(driver) < driver_tuple(oldest):
        shown = f"NVIDIA driver {driver}" if driver else "the NVIDIA driver's version is unknown and"
        return CudaFit(
            key, cuda, "no", f"{shown} is too old for CUDA {cuda} images (they need {oldest or '?'} or newer)"
        )
    sass = llamacpp_sass(cuda) if image and image.startswith(LLAMACPP_IMAGE + ":") else None
    needed = toolkit_driver(cuda)
    for model in host.models:
        capability = compute_capability(model)
        if sass is not None and capability and not sass_runs_on(sass, capability):
            return CudaFit(
                key,
                cuda,
                "no",
                f"the CUDA {cuda} image has no machine code for the {model} (compute capability {capability}); "
                f"running it means compiling the image's PTX, which needs NVIDIA driver {needed} or newer, "
                f"and this host has {driver}",
            )
    return CudaFit(key, cuda, "compat")


def _nvidia(host: HostGpu, service: str, devices: Sequence[int] | None, variants: Collection[str], on_cpu) -> GpuChoice:
    if not host.cdi:
        return on_cpu(
            f"the NVIDIA GPU cannot be handed over ({host.problem}); raw /dev/nvidia* nodes do not bring "
            "the driver's libraries into the container"
        )
    images = variants if isinstance(variants, Mapping) else {}
    cudas = {key: (m.group(1) or "") for key in variants if (m := CUDA_KEY_RE.match(key))}
    if not cudas:
        return on_cpu("its image has no CUDA variant")
    fits = [cuda_fit(key, version, images.get(key), host) for key, version in cudas.items()]
    runnable = [f for f in fits if f.how != "no"]
    if not runnable:
        needs = sorted(fits, key=lambda f: driver_tuple(f.cuda or "0"))
        return on_cpu(f"{'; '.join(f.why for f in needs)}; update the NVIDIA driver ({DRIVER_FIX})")
    best = max(runnable, key=lambda f: (f.how == "driver", driver_tuple(f.cuda or "0")))
    if devices:
        names = tuple(f"nvidia.com/gpu={i}" for i in devices)
        absent = [str(i) for i in devices if str(i) not in host.cdi_names]
        if absent:
            raise RuntimeFailure(
                f"services.{service}.gpu.devices asks for GPU {absent[0]}, but {host.handover} offers "
                + ", ".join(host.cdi_names),
                hint="`nvidia-smi -L` lists the GPUs by index",
            )
    else:
        names = ("nvidia.com/gpu=all",)
    version = f" CUDA {best.cuda}" if best.cuda else ""
    shown = ", ".join(names if host.handover == "CDI" else (n.split("=", 1)[1] for n in names))
    reason = f"CUDA image ({best.key}{version}) on driver {host.driver or 'unknown'}, {host.handover} {shown}"
    env: tuple[tuple[str, str], ...] = ()
    if best.how == "compat":
        reason += (
            f" (older than CUDA {best.cuda}'s own driver {toolkit_driver(best.cuda)}: it runs by CUDA minor-version "
            "compatibility where the image carries machine code for the GPU; start checks where the model runs)"
        )
        if host.handover == "--gpus":
            env = (DISABLE_REQUIRES,)  # the legacy hook would refuse the image's cuda>=X.Y requirement
    return GpuChoice(best.key, "cuda", GpuRequest("nvidia", names), env, reason=reason)


def _amd(host: HostGpu, service: str, devices: Sequence[int] | None, variants: Collection[str], on_cpu) -> GpuChoice:
    cards = list(host.cards)
    if not cards:
        return on_cpu("/dev/kfd is there but the KFD topology lists no GPU")
    picked = _pick(cards, devices, service)
    unsupported = [c.gfx or "an unknown target" for c in picked if c.gfx not in ROCM_TARGETS]
    if "rocm" in variants and not unsupported:
        ids = ",".join(str(c.index) for c in picked)
        env = (("ROCR_VISIBLE_DEVICES", ids), ("HIP_VISIBLE_DEVICES", ids))
        request = GpuRequest("amd", host.nodes, **_node_access(host))
        shown = ", ".join(f"{c.gfx} {c.render}" for c in picked)
        return GpuChoice("rocm", "rocm", request, env, reason=f"ROCm image on {shown}")
    why = f"{unsupported[0]} is not a target of the ROCm image" if unsupported else "its image has no ROCm variant"
    if "vulkan" in variants:
        nodes = tuple(c.render for c in picked)
        request = GpuRequest("amd", nodes, **_node_access(host))
        return GpuChoice("vulkan", "vulkan", request, reason=f"Vulkan image on {', '.join(nodes)}: {why}")
    return on_cpu(why)


def detect_host_gpu(engine: str = "podman") -> HostGpu:
    """This host's GPU as `engine` hands it over. AIRPODS_HOST_ROOT points detection at another
    tree (tests, doctor)."""
    return detect_gpu(os.environ.get("AIRPODS_HOST_ROOT", "/"), engine)
