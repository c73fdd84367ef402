"""Model use cases: which volume, who serves what, rm/import/quantize/convert, and reloading
router-mode servers after the volume changed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from airpods.engine.base import Engine, OneOff
from airpods.errors import RuntimeFailure, UsageError
from airpods.models.gguf_meta import ModelInfo, NotGguf, check_magic, read_model
from airpods.models.sources import SHARD_RE
from airpods.models.store import ModelStore, Partial, StoredModel, copy_file, model_name
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


def model_mount(stack: Stack) -> Mount:
    """What the llama.cpp services mount at /models: a named volume or a host folder."""
    for spec in llama_instances(stack):
        for mount in spec.mounts:
            if mount.target == MODELS_DIR:
                return mount
    raise UsageError(
        "no llama.cpp service mounts a model volume or folder at /models",
        hint='services.llamacpp.volumes needs { source = "airpods_llamacpp_models", target = "/models" } '
        '(or a host folder: { source = "/srv/models", target = "/models" })',
    )


def model_store(stack: Stack, engine: Engine) -> ModelStore:
    """The model store of the stack's llama.cpp services (see ModelStore for the kinds)."""
    mount = model_mount(stack)
    return ModelStore(engine, mount.source, stack.labels, folder=not mount.named)


def configured_model(spec: ServiceSpec) -> str | None:
    """The model a single-model instance serves (--model /models/F: F's model name, the folder
    for a part of a folder model), None in router mode."""
    path = spec.server.model
    return model_name(path.removeprefix(MODELS_DIR + "/").split("/")[0]) if path else None


def tool_image(image: str, target: str) -> str:
    """The official image of another target for the same backend: :server-cuda → :full-cuda."""
    repo, _, tag = image.rpartition(":")
    if not repo or not re.match(r"^server(-|\Z)", tag):
        raise RuntimeFailure(
            f"cannot tell the llama.cpp :{target} image that goes with {image}",
            hint="use an official ghcr.io/ggml-org/llama.cpp:server* image for llamacpp",
        )
    return f"{repo}:{target}{tag[len('server') :]}"


def serving(stack: Stack, running: set[str]) -> dict[str, list[str]]:
    """model name → running instances that can serve it ('*' = every model, router mode)."""
    table: dict[str, list[str]] = {}
    for spec in llama_instances(stack):
        if spec.container in running:
            table.setdefault(configured_model(spec) or "*", []).append(spec.name)
    return table


def read_stored(model: StoredModel, *, full: bool = False) -> ModelInfo:
    """Header facts of a model (file or folder): its first weights file's metadata, with the
    size and parameters of every part."""
    first = read_model(model.weights[0], full=full)
    parameters = first.parameters + sum(read_model(p).parameters for p in model.weights[1:])
    return replace(first, file=model.name, size=model.size, parameters=parameters)


def list_models(store: ModelStore, stack: Stack, running: set[str]) -> list[dict[str, object]]:
    """One row per model (a folder of shards or with its mmproj is one), named as /v1/models
    lists it, with its parts, a problem (an incomplete split set) and who serves it."""
    served = serving(stack, running)
    rows = []
    blank = {k: None for k in ("architecture", "name", "parameters", "quantization", "context_length")}
    for model in store.models():
        problem = model.problem
        try:
            if model.unseen:  # nothing of it is read (a FIFO would block)
                raise NotGguf(model.unseen)
            summary = read_stored(model).summary()
        except NotGguf as exc:  # one bad file is one row that says so; the others list normally
            problem = exc.message
            summary = {**blank, "size": model.size}
        rows.append(
            {
                **summary,
                "file": model.name,
                "name": model.name,
                "parts": [str(p.relative_to(store.root)) for p in model.parts],
                "problem": problem,
                "backend": "llamacpp",
                "served_by": [] if problem else sorted(set(served.get(model.name, []) + served.get("*", []))),
            }
        )
    for partial in store.partials():
        resume = resume_hint(partial)
        rows.append(
            {
                **blank,
                "size": partial.size,
                "file": partial.path.name,
                "name": partial.name,
                "parts": [partial.path.name],
                "problem": "downloading now"
                if partial.downloading
                else f"partial download: {resume}, `airpods models rm {partial.name}` removes it",
                "backend": "llamacpp",
                "served_by": [],
                "partial": True,
                "source": partial.url,
            }
        )
    return rows


