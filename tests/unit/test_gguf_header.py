"""The GGUF header reader (models/gguf_meta.py): what the gguf package refused, and files that
are not whole models, each reported as one problem."""

from __future__ import annotations

import struct

import pytest

from airpods.models.gguf_meta import NotGguf, read_model
from tests.rig.tiny_gguf import write_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> bytes:
    return write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.gguf").read_bytes()


def _with_tensor_type(data: bytes, kind: int) -> bytes:
    out = bytearray(data)
    at = out.find(b"token_embd.weight") + len(b"token_embd.weight")
    dims = struct.unpack_from("<I", out, at)[0]
    struct.pack_into("<I", out, at + 4 + 8 * dims, kind)
    return bytes(out)


def test_the_tiny_model_reads_as_the_gguf_package_wrote_it(tmp_path, tiny):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(tiny)
    info = read_model(path, full=True)
    assert (info.architecture, info.parameters, info.quantization, info.context_length) == ("llama", 116672, "F32", 512)
    assert info.metadata["tokenizer.ggml.tokens"] == "[269 tokens]" and info.metadata["tensors"] == 21


def test_a_tensor_type_newer_than_the_gguf_package_is_read(tmp_path, tiny):
    """gguf.GGUFReader raises 'not a valid GGMLQuantizationType' on such a file."""
    path = tmp_path / "newer.gguf"
    path.write_bytes(_with_tensor_type(tiny, 77))
    assert read_model(path).parameters == 116672


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda data: b"not a model at all", "is not a GGUF model"),
        (lambda data: data[:200], "truncated"),
        (lambda data: data[:4] + struct.pack("<I", 9) + data[8:], "GGUF version 9"),
        (lambda data: b"", "is not a GGUF model"),
        (lambda data: data[:300000], "cut short"),  # a whole header, part of the tensor data
    ],
)
def test_a_file_that_is_not_a_whole_model_is_one_problem(tmp_path, tiny, make, words):
    path = tmp_path / "broken.gguf"
    path.write_bytes(make(tiny))
    with pytest.raises(NotGguf) as caught:
        read_model(path)
    assert words in caught.value.message and "broken.gguf" in caught.value.message


def test_the_listing_survives_a_bad_file(tmp_path, tiny):
    from airpods.models.manage import list_models
    from airpods.stack.model import Stack
    from tests.unit.test_presets import _store

    (tmp_path / "good.gguf").write_bytes(tiny)
    (tmp_path / "broken.gguf").write_bytes(b"junk")
    (tmp_path / "cut.gguf").write_bytes(tiny[:300])
    rows = {r["name"]: r for r in list_models(_store(tmp_path), Stack(network="n", gpu=None, services=()), set())}
    assert rows["good"]["problem"] is None and rows["good"]["parameters"] == 116672
    assert "not a GGUF model" in rows["broken"]["problem"] and "truncated" in rows["cut"]["problem"]
    assert rows["cut"]["size"] == 300
