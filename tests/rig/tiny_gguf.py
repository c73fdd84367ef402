#!/usr/bin/env python3
"""Write a tiny but real llama-architecture GGUF model with llama.cpp's own `gguf` writer:
random weights, a SentencePiece-style vocabulary (byte tokens plus a few word pieces) and a chat
template. llama-server loads it and produces (gibberish) tokens: real tokens through the real
server, which is what the end-to-end tests need. About 0.5 MB; deterministic for a seed.

    python tests/rig/tiny_gguf.py OUT.gguf [--embd 64] [--layers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
WORDS = ["▁the", "▁a", "▁hello", "▁world", "▁model", "▁tiny", "▁is", "▁ok", "▁llama", "▁pod"]


def write_tiny_model(
    path: Path,
    *,
    n_embd: int = 64,
    n_layers: int = 2,
    n_head: int = 4,
    n_ff: int = 128,
    seed: int = 0,
    name: str = "airpods-tiny",
    split_max_tensors: int = 0,
) -> Path:
    """The model at `path`; with `split_max_tensors`, a split set instead (llama.cpp's shard
    naming: PATH-00001-of-0000N.gguf beside `path`), and the first shard's path is returned."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + WORDS
    types = (
        [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
        + [gguf.TokenType.BYTE] * 256
        + [gguf.TokenType.NORMAL] * len(WORDS)
    )
    scores = [0.0] * 259 + [-float(i) for i in range(len(WORDS))]
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    writer.add_name(name)
    writer.add_context_length(512)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_chat_template(CHAT_TEMPLATE)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    tensor("token_embd.weight", n_vocab, n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    tensor("output.weight", n_vocab, n_embd)
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for part in ("q", "k", "v", "output"):
            tensor(f"blk.{i}.attn_{part}.weight", n_embd, n_embd)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        tensor(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_down.weight", n_embd, n_ff)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        shards = sorted(path.parent.glob(f"{path.stem}-0*-of-0*.gguf"))
        return shards[0]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--embd", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--ff", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_tiny_model(args.out, n_embd=args.embd, n_layers=args.layers, n_ff=args.ff, seed=args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