def resume_hint(partial: Partial) -> str:
    """The command that resumes a kept download, as the user can paste it: a single file pulled
    from a URL (quoted; with --name when the name is not the URL's own), else the words."""
    import shlex
    from urllib.parse import urlsplit

    if partial.url is None or partial.path.is_dir():
        return "the pull that started it resumes it"
    own = model_name(Path(urlsplit(partial.url).path).name)
    named = "" if own == partial.name else f" --name {shlex.quote(partial.name)}"
    return f"`airpods models pull {shlex.quote(partial.url)}{named}` resumes it"


def inspect_model(store: ModelStore, name: str) -> tuple[StoredModel, ModelInfo]:
    model = store.model(name)
    return model, read_stored(model, full=True)


def remove_model(store: ModelStore, stack: Stack, name: str, force: bool) -> StoredModel:
    """Delete one model (every part of a folder model; a symbolic link as a link); kept when an
    instance is configured to serve it, unless `force`."""
    model = store.model(name)
    users = [s.name for s in llama_instances(stack) if configured_model(s) == model.name]
    if users and not force:
        raise UsageError(
            f"{model.name} is the configured model of {', '.join(users)}; it was kept",
            hint="change their command_args.model first, or pass --force",
        )
    store.remove(model)
    return model


def import_model(store: ModelStore, source: Path, name: str | None, overwrite: bool, progress) -> str:
    """A local GGUF file, or a folder of GGUF files (split shards, or a model and its mmproj),
    copied in as one model. Every header is checked before anything is copied. Returns its name."""
    if source.is_dir():
        parts = sorted(p for p in source.iterdir() if p.name.endswith(".gguf") and not p.is_dir())
        if not parts:
            raise UsageError(f"{source} holds no .gguf files")
        odd = [p.name for p in parts if not p.is_file()]
        if odd:  # a projector that is a FIFO was skipped: the model came in without it
            raise UsageError(
                f"{source}: {', '.join(odd)} {'is' if len(odd) == 1 else 'are'} not a regular file; "
                "nothing was imported",
                hint="copy the real file into the folder (or leave it out), then import again",
            )
        for part in parts:
            read_model(part)
        target = name or source.name
        store.require_space(sum(p.stat().st_size for p in parts), target)
        with store.incoming_folder(target, overwrite=overwrite) as folder:
            for part in parts:
                copy_file(part, folder / part.name, progress(part.name, part.stat().st_size))
        return model_name(target)
    if not source.is_file():
        raise UsageError(f"{source} is not a file or a folder")
    if shard := SHARD_RE.match(source.name):  # one shard names its whole set (llama.cpp's own docs)
        return _import_split(store, source, shard, name, overwrite, progress)
    read_model(source)  # not GGUF, or a damaged header: refused before anything is copied
    target = name or source.name
    store.copy_in(source, target, overwrite=overwrite, progress=progress(source.name, source.stat().st_size))
    return model_name(target)


def _import_split(
    store: ModelStore, source: Path, shard: re.Match[str], name: str | None, overwrite: bool, progress
) -> str:
    """Every shard of a split set, given one of them, as one folder model named without the
    -0000K-of-0000N suffix; a set with a shard missing is refused naming it."""
    count = int(shard["count"])
    parts = [source.with_name(f"{shard['base']}-{k:05d}-of-{count:05d}.gguf") for k in range(1, count + 1)]
    absent = [p.name for p in parts if not p.is_file()]
    if absent:
        raise UsageError(
            f"{source.name} is one of {count} shards, and {', '.join(absent)} {'is' if len(absent) == 1 else 'are'} "
            f"not beside it in {source.parent}; nothing was imported",
            hint="put every shard of the set in one folder, then import any of them",
        )
    for part in parts:
        read_model(part)
    target = name or shard["base"]
    store.require_space(sum(p.stat().st_size for p in parts), target)
    with store.incoming_folder(target, overwrite=overwrite) as folder:
        for part in parts:
            copy_file(part, folder / part.name, progress(part.name, part.stat().st_size))
    return model_name(target)


ToolOutput = Callable[[str], None]  # sees each line a tool prints, as it prints it


