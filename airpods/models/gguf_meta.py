"""What a GGUF file says about itself, from its header alone (tensor data is never read)."""

from __future__ import annotations

import functools
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from airpods.errors import RuntimeFailure

MAGIC = b"GGUF"
SHOWN_PREFIXES = ("general.", "tokenizer.ggml.model", "tokenizer.ggml.pre", "split.")
SHOWN_SUFFIXES = (
    ".context_length",
    ".embedding_length",
    ".block_count",
    ".feed_forward_length",
    ".attention.head_count",
    ".attention.head_count_kv",
    ".expert_count",
    ".vocab_size",
)


# Encoder (embedding) architectures, as llama.cpp names them in GGUF files (src/llama-arch.cpp,
# LLM_ARCH_NAMES): a model of one of these serves /v1/embeddings, not chat.
ENCODER_ARCHITECTURES = frozenset(
    {
        "bert",
        "modern-bert",
        "nomic-bert",
        "nomic-bert-moe",
        "neo-bert",
        "jina-bert-v2",
        "jina-bert-v3",
        "eurobert",
        "t5encoder",
    }
)
# `{arch}.pooling_type` values (include/llama.h, enum llama_pooling_type) by llama-server's
# --pooling names.
POOLING_TYPES = ("none", "mean", "cls", "last", "rank")


class NotGguf(RuntimeFailure):
    """A file that is not a GGUF model."""


@dataclass(frozen=True)
class ModelInfo:
    file: str
    size: int
    architecture: str
    name: str | None
    parameters: int
    quantization: str
    context_length: int | None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    pooling: str | None = None  # the pooling type the file declares (`{arch}.pooling_type`), if any

    def summary(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "size": self.size,
            "architecture": self.architecture,
            "name": self.name,
            "parameters": self.parameters,
            "quantization": self.quantization,
            "context_length": self.context_length,
        }


def check_magic(path: Path) -> None:
    """Reject a non-GGUF file before anything is copied."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise NotGguf(f"cannot read {path}: {exc.strerror}") from None
    if head[:4] != MAGIC:
        raise NotGguf(
            f"{path} is not a GGUF model (it does not start with the GGUF magic bytes)",
            hint="convert it first: `airpods models convert` takes a Hugging Face model folder",
        )


def file_type_name(code: int | None) -> str:
    if code is None:
        return "unknown"
    from gguf import LlamaFileType

    try:
        return LlamaFileType(code).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"type {code}"


# The GGUF header is read here, not with the gguf package: GGUFReader maps every tensor's type
# to its enum and raises on a type newer than the installed package (measured: a tensor type 77
# → "ValueError: 77 is not a valid GGMLQuantizationType"), and one such file made `models list`
# fail for every model. The format (ggml docs/gguf.md): magic, version (u32), tensor count and
# KV count (u64), the KV pairs, then per tensor its name, dimensions, type and offset.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
MAX_SHOWN_ITEMS = 16


class _Header:
    """A forward-only reader over the header bytes of a GGUF file."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        raw = self.handle.read(size)
        if len(raw) != size:
            raise NotGguf("the header ends early (a truncated file)")
        return struct.unpack(fmt, raw)[0]

    def skip(self, size: int) -> None:
        target = self.handle.tell() + size
        if target > os.fstat(self.handle.fileno()).st_size:
            raise NotGguf("the header ends early (a truncated file)")
        self.handle.seek(target)

    def string(self) -> str:
        length = self.take("<Q")
        if length > 1 << 26:
            raise NotGguf(f"a string of {length} bytes in the header (a damaged file)")
        raw = self.handle.read(length)
        if len(raw) != length:
            raise NotGguf("the header ends early (a truncated file)")
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.take("<I"), self.take("<Q")
            if count <= MAX_SHOWN_ITEMS:
                return [self.value(item_kind) for _ in range(count)]
            if item_kind in _SCALARS:  # a long array of numbers: skipped whole, not unpacked
                self.skip(count * struct.calcsize(_SCALARS[item_kind]))
            else:
                for _ in range(count):
                    self.value(item_kind)
            return _Items(count)
        raise NotGguf(f"unknown metadata value type {kind} (a newer GGUF than airpods reads, or a damaged file)")


class _Items(int):
    """A long array kept as its length (a vocabulary of 150,000 tokens is not shown)."""

    def __repr__(self) -> str:
        return f"[{int(self)} items]"

    __str__ = __repr__


def _check_data(path: Path, header_end: int, alignment: Any, tensors: list[tuple[int, int, int]]) -> int:
    """A file cut after its header (a download that stopped, a copy that did not finish) is not a
    model: its tensors must end within the file. Sizes per type from the gguf package's
    GGML_QUANT_SIZES (ggml's type traits); a type it does not know is not checked. Returns where
    the tensor data starts (byte offset in the file)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    align = alignment if isinstance(alignment, int) and alignment > 0 else 32
    start = -(-header_end // align) * align
    end = 0
    for offset, kind, elements in tensors:
        try:
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            continue
        end = max(end, start + offset + elements // block * size)
    actual = path.stat().st_size
    if end > actual:
        raise NotGguf(f"the file is cut short: its tensors end at byte {end}, the file has {actual} (truncated)")
    return start


class Tensor(NamedTuple):
    name: str
    elements: int
    nbytes: int  # its data in the file: up to the next tensor's offset (alignment padding included)


def read_header(path: Path, *, model_only: bool = False) -> tuple[dict[str, Any], list[Tensor]]:
    """(metadata, tensors) of a GGUF file, from its header alone. With
    `model_only`, the metadata up to the tokenizer's (a vocabulary is most of a header) and no
    tensors: what recognising a model needs, in a fraction of the time. A file read before by
    this process, unchanged since (same size and mtime), is not read again (`models list` reads
    each header for its columns and for the fit check).

    Raises NotGguf (a runtime failure naming the file) for a file that is not GGUF, is truncated
    or damaged; tensor types unknown to airpods are fine (only names and shapes are read)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise NotGguf(f"cannot read {path}: {exc.strerror or exc}") from None
    fields, tensors = _read_header(path, stat.st_size, stat.st_mtime_ns, model_only)
    return dict(fields), list(tensors)


