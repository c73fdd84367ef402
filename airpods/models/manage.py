"""Model use cases: which volume, who serves what, rm/import/quantize/convert, and reloading
router-mode servers after the volume changed."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from airpods.engine.base import Engine, OneOff
from airpods.errors import RuntimeFailure, UsageError
from airpods.models.gguf_meta import ModelInfo, check_magic, read_model
from airpods.models.store import ModelStore
from airpods.stack.build import MODEL_VOLUME_TARGET as MODELS_DIR
from airpods.stack.model import Mount, ServiceSpec, Stack
from airpods.stack.wiring import LLAMACPP

QUANT_TYPES = (
    "Q2_K",
    "Q2_K_S",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_0",
    "Q4_1",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_0",
    "Q5_1",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
    "F16",
    "BF16",
    "F32",
    "IQ1_S",
    "IQ1_M",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ3_XXS",
    "IQ3_XS",
    "IQ3_S",
    "IQ3_M",
    "IQ4_NL",
    "IQ4_XS",
    "TQ1_0",
    "TQ2_0",
    "COPY",
)


def llama_instances(stack: Stack) -> list[ServiceSpec]:
    return [s for s in stack.services if s.kind == LLAMACPP]


def model_volume(stack: Stack) -> str:
    for spec in llama_instances(stack):
        for mount in spec.mounts:
            if mount.target == MODELS_DIR and mount.named:
                return mount.source
    raise UsageError(
        "no llama.cpp service mounts a named model volume at /models",
        hint='services.llamacpp.volumes needs { source = "airpods_llamacpp_models", target = "/models" }',
    )


def configured_model(spec: ServiceSpec) -> str | None:
    """The file a single-model instance serves (--model /models/F), None in router mode."""
    args = list(spec.args)
    for flag in ("--model", "-m"):
        if flag in args and args.index(flag) + 1 < len(args):
            return args[args.index(flag) + 1].removeprefix(MODELS_DIR + "/")
    return None


def tool_image(image: str, target: str) -> str:
    """The official image of another target for the same backend: :server-cuda → :full-cuda."""
    repo, _, tag = image.rpartition(":")
    if not repo or not re.match(r"^server(-|$)", tag):
        raise RuntimeFailure(
            f"cannot tell the llama.cpp :{target} image that goes with {image}",
            hint="use an official ghcr.io/ggml-org/llama.cpp:server* image for llamacpp",
        )
    return f"{repo}:{target}{tag[len('server') :]}"


def serving(stack: Stack, running: set[str]) -> dict[str, list[str]]:
    """file → running instances that can serve it ('*' = every file, router mode)."""
    table: dict[str, list[str]] = {}
    for spec in llama_instances(stack):
        if spec.container in running:
            table.setdefault(configured_model(spec) or "*", []).append(spec.name)
    return table


def list_models(store: ModelStore, stack: Stack, running: set[str]) -> list[dict[str, object]]:
    served = serving(stack, running)
    rows = []
    for path in store.files():
        info = read_model(path)
        rows.append(
            {
                **info.summary(),
                "file": str(path.relative_to(store.root)),
                "backend": "llamacpp",
                "served_by": sorted(set(served.get(path.name, []) + served.get("*", []))),
            }
        )
    return rows


def inspect_model(store: ModelStore, name: str) -> ModelInfo:
    return read_model(store.path(name), full=True)


def remove_model(store: ModelStore, stack: Stack, name: str, force: bool) -> Path:
    path = store.path(name)
    users = [s.name for s in llama_instances(stack) if configured_model(s) == path.name]
    if users and not force:
        raise UsageError(
            f"{path.name} is the configured model of {', '.join(users)}; it was kept",
            hint="change their command_args.model first, or pass --force",
        )
    path.unlink()
    return path


def import_model(store: ModelStore, source: Path, name: str | None, overwrite: bool, progress) -> Path:
    if not source.is_file():
        raise UsageError(f"{source} is not a file")
    read_model(source)  # not GGUF, or a damaged header: refused before anything is copied
    return store.copy_in(
        source, name or source.name, overwrite=overwrite, progress=progress(source.name, source.stat().st_size)
    )


def models_mount(volume: str, mode: str = "rw") -> Mount:
    return Mount(volume, MODELS_DIR, mode, True)


def quantize_model(
    engine: Engine, store: ModelStore, stack: Stack, src: str, qtype: str, name: str | None, overwrite: bool
) -> Path:
    """llama-quantize in a one-off container of the :full image (its tools.sh --quantize)."""
    qtype = qtype.upper()
    if qtype not in QUANT_TYPES:
        raise UsageError(f"unknown quantization type {qtype}", hint="types: " + ", ".join(QUANT_TYPES))
    source = store.path(src)
    out = name or re.sub(r"(?i)[-.](F32|F16|BF16|Q\d\w*)$", "", source.stem) + f"-{qtype}.gguf"
    store.require_space(source.stat().st_size, out)
    spec = llama_instances(stack)[0]
    with store.incoming(out, overwrite=overwrite) as partial:
        done = engine.run_one_off(
            OneOff(
                tool_image(spec.image, "full"),
                ("--quantize", f"{MODELS_DIR}/{source.name}", f"{MODELS_DIR}/{partial.name}", qtype),
                mounts=(models_mount(store.volume),),
                gpu=spec.gpu_request,
            )
        )
        if done.returncode != 0 or not partial.exists():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise RuntimeFailure(f"llama-quantize failed (exit {done.returncode}):\n{tail}")
        check_magic(partial)
    return store.root / out


def convert_model(engine: Engine, stack: Stack, volume: str, hf_dir: Path, out: str) -> None:
    """convert_hf_to_gguf.py from the :full image, where that image has it (and Python)."""
    spec = llama_instances(stack)[0]
    image = tool_image(spec.image, "full")
    probe = engine.run_one_off(
        OneOff(image, ("-c", "test -f /app/convert_hf_to_gguf.py && command -v python3"), entrypoint="/bin/sh")
    )
    if probe.returncode != 0:
        raise RuntimeFailure(
            f"{image} has no convert_hf_to_gguf.py with Python, so it cannot convert models",
            hint="the official :full image has it; a custom or trimmed image may not",
        )
    if not hf_dir.is_dir():
        raise UsageError(f"{hf_dir} is not a folder (a Hugging Face model folder with config.json)")
    done = engine.run_one_off(
        OneOff(
            image,
            ("--convert", "/input", "--outfile", f"{MODELS_DIR}/{out}"),
            mounts=(Mount(str(hf_dir.resolve()), "/input", "ro", False), models_mount(volume)),
        )
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise RuntimeFailure(f"convert_hf_to_gguf.py failed (exit {done.returncode}):\n{tail}")


def reload_routers(stack: Stack, running: set[str], key: str | None) -> list[str]:
    """Router-mode servers cache their model list: ask each running one to rescan."""
    reloaded = []
    for spec in llama_instances(stack):
        if spec.container not in running or configured_model(spec) or not spec.publish:
            continue
        request = urllib.request.Request(
            spec.publish[0].url() + "/models?reload=1", headers={"Authorization": f"Bearer {key}"} if key else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                json.load(answer)
            reloaded.append(spec.name)
        except (OSError, ValueError):
            continue
    return reloaded
