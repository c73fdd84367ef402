"""Where llama-server put each model, in its own words: the devices its CUDA backend found, the
layers it offloaded, the buffers it allocated per device, and the CUDA error when its GPU backend
failed. Pure: it reads log lines (engine.logs_tail of the container) and returns data; the
use cases decide what to say (usecases/placement.py).

The lines it reads, as llama.cpp prints them (llama.cpp master, 2026):
- ggml/src/ggml-cuda/ggml-cuda.cu, ggml_cuda_init: "ggml_cuda_init: found %d CUDA devices (Total
  VRAM: %zu MiB):" (older builds: "found %d CUDA devices:"), one "  Device %d: %s, compute
  capability %d.%d, VMM: %s, VRAM: %zu MiB" each (older builds end at VMM), or
  "ggml_cuda_init: failed to initialize CUDA: %s" with cudaGetErrorString's words;
- ggml/src/ggml-backend-reg.cpp: "load_backend: loaded CUDA backend from /app/libggml-cuda.so";
- src/llama-model.cpp (load_tensors): "offloaded %d/%d layers to GPU" (no such line when no GPU
  backend has a device) and "%12s model buffer size = %8.2f MiB" per buffer (CUDA0, CPU_Mapped…);
  print_info: "n_layer = %u";
- src/llama-kv-cache.cpp: "%10s KV buffer size = %8.2f MiB"; src/llama-context.cpp:
  "%10s compute buffer size = %8.2f MiB";
- tools/server/server-models.cpp (router mode): "spawning server instance with name=%s on port %d",
  and every line of that child forwarded as "[%5d] %s" with its port.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

ROUTER = ""  # the key of what the router (or a single-model server) itself says

_CHILD = re.compile(r"^\[\s*(\d+)\] ?(.*)$")
_SPAWN = re.compile(r"spawning server instance with name=(\S+) on port (\d+)")
_FOUND = re.compile(r"ggml_cuda_init: found (\d+) CUDA devices")
_DEVICE = re.compile(r"^\s+Device (\d+): (.+?), compute capability (\d+\.\d+)(?:, VMM: \w+)?(?:, VRAM: (\d+) MiB)?")
_FAILED = re.compile(r"ggml_cuda_init: failed to initialize CUDA: (.+)$")
_BACKEND = re.compile(r"load_backend: loaded (\S+) backend from")
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"^\w+:\s+(\S+) (model|KV|compute) buffer size =\s+([\d.]+) MiB")
_N_LAYER = re.compile(r"print_info: n_layer\s+=\s+(\d+)")
_LOADING = re.compile(r"loading model '([^']+)'")
_CUDA_ERROR = re.compile(r"CUDA error: (.+)$")
_HOST_BUFFERS = ("CPU", "CUDA_Host")  # buffers in the host's memory (CPU_Mapped, CPU_REPACK, CUDA_Host…)


@dataclass(frozen=True)
class GpuDevice:
    """One device ggml's CUDA backend found: CUDA0 is index 0."""

    index: int
    model: str  # "NVIDIA H200"
    capability: str  # compute capability, "9.0"
    vram_mib: int | None = None  # None from builds that do not print it

    @property
    def name(self) -> str:
        return f"CUDA{self.index}"


@dataclass
class Placement:
    """What one llama-server process said about where its model runs. `buffers` maps
    (kind, buffer name) to MiB, kind being "model", "KV" or "compute"."""

    model: str = ""
    devices: list[GpuDevice] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)  # "CUDA", "CPU"… as load_backend said
    layers_on_gpu: int | None = None
    layers: int | None = None  # the model's layers as llama.cpp counts them (n_layer + 1: the output)
    buffers: dict[tuple[str, str], float] = field(default_factory=dict)
    cuda_error: str | None = None  # why CUDA failed, in the CUDA runtime's words

    @property
    def gpus(self) -> list[str]:
        """The GPU buffers holding model layers ("CUDA0"), in order."""
        return [name for kind, name in self.buffers if kind == "model" and not name.startswith(_HOST_BUFFERS)]

    @property
    def where(self) -> str:
        """ "CUDA0" (or "CUDA0,CUDA1") when layers went to a GPU, "CPU" when none did, "" when the
        log said nothing of the model (not loaded yet, or the lines were rotated out)."""
        if self.layers is None and not self.buffers:
            return ""
        return ",".join(self.gpus) if self.layers_on_gpu and self.gpus else "CPU"

    @property
    def partial(self) -> bool:
        return bool(self.layers_on_gpu and self.layers and self.layers_on_gpu < self.layers)

    def gpu_mib(self, kind: str) -> float:
        """MiB of `kind` buffers ("model", "KV", "compute") in GPU memory."""
        return sum(v for (k, n), v in self.buffers.items() if k == kind and not n.startswith(_HOST_BUFFERS))

    def describe(self) -> str:
        """'tiny on CUDA0 (NVIDIA H200, 139 GiB): 33/33 layers' or 'tiny on the CPU: 33 layers'."""
        layers = f"{self.layers_on_gpu or 0}/{self.layers} layers" if self.layers else "layers unknown"
        if self.where in ("", "CPU"):
            return f"{self.model or 'its model'} on the CPU" + (f": {self.layers} layers" if self.layers else "")
        shown = []
        for name in self.gpus:
            device = next((d for d in self.devices if d.name == name), None)
            size = f", {device.vram_mib // 1024} GiB" if device and device.vram_mib else ""
            shown.append(f"{name} ({device.model}{size})" if device else name)
        rest = " (the rest on the CPU)" if self.partial else ""
        return f"{self.model or 'its model'} on {' + '.join(shown)}: {layers}{rest}"

    def to_json(self) -> dict[str, object]:
        kinds: dict[str, dict[str, float]] = {}
        for (kind, name), mib in self.buffers.items():
            kinds.setdefault(kind.lower(), {})[name] = mib
        return {
            "model": self.model,
            "where": self.where or None,
            "layers_on_gpu": self.layers_on_gpu if self.layers is not None else None,
            "layers": self.layers,
            "devices": [
                {"name": d.name, "model": d.model, "capability": d.capability, "vram_mib": d.vram_mib}
                for d in self.devices
            ],
            "buffers_mib": kinds,
            "cuda_error": self.cuda_error,
        }


