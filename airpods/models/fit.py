"""Will a model fit? What llama-server allocates for a GGUF model at a given context, estimated
from the file's header before anything loads, and compared with what the host and the service's
container have.

llama-server's own `--fit` (on by default) already adjusts *unset* arguments (GPU layers,
context) to the free device memory. What it cannot see is what airpods adds around it: the
container's memory limit (`resources.memory`), a router loading several models at once, several
instances on one host. This module answers for those.

The three parts llama-server reports at load (its log at `--log-verbosity 4`: "model buffer
size", "KV buffer size", "compute buffer size"):
- weights: the tensors' bytes in the file (mmap'd on the CPU; split between host and GPU by
  --n-gpu-layers, one `blk.N.` block per layer);
- KV cache: n_ctx cells (rounded up to 256, llama.cpp's padding) × every layer's
  (n_embd_k_gqa + n_embd_v_gqa) elements × the cache type's size (ggml's type traits: f16 2
  bytes, q8_0 34 per 32 elements …); one unified cache for all slots (kv_unified), so
  --parallel does not change it; encoder models (BERT …) have none;
- compute buffer: the peak of the graph's intermediate tensors for one micro-batch
  (--ubatch-size, 512): n_ubatch × 4 bytes × max(k·n_ff + n_embd, n_vocab + n_embd) (the
  feed-forward block's live tensors, k = 4 for a gated block, 2 otherwise, or the output
  logits), plus the attention mask, n_ctx × n_ubatch × 2 bytes (f16, flash attention); an
  encoder (BERT) has no logits and a mask of n_ubatch × n_ubatch. Fitted to what the rig's
  llama-server (build 11434, CPU) reports for llama-architecture models of 64 and 512 embedding
  sizes at 512 to 16384 cells and for all-MiniLM-L6-v2 (tests/unit/test_fit.py, and
  tests/integration/test_fit.py live, within 15 %); for Llama 3 8B it gives the 258 MiB that
  llama.cpp's logs show. With layers on a GPU the split is not measured (the rig has no GPU).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from airpods.models.gguf_meta import ENCODER_ARCHITECTURES, read_header

MIB = 1024 * 1024
CTX_PAD = 256  # llama.cpp pads the KV cache's cells to this (llama_context: n_ctx padding)
DEFAULT_UBATCH = 512  # llama-server's --ubatch-size default
# Bytes per element of llama-server's --cache-type-k/-v choices (ggml type traits: block bytes
# over block elements).
CACHE_TYPE_BYTES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "iq4_nl": 18 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}
LAYER_RE = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class Shape:
    """What the estimate needs from a model's header (every part of a split set)."""

    architecture: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_vocab: int
    kv_per_cell: int  # elements one KV cell holds over all layers: Σ (n_embd_k_gqa + n_embd_v_gqa)
    n_ctx_train: int | None
    gated: bool  # a gated feed-forward block (blk.N.ffn_gate: SwiGLU and the like)
    layer_bytes: tuple[int, ...]  # weights of blk.0, blk.1, …
    output_bytes: int  # the output layer and its norm (offloaded with the last block)
    other_bytes: int  # the token embeddings and the rest outside the blocks (kept on the host)

    @property
    def encoder(self) -> bool:
        return self.architecture in ENCODER_ARCHITECTURES


def _int(fields: dict[str, object], key: str, default: int = 0) -> int:
    value = fields.get(key, default)
    if isinstance(value, list):  # per-layer values (e.g. head_count_kv of hybrid models): the largest
        value = max((v for v in value if isinstance(v, int)), default=default)
    return value if isinstance(value, int) else default