def tool_timeout_s(size: int) -> float:
    """How long a tool may take over a model of `size` bytes: 5 minutes, plus 15 per GB (a
    2-core CPU quantizes a few hundred MB a minute; a hung tool fails instead of blocking)."""
    return 300 + 900 * size / 1e9


def _tool_failure(what: str, done: subprocess.CompletedProcess[str]) -> RuntimeFailure:
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
    return RuntimeFailure(f"{what} failed (exit {done.returncode}):\n{tail}")


def quantize_model(
    engine: Engine,
    store: ModelStore,
    stack: Stack,
    src: str,
    qtype: str,
    name: str | None,
    overwrite: bool,
    on_line: ToolOutput | None = None,
) -> Path:
    """llama-quantize in a one-off container of the :full image (its tools.sh --quantize), into
    a hidden partial renamed when complete. Name, type and space are checked before anything
    runs. Returns the new model's path."""
    qtype = qtype.upper()
    if qtype not in QUANT_TYPES:
        raise UsageError(f"unknown quantization type {qtype}", hint="types: " + ", ".join(QUANT_TYPES))
    source = store.model(src)
    if len(source.parts) > 1:
        raise UsageError(f"{source.name} is a folder model; quantize takes a single-file model")
    out = store.check_new(name or re.sub(r"(?i)[-.](F32|F16|BF16|Q\d\w*)$", "", source.name) + f"-{qtype}", overwrite)
    store.require_space(source.size, out)
    spec = llama_instances(stack)[0]
    with store.incoming(out, overwrite=overwrite) as partial:
        done = engine.run_one_off(
            OneOff(
                tool_image(spec.image, "full"),
                ("--quantize", f"{MODELS_DIR}/{source.path.name}", f"{MODELS_DIR}/{partial.name}", qtype),
                mounts=(store.mount(),),
                gpu=spec.gpu_request,
                tool="quantize",
            ),
            on_line=on_line,
            timeout_s=tool_timeout_s(source.size),
        )
        if done.returncode != 0 or not partial.exists():
            raise _tool_failure("llama-quantize", done)
        check_magic(partial)
    return store.root / f"{out}.gguf"


def convert_model(
    engine: Engine,
    store: ModelStore,
    stack: Stack,
    hf_dir: Path,
    out: str,
    overwrite: bool,
    on_line: ToolOutput | None = None,
) -> Path:
    """convert_hf_to_gguf.py from the :full image, where that image has it (and Python): the
    Hugging Face folder `hf_dir` becomes the model `out` (F16), written under a hidden name and
    renamed into place when the converter succeeded. The folder and the name are checked before
    anything runs. Returns its path."""
    if not hf_dir.is_dir():
        raise UsageError(f"{hf_dir} does not exist or is not a folder")
    if not (hf_dir / "config.json").is_file():
        raise UsageError(
            f"{hf_dir} is not a Hugging Face model folder (no config.json)",
            hint="convert takes the folder a model was downloaded to: config.json, tokenizer and *.safetensors",
        )
    out = store.check_new(out, overwrite)
    size = sum(p.stat().st_size for p in hf_dir.rglob("*") if p.is_file())
    store.require_space(size, out)
    spec = llama_instances(stack)[0]
    image = tool_image(spec.image, "full")
    probe = engine.run_one_off(
        OneOff(
            image,
            ("-c", "test -f /app/convert_hf_to_gguf.py && command -v python3"),
            entrypoint="/bin/sh",
            tool="convert",
        )
    )
    if probe.returncode != 0:
        raise RuntimeFailure(
            f"{image} has no convert_hf_to_gguf.py with Python, so it cannot convert models",
            hint="the official :full image has it; a custom or trimmed image may not",
        )
    with store.incoming(out, overwrite=overwrite) as partial:
        done = engine.run_one_off(
            OneOff(
                image,
                ("--convert", "--outtype", "f16", "--outfile", f"{MODELS_DIR}/{partial.name}", "/input"),
                mounts=(Mount(str(hf_dir.resolve()), "/input", "ro", False), store.mount()),
                tool="convert",
            ),
            on_line=on_line,
            timeout_s=tool_timeout_s(size),
        )
        if done.returncode != 0 or not partial.exists():
            raise _tool_failure("convert_hf_to_gguf.py", done)
        check_magic(partial)
    return store.root / f"{out}.gguf"
