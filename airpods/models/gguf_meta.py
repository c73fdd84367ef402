"""What a GGUF file says about itself, from its header (the `gguf` package memory-maps the file:
tensor data is never read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    @property
    def embedding(self) -> bool:
        """An embedding model: an encoder architecture, or a file that declares a pooling type."""
        return self.architecture in ENCODER_ARCHITECTURES or self.pooling not in (None, "none")

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


def _value(field_: Any) -> Any:
    try:
        value = field_.contents()
    except Exception:  # noqa: BLE001  (a field gguf cannot decode is shown as absent, not fatal)
        return None
    if isinstance(value, list) and len(value) > 16:
        return f"[{len(value)} items]"
    return value


def file_type_name(code: int | None) -> str:
    if code is None:
        return "unknown"
    from gguf import LlamaFileType

    try:
        return LlamaFileType(code).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"type {code}"


def read_model(path: Path, *, full: bool = False) -> ModelInfo:
    """Header facts of one GGUF file; `full` also keeps the metadata worth showing (inspect)."""
    check_magic(path)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001  (gguf raises ValueError/struct.error on damaged files)
        raise NotGguf(f"{path.name}: damaged GGUF header ({exc})") from None
    fields = reader.fields
    arch = _value(fields["general.architecture"]) if "general.architecture" in fields else "unknown"
    ctx = fields.get(f"{arch}.context_length")
    pooling_field = fields.get(f"{arch}.pooling_type")
    pooling_code = _value(pooling_field) if pooling_field is not None else None
    pooling = POOLING_TYPES[pooling_code] if isinstance(pooling_code, int) and 0 <= pooling_code < 5 else None
    file_type = fields.get("general.file_type")
    metadata: dict[str, Any] = {}
    if full:
        for key, value in fields.items():
            if key.startswith(SHOWN_PREFIXES) or (
                key.startswith(f"{arch}.") and (key.endswith(SHOWN_SUFFIXES) or ".rope." in key)
            ):
                metadata[key] = _value(value)
        metadata["tokenizer.chat_template"] = "present" if "tokenizer.chat_template" in fields else "absent"
        tokens = fields.get("tokenizer.ggml.tokens")
        if tokens is not None:
            metadata["tokenizer.ggml.tokens"] = f"[{len(tokens.data)} tokens]"
        metadata["tensors"] = len(reader.tensors)
    return ModelInfo(
        file=path.name,
        size=path.stat().st_size,
        architecture=str(arch),
        name=_value(fields["general.name"]) if "general.name" in fields else None,
        parameters=sum(int(t.n_elements) for t in reader.tensors),
        quantization=file_type_name(_value(file_type) if file_type is not None else None),
        context_length=_value(ctx) if ctx is not None else None,
        metadata=metadata,
        pooling=pooling,
    )
