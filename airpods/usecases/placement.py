"""Where each llama.cpp service's models run, after readiness: an observation (the container's
log, read through the engine) turned into what start, status and top say. The parsing is
placement.py; the judgement (a GPU service on the CPU, and why, and the fix) is `judge`, pure."""

from __future__ import annotations

from dataclasses import dataclass

from airpods.engine.base import Engine
from airpods.gpu_facts import CDI_FIX, DRIVER_FIX
from airpods.placement import Placement, model_placements
from airpods.stack.model import ServiceSpec

LOG_LINES = 5000  # a server's start says its devices and buffers in its first few hundred lines

# What a CUDA failure means and what fixes it, by the words the CUDA runtime uses
# (cudaGetErrorString; CUDA Runtime API, "Data types used by CUDA Runtime", cudaError):
# cudaErrorInsufficientDriver (35), cudaErrorNoDevice (100), cudaErrorInvalidKernelImage (200),
# cudaErrorUnsupportedPtxVersion (222), cudaErrorSystemDriverMismatch (803),
# cudaErrorCompatNotSupportedOnDevice (804), cudaErrorMemoryAllocation (2). The compatibility-library
# trap: llama.cpp issue 23111 (an image's /usr/local/cuda/compat libraries loaded under CDI in place
# of the host's newer driver).
COMPAT_LIBS = (
    "the image's CUDA compatibility libraries were loaded in place of the host's driver",
    "use a llama.cpp CUDA image built for a CUDA release no newer than the driver's (`nvidia-smi` shows it), "
    'e.g. services.<name>.image = { "cuda-12.8" = "ghcr.io/ggml-org/llama.cpp:server-cuda" }',
)
NO_MACHINE_CODE = (
    "the image has no machine code for this GPU and the driver is too old to compile its PTX",
    f"update the NVIDIA driver to the one of the image's CUDA release or newer ({DRIVER_FIX})",
)
CAUSES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("driver version is insufficient",),
        "the host's NVIDIA driver is older than the image's CUDA runtime needs",
        f"update the NVIDIA driver ({DRIVER_FIX})",
    ),
    (
        ("no CUDA-capable device",),
        "the container sees no NVIDIA GPU",
        f"check `nvidia-smi` on the host and regenerate the CDI spec: {CDI_FIX}",
    ),
    (
        (
            "unsupported display driver / cuda driver combination",
            "forward compatibility was attempted on non supported HW",
        ),
        *COMPAT_LIBS,
    ),
    (("device kernel image is invalid", "PTX was compiled with an unsupported toolchain"), *NO_MACHINE_CODE),
    (
        ("out of memory",),
        "the GPU's memory is full",
        "a smaller model or quant, a smaller ctx_size, or stop what else uses the GPU (`nvidia-smi` lists it)",
    ),
)


@dataclass(frozen=True)
class Verdict:
    """What to say of one model's placement: `level` "ok" (said as is), "warn" or "fail"
    (a GPU service on the CPU with gpu.enabled = "required")."""

    service: str
    placement: Placement
    level: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {**self.placement.to_json(), "level": self.level, "message": self.message}


def cause_of(placement: Placement, variant: str) -> tuple[str, str]:
    """(cause, fix) of a GPU image's model on the CPU, from the CUDA error the log holds, else
    from what is missing from it."""
    error = placement.cuda_error or ""
    for said, cause, fix in CAUSES:
        if any(words.lower() in error.lower() for words in said):
            return f"{cause} (CUDA: {error})", fix
    if error:
        return f"CUDA failed: {error}", f"see `airpods logs` for the server's words; {CDI_FIX}"
    if variant == "cuda" and "CUDA" not in placement.backends:
        return (
            "the CUDA backend did not load (the driver's libraries are not in the container)",
            f"check `nvidia-smi` on the host and regenerate the CDI spec: {CDI_FIX}",
        )
    if placement.devices:
        return "the server found the GPU but offloaded no layer", "unset n_gpu_layers, or set it to all"
    return "the server found no GPU", f"check `nvidia-smi` on the host: {CDI_FIX}"


def judge(spec: ServiceSpec, placement: Placement) -> Verdict:
    """The verdict on one model of `spec`: where it runs, and for a GPU image on the CPU the
    cause and the fix (a failure when the service requires a GPU)."""
    said = f"{spec.name}: {placement.describe()}"
    if spec.variant == "cpu" or placement.where not in ("", "CPU"):
        if placement.partial:
            said += "; a smaller model, quant or ctx_size puts every layer on the GPU"
        return Verdict(spec.name, placement, "ok", said)
    if not placement.where and not placement.cuda_error:
        return Verdict(
            spec.name, placement, "ok", f"{spec.name}: where {placement.model or 'its model'} runs is not in its log"
        )
    cause, fix = cause_of(placement, spec.variant)
    image = f"its {spec.variant.upper()} image" if spec.variant in ("cuda", "rocm") else f"its {spec.variant} image"
    model = placement.model or "its model"
    message = f"{spec.name}: {model} runs on the CPU although {image} was chosen: {cause}; fix: {fix}"
    return Verdict(spec.name, placement, "fail" if spec.gpu_required else "warn", message)


def observe_placements(engine: Engine, specs: list[ServiceSpec]) -> list[Verdict]:
    """Read each llama.cpp service's log (an observation after readiness) and judge where its
    models run. Services of other kinds say nothing here."""
    verdicts = []
    for spec in specs:
        if spec.kind != "llamacpp":
            continue
        for placement in model_placements(engine.logs_tail(spec.container, LOG_LINES)):
            verdicts.append(judge(spec, placement))
    return verdicts