def read_shape(parts: Sequence[Path]) -> Shape:
    """The shape of a model stored as `parts` (one file, or a split set's shards, first first).
    Raises NotGguf for a file whose header cannot be read."""
    fields, first = read_header(parts[0])
    tensors = [*first, *(t for part in parts[1:] for t in read_header(part)[1])]
    layer: dict[int, int] = {}
    other = output = 0
    for tensor in tensors:
        if match := LAYER_RE.match(tensor.name):
            layer[int(match[1])] = layer.get(int(match[1]), 0) + tensor.nbytes
        elif tensor.name.startswith("output"):
            output += tensor.nbytes
        else:
            other += tensor.nbytes
    arch = str(fields.get("general.architecture", "unknown"))
    n_layer = _int(fields, f"{arch}.block_count", len(layer))
    n_embd = _int(fields, f"{arch}.embedding_length")
    n_head = _int(fields, f"{arch}.attention.head_count", 1) or 1
    n_head_kv = _int(fields, f"{arch}.attention.head_count_kv", n_head) or n_head
    head_k = _int(fields, f"{arch}.attention.key_length", n_embd // n_head)
    head_v = _int(fields, f"{arch}.attention.value_length", n_embd // n_head)
    tokens = fields.get("tokenizer.ggml.tokens")
    n_vocab = _int(fields, f"{arch}.vocab_size") or (len(tokens) if isinstance(tokens, list) else int(tokens or 0))
    ctx = fields.get(f"{arch}.context_length")
    return Shape(
        architecture=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=_int(fields, f"{arch}.feed_forward_length"),
        n_vocab=n_vocab,
        kv_per_cell=n_layer * n_head_kv * (head_k + head_v),
        n_ctx_train=ctx if isinstance(ctx, int) else None,
        gated=any(LAYER_RE.match(t.name) and ".ffn_gate" in t.name for t in tensors),
        layer_bytes=tuple(layer.get(i, 0) for i in range(max(n_layer, len(layer)))),
        output_bytes=output,
        other_bytes=other,
    )


@dataclass(frozen=True)
class Settings:
    """The llama-server arguments the estimate depends on. `ctx` None: the model's own
    (llama-server's --ctx-size 0); `gpu_layers`: layers offloaded (0 on the CPU image)."""

    ctx: int | None = None
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    ubatch: int = DEFAULT_UBATCH
    gpu_layers: int = 0


@dataclass(frozen=True)
class Estimate:
    """Bytes llama-server allocates, by part and by where (host RAM or GPU)."""

    ctx: int
    weights_host: int
    weights_gpu: int
    kv_host: int
    kv_gpu: int
    compute_host: int
    compute_gpu: int

    @property
    def host(self) -> int:
        return self.weights_host + self.kv_host + self.compute_host

    @property
    def gpu(self) -> int:
        return self.weights_gpu + self.kv_gpu + self.compute_gpu

    @property
    def total(self) -> int:
        return self.host + self.gpu

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "host": self.host, "gpu": self.gpu, "total": self.total}


def context_of(shape: Shape, settings: Settings) -> int:
    """The KV cache's cells: --ctx-size, else the model's training context, padded to 256."""
    ctx = settings.ctx or shape.n_ctx_train or 4096
    return math.ceil(ctx / CTX_PAD) * CTX_PAD


def estimate(shape: Shape, settings: Settings) -> Estimate:
    """What llama-server allocates for `shape` with `settings` (see the module's docstring for
    the formula and its sources). Bytes; an unknown cache type counts as f16."""
    ctx = context_of(shape, settings)
    offloaded = min(max(settings.gpu_layers, 0), shape.n_layer)
    on_gpu = sum(shape.layer_bytes[len(shape.layer_bytes) - offloaded :]) if offloaded else 0
    # The last blocks go first; the output layer goes with all of them (-ngl all).
    weights_gpu = on_gpu + (shape.output_bytes if offloaded and offloaded == shape.n_layer else 0)
    weights_host = sum(shape.layer_bytes) + shape.output_bytes + shape.other_bytes - weights_gpu
    per_cell = (
        shape.kv_per_cell
        / 2
        * (CACHE_TYPE_BYTES.get(settings.cache_type_k, 2.0) + CACHE_TYPE_BYTES.get(settings.cache_type_v, 2.0))
    )
    kv = 0 if shape.encoder else int(ctx * per_cell)
    kv_gpu = kv * offloaded // shape.n_layer if shape.n_layer else 0
    compute = compute_bytes(shape, ctx, settings.ubatch)
    return Estimate(
        ctx=ctx,
        weights_host=weights_host,
        weights_gpu=weights_gpu,
        kv_host=kv - kv_gpu,
        kv_gpu=kv_gpu,
        # With layers on a GPU the graph's big buffer is there, and the host keeps one for the
        # layers it runs (a share by layers: not measured here, the rig has no GPU).
        compute_host=compute * (shape.n_layer - offloaded) // shape.n_layer if shape.n_layer else compute,
        compute_gpu=compute if offloaded else 0,
    )


def compute_bytes(shape: Shape, ctx: int, ubatch: int = DEFAULT_UBATCH) -> int:
    """The compute buffer for one micro-batch of `ubatch` tokens over `ctx` cells."""
    ffn = (4 if shape.gated else 2) * shape.n_ff + shape.n_embd  # gate, up and their product live at once
    if shape.encoder:  # no logits and no KV: the batch attends to itself
        return ubatch * 4 * ffn + ubatch * ubatch * 2
    return ubatch * 4 * max(ffn, shape.n_vocab + shape.n_embd) + ctx * ubatch * 2


MAX_CTX = 1 << 22  # the largest context the search tries (llama.cpp models reach 1M–10M cells)


def largest_context(shape: Shape, settings: Settings, budget: int) -> int:
    """The largest --ctx-size (a multiple of 256, at most MAX_CTX) whose host memory fits in
    `budget` bytes; 0 when not even 256 cells fit. Memory only: a context beyond the model's
    training context is the caller's to point out."""
    low, high = 0, MAX_CTX // CTX_PAD
    while low < high:  # the host bytes grow with the context: bisect on multiples of 256
        middle = (low + high + 1) // 2
        if estimate(shape, replace(settings, ctx=middle * CTX_PAD)).host <= budget:
            low = middle
        else:
            high = middle - 1
    return low * CTX_PAD


def settings_from_args(args: Sequence[str], gpu: bool) -> Settings:
    """The estimate's settings from a llama-server command line as airpods renders it (long
    flag names). `gpu`: the instance runs a GPU image (then --n-gpu-layers unset or "all"/"auto"
    offloads every layer, as --fit does when the GPU has room)."""
    from airpods.stack.model import ServerSettings

    server = ServerSettings.from_args(args)
    layers = server.n_gpu_layers or ("all" if gpu else "0")
    return Settings(
        ctx=server.ctx_size,
        cache_type_k=server.cache_type_k,
        cache_type_v=server.cache_type_v,
        ubatch=server.ubatch_size or DEFAULT_UBATCH,
        gpu_layers=(1 << 16 if layers in ("all", "auto", "-1") else int(layers) if layers.isdigit() else 0)
        if gpu
        else 0,
    )


def meminfo(field: str = "MemAvailable", path: Path = Path("/proc/meminfo")) -> int | None:
    """A /proc/meminfo figure in bytes (MemAvailable: the kernel's estimate of memory free for
    new work, droppable page cache included; MemTotal), None where the file does not say. Read
    directly: one line of a kernel file, no library needed."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