# What llama-server's logger puts before a message: its time since start and the level letter
# ("0.00.009.612 I load_tensors: ..."; common/log.cpp, with --log-timestamps and --log-prefix).
_PREFIX = re.compile(r"^(?:\d+\.\d+\.\d+\.\d+ )?[IWEDT] (?=\S|\s+Device)")


def _read_line(placement: Placement, line: str) -> None:
    """Fold one log line into `placement` (its logger's prefix, if any, dropped)."""
    line = _PREFIX.sub("", line, count=1)
    if m := _FAILED.search(line):
        placement.cuda_error = m.group(1).strip()
    elif m := _CUDA_ERROR.search(line):
        placement.cuda_error = placement.cuda_error or m.group(1).strip()
    elif _FOUND.search(line):
        placement.devices.clear()  # a process prints its devices once; a restarted one anew
    elif m := _DEVICE.match(line):
        vram = int(m.group(4)) if m.group(4) else None
        placement.devices.append(GpuDevice(int(m.group(1)), m.group(2), m.group(3), vram))
    elif m := _BACKEND.search(line):
        if m.group(1) not in placement.backends:
            placement.backends.append(m.group(1))
    elif m := _OFFLOADED.search(line):
        placement.layers_on_gpu, placement.layers = int(m.group(1)), int(m.group(2))
    elif m := _N_LAYER.search(line):
        if placement.layers is None or placement.layers_on_gpu is None:
            placement.layers, placement.layers_on_gpu = int(m.group(1)) + 1, 0  # no GPU line follows without a GPU
    elif m := _BUFFER.match(line):
        placement.buffers[(m.group(2), m.group(1))] = float(m.group(3))
    elif m := _LOADING.search(line):
        placement.model = placement.model or PurePosixPath(m.group(1)).stem


def parse_log(lines: Iterable[str]) -> dict[str, Placement]:
    """The placements a llama-server log tells of: in router mode one per model it spawned (by
    model name, its child's forwarded lines), plus ROUTER for the lines of the process itself (a
    single-model server's model, or the router's own device list). A model loaded twice (unloaded
    and loaded again, on a new port) is what its latest load said. The router's own lines and its
    children's may come in either order (an engine gives stdout and stderr apart): a child's
    lines are told by its port alone."""
    router = Placement()
    children: dict[str, Placement] = {}  # port → what that child said
    spawned: dict[str, str] = {}  # model name → the port of its latest load
    for raw in lines:
        line = raw.rstrip("\n")
        if m := _SPAWN.search(line):
            spawned[m.group(1)] = m.group(2)
            continue
        child = _CHILD.match(line)
        if child:
            _read_line(children.setdefault(child.group(1), Placement()), child.group(2))
        else:
            _read_line(router, line)
    placements = {ROUTER: router}
    for name, port in spawned.items():
        placement = children.get(port, Placement())
        placement.model = name
        placements[name] = placement
    return placements


def model_placements(lines: Iterable[str]) -> list[Placement]:
    """The placements of the models a log tells of (a router's children, or a single server's
    model), without the router's own entry."""
    found = parse_log(lines)
    children = [p for name, p in found.items() if name != ROUTER]
    if children:
        router = found[ROUTER]
        for child in children:  # a child that died before it printed devices: the router's view
            child.devices = child.devices or list(router.devices)
        return children
    single = found[ROUTER]
    return [single] if single.where or single.cuda_error else []