@functools.lru_cache(maxsize=32)
def _read_header(path: Path, size: int, mtime_ns: int, model_only: bool) -> tuple[dict[str, Any], tuple[Tensor, ...]]:
    """read_header's work, memoised by the file's identity (`size` and `mtime_ns` are the key)."""
    try:
        with path.open("rb") as handle:
            if handle.read(4) != MAGIC:
                raise NotGguf(f"{path.name} is not a GGUF model (it does not start with the GGUF magic bytes)")
            reader = _Header(handle)
            version = reader.take("<I")
            if version not in (2, 3):
                raise NotGguf(f"{path.name}: GGUF version {version}, airpods reads versions 2 and 3")
            tensors, count = reader.take("<Q"), reader.take("<Q")
            metadata: dict[str, Any] = {}
            for _ in range(count):
                key = reader.string()
                if model_only and key.startswith("tokenizer."):
                    return metadata, ()
                metadata[key] = reader.value(reader.take("<I"))
            names = []
            ends = []
            for _ in range(0 if model_only else tensors):
                name = reader.string()
                dims = [reader.take("<Q") for _ in range(reader.take("<I"))]
                kind, offset = reader.take("<I"), reader.take("<Q")
                names.append(name)
                ends.append((offset, kind, math.prod(dims)))
            shapes: list[Tensor] = []
            if ends:
                data_start = _check_data(path, handle.tell(), metadata.get("general.alignment", 32), ends)
                bounds = sorted({offset for offset, _, _ in ends} | {path.stat().st_size - data_start})
                following = {offset: bounds[bounds.index(offset) + 1] for offset, _, _ in ends}
                shapes = [
                    Tensor(name, elements, following[offset] - offset)
                    for name, (offset, _, elements) in zip(names, ends, strict=True)
                ]
    except OSError as exc:
        raise NotGguf(f"cannot read {path}: {exc.strerror or exc}") from None
    except NotGguf as exc:
        if not exc.message.startswith(path.name) and not exc.message.startswith("cannot read"):
            exc.message = f"{path.name}: {exc.message}"
        raise
    return metadata, tuple(shapes)


def _pooling(fields: dict[str, Any], arch: str) -> str | None:
    code = fields.get(f"{arch}.pooling_type")
    return POOLING_TYPES[code] if isinstance(code, int) and 0 <= code < len(POOLING_TYPES) else None


def is_embedding(architecture: str, pooling: str | None) -> bool:
    """An embedding model: an encoder architecture, or a file that declares a pooling type."""
    return architecture in ENCODER_ARCHITECTURES or pooling not in (None, "none")


def recognise(path: Path) -> tuple[str, str | None]:
    """(architecture, declared pooling type or None) of a GGUF file, from the start of its
    header. Raises NotGguf."""
    fields, _ = read_header(path, model_only=True)
    arch = str(fields.get("general.architecture", "unknown"))
    return arch, _pooling(fields, arch)


def read_model(path: Path, *, full: bool = False) -> ModelInfo:
    """Header facts of one GGUF file; `full` also keeps the metadata worth showing (inspect).
    Raises NotGguf for a file whose header cannot be read."""
    fields, shapes = read_header(path)
    arch = str(fields.get("general.architecture", "unknown"))
    ctx = fields.get(f"{arch}.context_length")
    pooling = _pooling(fields, arch)
    file_type = fields.get("general.file_type")
    metadata: dict[str, Any] = {}
    if full:
        for key, value in fields.items():
            if key.startswith(SHOWN_PREFIXES) or (
                key.startswith(f"{arch}.") and (key.endswith(SHOWN_SUFFIXES) or ".rope." in key)
            ):
                metadata[key] = str(value) if isinstance(value, _Items) else value
        metadata["tokenizer.chat_template"] = "present" if "tokenizer.chat_template" in fields else "absent"
        tokens = fields.get("tokenizer.ggml.tokens")
        if tokens is not None:
            metadata["tokenizer.ggml.tokens"] = f"[{len(tokens) if isinstance(tokens, list) else int(tokens)} tokens]"
        metadata["tensors"] = len(shapes)
    return ModelInfo(
        file=path.name,
        size=path.stat().st_size,
        architecture=arch,
        name=fields.get("general.name"),
        parameters=sum(tensor.elements for tensor in shapes),
        quantization=file_type_name(file_type if isinstance(file_type, int) else None),
        context_length=ctx if isinstance(ctx, int) else None,
        metadata=metadata,
        pooling=pooling,
    )
